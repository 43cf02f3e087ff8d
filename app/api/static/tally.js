// Vote tallies: the running one while turns stream in (counted here from each turn's answers) and
// the final one from the result, each answer's row saying which turns cast its votes.
// Exercised by tests/api/test_playground_refinement.py.

import { el } from "./dom.js";

/** Whether two answers are the same vote: equal text, or the same number ("31" and "31.0"). */
export function sameAnswer(a, b) {
  if (a === b) return true;
  const x = Number(String(a).replace(/,/g, "")), y = Number(String(b).replace(/,/g, ""));
  return String(a).trim() !== "" && String(b).trim() !== "" && Number.isFinite(x) && x === y;
}

/**
 * Each answer's votes and the turns that cast them, in order of first appearance: from
 * `turns` = [{turn, answers: [every sample's answer]}]; a sample without an answer casts none.
 */
export function countVotes(turns) {
  const rows = [];
  for (const { turn, answers } of turns) {
    for (const answer of answers || []) {
      if (answer === null || answer === undefined) continue;
      let row = rows.find((r) => sameAnswer(r.answer, answer));
      if (!row) rows.push(row = { answer, votes: 0, turns: [] });
      row.votes += 1;
      row.turns.push(turn);
    }
  }
  return rows;
}

/** "turn 2", "turns 1, 3", "turn 2 (×3)": the turns that cast a row's votes (a turn once per sample). */
export function castBy(turns) {
  const counts = new Map();
  for (const k of turns) counts.set(k, (counts.get(k) || 0) + 1);
  const parts = [...counts].map(([k, n]) => (n > 1 ? `${k} (×${n})` : String(k)));
  return `${counts.size === 1 ? "turn" : "turns"} ${parts.join(", ")}`;
}

/**
 * The vote tally as a table: one row per answer with its votes (and confidence weight), the turns
 * that cast them and a bar, the winner first. `rows` = [{answer, votes, turns}]; `title` heads it;
 * `note` (optional) says what the tally is (running, partial).
 */
export function tallyBox(rows, { title = "Vote tally", weights = null, note = "", running = false } = {}) {
  const box = el("div", running ? "tally running-tally" : "tally");
  box.append(el("h3", "", title));
  if (note) box.append(el("p", "muted small tally-note", note));
  const total = rows.reduce((a, r) => a + r.votes, 0) || 1;
  const sorted = [...rows].sort((a, b) => b.votes - a.votes);
  if (!sorted.length) {
    box.append(el("p", "muted", running ? "no answer yet" : "no answer was extracted from any turn"));
    return box;
  }
  const table = el("table");
  for (const { answer, votes, turns } of sorted) {
    const row = el("tr");
    row.dataset.answer = answer;
    const bar = el("progress");
    bar.max = total;
    bar.value = votes;
    const weight = weights && weights[answer] !== undefined ? ` (weight ${weights[answer].toFixed(2)})` : "";
    const cell = el("td", "bar");
    cell.append(bar);
    row.append(el("td", "answer", answer), el("td", "votes", `${votes}${weight}`),
               el("td", "cast-by muted small", turns.length ? castBy(turns) : ""), cell);
    table.append(row);
  }
  box.append(table);
  return box;
}

/** The final tally of a result: its own vote counts, each matched with the turns that cast it. */
export function finalTally(result) {
  const cast = countVotes(result.turns.map((t) => ({ turn: t.turn, answers: t.samples.map((s) => s.answer) })));
  const rows = Object.entries(result.votes).map(([answer, votes]) => {
    const match = cast.filter((r) => sameAnswer(r.answer, answer));
    return { answer, votes, turns: match.flatMap((r) => r.turns).sort((a, b) => a - b) };
  });
  return tallyBox(rows, { weights: result.vote_weights });
}
