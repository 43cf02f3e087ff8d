// The playground page: reads the form into a /v1/refine request, streams one run (or the compare
// view's two), shows the API-key field when keys are on, and the feedback box when traces are on.
// Exercised by tests/api/test_playground_browser.py.

import { apiKey, ApiFailure, getJSON, refineStream, sendFeedback, tracesOn } from "./api.js";
import { RunView } from "./render.js";

const $ = (id) => document.getElementById(id);
const state = { traces: null, controller: null };

init();

async function init() {
  $("ask").addEventListener("submit", (e) => { e.preventDefault(); runSingle(); });
  $("compare").addEventListener("click", runCompare);
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  $("early_stop").addEventListener("change", syncAgreeTurns);
  syncAgreeTurns();
  setupKey();
  try {
    const page = await getJSON("/playground.json");
    applyLimits(page.limits, page.defaults);
    if (page.keys_required) showKeyBox();
  } catch (e) {
    showError(e);
  }
  await refreshServerInfo();
}

function setupKey() {
  const input = $("api-key");
  input.value = apiKey.get();
  if (input.value) showKeyBox();
  const save = () => { apiKey.set(input.value.trim()); refreshServerInfo(); };
  input.addEventListener("change", save);
  $("key-form").addEventListener("submit", (e) => { e.preventDefault(); save(); });
  $("forget-key").addEventListener("click", () => { apiKey.set(""); input.value = ""; });
}

function showKeyBox(message) {
  $("key-box").hidden = false;
  if (message) $("api-key").placeholder = message;
}

/** The served model's name, and whether traces (and so feedback) are on; both need the key if keys are on. */
async function refreshServerInfo() {
  try {
    const models = await getJSON("/v1/models");
    $("model").textContent = models.data.length ? `model: ${models.data[0].id}` : "";
    // the shipped model's card says it knows only its synthetic arithmetic: shown under the question box
    const note = models.data.length ? models.data[0].description : undefined;
    $("model-note").textContent = note || "";
    $("model-note").hidden = !note;
  } catch (e) {
    if (e.status === 401) showKeyBox("enter this server's API key");
  }
  state.traces = await tracesOn();
}

function applyLimits(limits, defaults) {
  for (const name of ["max_turns", "samples_per_turn", "max_tokens"]) {
    if (limits[name]) $(name).max = String(limits[name]);
  }
  if (defaults.max_turns) $("max_turns").value = String(Math.min(defaults.max_turns, limits.max_turns || 99));
  if (defaults.max_tokens) $("max_tokens").placeholder = `default ${defaults.max_tokens}`;
  if (limits.question_chars) $("question").maxLength = limits.question_chars;
}

function syncAgreeTurns() {
  $("agree_turns").disabled = $("early_stop").value !== "agree";
}

function intField(id) {
  const raw = $(id).value.trim();
  return raw === "" ? undefined : Number(raw);
}

/** The /v1/refine request the form describes (fields left empty take the server's defaults). */
function readForm() {
  const question = $("question").value;
  if (!question.trim()) throw new ApiFailure(0, "write a question first", "question");
  const request = {
    question,
    max_turns: intField("max_turns"),
    samples_per_turn: intField("samples_per_turn"),
    temperature: intField("temperature"),
    window: $("window").value,
    aggregation: $("aggregation").value,
    early_stop: $("early_stop").value,
    max_tokens: intField("max_tokens"),
    max_total_tokens: intField("max_total_tokens"),
    seed: intField("seed"),
  };
  if (request.early_stop === "agree") request.agree_turns = intField("agree_turns");
  const reference = $("reference").value.trim();
  if (reference) request.reference = reference;
  for (const [k, v] of Object.entries(request)) {
    if (v === undefined) delete request[k];
    else if (typeof v === "number" && Number.isNaN(v)) throw new ApiFailure(0, "must be a number", k);
  }
  return request;
}

function showError(failure) {
  const box = $("error");
  if (!failure) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = failure.describe ? failure.describe() : String(failure);
  box.hidden = false;
  if (failure.status === 401) showKeyBox("enter this server's API key");
}

function begin() {
  showError(null);
  state.controller = new AbortController();
  $("run").disabled = $("compare").disabled = true;
  $("stop").disabled = false;
  return state.controller.signal;
}

function end() {
  $("run").disabled = $("compare").disabled = false;
  $("stop").disabled = true;
  state.controller = null;
}

async function stream(view, request, signal) {
  try {
    return await refineStream(request, (event, data) => view.handle(event, data), signal);
  } catch (e) {
    view.fail(e);
    if (e.status === 401) showKeyBox("enter this server's API key");
    return null;
  }
}

async function runSingle() {
  let request;
  try { request = readForm(); } catch (e) { showError(e); return; }
  const signal = begin();
  $("compare-view").hidden = true;
  $("single-view").hidden = false;
  const view = new RunView($("single-view"), "Refinement", { oracle: !!request.reference });
  const result = await stream(view, request, signal);
  end();
  if (result) await offerFeedback(view, result.id);
}

async function runCompare() {
  let request;
  try { request = readForm(); } catch (e) { showError(e); return; }
  const k = request.max_turns || Number($("max_turns").value) || 5;
  const signal = begin();
  $("single-view").hidden = true;
  $("compare-view").hidden = false;
  const turns = new RunView($("compare-turns"), `${k} refinement turns`);
  const samples = new RunView($("compare-samples"), `${k} parallel samples (one turn)`);
  await Promise.all([
    stream(turns, { ...request, max_turns: k, samples_per_turn: 1 }, signal),
    stream(samples, { ...request, max_turns: 1, samples_per_turn: k, early_stop: "none", agree_turns: undefined }, signal),
  ]);
  end();
}

/** Thumbs and "the right answer was …", sent to POST /v1/refinements/{id}/feedback; only with traces on. */
async function offerFeedback(view, id) {
  if (state.traces === null) state.traces = await tracesOn();
  if (!state.traces) return;
  const box = $("feedback-template").content.firstElementChild.cloneNode(true);
  const status = box.querySelector(".feedback-status");
  let rating = null;
  for (const thumb of box.querySelectorAll(".thumb")) {
    thumb.setAttribute("aria-pressed", "false");
    thumb.addEventListener("click", () => {
      rating = rating === Number(thumb.dataset.rating) ? null : Number(thumb.dataset.rating);
      for (const t of box.querySelectorAll(".thumb")) t.setAttribute("aria-pressed", String(Number(t.dataset.rating) === rating));
    });
  }
  box.querySelector(".send").addEventListener("click", async () => {
    const feedback = {};
    if (rating !== null) feedback.rating = rating;
    const reference = box.querySelector(".reference").value.trim();
    const comment = box.querySelector(".comment").value.trim();
    if (reference) feedback.reference = reference;
    if (comment) feedback.comment = comment;
    if (!Object.keys(feedback).length) { status.textContent = "choose a thumb or write the right answer first"; return; }
    status.textContent = "sending…";
    try {
      await sendFeedback(id, feedback);
      status.textContent = "thank you: stored with this refinement's trace";
      box.dataset.sent = "true";
    } catch (e) {
      status.textContent = e.describe();
      if (e.code === "references_not_kept") { // this server keeps no references: thumbs and comments only
        box.querySelector(".right-answer").hidden = true;
        box.querySelector(".reference").value = "";
        status.textContent += " The right-answer box is gone; send again for the rest.";
      } else if (e.status === 409) { // traces were turned off: nothing to attach feedback to
        for (const control of box.querySelectorAll("button, input")) control.disabled = true;
      }
    }
  });
  view.root.append(box);
}

