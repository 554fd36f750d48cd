// The Ask view: a question, the sources to draw on, the answer streaming in; Stop (or
// Esc) ends the generation, and "Compare with closed-book" asks the same question with
// no sources beside it. A question goes where app.askTarget says (the Conversations
// sidebar: into a conversation, so it is kept), else to POST /v1/ask as `rag ask` does.
import { ApiError } from "../api.js";
import { h, replace } from "../dom.js";
import { AnswerPanel } from "../panel.js";

export function mount(root, app) {
  const view = new AskView(root, app);
  app.on("indexes-changed", () => view.renderSources());
  app.on("show-turns", ({ turns, keepAnswer }) => view.showTurns(turns || [], keepAnswer));
  return view;
}

class AskView {
  constructor(root, app) {
    this.app = app;
    this.active = new Set();
    this.question = h("textarea", {
      id: "question",
      name: "question",
      rows: "3",
      maxlength: "16000",
      placeholder: "Ask about your files or the web…",
      "aria-describedby": "question-keys",
    });
    this.web = h("input", { type: "checkbox", id: "source-web", name: "web" });
    this.indexList = h("div", { class: "index-list" });
    this.askButton = h("button", { type: "submit", class: "primary", id: "ask" }, "Ask");
    this.stopButton = h("button", { type: "button", id: "stop", disabled: true }, "Stop");
    this.compareButton = h("button", { type: "button", id: "compare", disabled: true }, "Compare with closed-book");
    this.status = h("p", { class: "status", role: "status", "aria-live": "polite" });
    this.evidence = new AnswerPanel("Answer");
    this.closed = new AnswerPanel("Closed-book: no sources");
    this.closed.root.hidden = true;
    this.evidence.root.hidden = true;
    this.results = h("div", { class: "results" }, this.evidence.root, this.closed.root);
    this.history = h("div", { class: "turns" });
    this.form = h(
      "form",
      { class: "ask", "aria-label": "Ask a question" },
      h("label", { for: "question", class: "big" }, "Question"),
      this.question,
      h("p", { id: "question-keys", class: "hint" }, "Enter asks · Shift+Enter: new line · Esc stops"),
      h(
        "fieldset",
        { class: "sources" },
        h("legend", {}, "Sources"),
        h("label", { class: "check" }, this.web, " Web search"),
        this.indexList,
      ),
      h("div", { class: "actions" }, this.askButton, this.stopButton, this.compareButton),
    );
    replace(root, this.form, this.status, this.history, this.results);
    this.wire();
    this.renderSources();
  }

