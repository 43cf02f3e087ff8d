// One refinement's view: a card per turn whose tokens stream in, the feedback the model got before
// it, whether its answer changed from the turn before (and what it was), a running tally and chart
// as turns end, then the summary (summary.js). Stop keeps the finished turns with a partial tally.
// Everything the model wrote goes in as text (textContent), never as HTML.
// Exercised by tests/api/test_playground_browser.py and test_playground_refinement.py.

import { el } from "./dom.js";
import { STOP_REASONS, chartOf, summaryOf } from "./summary.js";
import { countVotes, sameAnswer, tallyBox } from "./tally.js";

export { el };

/**
 * A run's view inside `container` (emptied); `handle(event, data)` feeds it the stream's events.
 * `feedbackLabel(text)` names where a turn's feedback came from (RISE's sentence, the template, the
 * verifier); `oracle`: a reference or verifier checks the turns.
 */
export class RunView {
  constructor(container, title, { oracle = false, feedbackLabel = () => "feedback" } = {}) {
    this.oracle = oracle;
    this.feedbackLabel = feedbackLabel;
    this.turns = new Map();
    this.finished = [];
    container.replaceChildren();
    this.root = el("div", "run");
    this.root.dataset.state = "running";
    this.heading = el("h2", "", title);
    this.legend = el("p", "legend muted small");
    this.legend.append(el("span", "swatch"), document.createTextNode(
      " the chosen sample: its text went on to the next turn (the turn's majority answer, or the one the oracle passed)"));
    this.legend.hidden = true;
    this.turnList = el("div", "turns");
    this.live = el("div", "live");
    this.live.hidden = true;
    this.summary = el("div", "summary");
    this.summary.hidden = true;
    this.note = el("p", "run-note");
    this.note.setAttribute("role", "status");
    this.note.hidden = true;
    this.errorBox = el("p", "error run-error");
    this.errorBox.setAttribute("role", "alert");
    this.errorBox.hidden = true;
    this.root.append(this.heading, this.legend, this.turnList, this.note, this.live, this.summary, this.errorBox);
    container.append(this.root);
  }

  handle(event, data) {
    if (event === "turn_start") this.turnStart(data);
    else if (event === "delta") this.delta(data);
    else if (event === "turn_end") this.turnEnd(data);
    else if (event === "result") this.result(data);
  }

  turn(k) {
    if (!this.turns.has(k)) {
      const card = el("article", "turn running");
      card.dataset.turn = String(k);
      const head = el("header");
      const badge = el("span", "change");
      badge.hidden = true;
      const title = el("span", "turn-title");
      title.append(el("strong", "", `Turn ${k}`), badge);
      head.append(title, el("span", "status muted", "generating…"));
      const told = el("p", "turn-feedback small");
      told.hidden = true;
      const samples = el("div", "samples");
      const meta = el("dl", "turn-meta");
      card.append(told, head, samples, meta);
      this.turnList.append(card);
      this.turns.set(k, { card, told, badge, samples, meta, status: head.lastChild, texts: new Map() });
    }
    return this.turns.get(k);
  }

  /** A turn begins; from turn 2 on, with the feedback its prompt ended with. */
  turnStart({ turn, feedback }) {
    const t = this.turn(turn);
    if (typeof feedback === "string") {
      t.told.replaceChildren(el("span", "feedback-source", `Told after turn ${turn - 1} (${this.feedbackLabel(feedback)}):`),
                             document.createTextNode(" "), el("q", "feedback-text", feedback));
      t.told.hidden = false;
    }
  }

  sample(k, j) {
    const t = this.turn(k);
    if (!t.texts.has(j)) {
      const box = el("div", "sample");
      box.dataset.sample = String(j);
      const label = el("span", "sample-label muted small", `sample ${j + 1}`);
      const tokens = el("pre", "tokens");
      const verdict = el("span", "sample-answer small");
      box.append(label, tokens, verdict);
      t.samples.append(box);
      t.texts.set(j, { box, tokens, verdict });
    }
    return t.texts.get(j);
  }

  delta({ turn, sample, text }) {
    this.sample(turn, sample).tokens.append(document.createTextNode(text)); // text, never markup
  }

