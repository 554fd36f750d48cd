// The server's API as the page calls it: same-origin fetch, JSON in and out, errors as
// the server words them ({"error": {"message", "type", "exit_code"}}). The page never
// holds the token: a signed-in browser sends its HttpOnly session cookie.
import { readEvents } from "./sse.js";

export class ApiError extends Error {
  constructor(status, message, type) {
    super(message);
    this.status = status;
    this.type = type || "";
  }
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  let type = "";
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) {
      message = String(body.error.message);
      type = String(body.error.type || "");
    }
  } catch (e) { /* not JSON: the status line says it */ }
  return new ApiError(response.status, message, type);
}

async function call(method, path, body, signal) {
  const init = { method, signal, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response;
}

async function json(response) {
  return response.status === 204 ? null : response.json();
}

export const api = {
  get: async (path, signal) => json(await call("GET", path, undefined, signal)),
  post: async (path, body, signal) => json(await call("POST", path, body ?? {}, signal)),
  patch: async (path, body, signal) => json(await call("PATCH", path, body ?? {}, signal)),
  del: async (path, signal) => json(await call("DELETE", path, undefined, signal)),
  /** POST `body` and hand each server-sent event to onEvent(name, data). */
  async stream(path, body, { signal, onEvent }) {
    const response = await call("POST", path, body, signal);
    await readEvents(response, onEvent);
  },
  /** POST a FormData (files: multipart/form-data, its boundary set by the browser). */
  async upload(path, form, signal) {
    const response = await fetch(path, { method: "POST", body: form, signal });
    if (!response.ok) throw await failure(response);
    return json(response);
  },
  /** GET a server-sent event stream (a job's progress). */
  async watch(path, { signal, onEvent }) {
    const response = await fetch(path, { signal, headers: { Accept: "text/event-stream" } });
    if (!response.ok) throw await failure(response);
    await readEvents(response, onEvent);
  },
};
