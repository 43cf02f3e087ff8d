"""Answer checks in capped worker processes: a crafted reference costs at most its caps, the event
loop stays free meanwhile, and a worker stuck past its caps is killed and replaced."""

import asyncio
import time

import pytest

from app.answers.checker import get_checker
from app.answers.pool import CheckPool
from app.refine.checks import PooledChecks
from app.refine.deadline import Deadline

SLOW = "10^{10^{10}}"


async def _lag_while(coro, tick=0.01):
    """Run `coro` while measuring the event loop's worst delay of a `tick` sleep."""
    worst, done = 0.0, False

    async def probe():
        nonlocal worst
        while not done:
            t = time.monotonic()
            await asyncio.sleep(tick)
            worst = max(worst, time.monotonic() - t - tick)

    p = asyncio.create_task(probe())
    try:
        return await coro, worst
    finally:
        done = True
        await p


def test_a_slow_reference_is_capped_off_the_event_loop():
    async def go():
        pool = CheckPool(workers=1, cap_s=0.3)
        pool.start()
        checks = PooledChecks(get_checker("math"), pool, Deadline.after(30))
        try:
            assert await checks.equivalent("0.5", "\\frac12")  # warm: the worker imported math-verify
            t = time.monotonic()
            verdicts, lag = await _lag_while(asyncio.gather(*[checks.equivalent(str(i), SLOW) for i in range(6)]))
            return verdicts, lag, time.monotonic() - t, checks.timeouts
        finally:
            await pool.aclose()

    verdicts, lag, took, timeouts = asyncio.run(go())
    assert verdicts == [False] * 6
    assert lag < 0.2  # the loop kept running while the worker worked
    assert took < 3 and 1 <= timeouts <= 3  # the slow answer is remembered, not retried per comparison


def test_a_worker_past_the_deadline_is_killed_and_replaced():
    async def go():
        pool = CheckPool(workers=1, cap_s=20)  # a cap longer than the deadline: only the kill can end it
        pool.start()
        try:
            math = get_checker("math")
            assert await PooledChecks(math, pool, Deadline.after(30)).equivalent("1/2", "0.5")
            t = time.monotonic()
            slow = PooledChecks(math, pool, Deadline.after(0.5))
            verdict = await slow.equivalent("7", SLOW)
            took = time.monotonic() - t
            after = await PooledChecks(math, pool, Deadline.after(30)).equivalent("\\frac{3}{4}", "0.75")
            return verdict, took, after
        finally:
            await pool.aclose()

    verdict, took, after = asyncio.run(go())
    assert verdict is False and took < 2
    assert after is True  # a fresh worker took its place


def test_numerals_and_the_synthetic_task_never_need_a_worker():
    async def go():
        pool = CheckPool(workers=1, cap_s=1)  # never started: any use would have to start it
        checks = PooledChecks(get_checker("synthetic"), pool, Deadline.after(5))
        got = (await checks.extract(["so the answer is 1,234."]), await checks.equivalent("1234", "1234.0"),
               await checks.clusters(["3", None, "3.0", "4"]))
        return got, pool._loop

    (extracted, same, groups), loop = asyncio.run(go())
    assert extracted == ["1234"] and same and groups == [("3", [0, 2]), ("4", [3])]
    assert loop is None


def test_math_clusters_and_extraction_in_a_worker():
    async def go():
        pool = CheckPool(workers=2, cap_s=1)
        pool.start()
        try:
            checks = PooledChecks(get_checker("math"), pool, Deadline.after(30))
            return (await checks.extract(["thus \\boxed{\\frac{1}{2}}", "no answer here"]),
                    await checks.clusters(["0.5", "\\frac12", None, "3", "3.0"]))
        finally:
            await pool.aclose()

    extracted, groups = asyncio.run(go())
    assert extracted == ["\\frac{1}{2}", None]
    assert groups == [("0.5", [0, 1]), ("3", [3, 4])]


def test_one_call_holds_a_worker_for_its_budget_at_most_and_others_still_get_verdicts():
    """A request whose answers are all slow cannot hold a worker for one cap per comparison: its
    call ends within its budget, and an honest request behind it gets a true verdict."""
    slow = [f"{b}^{{{b}^{{{b}^{{10}}}}}}" for b in range(2, 14)]  # 12 distinct slow answers: 66 comparisons

    async def go():
        pool = CheckPool(workers=1, cap_s=0.3)
        pool.start()
        try:
            math = get_checker("math")
            assert await PooledChecks(math, pool, Deadline.after(30)).equivalent("1/2", "0.5")  # warm
            t = time.monotonic()
            attacker = asyncio.create_task(PooledChecks(math, pool, Deadline.after(60)).clusters(slow))
            await asyncio.sleep(0.05)
            honest = await PooledChecks(math, pool, Deadline.after(30)).equivalent("\\frac{34}{2}", "17")
            groups = await attacker
            return honest, time.monotonic() - t, groups
        finally:
            await pool.aclose()

    honest, took, groups = asyncio.run(go())
    assert honest is True
    assert took < 4 * 0.3 + 1.5  # the budget (3 caps) + one cap + slack, not 66 caps
    assert sorted(i for _, members in groups for i in members) == list(range(12))  # each answer kept


@pytest.mark.alone  # a 60 ms cap: on two cores shared with other workers' tests, a warm check can wait longer to be scheduled
def test_a_fresh_worker_is_warm_before_it_says_ready():
    """math-verify's first parse and comparison build its parsers (about 90 ms, 13 times a warm one):
    a worker runs one before it is ready, so the first real check fits a cap shorter than that."""

    async def go():
        pool = CheckPool(workers=1, cap_s=0.06)
        pool.start()
        try:
            return await PooledChecks(get_checker("math"), pool, Deadline.after(30)).equivalent("\\frac{34}{2}", "17")
        finally:
            await pool.aclose()

    assert asyncio.run(go()) is True