  turnEnd({ turn, answer, correct, latency_s, confidence, chosen_sample, answers }) {
    const t = this.turn(turn);
    t.card.classList.remove("running");
    t.status.textContent = "done";
    const previous = this.finished.length ? this.finished[this.finished.length - 1] : null;
    const rows = [["answer", answer === null ? "none found" : answer, "answer"]];
    if (previous) {
      const changed = !(answer === previous.answer || (answer !== null && previous.answer !== null && sameAnswer(answer, previous.answer)));
      t.card.classList.add(changed ? "changed" : "kept");
      t.badge.textContent = changed ? "changed" : `same as turn ${previous.turn}`;
      t.badge.hidden = false;
      if (changed) rows.push([`was (turn ${previous.turn})`, previous.answer ?? "none found", "previous"]);
    }
    if (correct !== null && correct !== undefined) rows.push(["correct", correct ? "✓ correct" : "✗ incorrect", "correct"]);
    if (confidence !== null && confidence !== undefined) rows.push(["confidence", confidence.toFixed(3), "confidence"]);
    rows.push(["latency", `${latency_s.toFixed(2)} s`, "latency"]);
    for (const [name, value, cls] of rows) {
      const dd = el("dd", cls, value);
      if (cls === "correct") dd.classList.add(correct ? "good" : "bad");
      t.meta.append(el("dt", "", name), dd);
    }
    if (correct !== null && correct !== undefined) t.card.classList.add(correct ? "is-correct" : "is-incorrect");
    const all = Array.isArray(answers) ? answers : [answer];
    if (all.length > 1) this.markChosen(turn, all, chosen_sample);
    this.finished.push({ turn, answer, answers: all, correct, confidence });
    this.showLive("Running tally", `after ${this.finished.length} finished turn${this.finished.length > 1 ? "s" : ""}`);
  }

  /** Each sample's answer as soon as its turn ends, and which sample went on (the legend says what the outline means). */
  markChosen(turn, answers, chosen) {
    answers.forEach((a, j) => {
      const { box, verdict } = this.sample(turn, j);
      verdict.textContent = `answer: ${a ?? "none"}`;
      box.classList.toggle("chosen", j === chosen);
    });
    this.legend.hidden = false;
  }

  /** The running (or partial) tally and the chart, counted from the finished turns. */
  showLive(title, note) {
    this.live.replaceChildren(tallyBox(countVotes(this.finished), { title, note, running: true }), chartOf(this.finished));
    this.live.hidden = false;
  }

  result(r) {
    this.id = r.id;
    this.root.dataset.state = "done";
    this.root.dataset.refinementId = r.id;
    for (const t of r.turns) this.fillSamples(t);
    this.live.hidden = true;
    this.live.replaceChildren();
    this.summary.replaceChildren(...summaryOf(r));
    this.summary.hidden = false;
    this.closeOpenTurns(`cut off: ${STOP_REASONS[r.stop_reason] || r.stop_reason}`);
  }

  /** Every card still generating gets `status`: the run ended before its turn did (deadline, error, Stop). */
  closeOpenTurns(status) {
    for (const t of this.turns.values()) {
      if (t.card.classList.contains("running")) {
        t.card.classList.remove("running");
        t.status.textContent = status;
      }
    }
  }

  /** After the result: each sample's answer and verdict, and which sample continued the conversation. */
  fillSamples(turn) {
    if (turn.samples.length < 2) return;
    turn.samples.forEach((s, j) => {
      const { box, tokens, verdict } = this.sample(turn.turn, j);
      if (!tokens.textContent) tokens.textContent = s.text;
      let text = `answer: ${s.answer ?? "none"}`;
      if (s.correct !== null) text += s.correct ? " ✓" : " ✗";
      verdict.textContent = text;
      box.classList.toggle("chosen", j === turn.chosen_sample);
    });
    this.legend.hidden = false;
  }

  /** Stop: the finished turns stay, with a partial tally; the turn that was running is marked stopped. */
  stop() {
    this.root.dataset.state = "stopped";
    const n = this.finished.length;
    this.note.textContent = n
      ? `Stopped after ${n} finished turn${n > 1 ? "s" : ""}; the tally below counts only ${n > 1 ? "them" : "it"}.`
      : "Stopped before the first turn finished.";
    this.note.hidden = false;
    if (n) this.showLive("Partial tally", `stopped: ${n} of the turns asked for`);
    this.closeOpenTurns("stopped");
  }

  fail(failure) {
    this.root.dataset.state = "error";
    this.errorBox.textContent = failure.describe ? failure.describe() : String(failure);
    this.errorBox.hidden = false;
    this.closeOpenTurns("not finished");
  }
}

/** Feed a stored trace (GET /v1/refinements/{id}) to `view`, as if it streamed in. */
export function replay(view, trace) {
  let before = null;
  for (const t of trace.turns) {
    view.handle("turn_start", { turn: t.turn, feedback: before });
    t.samples.forEach((s, j) => view.handle("delta", { turn: t.turn, sample: j, text: s.text }));
    view.handle("turn_end", { ...t, confidence: t.samples[t.chosen_sample]?.confidence ?? null,
                              answers: t.samples.map((s) => s.answer) });
    before = t.feedback;
  }
  view.handle("result", trace);
}
