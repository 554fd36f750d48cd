// The Conversations sidebar, in <aside id="conversations">: every question asked in the
// desk is kept in a conversation ($RAG_HOME/conversations.sqlite, the one `rag chat` and
// `rag history` use). Listed newest first and searched (titles and turns); one opened
// shows its turns in the Ask view, and a follow-up goes through the chat path (the stored
// turns as history, the follow-up rewritten into a search query). On a phone the
// sidebar folds away behind its button.
import { ApiError } from "../api.js";
import { CurrentConversation } from "../conversation-actions.js";
import { h, replace } from "../dom.js";

/** How long the search box waits for the typing to pause before it asks the server. */
const SEARCH_DELAY_MS = 250;

/** @returns {object} the view's handle: conversations are always there to keep. */
export function mount(root, app) {
  const view = new ConversationsView(root, app);
  app.askTarget = (fields) => view.target(fields);
  app.on("answer", (detail) => view.answered(detail));
  app.on("indexes-changed", () => view.refresh()); // also after signing in again
  view.refresh();
  return view;
}

class ConversationsView {
  constructor(root, app) {
    this.app = app;
    this.root = root;
    /** The open conversation {id, title}, or null: the next question starts one. */
    this.current = null;
    this.turns = [];
    this.toggle = h(
      "button",
      { type: "button", class: "conv-toggle", "aria-expanded": "false", "aria-controls": "conv-body" },
      "Conversations",
    );
    this.search = h("input", {
      type: "search",
      id: "conv-search",
      name: "q",
      maxlength: "500",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: "Words in a title or a turn",
    });
    this.newButton = h("button", { type: "button", id: "conv-new" }, "New conversation");
    this.status = h("p", { class: "hint conv-status", role: "status", "aria-live": "polite" });
    this.list = h("ul", { class: "conv-list", id: "conv-list", "aria-labelledby": "conv-title" });
    this.actions = new CurrentConversation(app, {
      renamed: (row) => this.renamed(row),
      deleted: (id) => this.deleted(id),
      failed: (message) => (this.status.textContent = message),
    });
    this.body = h(
      "div",
      { class: "conv-body", id: "conv-body" },
      h("div", { class: "conv-head" }, h("h2", { id: "conv-title" }, "Conversations"), this.newButton),
      h("label", { for: "conv-search", class: "conv-label" }, "Search conversations"),
      this.search,
      this.actions.root,
      this.status,
      this.list,
    );
    replace(root, this.toggle, this.body);
    this.wire();
  }

