"""The playground in a real browser (Debian's Chromium, Playwright) against a real `rise serve` on
the shipped model: turns stream in, each with its answer, verdict and latency, then the tally, stop
reason and tokens; the oracle's verdicts; errors shown readably; model output never becomes HTML;
the compare view; a phone-sized screen. Nothing is fetched from another origin (every test).

    .venv/bin/python -m pytest -q tests/api/test_playground_browser.py
"""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.api.test_playground_harness import Q, browser, fill, opened, run, server  # noqa: F401 - fixture
from tests.servers import wait_for

pytestmark = pytest.mark.slow

# Each read of a response body in the page, with what the page showed at that moment (before it
# handled the bytes just read): which turn cards existed and their tokens' text.
RECORD_READS = """
window.__reads = [];
const read = ReadableStreamDefaultReader.prototype.read;
ReadableStreamDefaultReader.prototype.read = async function (...args) {
  const result = await read.apply(this, args);
  const turns = [...document.querySelectorAll("#single-view .turn")].map((card) => ({
    turn: Number(card.dataset.turn),
    text: [...card.querySelectorAll(".tokens")].map((t) => t.textContent).join(""),
  }));
  window.__reads.push({ bytes: result.done ? "" : new TextDecoder().decode(result.value), turns });
  return result;
};
"""


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    db = tmp_path_factory.mktemp("traces") / "traces.db"
    # turns capped at 40 (default 10): a run that Stop can catch long before its end on any machine
    with server({"RISE_TRACES_URL": f"sqlite:///{db}", "RISE_TRACES_KEEP_REFERENCES": "true",
                 "RISE_MAX_TURNS_CAP": "40"}) as url:
        yield url


def _deltas(chunk: str) -> list[dict]:
    """The `delta` events whole in one read's bytes."""
    return [json.loads(m) for m in re.findall(r"event: delta\ndata: (\{.*\})\n", chunk)]


def trace(url: str, rid: str) -> dict:
    r = httpx.get(f"{url}/v1/refinements/{rid}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_turns_stream_in_one_after_another_then_the_tally(browser, traced):
    with opened(browser, traced, init_script=RECORD_READS) as tab:
        page = tab.page
        fill(page, max_turns=4, temperature=0.9, seed=7)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        reads = page.evaluate("window.__reads")
        rid = view.get_attribute("data-refinement-id")

    stored = trace(traced, rid)
    texts = {t["turn"]: t["text"] for t in stored["turns"]}
    k_max = len(stored["turns"])
    assert k_max == 4 and stored["stop_reason"] == "max_turns"
    sse = [r for r in reads if "event:" in r["bytes"] or r["turns"]]
    # when the bytes announcing turn k+1 arrived, the page already showed turn k's tokens and no turn k+1
    shown_before_next = []
    for k in range(1, k_max):
        first = next(r for r in sse if f'event: turn_start\ndata: {{"turn":{k + 1},' in r["bytes"])
        cards = {t["turn"]: t["text"] for t in first["turns"]}
        if cards.get(k) and k + 1 not in cards:
            # the whole turn, as stored, but for its last tokens when they came in the same read
            same_read = "".join(d["text"] for d in _deltas(first["bytes"]) if d["turn"] == k)
            assert cards[k] + same_read == texts[k], (k, cards[k], same_read, texts[k])
            shown_before_next.append(k)
    assert shown_before_next, f"no turn's tokens were on the page before the next turn's bytes arrived: {sse}"
    # tokens arrive a few at a time: some turn was seen part-written
    partial = [(t["turn"], t["text"]) for r in sse for t in r["turns"] if t["text"] and t["text"] != texts[t["turn"]]]
    assert any(texts[k].startswith(text) for k, text in partial), "no turn was ever seen part-written"


def test_each_turn_shows_answer_latency_and_the_summary_matches_the_stored_trace(browser, traced):
    with opened(browser, traced) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0.8, seed=11)
        [view] = run(page).all()
        rid = view.get_attribute("data-refinement-id")
        stored = trace(traced, rid)
        cards = view.locator(".turn")
        assert cards.count() == 3
        for i, t in enumerate(stored["turns"]):
            card = cards.nth(i)
            assert card.locator(".tokens").inner_text() == t["text"]
            assert card.locator("dd.answer").inner_text() == (t["answer"] if t["answer"] is not None else "none found")
            assert card.locator("dd.latency").inner_text() == f"{t['latency_s']:.2f} s"
            assert card.locator("dd.correct").count() == 0  # no reference: no verdict
        tally = {row.get_attribute("data-answer"): row.locator(".votes").inner_text()
                 for row in view.locator(".tally tr").all()}
        assert tally == {a: str(n) for a, n in stored["votes"].items()}
        assert view.locator(".final-answer").inner_text() == stored["final_answer"]
        assert view.locator(".stop-reason").inner_text().startswith("max_turns")
        u = stored["usage"]
        assert view.locator(".tokens-used").inner_text() == (
            f"{u['completion_tokens']} completion + {u['prompt_tokens']} prompt = {u['total_tokens']}")
        assert tab.refine_bodies() == [{"question": Q, "max_turns": 3, "samples_per_turn": 1, "temperature": 0.8,
                                        "window": "last", "aggregation": "majority", "tie_break": "last",
                                        "early_stop": "none", "seed": 11, "stream": True}]


