"""The playground's form has what the API has, in Debian's Chromium (Playwright) against the
session's real `rise serve`, at desktop and phone sizes: tie_break, top_p, task and a feedback
template reach the request (and the template is shown as the feedback turn 2 got); controls that
cannot go together are disabled with a note before submit; the verifier picker lists the built-in
checks and a run with one is checked; "copy as curl" gives a command that runs, "copy as JSON" the
request.

    .venv/bin/python -m pytest -q tests/api/test_playground_form.py
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.api.test_playground_harness import KEY, Q, browser, fill, opened, run  # noqa: F401 - fixture
from tests.api.test_playground_refinement import SIZES, no_sideways_scroll

pytestmark = pytest.mark.slow
TEMPLATE = "Check every step once more. Here is the question again: {question}"


def notes(page) -> dict[str, str]:
    if page.locator("#form-notes").is_hidden():
        return {}
    return {li.get_attribute("data-for"): li.inner_text() for li in page.locator("#form-notes li").all()}


@pytest.mark.parametrize("size", SIZES)
def test_tie_break_top_p_task_and_the_feedback_template_reach_the_request(browser, server, size):
    with opened(browser, server, **size) as tab:
        page = tab.page
        page.locator("html[data-started=true]").wait_for(state="attached")  # /playground.json has been read
        assert page.input_value("#tie_break") == "last"  # the API's default, from /playground.json
        assert "RISE's sentence" in page.get_attribute("#feedback", "placeholder")
        fill(page, max_turns=2, temperature=0, top_p=0.9)
        page.select_option("#tie_break", "first")
        page.select_option("#task", "synthetic")
        page.fill("#feedback", TEMPLATE)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        body = tab.refine_bodies()[0]
        assert {k: body.get(k) for k in ("tie_break", "top_p", "task", "feedback")} == {
            "tie_break": "first", "top_p": 0.9, "task": "synthetic", "feedback": TEMPLATE}
        turn2 = view.locator(".turn[data-turn='2']")
        assert turn2.locator(".feedback-source").inner_text() == "Told after turn 1 (the request's template):"
        assert turn2.locator(".feedback-text").inner_text() == TEMPLATE.replace("{question}", Q)
        no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES)
def test_controls_that_cannot_go_together_are_disabled_with_a_note(browser, server, size):
    with opened(browser, server, **size) as tab:
        page = tab.page
        page.locator("#verifier optgroup").first.wait_for(state="attached")  # the picker is filled
        assert notes(page) == {} and page.locator("#form-notes").is_hidden()
        page.select_option("#verifier", "numeric")  # a verifier: no reference, no early stopping
        assert page.locator("#reference").is_disabled() and page.locator("#early_stop").is_disabled()
        assert page.locator("#agree_turns").is_disabled()
        got = notes(page)
        assert set(got) == {"reference", "early_stop"}, got
        assert "verifier checks the turns" in got["reference"] and "first correct turn" in got["early_stop"]
        assert page.locator("#verifier_params").is_visible()
        assert "needs target" in page.inner_text("#verifier-hint")
        assert json.loads(page.get_attribute("#verifier_params", "placeholder")) == {"target": 31}
        page.fill("#verifier_params", "{target: 31")
        assert notes(page)["verifier_params"] == "Verifier parameters: not valid JSON."

        page.select_option("#verifier", "")  # a reference instead: no verifier
        page.fill("#reference", "31")
        assert page.locator("#verifier").is_disabled() and not page.locator("#reference").is_disabled()
        assert set(notes(page)) == {"verifier", "early_stop"}
        page.fill("#reference", "")
        assert notes(page) == {} and not page.locator("#verifier").is_disabled()
        assert not page.locator("#early_stop").is_disabled() and page.locator("#agree_turns").is_disabled()
        page.select_option("#early_stop", "agree")
        assert not page.locator("#agree_turns").is_disabled()

        page.fill("#samples_per_turn", "3")
        page.fill("#temperature", "0")
        assert "every sample of a turn is the same" in notes(page)["samples_per_turn"]
        page.fill("#samples_per_turn", "1")
        page.fill("#feedback", "try again")  # no {question}: said before anything is sent
        assert "{question}" in notes(page)["feedback"]
        fill(page, max_turns=2)
        page.click("#run")
        assert page.inner_text("#error") == "the feedback must contain {question} (field: feedback)"
        assert tab.refine_bodies() == []
        no_sideways_scroll(page)


@pytest.mark.parametrize("size", SIZES)
def test_copy_as_json_and_as_curl_give_the_request(browser, server, size):
    with opened(browser, server, permissions=["clipboard-read", "clipboard-write"], **size) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=0, seed=4)
        page.select_option("#tie_break", "first")
        page.fill("#feedback", TEMPLATE + " It's 'quoted'.")
        page.click("#copy-json")
        page.locator("#copy-status", has_text="copied as JSON").wait_for()
        request = json.loads(page.inner_text("#request-copy"))
        assert request == {"question": Q, "max_turns": 2, "samples_per_turn": 1, "temperature": 0, "window": "last",
                           "aggregation": "majority", "tie_break": "first", "seed": 4, "early_stop": "none",
                           "feedback": TEMPLATE + " It's 'quoted'."}
        assert json.loads(page.evaluate("navigator.clipboard.readText()")) == request

        page.click("#copy-curl")
        page.locator("#copy-status", has_text="copied as curl").wait_for()
        command = page.inner_text("#request-copy")
        assert page.evaluate("navigator.clipboard.readText()") == command
        assert command.startswith(f"curl -s '{server}/v1/refine'") and "Authorization" not in command
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
        result = json.loads(out.stdout)
        assert result["object"] == "refinement" and len(result["turns"]) == 2, out.stdout + out.stderr
        assert result["turns"][0]["feedback"] == (TEMPLATE + " It's 'quoted'.").replace("{question}", Q)
        assert tab.refine_bodies() == []  # copying sends nothing

        # with a key in the tab, the command names it as $RISE_API_KEY, never the key itself
        curl = page.evaluate("""async (key) => {
          sessionStorage.setItem("rise-serve.api-key", key);
          const { asCurl } = await import("/static/form.js");
          return asCurl({ question: "q" });
        }""", KEY)
        assert '-H "Authorization: Bearer $RISE_API_KEY"' in curl and KEY not in curl
        no_sideways_scroll(page)


def test_the_verifier_picker_lists_the_builtins_and_a_run_with_one_is_checked(browser, server):
    with opened(browser, server) as tab:
        page = tab.page
        page.locator("#verifier optgroup").first.wait_for(state="attached")
        groups = {g.get_attribute("label"): g.locator("option").all_inner_texts()
                  for g in page.locator("#verifier optgroup").all()}
        assert groups == {"built-in checks": ["numeric", "regex", "json_schema", "contains"]}  # no endpoints here
        fill(page, max_turns=3, temperature=0)
        page.select_option("#verifier", "numeric")
        page.fill("#verifier_params", '{"target": 31}')
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        body = tab.refine_bodies()[0]
        assert body["verifier"] == {"name": "numeric", "target": 31}
        assert "reference" not in body and "early_stop" not in body
        verdicts = view.locator("dd.correct").all_inner_texts()
        assert verdicts and all(v in ("✓ correct", "✗ incorrect") for v in verdicts)
        assert view.locator(".mode").inner_text().startswith("oracle")


# /playground.json answers 1.5 s late, as from a slow server or link: the user has typed by then.
SLOW_SETTINGS = """
const fetch_ = window.fetch;
window.fetch = (url, opts) => String(url).includes("/playground.json")
  ? new Promise((ok) => setTimeout(ok, 1500)).then(() => fetch_(url, opts)) : fetch_(url, opts);
"""


def test_the_servers_defaults_arriving_late_keep_what_the_user_typed(browser, server):
    """The turns the user set before the server's defaults arrived are the turns that run (the default
    would otherwise overwrite them: 5 turns where 2 were asked for)."""
    with opened(browser, server, init_script=SLOW_SETTINGS) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=1.0, seed=3)
        page.wait_for_selector("html[data-started=true]", state="attached")
        assert page.input_value("#max_turns") == "2"
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        assert view.locator(".turn").count() <= 2
