// What every view gets as `app` in mount(root, app): the API, what the server said about
// itself, and a small event bus the views talk through (never each other's internals).
import { api } from "./api.js";

/**
 * Events: "signed-out" (a 401: show the sign-in form), "indexes-changed" (an index was
 * added, rebuilt or removed: reload the lists), "answer" ({question, answer, closedBook}:
 * a finished answer), "show-turns" ({turns}: the Ask view shows stored turns).
 */
export function createApp() {
  const bus = new EventTarget();
  return {
    api,
    /** GET /healthz: {model, indexes (served by default), search, ...}. */
    server: null,
    /** GET /v1/indexes rows. */
    indexes: [],
    /** Views by name, as their mount() returned them. */
    views: {},
    /**
     * Where the Ask view posts a question: null for POST /v1/ask; the Conversations
     * view sets a function (fields) => ({path, body}) to ask within a conversation.
     */
    askTarget: null,
    on(name, handler) {
      bus.addEventListener(name, (event) => handler(event.detail));
    },
    emit(name, detail) {
      bus.dispatchEvent(new CustomEvent(name, { detail }));
    },
    async refreshIndexes() {
      const [server, listed] = await Promise.all([api.get("/healthz"), api.get("/v1/indexes")]);
      this.server = server;
      this.indexes = listed.indexes || [];
      return this.indexes;
    },
  };
}