  wire() {
    this.toggle.addEventListener("click", () => this.fold(!this.root.classList.contains("open")));
    this.newButton.addEventListener("click", () => this.startNew());
    this.search.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.refresh(), SEARCH_DELAY_MS);
    });
    this.search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      clearTimeout(this.timer);
      this.refresh();
    });
  }

  /** On a phone: shows (true) or folds away (false) the sidebar behind its button. */
  fold(open) {
    this.root.classList.toggle("open", open);
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  /** The list again, as the search box asks; only the latest request may show. */
  async refresh() {
    this.listing?.abort();
    const controller = (this.listing = new AbortController());
    const query = this.search.value.trim();
    const path = query ? `/v1/conversations?q=${encodeURIComponent(query)}` : "/v1/conversations";
    try {
      const listed = await this.app.api.get(path, controller.signal);
      if (this.listing !== controller) return;
      const rows = Array.isArray(listed?.conversations) ? listed.conversations : [];
      replace(this.list, rows.map((row) => this.item(row)));
      const mine = rows.find((row) => Number(row.id) === this.current?.id);
      if (mine && String(mine.title) !== this.current.title) this.actions.retitle(mine.title);
      this.status.textContent = rows.length
        ? ""
        : query
          ? `No conversation matches “${query}”.`
          : "None yet: the first question you ask starts one.";
    } catch (e) {
      if (e.name === "AbortError" || this.listing !== controller) return;
      this.status.textContent = `Could not list the conversations: ${e.message}`;
    }
  }

  item(row) {
    const id = Number(row.id);
    const open = h(
      "button",
      { type: "button", class: "conv-open", "data-id": id, "aria-current": id === this.current?.id ? "true" : null },
      String(row.title ?? "Untitled"),
    );
    open.addEventListener("click", () => this.open(id));
    const turns = Number(row.turns) || 0;
    const meta = `${turns} ${turns === 1 ? "turn" : "turns"} · ${when(row.updated)}`;
    return h("li", {}, open, h("span", { class: "hint conv-meta" }, meta));
  }

  /** Opens conversation `id`: its turns in the Ask view, follow-ups asked within it. */
  async open(id) {
    let found;
    try {
      found = await this.app.api.get(`/v1/conversations/${id}`);
    } catch (e) {
      this.status.textContent = `Could not open the conversation: ${e.message}`;
      if (e instanceof ApiError && e.status === 404) this.refresh();
      return;
    }
    this.current = { id: Number(found.id), title: String(found.title ?? "") };
    this.turns = Array.isArray(found.turns) ? found.turns : [];
    this.app.emit("show-turns", { turns: this.turns });
    this.shown();
    if (location.hash && !location.hash.startsWith("#/ask")) location.hash = "#/ask";
    this.toQuestion();
  }

  /** The question box focused, unless the reader moved on while a request ran. */
  toQuestion() {
    const at = document.activeElement;
    if (!at || at === document.body || this.root.contains(at)) document.getElementById("question")?.focus();
  }

  /** "New conversation": nothing open; the next question starts one on the server. */
  startNew() {
    this.current = null;
    this.turns = [];
    this.app.emit("show-turns", { turns: [] });
    this.shown();
    this.status.textContent = "Your next question starts a new conversation.";
    if (location.hash && !location.hash.startsWith("#/ask")) location.hash = "#/ask";
    this.toQuestion();
  }

  /** The open conversation marked in the list and its actions shown (or hidden). */
  shown() {
    this.actions.show(this.current);
    for (const button of this.list.querySelectorAll("button.conv-open")) {
      if (Number(button.dataset.id) === this.current?.id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    this.fold(false);
  }

  /**
   * app.askTarget: where the Ask view posts `fields`. With no conversation open, one is
   * started first (one, even when two questions race), so every question is kept; when
   * that fails the question still goes to POST /v1/ask, and the sidebar says it is not kept.
   */
  async target(fields) {
    if (!this.current) {
      this.creating ??= this.app.api
        .post("/v1/conversations", {})
        .then((made) => {
          this.current = { id: Number(made.id), title: String(made.title ?? "") };
          this.turns = [];
          this.shown();
          this.refresh();
        })
        .finally(() => (this.creating = null));
      try {
        await this.creating;
      } catch (e) {
        this.status.textContent = `This question is not kept: no conversation could be started (${e.message}).`;
        return null;
      }
    }
    this.asking = this.current.id;
    return { path: `/v1/conversations/${this.current.id}/ask`, body: fields };
  }

  /** A finished answer: a conversation's turn is added to what is on screen. */
  answered({ question, answer }) {
    if (answer?.turn_id == null) return; // the closed-book comparison: not a turn
    if (this.current && this.asking === this.current.id) {
      this.turns.push({ question, search_query: answer.search_query, answer });
      // The Ask view shows the newest turn as its answer; the ones before it above.
      this.app.emit("show-turns", { turns: this.turns.slice(0, -1), keepAnswer: true });
    }
    this.refresh();
  }

  renamed(row) {
    if (this.current && Number(row.id) === this.current.id) this.current.title = String(row.title ?? "");
    this.actions.show(this.current);
    this.refresh();
  }

  deleted(id) {
    if (this.current?.id === id) this.startNew();
    this.status.textContent = "Deleted.";
    this.refresh();
  }
}

/** An ISO 8601 time as the reader's local date and time. */
function when(text) {
  const date = new Date(String(text ?? ""));
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
