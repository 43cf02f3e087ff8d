// History (traces on): this key's past refinements from GET /v1/refinements (question, answer,
// rating, time), newest first, each a permalink /#/r/<id> that opens its stored trace.
// Exercised by tests/api/test_playground_history.py.

import { getJSON } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const PAGE = 20;

/** The id a `#/r/<id>` permalink names, or null. */
export function permalinkId(hash = location.hash) {
  const m = /^#\/r\/([A-Za-z0-9_-]{1,100})$/.exec(hash);
  return m ? m[1] : null;
}

export function permalink(id) {
  return `/#/r/${encodeURIComponent(id)}`;
}

/** Show the History box (only with traces on); its list loads whenever it is opened. */
export function setupHistory() {
  const box = $("history");
  box.hidden = false;
  if (box.dataset.wired) return;
  box.dataset.wired = "true";
  box.addEventListener("toggle", () => { if (box.open) loadHistory(); });
  $("history-more").addEventListener("click", () => loadHistory(true));
  $("history-refresh").addEventListener("click", () => loadHistory());
}

/** The newest page of the list, or (`more`) the page older than the last item shown. */
export async function loadHistory(more = false) {
  const list = $("history-list");
  const status = $("history-status");
  const last = more ? list.lastElementChild : null;
  const query = `/v1/refinements?limit=${PAGE}` + (last ? `&before=${encodeURIComponent(last.dataset.id)}` : "");
  status.textContent = "loading…";
  let page;
  try {
    page = await getJSON(query);
  } catch (e) {
    status.textContent = e.describe();
    return;
  }
  if (!more) list.replaceChildren();
  for (const trace of page.data) list.append(item(trace));
  $("history-more").hidden = !page.has_more;
  status.textContent = list.children.length ? "" : "no refinements stored for this key yet";
  $("history").dataset.loaded = "true";
}

function item(trace) {
  const li = el("li", "history-item");
  li.dataset.id = trace.id;
  const link = el("a", "history-question", trace.question.length > 140 ? trace.question.slice(0, 139) + "…" : trace.question);
  link.href = permalink(trace.id);
  const rating = trace.feedback && trace.feedback.rating;
  const facts = el("span", "history-facts muted small");
  facts.append(el("span", "history-answer", `answer ${trace.final_answer ?? "none"}`), document.createTextNode(" · "),
               el("span", "history-rating", rating === 1 ? "rated right" : rating === -1 ? "rated wrong" : "not rated"),
               document.createTextNode(" · "),
               el("time", "history-time", new Date(trace.created * 1000).toLocaleString()));
  facts.lastChild.dateTime = new Date(trace.created * 1000).toISOString();
  li.append(link, facts);
  return li;
}
