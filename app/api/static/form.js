// The playground's form: reads it into a /v1/refine request (fields left empty take the server's
// defaults), keeps controls that cannot go together disabled with a note saying why, fills the
// verifier picker from GET /v1/verifiers, and copies the request as curl or JSON.
// Exercised by tests/api/test_playground_form.py.

import { ApiFailure, apiKey, getJSON } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const state = { verifiers: [], keysRequired: false };

/** Wire the form's notes and copy buttons; call `loadVerifiers()` once the key is known. */
export function setupForm({ keysRequired = false } = {}) {
  state.keysRequired = keysRequired;
  const controls = ["reference", "verifier", "verifier_params", "early_stop", "agree_turns", "samples_per_turn",
                    "temperature", "feedback", "max_turns"];
  for (const id of controls) {
    $(id).addEventListener("input", syncForm);
    $(id).addEventListener("change", syncForm);
  }
  $("copy-curl").addEventListener("click", () => copy("curl"));
  $("copy-json").addEventListener("click", () => copy("json"));
  syncForm();
}

export function setKeysRequired(on) {
  state.keysRequired = on;
}

/** The picker's options: none, the built-in checks, the operator's endpoints (names only). */
export async function loadVerifiers() {
  let list;
  try {
    list = (await getJSON("/v1/verifiers")).data;
  } catch {
    return; // keys missing or an older server: the picker offers none
  }
  state.verifiers = list;
  const select = $("verifier");
  const chosen = select.value;
  select.replaceChildren(new Option("none", ""));
  for (const [kind, label] of [["builtin", "built-in checks"], ["endpoint", "this server's endpoints"]]) {
    const items = list.filter((v) => v.kind === kind);
    if (!items.length) continue;
    const group = document.createElement("optgroup");
    group.label = label;
    for (const v of items) group.append(new Option(v.name, v.name));
    select.append(group);
  }
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  syncForm();
}

/** Disable what the current choices rule out, each with a note; warn about choices that waste work. */
export function syncForm() {
  const notes = [];
  const verifier = $("verifier").value;
  const reference = $("reference").value.trim();
  $("reference").disabled = !!verifier;
  if (verifier) notes.push(["reference", "A verifier checks the turns, so there is no reference: pick \"none\" to give one."]);
  $("verifier").disabled = !!reference && !verifier;
  if (reference && !verifier) notes.push(["verifier", "A reference is given: clear it to pick a verifier (not both)."]);
  const oracle = !!(reference || verifier);
  $("early_stop").disabled = oracle;
  if (oracle) notes.push(["early_stop", "Early stopping is off with a reference or verifier: the loop stops at the first correct turn."]);
  $("agree_turns").disabled = oracle || $("early_stop").value !== "agree";
  $("agree_turns").max = $("max_turns").value || "";
  showParams(verifier);
  if (verifier && paramsProblem()) notes.push(["verifier_params", `Verifier parameters: ${paramsProblem()}.`]);
  const template = $("feedback").value;
  if (template.trim() && !template.includes("{question}")) {
    notes.push(["feedback", "The feedback must contain {question} (where the question is repeated to the model)."]);
  }
  if (Number($("samples_per_turn").value) > 1 && Number($("temperature").value) === 0 && $("temperature").value !== "") {
    notes.push(["samples_per_turn", "At temperature 0 every sample of a turn is the same: raise the temperature for samples to differ."]);
  }
  const list = $("form-notes");
  list.replaceChildren(...notes.map(([field, text]) => {
    const item = el("li", "", text);
    item.dataset.for = field;
    return item;
  }));
  list.hidden = !notes.length;
}

function showParams(name) {
  const v = state.verifiers.find((x) => x.name === name);
  $("verifier-params-box").hidden = !name;
  if (!name) return;
  const props = (v && v.parameters && v.parameters.properties) || {};
  const required = (v && v.parameters && v.parameters.required) || [];
  const optional = Object.keys(props).filter((p) => !required.includes(p));
  $("verifier-hint").textContent = !v ? "" : v.kind === "endpoint"
    ? "optional; sent to the endpoint as its params"
    : [required.length ? `needs ${required.join(", ")}` : "", optional.length ? `optional ${optional.join(", ")}` : ""]
        .filter(Boolean).join("; ");
  const example = {};
  for (const p of required) example[p] = { number: 31, string: "31", object: {}, boolean: false }[props[p].type] ?? "";
  $("verifier_params").placeholder = JSON.stringify(example);
}