@pytest.mark.parametrize("reference, verdicts, stop", [("31", ["✓ correct"], "correct"),
                                                       ("32", ["✗ incorrect"] * 3, "max_turns")])
def test_with_a_reference_each_turn_says_whether_it_is_correct(browser, traced, reference, verdicts, stop):
    with opened(browser, traced) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0, reference=reference)
        [view] = run(page).all()
        assert view.locator("dd.correct").all_inner_texts() == verdicts
        assert view.locator(".stop-reason").inner_text().startswith(stop)
        assert view.locator(".verdict").inner_text().strip() == verdicts[-1]
        assert tab.refine_bodies()[0]["reference"] == reference
        facts = re.sub(r"\b(rr|chatcmpl)-[0-9a-f]{32}\b", "<id>", view.locator(".summary .facts").inner_text())
        assert reference not in facts  # (the random id may hold the reference's digits by chance)


def test_early_stopping_and_confidence_votes_from_the_form(browser, traced):
    with opened(browser, traced) as tab:
        page = tab.page
        assert page.locator("#agree_turns").is_disabled()  # only meaningful with early_stop=agree
        fill(page, max_turns=5, temperature=0, early_stop="agree", agree_turns=2, aggregation="confidence",
             max_total_tokens=400, max_tokens=60)
        [view] = run(page).all()
        stored = trace(traced, view.get_attribute("data-refinement-id"))
        body = tab.refine_bodies()[0]
        assert {k: body[k] for k in ("early_stop", "agree_turns", "aggregation", "max_total_tokens", "max_tokens")} == {
            "early_stop": "agree", "agree_turns": 2, "aggregation": "confidence", "max_total_tokens": 400,
            "max_tokens": 60}
        assert stored["stop_reason"] == "agreed" and len(stored["turns"]) == 2  # temperature 0: the same answer twice
        assert view.locator(".turn").count() == 2
        assert view.locator(".stop-reason").inner_text().startswith("agreed: the last turns agreed")
        shown = view.locator("dd.confidence").all_inner_texts()
        assert shown == [f"{t['samples'][t['chosen_sample']]['confidence']:.3f}" for t in stored["turns"]]
        [(answer, weight)] = stored["vote_weights"].items()
        assert view.locator(".tally .votes").inner_text() == f"{stored['votes'][answer]} (weight {weight:.2f})"


# After the first bytes of the stream, each further read waits until the test opens the gate.
HOLD_AFTER_FIRST_READ = """
let gate = null, opened = null;
window.__openGate = () => opened && opened();
const read = ReadableStreamDefaultReader.prototype.read;
ReadableStreamDefaultReader.prototype.read = async function (...args) {
  if (gate) await gate;
  const result = await read.apply(this, args);
  if (!gate) { gate = new Promise((resolve) => { opened = resolve; }); window.__held = true; }
  return result;
};
"""


def cancelled(url: str) -> float:
    lines = [ln for ln in httpx.get(url + "/metrics").text.splitlines()
             if ln.startswith("rise_requests_cancelled_total{") and 'route="/v1/refine"' in ln]
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)


def test_stop_ends_the_run_and_the_server_stops_its_work(browser, traced):
    before = cancelled(traced)
    with opened(browser, traced, init_script=HOLD_AFTER_FIRST_READ) as tab:
        page = tab.page
        fill(page, max_turns=40, temperature=1.0, seed=3)
        page.click("#run")
        page.locator("#stop:not([disabled])").wait_for()
        page.locator("#single-view .turn").first.wait_for()  # shown from the first bytes; the rest are held
        assert page.evaluate("window.__held === true")
        page.click("#stop")
        page.evaluate("window.__openGate()")
        view = page.locator("#single-view .run[data-state=stopped]")  # Stop is no error (a red box)
        view.wait_for()
        assert view.locator(".run-error").is_hidden() and view.locator(".run-note").inner_text().startswith("Stopped")
        assert view.locator(".summary").is_hidden()
        assert not page.locator("#run").is_disabled() and page.locator("#stop").is_disabled()
    assert wait_for(lambda: cancelled(traced) >= before + 1, timeout=60)


