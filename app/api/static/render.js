// One refinement's view: a card per turn whose tokens stream in, then the vote tally, stop reason
// and tokens used. Everything the model wrote goes in as text (textContent), never as HTML.
// Exercised by tests/api/test_playground_browser.py.

/** A new element: `el("span", "cls", "text")`; children appended with append(). */
export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

const STOP_REASONS = {
  correct: "the oracle passed a turn", max_turns: "all turns ran", deadline: "the request's timeout",
  context_length: "the next prompt would not fit the context", agreed: "the last turns agreed",
  settled: "the remaining turns could not change the vote", confident: "a turn was confident enough",
  budget: "max_total_tokens left too little for another turn",
};

/** A run's view inside `container` (emptied); `handle(event, data)` feeds it the stream's events. */
export class RunView {
  constructor(container, title, { oracle = false } = {}) {
    this.oracle = oracle;
    this.turns = new Map();
    container.replaceChildren();
    this.root = el("div", "run");
    this.root.dataset.state = "running";
    this.root.append(el("h2", "", title));
    this.turnList = el("div", "turns");
    this.summary = el("div", "summary");
    this.summary.hidden = true;
    this.errorBox = el("p", "error run-error");
    this.errorBox.setAttribute("role", "alert");
    this.errorBox.hidden = true;
    this.root.append(this.turnList, this.summary, this.errorBox);
    container.append(this.root);
  }

  handle(event, data) {
    if (event === "turn_start") this.turn(data.turn);
    else if (event === "delta") this.delta(data);
    else if (event === "turn_end") this.turnEnd(data);
    else if (event === "result") this.result(data);
  }

  turn(k) {
    if (!this.turns.has(k)) {
      const card = el("article", "turn running");
      card.dataset.turn = String(k);
      const head = el("header");
      head.append(el("strong", "", `Turn ${k}`), el("span", "status muted", "generating…"));
      const samples = el("div", "samples");
      const meta = el("dl", "turn-meta");
      card.append(head, samples, meta);
      this.turnList.append(card);
      this.turns.set(k, { card, samples, meta, status: head.lastChild, texts: new Map() });
    }
    return this.turns.get(k);
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
    const tokens = this.sample(turn, sample).tokens;
    tokens.append(document.createTextNode(text)); // text, never markup
  }

  turnEnd({ turn, answer, correct, latency_s, confidence }) {
    const t = this.turn(turn);
    t.card.classList.remove("running");
    t.status.textContent = "done";
    const rows = [["answer", answer === null ? "none found" : answer, "answer"]];
    if (correct !== null && correct !== undefined) rows.push(["correct", correct ? "✓ correct" : "✗ incorrect", "correct"]);
    if (confidence !== null && confidence !== undefined) rows.push(["confidence", confidence.toFixed(3), "confidence"]);
    rows.push(["latency", `${latency_s.toFixed(2)} s`, "latency"]);
    for (const [name, value, cls] of rows) {
      const dd = el("dd", cls, value);
      if (cls === "correct") dd.classList.add(correct ? "good" : "bad");
      t.meta.append(el("dt", "", name), dd);
    }
    if (correct !== null && correct !== undefined) t.card.classList.add(correct ? "is-correct" : "is-incorrect");
  }

  result(r) {
    this.id = r.id;
    this.root.dataset.state = "done";
    this.root.dataset.refinementId = r.id;
    for (const t of r.turns) this.fillSamples(t);
    const final = el("p", "final");
    final.append(el("span", "muted", "Final answer "), el("strong", "final-answer", r.final_answer ?? "none"));
    if (r.correct !== null) final.append(el("span", `verdict ${r.correct ? "good" : "bad"}`, r.correct ? " ✓ correct" : " ✗ incorrect"));
    final.append(el("span", "muted small", ` (turn ${r.final_turn}, ${r.aggregation} vote)`));
    const facts = el("dl", "facts");
    const add = (name, value, cls) => facts.append(el("dt", "", name), el("dd", cls, value));
    add("stop reason", `${r.stop_reason}: ${STOP_REASONS[r.stop_reason] || ""}`, "stop-reason");
    add("turns", String(r.turns.length), "turn-count");
    add("tokens used", `${r.usage.completion_tokens} completion + ${r.usage.prompt_tokens} prompt = ${r.usage.total_tokens}`, "tokens-used");
    add("mode", r.mode === "oracle" ? "oracle (reference given)" : "self (no reference)", "mode");
    add("id", r.id, "refinement-id");
    this.summary.replaceChildren(final, tally(r.votes, r.vote_weights), facts);
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

  /** After the result: each sample's answer, and which sample continued the conversation. */
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
  }

  fail(failure) {
    this.root.dataset.state = "error";
    this.errorBox.textContent = failure.describe ? failure.describe() : String(failure);
    this.errorBox.hidden = false;
    this.closeOpenTurns("not finished");
  }
}

/** The vote tally: one row per answer, its votes (and confidence weight), a bar, the winner first. */
export function tally(votes, weights) {
  const box = el("div", "tally");
  box.append(el("h3", "", "Vote tally"));
  const table = el("table");
  const total = Object.values(votes).reduce((a, b) => a + b, 0) || 1;
  const entries = Object.entries(votes).sort((a, b) => b[1] - a[1]);
  if (!entries.length) box.append(el("p", "muted", "no answer was extracted from any turn"));
  for (const [answer, count] of entries) {
    const row = el("tr");
    row.dataset.answer = answer;
    const bar = el("progress");
    bar.max = total;
    bar.value = count;
    const weight = weights && weights[answer] !== undefined ? ` (weight ${weights[answer].toFixed(2)})` : "";
    row.append(el("td", "answer", answer), el("td", "votes", `${count}${weight}`));
    const cell = el("td", "bar");
    cell.append(bar);
    row.append(cell);
    table.append(row);
  }
  if (entries.length) box.append(table);
  return box;
}
