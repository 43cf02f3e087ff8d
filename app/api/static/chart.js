// A small chart of a run: each turn's answer (a dot on that answer's row, joined turn to turn) and,
// where the engine measured it, the turn's confidence (a bar from 0 to 1). Inline SVG built with
// DOM calls; no library. Exercised by tests/api/test_playground_refinement.py.

import { el, svg } from "./dom.js";

const W = 360, LEFT = 70, RIGHT = 8, ROW = 18, TOP = 6, BAR = 36;

/**
 * The chart of `turns` = [{turn, answer, confidence, correct}] (finished turns, in order), in a
 * <figure class="chart"> with a caption. Each dot carries data-turn, data-answer and data-confidence.
 */
export function answerChart(turns) {
  const figure = el("figure", "chart");
  const answers = [];
  for (const t of turns) {
    const label = t.answer ?? "none";
    if (!answers.includes(label)) answers.push(label);
  }
  const measured = turns.some((t) => typeof t.confidence === "number");
  const n = Math.max(turns.length, 1);
  const step = (W - LEFT - RIGHT) / n;
  const x = (i) => LEFT + step * (i + 0.5);
  const y = (label) => TOP + ROW * (answers.indexOf(label) + 0.5);
  const answersH = TOP + ROW * Math.max(answers.length, 1);
  const barTop = answersH + 14;
  const height = barTop + (measured ? BAR + 16 : 16);
  const root = svg("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", class: "chart-svg",
                            "aria-label": "each turn's answer and confidence" });

  answers.forEach((label) => {
    root.append(svg("line", { x1: LEFT - 4, x2: W - RIGHT, y1: y(label), y2: y(label), class: "grid" }));
    root.append(svg("text", { x: LEFT - 8, y: y(label) + 4, "text-anchor": "end", class: "axis-label" },
                    label.length > 9 ? label.slice(0, 8) + "…" : label));
  });
  if (turns.length > 1) {
    const points = turns.map((t, i) => `${x(i)},${y(t.answer ?? "none")}`).join(" ");
    root.append(svg("polyline", { points, class: "path" }));
  }
  turns.forEach((t, i) => {
    const verdict = t.correct === true ? "good" : t.correct === false ? "bad" : "plain";
    const dot = svg("circle", { cx: x(i), cy: y(t.answer ?? "none"), r: 5, class: `dot ${verdict}`,
                                "data-turn": t.turn, "data-answer": t.answer ?? "",
                                "data-confidence": typeof t.confidence === "number" ? t.confidence.toFixed(3) : "" });
    dot.append(svg("title", {}, `turn ${t.turn}: ${t.answer ?? "no answer"}` +
                                (typeof t.confidence === "number" ? `, confidence ${t.confidence.toFixed(3)}` : "")));
    root.append(dot);
    root.append(svg("text", { x: x(i), y: answersH + 11, "text-anchor": "middle", class: "axis-label" }, String(t.turn)));
    if (typeof t.confidence === "number") {
      const h = Math.max(1, BAR * Math.min(1, Math.max(0, t.confidence)));
      root.append(svg("rect", { x: x(i) - Math.min(10, step / 3), width: Math.min(20, step / 1.5),
                                y: barTop + BAR - h, height: h, class: "conf", "data-turn": t.turn }));
    }
  });
  if (measured) {
    root.append(svg("text", { x: LEFT - 8, y: barTop + 10, "text-anchor": "end", class: "axis-label" }, "conf. 1"));
    root.append(svg("text", { x: LEFT - 8, y: barTop + BAR, "text-anchor": "end", class: "axis-label" }, "0"));
  }
  figure.append(root);
  figure.append(el("figcaption", "muted small", measured
    ? "Each turn's answer (rows) and confidence (bars, 0 to 1). Green: correct, red: incorrect."
    : "Each turn's answer (rows) by turn. Confidence is measured with confidence votes or early_stop confident."));
  return figure;
}