def test_errors_are_shown_readably(browser, traced):
    with opened(browser, traced) as tab:
        page = tab.page
        page.click("#run")  # no question yet: said before anything is sent
        assert "write a question first" in page.locator("#error").inner_text()
        assert tab.refine_bodies() == []
        fill(page, max_turns=99)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "error"
        assert view.locator(".run-error").inner_text() == (
            "400 bad request: max_turns must be at most 40 (field: max_turns)")
        fill(page, max_turns=2, early_stop="agree", agree_turns=3)
        [view] = run(page).all()
        message = view.locator(".run-error").inner_text()
        assert message.startswith("400 bad request: ") and "agree_turns" in message, message
        assert not page.locator("#run").is_disabled()  # ready for the next try


def test_model_output_and_answers_go_in_as_text_never_as_html(browser, traced):
    """The renderer the page uses, fed a stream whose text, answers and votes are markup."""
    hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
    with opened(browser, traced) as tab:
        page = tab.page
        page.evaluate("""async (hostile) => {
          const { RunView } = await import("/static/render.js");
          const box = document.getElementById("single-view");
          box.hidden = false;
          const view = new RunView(box, "x");
          view.handle("turn_start", { turn: 1 });
          view.handle("delta", { turn: 1, sample: 0, text: hostile });
          view.handle("turn_end", { turn: 1, answer: hostile, correct: null, latency_s: 0.5, confidence: null });
          view.handle("result", { id: "rr-x", turns: [], votes: { [hostile]: 1 }, final_answer: hostile, final_turn: 1,
                                  correct: null, aggregation: "majority", stop_reason: "max_turns", mode: "self",
                                  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
        }""", hostile)
        view = page.locator("#single-view .run")
        assert view.locator("img, b").count() == 0
        assert view.locator(".tokens").inner_text() == hostile
        assert view.locator(".final-answer").inner_text() == hostile
        assert view.locator(".tally td.answer").inner_text() == hostile
        assert page.evaluate("window.__pwned === undefined")
        assert tab.foreign() == []  # the img's src=x was never fetched (it never existed)


def test_the_event_stream_parser_copes_with_any_chunking(browser, traced):
    """The page's SSE parser fed bytes split mid-character, mid-CRLF and mid-line, with comments and
    a multi-line data field: the same events as whole."""
    stream = ('event: delta\r\ndata: {"text":"caf\u00e9 \u2713"}\r\n\r\n: a comment\n\n'
              'data: line one\ndata: line two\n\nevent: result\ndata: {"id":"rr-1"}\n\ndata: [DONE]\n\n')
    raw = list(stream.encode())
    with opened(browser, traced) as tab:
        events = tab.page.evaluate("""async ([raw, cuts]) => {
          const { serverSentEvents } = await import("/static/api.js");
          const bytes = new Uint8Array(raw);
          const out = {};
          for (const cut of cuts) {
            const body = new ReadableStream({ start(c) {
              for (let i = 0; i < bytes.length; i += cut) c.enqueue(bytes.slice(i, i + cut));
              c.close();
            } });
            out[cut] = [];
            for await (const e of serverSentEvents(body)) out[cut].push([e.event, e.data]);
          }
          return out;
        }""", [raw, [1, 2, 3, 7, len(raw)]])
    expected = [["delta", '{"text":"caf\u00e9 \u2713"}'], ["message", "line one\nline two"],
                ["result", '{"id":"rr-1"}'], ["message", "[DONE]"]]
    for cut, got in events.items():
        assert got == expected, cut


def test_compare_view_runs_k_turns_beside_k_parallel_samples(browser, traced):
    with opened(browser, traced) as tab:
        page = tab.page
        fill(page, max_turns=3, temperature=0.9, seed=5)
        turns_view, samples_view = run(page, "#compare-view", "#compare").all()
        assert page.locator("#single-view").is_hidden()
        assert turns_view.locator("h2").inner_text() == "3 refinement turns"
        assert samples_view.locator("h2").inner_text() == "3 parallel samples (one turn)"
        assert turns_view.locator(".turn").count() == 3 and samples_view.locator(".turn").count() == 1
        assert turns_view.locator(".sample").count() == 3 and samples_view.locator(".sample").count() == 3
        bodies = sorted(tab.refine_bodies(), key=lambda b: b["max_turns"])
        assert [(b["max_turns"], b["samples_per_turn"]) for b in bodies] == [(1, 3), (3, 1)]
        for view in (turns_view, samples_view):
            stored = trace(traced, view.get_attribute("data-refinement-id"))
            assert sum(stored["votes"].values()) == 3
            assert view.locator(".final-answer").inner_text() == stored["final_answer"]
            assert view.locator(".tokens-used").inner_text().startswith(f"{stored['usage']['completion_tokens']} ")
        stored = trace(traced, samples_view.get_attribute("data-refinement-id"))
        shown = samples_view.locator(".sample-answer").all_inner_texts()
        assert shown == [f"answer: {s['answer']}" for s in stored["turns"][0]["samples"]]
        assert samples_view.locator(".sample.chosen").count() == 1
        left, right = turns_view.bounding_box(), samples_view.bounding_box()
        assert right["x"] >= left["x"] + left["width"] and abs(right["y"] - left["y"]) < 5  # side by side


