// The eval Runs view, in <section id="view-runs">: the runs of `rag serve --runs DIR`
// at #/runs, one run's page at #/runs/NAME (js/run-page.js). Shown only when the
// server has runs: GET /v1/runs answers 404 without --runs.
import { ApiError } from "../api.js";
import { h, replace } from "../dom.js";
import { runPage } from "../run-page.js";

/** @returns {Promise<object|null>} the view's handle ({show()}), or null: no nav link. */
export async function mount(root, app) {
  let listed;
  try {
    listed = await app.api.get("/v1/runs");
  } catch (e) {
    return null; // 404: started without --runs (or anything else: nothing to show)
  }
  const runs = Array.isArray(listed?.runs) ? listed.runs : [];
  return runs.length ? new RunsView(root, app, runs) : null;
}

/** `#/runs/NAME` -> NAME; null for the list. */
function wantedRun() {
  const match = location.hash.match(/^#\/runs\/(.+)$/);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch (e) {
    return match[1];
  }
}

const runHref = (name) => `#/runs/${encodeURIComponent(name)}`;

class RunsView {
  constructor(root, app, runs) {
    this.root = root;
    this.app = app;
    this.runs = runs;
  }

  /** Called by the router on every #/runs... address. */
  show() {
    const name = wantedRun();
    const ticket = (this.ticket = {});
    const mine = () => this.ticket === ticket;
    if (name === null) this.showList(mine);
    else this.showRun(name, mine);
  }

  async showList(mine) {
    this.renderList();
    try {
      const listed = await this.app.api.get("/v1/runs");
      if (!mine()) return;
      this.runs = Array.isArray(listed?.runs) ? listed.runs : [];
      this.renderList();
    } catch (e) {
      if (mine()) this.failed(e, "Could not list the runs");
    }
  }

  renderList() {
    const items = this.runs.map((run) => {
      const name = String(run.name ?? "");
      const about = [
        run.benchmark,
        run.model,
        run.n != null ? `${run.n} questions` : null,
        Array.isArray(run.conditions) ? run.conditions.join(", ") : null,
        when(run.created),
      ].filter(Boolean);
      return h(
        "li",
        { class: "run-item" },
        h("a", { href: runHref(name), class: "run-link" }, name),
        about.length ? h("p", { class: "hint" }, about.map(String).join(" · ")) : null,
        run.error ? h("p", { class: "error" }, String(run.error.message ?? "This run cannot be read.")) : null,
      );
    });
    replace(
      this.root,
      h("h2", { id: "runs-title", tabindex: "-1" }, "Eval runs"),
      h("p", { class: "hint" }, "Runs of `rag eval run`, newest first: how much the evidence bought."),
      h("ul", { class: "run-list", "aria-labelledby": "runs-title" }, items),
    );
  }

  async showRun(name, mine) {
    replace(
      this.root,
      h("p", {}, h("a", { href: "#/runs" }, "← All runs")),
      h("p", { class: "hint", role: "status" }, `Loading ${name}…`),
    );
    let detail;
    try {
      detail = await this.app.api.get(`/v1/runs/${encodeURIComponent(name)}`);
    } catch (e) {
      if (mine()) this.failed(e, `Could not show the run ${name}`);
      return;
    }
    if (!mine()) return;
    replace(this.root, h("p", {}, h("a", { href: "#/runs" }, "← All runs")), runPage(name, detail));
    this.root.querySelector("h2")?.focus({ preventScroll: true });
  }

  failed(e, what) {
    this.root.append(h("p", { class: "error", role: "alert" }, `${what}: ${e.message}`));
    if (e instanceof ApiError && e.status === 401) this.app.emit("signed-out");
  }
}

/** An ISO 8601 time as the reader's local date and time. */
function when(text) {
  const date = new Date(String(text ?? ""));
  if (!text || Number.isNaN(date.getTime())) return "";
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
