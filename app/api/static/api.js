// The playground's calls to its own origin: the API key (sessionStorage only), POST /v1/refine as a
// Server-Sent Events stream read through fetch's ReadableStream, and the trace routes' feedback.
// Exercised by tests/api/test_playground_browser.py.

const KEY_ITEM = "rise-serve.api-key";

export const apiKey = {
  get: () => sessionStorage.getItem(KEY_ITEM) || "",
  set: (value) => value ? sessionStorage.setItem(KEY_ITEM, value) : sessionStorage.removeItem(KEY_ITEM),
};

/** An API failure, readable: the HTTP status and the server's message, param and code. */
export class ApiFailure extends Error {
  constructor(status, message, param = null, code = null) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }

  describe() {
    const what = { 400: "bad request", 401: "unauthorized", 404: "not found", 408: "timeout", 409: "conflict",
                   413: "too large", 429: "too many requests", 499: "cancelled", 503: "not available",
                   504: "timed out" }[this.status] || (this.status >= 500 ? "server error" : "error");
    const where = this.param ? ` (field: ${this.param})` : "";
    return `${this.status ? this.status + " " + what + ": " : ""}${this.message}${where}`;
  }
}

function headers(json = true) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  const key = apiKey.get();
  if (key) h["Authorization"] = `Bearer ${key}`;
  return h;
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  const err = body && body.error;
  if (err && typeof err.message === "string") return new ApiFailure(response.status, err.message, err.param, err.code);
  const detail = body && typeof body.detail === "string" ? body.detail : response.statusText || "request failed";
  const retry = response.headers.get("Retry-After");
  return new ApiFailure(response.status, detail + (retry ? `; retry after ${retry} s` : ""));
}

async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, { method, headers: headers(body !== undefined),
                                   body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiFailure(0, `the server did not answer (${e.message})`);
  }
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

export const getJSON = (path) => call("GET", path);
export const postJSON = (path, body) => call("POST", path, body);

/**
 * POST /v1/refine with "stream": true; calls onEvent(name, data) for each event as it arrives
 * (turn_start, delta, turn_end, result) and resolves with the result. An `error` event, or a
 * non-2xx answer, rejects with an ApiFailure; an abort (Stop) with one whose code is "stopped".
 */
export async function refineStream(request, onEvent, signal) {
  let response;
  try {
    response = await fetch("/v1/refine", { method: "POST", headers: headers(), signal,
                                           body: JSON.stringify({ ...request, stream: true }) });
  } catch (e) {
    if (e.name === "AbortError") throw new ApiFailure(0, "stopped", null, "stopped");
    throw new ApiFailure(0, `the server did not answer (${e.message})`);
  }
  if (!response.ok) throw await failure(response);
  let result = null;
  try {
    for await (const { event, data } of serverSentEvents(response.body)) {
      if (data === "[DONE]") break;
      const payload = JSON.parse(data);
      if (event === "error") {
        const err = payload.error || {};
        throw new ApiFailure(statusOf(err), err.message || "the stream failed", err.param, err.code);
      }
      if (event === "result") result = payload;
      onEvent(event, payload);
    }
  } catch (e) {
    if (e.name === "AbortError") throw new ApiFailure(0, "stopped", null, "stopped");
    throw e;
  }
  if (result === null) throw new ApiFailure(0, "the stream ended without a result");
  return result;
}

function statusOf(err) {
  const byType = { invalid_request_error: 400, authentication_error: 401, not_found_error: 404,
                   rate_limit_error: 429, upstream_error: 502, service_unavailable: 503,
                   timeout_error: 504 };
  return byType[err.type] || (err.code === "timeout" ? 504 : 500);
}

/**
 * The events of a text/event-stream body, one {event, data} at a time, as the bytes arrive. Each
 * event is yielded on its own (an await between events), so the page is updated event by event.
 */
export async function* serverSentEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      const held = !done && buffer.endsWith("\r"); // a CR whose LF may come with the next bytes
      if (held) buffer = buffer.slice(0, -1);
      buffer = buffer.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
      if (held) buffer += "\r";
      if (done) break;
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

/** Whether this server stores traces: the trace routes answer 409 when they are off (404 on a server without them). */
export async function tracesOn() {
  try {
    await getJSON("/v1/refinements?limit=1");
    return true;
  } catch (e) {
    return e.status === 401 ? null : false; // null: unknown until a key is given
  }
}

/**
 * POST /v1/refinements/{id}/feedback. The trace is written in the background after the answer, so
 * a 404 right after it is retried a few times before it is reported.
 */
export async function sendFeedback(id, feedback, tries = 8) {
  const path = `/v1/refinements/${encodeURIComponent(id)}/feedback`;
  for (let attempt = 1; ; attempt++) {
    try {
      return await postJSON(path, feedback);
    } catch (e) {
      if (e.status !== 404 || attempt >= tries) throw e;
      await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
    }
  }
}
