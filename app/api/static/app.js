// The playground page: reads the form (form.js) into a /v1/refine request, streams one run or the
// compare view's two (render.js), shows the API-key field when keys are on, and with traces on the
// feedback box, History and the permalinks /#/r/<id> of stored refinements (history.js).
// Exercised by tests/api/test_playground_*.py.

import { apiKey, getJSON, refineStream, tracesOn } from "./api.js";
import { el } from "./dom.js";
import { feedbackBox } from "./feedback.js";
import { applyDefaults, loadVerifiers, readForm, setKeysRequired, setupForm } from "./form.js";
import { loadHistory, permalink, permalinkId, setupHistory } from "./history.js";
import { RunView, replay } from "./render.js";
import { sameAnswer } from "./tally.js";

const $ = (id) => document.getElementById(id);
// `defaults`: the promise of /playground.json's settings; a permalink opened by `hashchange` while it is
// on its way waits for it, so its turns' feedback is named from RISE's sentence, not guessed
const state = { traces: null, controller: null, riseFeedback: null, permalink: null, permalinkLoads: 0, defaults: null };

init();

async function init() {
  $("ask").addEventListener("submit", (e) => { e.preventDefault(); runSingle(); });
  $("compare").addEventListener("click", runCompare);
  $("stop").addEventListener("click", () => state.controller && state.controller.abort());
  window.addEventListener("hashchange", openPermalink);
  setupForm();
  setupKey();
  $("max_turns").addEventListener("input", () => { $("max_turns").dataset.edited = "true"; }, { once: true });
  state.defaults = loadDefaults();
  await state.defaults;
  await refreshServerInfo();
  await openPermalink();
  document.documentElement.dataset.started = "true";
}

/** /playground.json: the limits, the form's defaults, RISE's feedback sentence, whether keys are on. */
async function loadDefaults() {
  try {
    const page = await getJSON("/playground.json");
    applyLimits(page.limits, page.defaults);
    applyDefaults(page.defaults);
    state.riseFeedback = page.defaults.feedback || null;
    setKeysRequired(page.keys_required);
    if (page.keys_required) showKeyBox();
  } catch (e) {
    showError(e);
  }
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

/** The served model's name, whether traces (feedback, History) are on, and the verifiers; all need the key if keys are on. */
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
  if (state.traces) setupHistory();
  await loadVerifiers();
}

