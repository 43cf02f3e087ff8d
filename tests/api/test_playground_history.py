"""History and verifiers in the playground, in Debian's Chromium (Playwright) against a real
`rise serve` with traces on and the operator's verifier endpoints (a real verifier server), at
desktop and phone sizes: GET /v1/verifiers lists the built-ins and the endpoints by name only; a
verifier's own feedback is shown before the turn it led to; History lists the past refinements
(question, answer, rating, time), each opening its stored trace by its permalink /#/r/<id>, also
straight from the address bar; the compare view gets a feedback box on each side.

    .venv/bin/python -m pytest -q tests/api/test_playground_history.py
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import httpx
import pytest

from tests.api.test_playground_harness import Q, browser, fill, opened, run, server  # noqa: F401 - fixture
from tests.api.test_playground_refinement import SIZES, no_sideways_scroll
from tests.verifier_server import FEEDBACK

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def traced(tmp_path_factory, verifier):
    db = tmp_path_factory.mktemp("traces") / "traces.db"
    endpoints = {name: {"url": f"{verifier.url}/{name}", "timeout_s": 5} for name in ("judge", "wrong")}
    with server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_VERIFIERS": json.dumps(endpoints)}) as url:
        yield url


def stored(url: str, rid: str) -> dict:
    r = httpx.get(f"{url}/v1/refinements/{rid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_v1_verifiers_lists_the_builtins_and_the_endpoints_by_name_only(traced, verifier):
    r = httpx.get(traced + "/v1/verifiers", timeout=30)
    assert r.status_code == 200
    data = r.json()["data"]
    assert [(v["name"], v["kind"]) for v in data] == [
        ("numeric", "builtin"), ("regex", "builtin"), ("json_schema", "builtin"), ("contains", "builtin"),
        ("judge", "endpoint"), ("wrong", "endpoint")]
    numeric = data[0]["parameters"]
    assert numeric["required"] == ["target"] and set(numeric["properties"]) == {"target", "tolerance"}
    assert all(v["parameters"] is None for v in data if v["kind"] == "endpoint")
    port = verifier.url.rsplit(":", 1)[1]
    assert verifier.url not in r.text and port not in r.text  # never where an endpoint lives


@pytest.mark.parametrize("size", SIZES)
def test_a_verifiers_own_feedback_is_shown_before_the_turn_it_led_to(browser, traced, size):
    with opened(browser, traced, **size) as tab:
        page = tab.page
        page.locator("#verifier optgroup[label=\"this server's endpoints\"]").wait_for(state="attached")
        assert page.locator("#verifier optgroup[label=\"this server's endpoints\"] option").all_inner_texts() == [
            "judge", "wrong"]
        fill(page, max_turns=2, temperature=0)
        page.select_option("#verifier", "wrong")
        assert "sent to the endpoint" in page.inner_text("#verifier-hint")
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        turn2 = view.locator(".turn[data-turn='2']")
        assert turn2.locator(".feedback-source").inner_text() == "Told after turn 1 (the verifier wrong):"
        assert turn2.locator(".feedback-text").inner_text() == FEEDBACK
        assert stored(traced, view.get_attribute("data-refinement-id"))["turns"][0]["feedback"] == FEEDBACK
        no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES)
def test_history_lists_past_refinements_and_opens_each_by_its_permalink(browser, traced, size):
    with opened(browser, traced, **size) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=0.8, seed=9)
        [view] = run(page).all()
        rid = view.get_attribute("data-refinement-id")
        assert view.locator(".summary a.permalink").get_attribute("href") == f"/#/r/{rid}"
        view.locator(".feedback .thumb.up").click()
        view.locator(".feedback .send").click()
        page.locator(".feedback[data-sent=true]").wait_for()
        trace = stored(traced, rid)

        page.locator("#history summary").click()  # opening it loads the list
        page.locator("#history[data-loaded=true]").wait_for()
        first = page.locator("#history-list .history-item").first
        assert first.get_attribute("data-id") == rid  # newest first
        assert first.locator(".history-question").inner_text() == Q
        assert first.locator(".history-answer").inner_text() == f"answer {trace['final_answer']}"
        assert first.locator(".history-rating").inner_text() == "rated right"
        shown = datetime.fromisoformat(first.locator("time").get_attribute("datetime").replace("Z", "+00:00"))
        assert abs(shown.timestamp() - trace["created"]) < 1
        assert abs(time.time() - trace["created"]) < 600

        first.locator("a.history-question").click()
        assert page.evaluate("location.hash") == f"#/r/{rid}"
        opened_view = page.locator(f"#single-view .run[data-refinement-id='{rid}']")
        opened_view.wait_for()
        check_stored_view(opened_view, trace)
        no_sideways_scroll(page)

    with opened(browser, traced, **size) as direct:  # the permalink, straight from the address bar
        page = direct.page
        page.goto(f"{traced}/#/r/{rid}")
        view = page.locator(f"#single-view .run[data-refinement-id='{rid}']")
        view.wait_for()
        check_stored_view(view, trace)
        assert direct.refine_bodies() == []  # nothing was run again
        page.goto(f"{traced}/#/r/rr-{'0' * 32}")
        page.locator("#single-view .run[data-state=error]").wait_for()
        assert page.inner_text("#single-view .run-error").startswith("404 not found: no refinement with id")


def test_a_permalink_typed_while_the_page_starts_is_loaded_once_and_stays(browser, traced):
    """The address bar's hash changes while the page's start-up is still loading: start-up and
    `hashchange` both open the link. One load, and the view it drew is not redrawn empty after."""
    rid = httpx.post(f"{traced}/v1/refine", json={"question": Q, "max_turns": 2}, timeout=120).json()["id"]
    with opened(browser, traced) as tab:
        page = tab.page
        page.locator("html[data-started=true]").wait_for(state="attached")  # the first load's requests are done
        held = []
        page.route("**/v1/verifiers", lambda route: held.append(route))  # start-up waits here, before its own openPermalink
        page.reload()
        while not held:
            page.wait_for_timeout(20)
        assert len(held) == 1
        page.goto(f"{traced}/#/r/{rid}")  # same document: a hashchange
        view = page.locator(f"#single-view .run[data-refinement-id='{rid}']")
        view.wait_for()
        page.evaluate("(id) => document.querySelector(`.run[data-refinement-id='${id}']`).dataset.first = 'yes'", rid)
        held[0].continue_()
        page.locator("#verifier optgroup[label=\"this server's endpoints\"]").wait_for(state="attached")
        page.locator("html[data-started=true]").wait_for(state="attached")  # start-up's own openPermalink ran
        assert view.get_attribute("data-first") == "yes"
        check_stored_view(view, stored(traced, rid))
        loads = [r for r in tab.requests if r["url"] == f"{traced}/v1/refinements/{rid}"]
        assert len(loads) == 1, loads


def test_a_permalink_opened_before_the_servers_defaults_arrive_still_names_rises_sentence(browser, traced):
    """CI: a permalink opened by `hashchange` while /playground.json was on its way drew its turns
    before RISE's sentence was known, and named it "a template or a verifier". The view now waits
    for the defaults."""
    rid = httpx.post(f"{traced}/v1/refine", json={"question": Q, "max_turns": 2}, timeout=120).json()["id"]
    with opened(browser, traced) as tab:
        page = tab.page
        page.locator("html[data-started=true]").wait_for(state="attached")
        held = []
        page.route("**/playground.json", lambda route: held.append(route))  # the defaults, held back
        page.reload()
        while not held:
            page.wait_for_timeout(20)
        with page.expect_response(f"{traced}/v1/refinements/{rid}"):  # the stored refinement, before the defaults
            page.goto(f"{traced}/#/r/{rid}")  # same document, defaults still on their way: a hashchange
        page.wait_for_timeout(100)  # its response handled: the view drawn now, were it not waiting
        held[0].continue_()
        view = page.locator(f"#single-view .run[data-refinement-id='{rid}']")
        view.locator(".turn[data-turn='2'] .feedback-source").wait_for()
        check_stored_view(view, stored(traced, rid))


def test_after_compare_the_stored_refinements_link_opens_it_again(browser, traced):
    """A run or the compare view replaces a stored view and leaves its link: following the same link
    afterwards opens the stored refinement again."""
    rid = httpx.post(f"{traced}/v1/refine", json={"question": Q, "max_turns": 2}, timeout=120).json()["id"]
    with opened(browser, traced) as tab:
        page = tab.page
        page.goto(f"{traced}/#/r/{rid}")
        page.locator(f"#single-view .run[data-refinement-id='{rid}']").wait_for()
        fill(page, max_turns=1)
        run(page, "#compare-view", "#compare")
        assert page.evaluate("location.hash") == ""
        assert page.locator("#single-view").is_hidden()
        page.evaluate(f"location.hash = '#/r/{rid}'")
        view = page.locator(f"#single-view .run[data-refinement-id='{rid}']")
        view.wait_for()
        check_stored_view(view, stored(traced, rid))


def check_stored_view(view, trace: dict) -> None:
    assert view.locator("h2").inner_text() == f"Stored refinement {trace['id']}"
    assert view.locator(".stored-question").inner_text() == f"Question: {trace['question']}"
    assert view.locator(".turn").count() == len(trace["turns"])
    assert view.locator(".tokens").all_inner_texts() == [t["text"] for t in trace["turns"]]
    assert view.locator(".final-answer").inner_text() == (trace["final_answer"] or "none")
    rows = {r.get_attribute("data-answer"): r.locator(".votes").inner_text() for r in view.locator(".summary .tally tr").all()}
    assert rows == {a: str(n) for a, n in trace["votes"].items()}
    assert view.locator(".turn[data-turn='2'] .feedback-source").inner_text() == "Told after turn 1 (RISE's sentence):"
    assert view.locator(".feedback").count() == 1  # it can be labelled from here too


@pytest.mark.parametrize("size", SIZES)
def test_the_compare_view_gets_a_feedback_box_on_each_side(browser, traced, size):
    with opened(browser, traced, **size) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=0.9, seed=6)
        turns, samples = run(page, "#compare-view", "#compare").all()
        page.locator("#compare-view .feedback").nth(1).wait_for()
        assert turns.locator(".feedback").count() == 1 and samples.locator(".feedback").count() == 1
        box = samples.locator(".feedback")
        box.locator(".thumb.down").click()
        box.locator(".send").click()
        page.locator("#compare-samples .feedback[data-sent=true]").wait_for()
        assert stored(traced, samples.get_attribute("data-refinement-id"))["feedback"]["rating"] == -1
        assert stored(traced, turns.get_attribute("data-refinement-id"))["feedback"] is None
        assert page.locator("#compare-verdict").is_visible()
        no_sideways_scroll(page)