function paramsProblem() {
  const raw = $("verifier_params").value.trim();
  if (!raw) return null;
  try {
    const value = JSON.parse(raw);
    return value && typeof value === "object" && !Array.isArray(value) ? null : "must be a JSON object";
  } catch {
    return "not valid JSON";
  }
}

function number(id) {
  const raw = $(id).value.trim();
  return raw === "" ? undefined : Number(raw);
}

/** The /v1/refine request the form describes (fields left empty take the server's defaults). */
export function readForm() {
  const question = $("question").value;
  if (!question.trim()) throw new ApiFailure(0, "write a question first", "question");
  const request = {
    question,
    max_turns: number("max_turns"),
    samples_per_turn: number("samples_per_turn"),
    temperature: number("temperature"),
    top_p: number("top_p"),
    window: $("window").value,
    aggregation: $("aggregation").value,
    tie_break: $("tie_break").value,
    task: $("task").value || undefined,
    max_tokens: number("max_tokens"),
    max_total_tokens: number("max_total_tokens"),
    seed: number("seed"),
  };
  const reference = $("reference").value.trim();
  const verifier = $("verifier").value;
  if (verifier) {
    if (paramsProblem()) throw new ApiFailure(0, `the verifier's parameters are ${paramsProblem()}`, "verifier");
    const raw = $("verifier_params").value.trim();
    request.verifier = { name: verifier, ...(raw ? JSON.parse(raw) : {}) };
  } else if (reference) {
    request.reference = reference;
  }
  if (!reference && !verifier) {
    request.early_stop = $("early_stop").value;
    if (request.early_stop === "agree") request.agree_turns = number("agree_turns");
  }
  const template = $("feedback").value;
  if (template.trim()) {
    if (!template.includes("{question}")) throw new ApiFailure(0, "the feedback must contain {question}", "feedback");
    request.feedback = template;
  }
  for (const [k, v] of Object.entries(request)) {
    if (v === undefined) delete request[k];
    else if (typeof v === "number" && Number.isNaN(v)) throw new ApiFailure(0, "must be a number", k);
  }
  return request;
}

/** `s` as one shell word (single quotes; a quote inside becomes '\''). */
export function shellQuote(s) {
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** The form's request as a curl command line (the key as $RISE_API_KEY, never the key itself). */
export function asCurl(request) {
  const lines = [`curl -s ${shellQuote(location.origin + "/v1/refine")}`, "-H 'Content-Type: application/json'"];
  if (state.keysRequired || apiKey.get()) lines.push('-H "Authorization: Bearer $RISE_API_KEY"');
  lines.push(`-d ${shellQuote(JSON.stringify(request))}`);
  return lines.join(" \\\n  ");
}

async function copy(kind) {
  const out = $("request-copy");
  const status = $("copy-status");
  let request;
  try {
    request = readForm();
  } catch (e) {
    status.textContent = e.describe();
    out.hidden = true;
    return;
  }
  const text = kind === "curl" ? asCurl(request) : JSON.stringify(request, null, 2);
  out.textContent = text;
  out.dataset.kind = kind;
  out.hidden = false;
  try {
    await navigator.clipboard.writeText(text);
    status.textContent = kind === "curl" ? "copied as curl" : "copied as JSON";
  } catch {
    status.textContent = "the browser did not allow copying: select the text below";
  }
}

/** The form's defaults from /playground.json: the server's feedback sentence, task, tie rule, top_p (the
 * temperature's rule is the server's: left empty, the request takes it). */
export function applyDefaults(defaults) {
  if (defaults.feedback) $("feedback").placeholder = `${defaults.feedback}  (RISE's sentence, the default)`;
  if (defaults.task) $("task").options[0].textContent = `server default (${defaults.task})`;
  if (defaults.top_p !== undefined) $("top_p").placeholder = `default ${defaults.top_p}`;
  // a field the user already changed keeps its value
  const tie = $("tie_break");
  if (defaults.tie_break && tie.selectedIndex === [...tie.options].findIndex((o) => o.defaultSelected)) {
    tie.value = defaults.tie_break;
  }
}
