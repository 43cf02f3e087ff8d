"""The playground shows the refinement, in Debian's Chromium (Playwright) against the session's
real `rise serve` on the shipped model, at desktop and phone sizes: the feedback each turn got,
turns whose answer changed (with the answer before), a running tally as turns end, the final
tally saying which turns cast each vote, the chosen sample's legend, the answer/confidence chart,
Stop keeping the finished turns with a partial tally, and the compare view's verdict.

    .venv/bin/python -m pytest -q tests/api/test_playground_refinement.py
"""

from __future__ import annotations

import pytest

from app.refine.feedback import DEFAULT_FEEDBACK
from tests.api.test_playground_harness import browser, fill, opened, run  # noqa: F401 - fixture

pytestmark = pytest.mark.slow

# The README's example: an expert problem whose turn 1 is wrong and turn 2 fixes it (greedy).
EXPERT = ("Ana has 68 marbles. She ends up with 26 times as many. Then she buys 91 more. "
          "How many marbles does Ana have now?")
SIZES = [pytest.param({"viewport": {"width": 1280, "height": 900}}, id="desktop"),
         pytest.param({"viewport": {"width": 375, "height": 740}, "is_mobile": True, "has_touch": True}, id="phone")]

# Each time the page redraws its running tally: the title and rows (answer, votes, turns) it shows.
RECORD_TALLIES = """
window.__tallies = [];
const replace = Element.prototype.replaceChildren;
Element.prototype.replaceChildren = function (...nodes) {
  const out = replace.apply(this, nodes);
  if (this.classList && this.classList.contains("live") && this.querySelector(".running-tally")) {
    window.__tallies.push({
      title: this.querySelector(".running-tally h3").textContent,
      rows: [...this.querySelectorAll(".running-tally tr")].map((r) =>
        [r.dataset.answer, r.querySelector(".votes").textContent, r.querySelector(".cast-by").textContent]),
    });
  }
  return out;
};
"""


def cast_by(turns: list[int]) -> str:
    return ("turn " if len(set(turns)) == 1 else "turns ") + ", ".join(str(k) for k in turns)


def expected_tally(answers: list[str]) -> list[list[str]]:
    """Rows as the page shows them, most votes first (ties in order of first appearance)."""
    rows: dict[str, list[int]] = {}
    for k, a in enumerate(answers, 1):
        rows.setdefault(a, []).append(k)
    ordered = sorted(rows.items(), key=lambda kv: -len(kv[1]))
    return [[a, str(len(ks)), cast_by(ks)] for a, ks in ordered]


def no_sideways_scroll(page) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for selector in (".turn-feedback", ".tally", ".chart", ".legend", "#compare-verdict"):
        for i in range(page.locator(selector).count()):
            box = page.locator(selector).nth(i).bounding_box()
            if box:
                assert box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (selector, box)


@pytest.mark.parametrize("size", SIZES)
def test_turns_show_their_feedback_changes_running_tally_and_chart(browser, server, size):
    with opened(browser, server, init_script=RECORD_TALLIES, **size) as tab:
        page = tab.page
        fill(page, EXPERT, max_turns=3, temperature=0)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        cards = view.locator(".turn")
        answers = cards.locator("dd.answer").all_inner_texts()
        assert len(answers) == 3
        changed = [k for k in (2, 3) if answers[k - 1] != answers[k - 2]]
        assert changed, f"the example's turns never changed their answer: {answers}"

        # the feedback the model got before each turn after the first: RISE's sentence, the question in it
        told = DEFAULT_FEEDBACK.replace("{question}", EXPERT)
        assert cards.nth(0).locator(".turn-feedback").is_hidden()
        for k in (2, 3):
            card = cards.nth(k - 1)
            assert card.locator(".feedback-source").inner_text() == f"Told after turn {k - 1} (RISE's sentence):"
            assert card.locator(".feedback-text").inner_text() == told
            # a changed turn says so and shows the answer before it; a kept one says it is the same
            if k in changed:
                assert "changed" in card.get_attribute("class")
                assert card.locator(".change").inner_text() == "changed"
                assert card.locator("dd.previous").inner_text() == answers[k - 2]
            else:
                assert card.locator(".change").inner_text() == f"same as turn {k - 1}"
                assert card.locator("dd.previous").count() == 0
        assert cards.nth(0).locator(".change").is_hidden()

        # the running tally after each turn ended, then the final one: each vote says which turns cast it
        tallies = page.evaluate("window.__tallies")
        assert [t["rows"] for t in tallies] == [expected_tally(answers[:k]) for k in (1, 2, 3)], tallies
        assert [t["title"] for t in tallies] == ["Running tally"] * 3
        assert view.locator(".live").is_hidden()
        final = [[r.get_attribute("data-answer"), r.locator(".votes").inner_text(), r.locator(".cast-by").inner_text()]
                 for r in view.locator(".summary .tally tr").all()]
        assert final == expected_tally(answers)

        # the chart: one dot per turn on its answer's row; no confidence asked for, so no bars
        dots = view.locator(".summary .chart circle.dot")
        assert [dots.nth(i).get_attribute("data-answer") for i in range(3)] == answers
        assert [dots.nth(i).get_attribute("data-turn") for i in range(3)] == ["1", "2", "3"]
        ys = [float(dots.nth(i).get_attribute("cy")) for i in range(3)]
        assert (ys[0] == ys[1]) == (answers[0] == answers[1]) and (ys[1] == ys[2]) == (answers[1] == answers[2])
        assert view.locator(".summary .chart rect.conf").count() == 0
        assert view.locator(".legend").is_hidden()  # one sample per turn: nothing to choose between
        no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES)