  wire() {
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.ask();
    });
    this.question.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.ask();
      }
    });
    this.web.addEventListener("change", () => (this.web.dataset.touched = "1"));
    this.stopButton.addEventListener("click", () => this.stop());
    this.compareButton.addEventListener("click", () => this.compare());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.active.size) {
        event.preventDefault();
        this.stop();
      }
    });
  }

  /** The web checkbox and one per index the server may serve, its defaults checked. */
  renderSources() {
    const server = this.app.server || {};
    const served = new Set(server.indexes || []);
    const before = new Map(
      [...this.indexList.querySelectorAll("input")].map((box) => [box.value, box.checked]),
    );
    if (!this.web.dataset.touched) this.web.checked = Boolean(server.search);
    const rows = this.app.indexes || [];
    replace(
      this.indexList,
      rows.length
        ? rows.map((row) => {
            const name = String(row.name);
            const box = h("input", { type: "checkbox", name: "index", value: name });
            box.checked = before.has(name) ? before.get(name) : served.has(name);
            const size = row.chunks != null ? `${row.chunks} chunks` : "";
            return h("label", { class: "check" }, box, ` ${name} `, h("span", { class: "hint" }, size));
          })
        : h("p", { class: "hint" }, "No index here yet: `rag index PATH --name NAME` makes one."),
    );
  }

  fields() {
    const index = [...this.indexList.querySelectorAll("input:checked")].map((box) => box.value);
    return { question: this.question.value.trim(), index, search: this.web.checked };
  }

  async ask() {
    const fields = this.fields();
    if (!fields.question) {
      this.status.textContent = "Type a question first.";
      this.question.focus();
      return;
    }
    this.stop();
    // Where it goes may take a request (a conversation started): a question asked
    // meanwhile wins, this one gives up.
    const ticket = (this.ticket = {});
    const target = this.app.askTarget ? await this.app.askTarget(fields) : null;
    if (this.ticket !== ticket) return;
    this.lastQuestion = fields.question;
    const closedBook = !fields.index.length && !fields.search;
    const names = [...fields.index, ...(fields.search ? ["web"] : [])];
    this.evidence.setHeading(closedBook ? "Closed-book: no sources" : `With evidence: ${names.join(", ")}`);
    this.evidence.root.hidden = false;
    this.closed.root.hidden = true;
    this.results.classList.remove("compare");
    this.compareButton.disabled = closedBook;
    await this.run(this.evidence, target?.path || "/v1/ask", target?.body || fields, closedBook);
  }

  async compare() {
    const question = this.lastQuestion || this.question.value.trim();
    if (!question) return;
    this.closed.root.hidden = false;
    this.results.classList.add("compare");
    this.compareButton.disabled = true;
    await this.run(this.closed, "/v1/ask", { question, index: [], search: false }, true);
  }

  async run(panel, path, body, closedBook) {
    const controller = new AbortController();
    // A new question may start in this panel before an aborted one has unwound: only
    // the panel's latest run may write to it.
    panel.owner = controller;
    const mine = () => panel.owner === controller;
    this.active.add(controller);
    this.buttons();
    panel.start();
    this.status.textContent = "Answering…";
    try {
      await this.app.api.stream(path, { ...body, stream: true }, {
        signal: controller.signal,
        onEvent: (name, data) => {
          if (!mine()) return;
          if (name === "text") panel.appendText(data.text);
          else if (name === "query") panel.setQuery(rewritten(data.search_query, body.question));
          else if (name === "answer") {
            panel.finish(data);
            this.app.emit("answer", { question: body.question, answer: data, closedBook });
          } else if (name === "error") panel.fail(data?.error?.message || "The server failed.");
        },
      });
      if (mine() && !panel.done) panel.fail("The answer ended before it was complete.");
      if (mine()) this.status.textContent = "";
    } catch (e) {
      if (!mine()) return;
      if (e.name === "AbortError") {
        panel.stopped();
        this.status.textContent = "Stopped.";
      } else {
        panel.fail(e.message);
        this.status.textContent = "";
        if (e instanceof ApiError && e.status === 401) this.app.emit("signed-out");
      }
    } finally {
      this.active.delete(controller);
      this.buttons();
    }
  }

  stop() {
    for (const controller of this.active) controller.abort();
  }

  buttons() {
    this.stopButton.disabled = !this.active.size;
  }

  /**
   * Stored turns (a conversation): each question with its finished answer. Without
   * `keepAnswer` (another conversation opened) the answer on screen is not its own: it
   * is stopped and put away.
   */
  showTurns(turns, keepAnswer) {
    if (!keepAnswer) {
      this.stop();
      this.evidence.root.hidden = this.closed.root.hidden = true;
      this.compareButton.disabled = true;
      this.lastQuestion = "";
    }
    replace(
      this.history,
      turns.map((turn) => {
        const panel = new AnswerPanel(String(turn.question ?? ""));
        panel.finish(turn.answer || {});
        panel.setQuery(rewritten(turn.search_query, turn.question));
        return panel.root;
      }),
    );
  }
}

/** The search query a follow-up was rewritten into; "" when it is the question itself. */
function rewritten(query, question) {
  const text = String(query ?? "");
  return text.trim() === String(question ?? "").trim() ? "" : text;
}