function applyLimits(limits, defaults) {
  for (const name of ["max_turns", "samples_per_turn", "max_tokens"]) {
    if (limits[name]) $(name).max = String(limits[name]);
  }
  // the server's default turns, unless the user changed the field while /playground.json was on its way
  const turns = $("max_turns");
  if (defaults.max_turns && !turns.dataset.edited) {
    turns.value = String(Math.min(defaults.max_turns, limits.max_turns || 99));
  }
  if (defaults.max_tokens) $("max_tokens").placeholder = `default ${defaults.max_tokens}`;
  if (limits.question_chars) $("question").maxLength = limits.question_chars;
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

/** Names where a turn's feedback came from: RISE's sentence, the request's template, or the verifier. */
function feedbackLabeller(question, request = {}) {
  const fill = (template) => template.split("{question}").join(question);
  return (text) => {
    if (state.riseFeedback && text === fill(state.riseFeedback)) return "RISE's sentence";
    if (request.feedback && text === fill(request.feedback)) return "the request's template";
    if (request.verifier) return `the verifier ${request.verifier.name}`;
    return "a template or a verifier";
  };
}

function viewFor(container, title, request) {
  return new RunView(container, title, { oracle: !!(request.reference || request.verifier),
                                        feedbackLabel: feedbackLabeller(request.question, request) });
}

async function stream(view, request, signal) {
  try {
    return await refineStream(request, (event, data) => view.handle(event, data), signal);
  } catch (e) {
    if (e.code === "stopped") view.stop();
    else view.fail(e);
    if (e.status === 401) showKeyBox("enter this server's API key");
    return null;
  }
}

/** A run replaces the stored view: a later link, even the same one, opens anew. */
function forgetPermalink() {
  state.permalink = null;
  state.permalinkLoads++;
}

function showOnly(id) {
  for (const view of ["single-view", "compare-view"]) $(view).hidden = view !== id;
}

async function runSingle() {
  let request;
  try { request = readForm(); } catch (e) { showError(e); return; }
  const signal = begin();
  showOnly("single-view");
  forgetPermalink();
  if (permalinkId()) history.replaceState(null, "", location.pathname); // a new run leaves the stored one's link
  const view = viewFor($("single-view"), "Refinement", request);
  const result = await stream(view, request, signal);
  end();
  if (result) await afterRun(view, result.id);
}

/** With traces on: the run's permalink and its feedback box; History shows it next time it opens. */
async function afterRun(view, id) {
  if (state.traces === null) state.traces = await tracesOn();
  if (!state.traces) return;
  const link = el("a", "permalink small", "permalink to this refinement");
  link.href = permalink(id);
  view.summary.append(link);
  feedbackBox(view, id);
  if ($("history").open) loadHistory();
}

async function runCompare() {
  let request;
  try { request = readForm(); } catch (e) { showError(e); return; }
  const k = request.max_turns || Number($("max_turns").value) || 5;
  const signal = begin();
  forgetPermalink();
  if (permalinkId()) history.replaceState(null, "", location.pathname); // as a single run: the stored one's link goes
  showOnly("compare-view");
  $("compare-verdict").hidden = true;
  const turns = viewFor($("compare-turns"), `${k} refinement turns`, request);
  const samples = viewFor($("compare-samples"), `${k} parallel samples (one turn)`, request);
  const results = await Promise.all([
    stream(turns, { ...request, max_turns: k, samples_per_turn: 1 }, signal),
    stream(samples, { ...request, max_turns: 1, samples_per_turn: k, early_stop: undefined, agree_turns: undefined },
           signal),
  ]);
  end();
  showVerdict(results[0], results[1], !!(request.reference || request.verifier), k);
  for (const [view, result] of [[turns, results[0]], [samples, results[1]]]) {
    if (result) await afterRun(view, result.id);
  }
}

/** Which side was right (with a reference or verifier), or whether they agreed (without one). */
function showVerdict(a, b, oracle, k) {
  const box = $("compare-verdict");
  let outcome, text;
  const turns = `the ${k} refinement turns`, samples = `the ${k} parallel samples`;
  if (!a || !b) {
    outcome = "incomplete";
    text = "One side did not finish, so there is nothing to compare.";
  } else if (oracle) {
    const said = (r) => (r.correct === true ? "right" : r.correct === false ? "wrong" : "unchecked");
    const [x, y] = [said(a), said(b)];
    outcome = x === y ? `both-${x}` : x === "right" ? "turns-right" : y === "right" ? "samples-right" : "neither-right";
    text = x === "right" && y === "right" ? `Both were right: ${a.final_answer}.`
      : x === "right" ? `Right: ${turns} (${a.final_answer}); ${samples} were ${y} (${b.final_answer ?? "no answer"}).`
      : y === "right" ? `Right: ${samples} (${b.final_answer}); ${turns} were ${x} (${a.final_answer ?? "no answer"}).`
      : `Neither was right: ${turns} said ${a.final_answer ?? "nothing"}, ${samples} ${b.final_answer ?? "nothing"}.`;
  } else if (a.final_answer !== null && b.final_answer !== null && sameAnswer(a.final_answer, b.final_answer)) {
    outcome = "agreed";
    text = `Both agreed: ${a.final_answer}. (No reference was given, so neither is known to be right.)`;
  } else {
    outcome = "disagreed";
    text = `They disagree: ${turns} say ${a.final_answer ?? "nothing"}, ${samples} say ${b.final_answer ?? "nothing"}.`;
  }
  box.dataset.outcome = outcome;
  box.textContent = text;
  box.hidden = false;
}

/** `/#/r/<id>`: the stored refinement, opened by id (traces on), with its feedback box. */
async function openPermalink() {
  const id = permalinkId();
  // start-up and `hashchange` can both ask for the same link (an address typed into an open page):
  // it is loaded once, and only the newest load may write the view
  if (!id || id === state.permalink) return;
  state.permalink = id;
  const load = ++state.permalinkLoads;
  showOnly("single-view");
  const view = new RunView($("single-view"), `Stored refinement ${id}`,
                           { feedbackLabel: feedbackLabeller("", {}) });
  let trace;
  try {
    trace = await getJSON(`/v1/refinements/${encodeURIComponent(id)}`);
  } catch (e) {
    if (load !== state.permalinkLoads) return;
    state.permalink = null; // a failed load can be tried again
    view.fail(e);
    if (e.status === 401) showKeyBox("enter this server's API key");
    return;
  }
  await state.defaults; // RISE's sentence, to name each turn's feedback
  if (load !== state.permalinkLoads) return;
  view.feedbackLabel = feedbackLabeller(trace.question, {});
  const asked = el("p", "stored-question");
  asked.append(el("span", "muted", "Question: "), el("span", "", trace.question));
  view.heading.after(asked);
  replay(view, trace);
  const link = el("a", "permalink small", "permalink");
  link.href = permalink(id);
  view.summary.append(link);
  feedbackBox(view, id);
  $("single-view").scrollIntoView();
}