def test_samples_show_the_chosen_ones_legend_and_votes_per_sample(browser, server, size):
    with opened(browser, server, **size) as tab:
        page = tab.page
        fill(page, max_turns=2, samples_per_turn=3, temperature=1.0, seed=21)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        legend = view.locator(".legend")
        assert legend.is_visible() and "the chosen sample" in legend.inner_text()
        cast: dict[str, list[int]] = {}
        for k in (1, 2):
            card = view.locator(f".turn[data-turn='{k}']")
            assert card.locator(".sample").count() == 3 and card.locator(".sample.chosen").count() == 1
            for text in card.locator(".sample-answer").all_inner_texts():
                answer = text.removeprefix("answer: ")
                if answer != "none":
                    cast.setdefault(answer, []).append(k)
        rows = {r.get_attribute("data-answer"): (r.locator(".votes").inner_text(), r.locator(".cast-by").inner_text())
                for r in view.locator(".summary .tally tr").all()}

        def said(turns: list[int]) -> str:
            parts = [f"{k} (×{turns.count(k)})" if turns.count(k) > 1 else str(k) for k in sorted(set(turns))]
            return ("turn " if len(set(turns)) == 1 else "turns ") + ", ".join(parts)

        assert rows == {a: (str(len(ks)), said(ks)) for a, ks in cast.items()}
        no_sideways_scroll(page)


def test_the_chart_shows_each_turns_confidence(browser, server):
    with opened(browser, server) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0.7, seed=5, aggregation="confidence")
        [view] = run(page).all()
        shown = view.locator("dd.confidence").all_inner_texts()
        assert len(shown) == 3
        dots = view.locator(".summary .chart circle.dot")
        assert [dots.nth(i).get_attribute("data-confidence") for i in range(3)] == shown
        bars = view.locator(".summary .chart rect.conf")
        assert bars.count() == 3
        heights = [float(bars.nth(i).get_attribute("height")) for i in range(3)]
        full = 36  # chart.js's BAR: a confidence of 1 fills it
        assert all(abs(h - full * max(float(c), 1 / full)) < 0.1 for h, c in zip(heights, shown)), (heights, shown)


# After the first turn has ended (its turn_end read), every further read waits until the test opens the gate.
HOLD_AFTER_TURN_1 = """
let gate = null, opened = null;
window.__openGate = () => opened && opened();
const read = ReadableStreamDefaultReader.prototype.read;
ReadableStreamDefaultReader.prototype.read = async function (...args) {
  if (gate) await gate;
  const result = await read.apply(this, args);
  if (!gate && !result.done && new TextDecoder().decode(result.value).includes("event: turn_end")) {
    gate = new Promise((resolve) => { opened = resolve; });
  }
  return result;
};
"""


@pytest.mark.parametrize("size", SIZES)
def test_stop_keeps_the_finished_turns_and_shows_a_partial_tally(browser, server, size):
    with opened(browser, server, init_script=HOLD_AFTER_TURN_1, **size) as tab:
        page = tab.page
        fill(page, max_turns=10, temperature=1.0, seed=3)
        page.click("#run")
        view = page.locator("#single-view .run")
        view.locator(".turn .status", has_text="done").first.wait_for()
        page.click("#stop")
        page.evaluate("window.__openGate()")
        page.locator("#single-view .run[data-state=stopped]").wait_for()
        cards = view.locator(".turn")
        statuses = cards.locator(".status").all_inner_texts()
        n = statuses.count("done")
        assert n >= 1 and statuses[:n] == ["done"] * n and all(s == "stopped" for s in statuses[n:]), statuses
        done = [a for a in cards.locator("dd.answer").all_inner_texts() if a != "none found"]
        assert view.locator(".run-error").is_hidden() and page.locator("#error").is_hidden()  # not an error
        assert view.locator(".run-note").inner_text().startswith(f"Stopped after {n} finished turn")
        assert view.locator(".live .running-tally h3").inner_text() == "Partial tally"
        rows = {r.get_attribute("data-answer"): r.locator(".votes").inner_text()
                for r in view.locator(".live .running-tally tr").all()}
        assert rows == {a: str(done.count(a)) for a in set(done)}
        assert view.locator(".live .chart circle.dot").count() == n
        assert view.locator(".summary").is_hidden()
        assert not page.locator("#run").is_disabled() and page.locator("#stop").is_disabled()
        no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES)
def test_compare_says_whether_the_sides_agreed_or_which_was_right(browser, server, size):
    with opened(browser, server, **size) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0.9, seed=5)
        turns, samples = run(page, "#compare-view", "#compare").all()
        a, b = turns.locator(".final-answer").inner_text(), samples.locator(".final-answer").inner_text()
        verdict = page.locator("#compare-verdict")
        if a == b:
            assert verdict.get_attribute("data-outcome") == "agreed"
            assert verdict.inner_text().startswith(f"Both agreed: {a}.")
        else:
            assert verdict.get_attribute("data-outcome") == "disagreed"
            assert verdict.inner_text() == f"They disagree: the 3 refinement turns say {a}, the 3 parallel samples say {b}."

        fill(page, max_turns=3, temperature=0.9, seed=5, reference="31")
        turns, samples = run(page, "#compare-view", "#compare").all()
        right = [v.locator(".verdict").inner_text().strip() == "✓ correct" for v in (turns, samples)]
        outcome = {(True, True): "both-right", (True, False): "turns-right", (False, True): "samples-right",
                   (False, False): "neither-right"}[tuple(right)]
        assert verdict.get_attribute("data-outcome") == outcome, verdict.inner_text()
        if outcome == "turns-right":
            assert verdict.inner_text().startswith("Right: the 3 refinement turns (31)")
        elif outcome == "samples-right":
            assert verdict.inner_text().startswith("Right: the 3 parallel samples (31)")
        no_sideways_scroll(page)