def test_readable_on_a_phone(browser, traced):
    with opened(browser, traced, viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True) as tab:
        page = tab.page
        fill(page, max_turns=2, temperature=0.5, seed=2)
        turns_view, samples_view = run(page, "#compare-view", "#compare").all()
        width = page.evaluate("window.innerWidth")
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
        for selector in ("#question", "#run", "#compare", ".settings", "#compare-view .summary"):
            for box in [page.locator(selector).nth(i).bounding_box() for i in range(page.locator(selector).count())]:
                assert box["x"] >= 0 and box["x"] + box["width"] <= width, (selector, box)
        left, right = turns_view.bounding_box(), samples_view.bounding_box()
        assert right["y"] >= left["y"] + left["height"]  # stacked, not squeezed side by side
        assert page.locator("#question").bounding_box()["width"] >= width * 0.8
        assert page.evaluate("parseFloat(getComputedStyle(document.querySelector('.tokens')).fontSize)") >= 12


def test_a_question_too_long_for_the_model_is_an_error_with_no_turn_card(browser, traced):
    """Issue 26 item 6: the page showed a "Turn 1 not finished" card above the error."""
    with opened(browser, traced) as tab:
        page = tab.page
        page.evaluate("document.getElementById('question').removeAttribute('maxlength')")
        fill(page, "Sam has 3 apples. " * 1000, max_turns=2)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "error"
        message = view.locator(".run-error").inner_text()
        assert message.startswith("400 bad request: the question has ") and "(field: question)" in message, message
        assert view.locator(".turn").count() == 0


def test_a_run_that_stops_at_the_context_closes_every_turn_card(browser, traced):
    """Issue 26 item 7: turn 2 was announced, never run, and stayed "generating…" forever."""
    with opened(browser, traced) as tab:
        page = tab.page
        fill(page, "Sam has 3 apples. " * 160 + "How many apples does Sam have?", max_turns=3, temperature=0)
        [view] = run(page).all()
        assert view.get_attribute("data-state") == "done", view.inner_text()
        assert view.locator(".stop-reason").inner_text().startswith("context_length")
        assert view.locator(".turn").count() == 1 and view.locator(".turn.running").count() == 0
        assert view.locator(".turn .status").all_inner_texts() == ["done"]


def test_the_page_closes_cards_a_result_or_an_error_leaves_open(browser, traced):
    """A turn the deadline cut (announced, never ended) is closed by the result, with the reason;
    an error or Stop closes the open ones as not finished."""
    with opened(browser, traced) as tab:
        states = tab.page.evaluate("""async () => {
          const { RunView } = await import("/static/render.js");
          const box = document.getElementById("single-view");
          box.hidden = false;
          const out = [];
          for (const ending of ["result", "error"]) {
            const view = new RunView(box, "x");
            view.handle("turn_start", { turn: 1 });
            view.handle("delta", { turn: 1, sample: 0, text: "The answer is 4." });
            view.handle("turn_end", { turn: 1, answer: "4", correct: null, latency_s: 0.5, confidence: null });
            view.handle("turn_start", { turn: 2 });
            view.handle("delta", { turn: 2, sample: 0, text: "The ans" });
            if (ending === "result") {
              view.handle("result", { id: "rr-x", turns: [], votes: { 4: 1 }, final_answer: "4", final_turn: 1,
                                      correct: null, aggregation: "majority", stop_reason: "deadline", mode: "self",
                                      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } });
            } else {
              view.fail(new Error("stopped"));
            }
            out.push([...box.querySelectorAll(".turn")].map((c) => [c.classList.contains("running"),
                                                                     c.querySelector(".status").textContent]));
          }
          return out;
        }""")
    assert states[0] == [[False, "done"], [False, "cut off: the request's timeout"]], states
    assert states[1] == [[False, "done"], [False, "not finished"]], states
