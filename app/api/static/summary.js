// The end of a run: the final answer, the vote tally (each vote saying which turns cast it), the
// chart, and the facts (stop reason, tokens, mode, id). Exercised by tests/api/test_playground_refinement.py.

import { answerChart } from "./chart.js";
import { el } from "./dom.js";
import { finalTally } from "./tally.js";

export const STOP_REASONS = {
  correct: "the oracle passed a turn", max_turns: "all turns ran", deadline: "the request's timeout",
  context_length: "the next prompt would not fit the context", agreed: "the last turns agreed",
  settled: "the remaining turns could not change the vote", confident: "a turn was confident enough",
  budget: "max_total_tokens left too little for another turn",
};

/** The summary's elements for result `r` (as /v1/refine answers it, or a stored trace). */
export function summaryOf(r) {
  const final = el("p", "final");
  final.append(el("span", "muted", "Final answer "), el("strong", "final-answer", r.final_answer ?? "none"));
  if (r.correct !== null && r.correct !== undefined) {
    final.append(el("span", `verdict ${r.correct ? "good" : "bad"}`, r.correct ? " ✓ correct" : " ✗ incorrect"));
  }
  final.append(el("span", "muted small", ` (turn ${r.final_turn}, ${r.aggregation} vote)`));
  const facts = el("dl", "facts");
  const add = (name, value, cls) => facts.append(el("dt", "", name), el("dd", cls, value));
  add("stop reason", `${r.stop_reason}: ${STOP_REASONS[r.stop_reason] || ""}`, "stop-reason");
  add("turns", String(r.turns.length), "turn-count");
  add("tokens used", `${r.usage.completion_tokens} completion + ${r.usage.prompt_tokens} prompt = ${r.usage.total_tokens}`,
      "tokens-used");
  add("mode", r.mode === "oracle" ? "oracle (reference or verifier)" : "self (no reference)", "mode");
  add("id", r.id, "refinement-id");
  return [final, finalTally(r), chartOf(r.turns), facts];
}

/** The chart of finished turns (the result's turns, or the ones a stopped run finished). */
export function chartOf(turns) {
  return answerChart(turns.map((t) => ({
    turn: t.turn, answer: t.answer, correct: t.correct,
    confidence: t.confidence !== undefined ? t.confidence : (t.samples ? t.samples[t.chosen_sample]?.confidence : null),
  })));
}
