// One answer on screen: its text as it streams, then its citations linked to the cards
// of the sources the model read, the candidates it did not read, timings and warnings.
import { droppedList, sourceCard } from "./cards.js";
import { citedText } from "./citations.js";
import { h, replace, uid } from "./dom.js";

export class AnswerPanel {
  /** `heading`: what this answer is ("With evidence", "Closed-book"). */
  constructor(heading) {
    this.prefix = uid("answer");
    this.title = h("h2", { id: `${this.prefix}-h` }, heading);
    this.query = h("p", { class: "hint query", hidden: true });
    this.text = h("div", { class: "answer", "aria-live": "polite", "aria-busy": "false" });
    this.meta = h("p", { class: "meta" });
    this.notes = h("div", { class: "notes" });
    this.sources = h("div", { class: "sources-read" });
    this.root = h(
      "section",
      { class: "panel result", "aria-labelledby": this.title.id },
      this.title, this.query, this.text, this.meta, this.notes, this.sources,
    );
    this.done = true;
  }

  setHeading(text) {
    this.title.textContent = text;
  }

  /** A new question: empty, busy, ready for streamed text. */
  start() {
    this.done = false;
    this.streamed = document.createTextNode("");
    replace(this.text, this.streamed);
    this.text.setAttribute("aria-busy", "true");
    this.text.classList.remove("failed", "stopped");
    this.text.classList.add("streaming");
    this.query.hidden = true;
    for (const el of [this.meta, this.notes, this.sources]) el.replaceChildren();
    this.meta.textContent = "Finding evidence…";
  }

  appendText(piece) {
    if (this.meta.textContent) this.meta.textContent = "";
    this.streamed.appendData(String(piece ?? ""));
  }

  /** The search query a follow-up was rewritten into (a conversation's turn). */
  setQuery(query) {
    this.query.textContent = `Searched for: ${query}`;
    this.query.hidden = !query;
  }

  /** The answer object (`rag ask --json`): final text with links, sources, the rest. */
  finish(answer) {
    this.done = true;
    this._idle();
    const sources = Array.isArray(answer.sources) ? answer.sources : [];
    const byId = new Map(sources.map((s) => [Number(s.id), s]));
    const cardId = (n) => `${this.prefix}-src-${n}`;
    const title = (n) => (byId.has(n) ? String(byId.get(n).title || "untitled") : null);
    const open = (n) => this.openCard(cardId(n));
    replace(this.text, citedText(String(answer.answer ?? ""), title, cardId, open));
    this.meta.textContent = describe(answer);
    const warnings = Array.isArray(answer.warnings) ? answer.warnings : [];
    const uncited = sources.length && !this.text.querySelector("a.cite");
    replace(
      this.notes,
      warnings.map((w) => h("p", { class: "warning" }, String(w))),
      uncited ? h("p", { class: "hint" }, "The answer cites none of its sources: check it against them.") : null,
    );
    const dropped = Array.isArray(answer.dropped) ? answer.dropped : [];
    replace(
      this.sources,
      sources.length ? h("h3", {}, `Sources the model read (${sources.length})`) : null,
      sources.map((s) => sourceCard(s, cardId(Number(s.id)))),
      dropped.length ? droppedList(dropped) : null,
    );
  }

  fail(message) {
    this.done = true;
    this._idle();
    this.text.classList.add("failed");
    this.meta.textContent = "";
    this.notes.replaceChildren(h("p", { class: "error", role: "alert" }, String(message)));
  }

  stopped() {
    this.done = true;
    this._idle();
    this.text.classList.add("stopped");
    this.meta.textContent = "Stopped: the model was freed for the next question.";
  }

  openCard(id) {
    const card = document.getElementById(id);
    if (!card) return;
    card.classList.remove("flash");
    void card.offsetWidth; // restart the highlight
    card.classList.add("flash");
    card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    card.focus({ preventScroll: true });
  }

  _idle() {
    this.text.setAttribute("aria-busy", "false");
    this.text.classList.remove("streaming");
  }
}

function describe(answer) {
  const t = answer.timings || {};
  const parts = [];
  if (answer.model) parts.push(String(answer.model));
  if (t.ttft_s) parts.push(`first token ${Number(t.ttft_s).toFixed(2)} s`);
  if (t.tokens_per_s) parts.push(`${Number(t.tokens_per_s).toFixed(1)} tokens/s`);
  if (t.total_s) parts.push(`${Number(t.total_s).toFixed(1)} s in all`);
  return parts.join(" · ");
}
