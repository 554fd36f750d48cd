// The Indexes view, in <section id="view-indexes"> at #/indexes: the server's indexes
// (GET /v1/indexes), files uploaded into one (POST /v1/indexes/NAME/files, multipart:
// the file box or files dropped on it), a folder added (…/folders), reindex, remove
// (asked twice, in the page: no browser dialog). Each job's progress comes from its
// server-sent events (GET /v1/jobs/ID, js/job-line.js); when it ends the lists reload and
// the other views hear "indexes-changed". Everything shown is text (textContent), never markup.
import { ApiError } from "../api.js";
import { h, replace } from "../dom.js";
import { followJob } from "../job-line.js";

/** A plain index name, as the server takes it (rag.core.names.NAME). */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const COLUMNS = ["Name", "Chunks", "Files", "Embedder", "Store", "Updated", "Actions"];

/** @returns {object} the view's handle ({show()}): the nav link is shown. */
export function mount(root, app) {
  const view = new IndexesView(root, app);
  app.on("indexes-changed", () => view.renderTable());
  view.resume();
  return view;
}

const path = (name, tail = "") => `/v1/indexes/${encodeURIComponent(name)}${tail}`;

function when(row) {
  const raw = row.updated ?? row.updated_at;
  const date = typeof raw === "number" ? new Date(raw * 1000) : raw ? new Date(raw) : null;
  if (!date || Number.isNaN(date.getTime())) return "";
  const two = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${two(date.getHours())}:${two(date.getMinutes())}`;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

class IndexesView {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.busy = new Map(); // index name -> its job's id, while it runs
    this.confirming = null; // the index whose removal is being asked about
    this.chosen = []; // files picked or dropped, not sent yet

    this.status = h("p", { class: "status", id: "indexes-status", role: "status", "aria-live": "polite" });
    this.body = h("tbody");
    this.table = h(
      "table",
      { class: "index-table", id: "index-table" },
      h("caption", {}, "Indexes on this server"),
      h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
      this.body,
    );
    this.empty = h("p", { class: "hint", hidden: true }, "No index yet: upload files or add a folder below to make one.");
    this.names = h("datalist", { id: "index-names" });
    this.name = h("input", {
      type: "text", id: "index-name", name: "index", list: "index-names", required: true,
      maxlength: "64", autocomplete: "off", spellcheck: "false", "aria-describedby": "index-name-hint",
    });  // prettier-ignore
    this.files = h("input", { type: "file", id: "upload-files", name: "files", multiple: true });
    this.picked = h("ul", { class: "picked", id: "picked-files", "aria-label": "Files to upload" });
    this.drop = h(
      "div",
      { class: "dropzone", id: "dropzone" },
      h("label", { for: "upload-files" }, "Files to upload"),
      this.files,
      h("p", { class: "hint" }, "…or drop files here."),
      this.picked,
    );
    this.uploadButton = h("button", { type: "button", class: "primary", id: "upload" }, "Upload and index");
    this.folder = h("input", {
      type: "text", id: "folder-path", name: "path", placeholder: "/home/me/notes",
      autocomplete: "off", spellcheck: "false", "aria-describedby": "folder-hint",
    });  // prettier-ignore
    this.folderButton = h("button", { type: "button", id: "add-folder" }, "Add folder");
    this.formError = h("p", { class: "error", role: "alert" });
    this.jobs = h("ul", { class: "jobs", id: "jobs", "aria-label": "Jobs" });
    const form = h(
      "form",
      { class: "panel add-documents", "aria-labelledby": "add-documents-title" },
      h("h3", { id: "add-documents-title" }, "Add documents"),
      h("label", { for: "index-name", class: "big" }, "Index"),
      this.name,
      this.names,
      h("p", { class: "hint", id: "index-name-hint" }, "An index above, or a new name: letters, digits, '.', '_', '-'."),
      h("fieldset", { class: "stack" }, h("legend", {}, "Files"), this.drop, this.uploadButton),
      h(
        "fieldset",
        { class: "stack" },
        h("legend", {}, "A folder on the server"),
        h("label", { for: "folder-path" }, "Folder path"),
        this.folder,
        h("p", { class: "hint", id: "folder-hint" }, "An absolute path. Its files are read where they are, never moved or removed."),
        this.folderButton,
      ),
      this.formError,
    );
    replace(
      root,
      h("h2", {}, "Indexes"),
      h("div", { class: "table-scroll" }, this.table),
      this.empty,
      this.status,
      this.jobs,
      form,
    );
    this.wire(form);
    this.renderTable();
  }

  wire(form) {
    form.addEventListener("submit", (event) => event.preventDefault());
    this.files.addEventListener("change", () => this.choose([...this.files.files], false));
    this.uploadButton.addEventListener("click", () => this.upload());
    this.folderButton.addEventListener("click", () => this.addFolder());
    this.folder.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        this.addFolder();
      }
    });
    const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
    this.drop.addEventListener("dragover", (event) => {
      if (!hasFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      this.drop.classList.add("over");
    });
    this.drop.addEventListener("dragleave", () => this.drop.classList.remove("over"));
    this.drop.addEventListener("drop", (event) => {
      event.preventDefault();
      this.drop.classList.remove("over");
      this.choose([...(event.dataTransfer?.files || [])], true);
    });
    // A file dropped beside the box would make the browser open it, leaving the desk.
    for (const type of ["dragover", "drop"]) {
      document.addEventListener(type, (event) => {
        if (!this.root.hidden && hasFiles(event) && !this.drop.contains(event.target)) event.preventDefault();
      });
    }
  }

  show() {
    this.app.refreshIndexes().then(() => this.renderTable(), (e) => this.failed(e));
  }

  /** Follow the jobs still running on the server (a reload mid-job). */
  async resume() {
    try {
      const listed = await this.app.api.get("/v1/jobs");
      for (const job of listed?.jobs || []) {
        if (job.state === "queued" || job.state === "running") this.follow(job.id, String(job.index), job.kind);
      }
    } catch (e) {
      /* an older server, or signed out: nothing to follow */
    }
  }

  renderTable() {
    const rows = this.app.indexes || [];
    replace(this.names, rows.map((row) => h("option", { value: String(row.name) })));
    replace(this.body, rows.map((row) => this.row(row)));
    this.table.hidden = !rows.length;
    this.empty.hidden = Boolean(rows.length);
  }

  row(row) {
    const name = String(row.name ?? "");
    const cell = (label, value) => h("td", { "data-label": label }, value == null ? "" : String(value));
    const head = h("th", { scope: "row", "data-label": "Name" }, name);
    const actions = h("td", { class: "actions", "data-label": "Actions" }, this.actions(name));
    if (row.error) {
      return h("tr", { "data-index": name }, head,
        h("td", { colspan: "5", class: "error", "data-label": "Problem" }, String(row.error)), actions);  // prettier-ignore
    }
    return h(
      "tr",
      { "data-index": name },
      head,
      cell("Chunks", row.chunks),
      cell("Files", row.files),
      cell("Embedder", row.embedder),
      cell("Store", row.store),
      cell("Updated", when(row)),
      actions,
    );
  }

  actions(name) {
    const busy = this.busy.has(name);
    if (this.confirming === name) {
      const yes = h("button", { type: "button", class: "danger small confirm-remove" }, "Remove");
      const no = h("button", { type: "button", class: "small" }, "Cancel");
      yes.addEventListener("click", () => this.remove(name));
      no.addEventListener("click", () => this.confirm(null));
      const group = h(
        "div",
        { role: "group", class: "confirm", "aria-label": `Remove ${name}?` },
        h("span", {}, `Remove ${name} and its uploaded files? Your folders stay as they are.`),
        yes,
        no,
      );
      group.addEventListener("keydown", (event) => {
        if (event.key === "Escape") this.confirm(null);
      });
      queueMicrotask(() => yes.focus());
      return group;
    }
    const reindex = h("button", { type: "button", class: "small reindex", disabled: busy, "aria-label": `Reindex ${name}` }, "Reindex");
    const remove = h("button", { type: "button", class: "small remove", disabled: busy, "aria-label": `Remove ${name}` }, "Remove");
    reindex.addEventListener("click", () => this.reindex(name));
    remove.addEventListener("click", () => this.confirm(name));
    return [reindex, " ", remove];
  }

  confirm(name) {
    const was = this.confirming;
    this.confirming = name;
    this.renderTable();
    if (name === null && was !== null) this.body.querySelector(`tr[data-index="${CSS.escape(was)}"] .remove`)?.focus();
  }

  choose(files, add) {
    this.chosen = add ? [...this.chosen, ...files] : files;
    replace(this.picked, this.chosen.map((file) => h("li", {}, `${file.name} (${size(file.size)})`)));
    this.formError.textContent = "";
  }

  /** The index named in the form, or null (said why). */
  target() {
    const name = this.name.value.trim();
    if (!NAME.test(name)) {
      this.formError.textContent = name
        ? `"${name}" is not an index name: letters, digits, '.', '_' or '-', up to 64, not starting with a dot.`
        : "Name the index first.";
      this.name.focus();
      return null;
    }
    if (this.busy.has(name)) {
      this.formError.textContent = `${name} has a job running; wait for it to end.`;
      return null;
    }
    this.formError.textContent = "";
    return name;
  }

  async upload() {
    const name = this.target();
    if (name === null) return;
    if (!this.chosen.length) {
      this.formError.textContent = "Choose or drop the files to upload first.";
      this.files.focus();
      return;
    }
    const form = new FormData();
    for (const file of this.chosen) form.append("files", file, file.name);
    this.uploadButton.disabled = true;
    this.status.textContent = `Uploading ${this.chosen.length} file(s) into ${name}…`;
    try {
      const started = await this.app.api.upload(path(name, "/files"), form);
      this.choose([], false);
      this.files.value = "";
      this.follow(started.job, name, "files");
    } catch (e) {
      this.failed(e, "The upload was refused");
    } finally {
      this.uploadButton.disabled = false;
    }
  }

  async addFolder() {
    const name = this.target();
    if (name === null) return;
    const folder = this.folder.value.trim();
    if (!folder.startsWith("/")) {
      this.formError.textContent = "Give the folder's absolute path, starting with /.";
      this.folder.focus();
      return;
    }
    this.folderButton.disabled = true;
    try {
      const started = await this.app.api.post(path(name, "/folders"), { path: folder });
      this.folder.value = "";
      this.follow(started.job, name, "folders");
    } catch (e) {
      this.failed(e, "The folder was refused");
    } finally {
      this.folderButton.disabled = false;
    }
  }

  async reindex(name) {
    try {
      const started = await this.app.api.post(path(name, "/reindex"), {});
      this.follow(started.job, name, "reindex");
    } catch (e) {
      this.failed(e, `Could not reindex ${name}`);
    }
  }

  async remove(name) {
    this.confirming = null;
    try {
      await this.app.api.del(path(name));
      this.status.textContent = `Removed ${name}.`;
    } catch (e) {
      this.failed(e, `Could not remove ${name}`);
    }
    await this.changed();
  }

  /** Show job `id` and follow its events to the end, then reload the lists. */
  async follow(id, name, kind) {
    if ([...this.busy.values()].includes(id)) return;
    this.busy.set(name, id);
    this.renderTable();
    try {
      const report = await followJob(this.app, this.jobs, { id, name, kind });
      if (report) this.status.textContent = `${name} is indexed.`;
    } finally {
      this.busy.delete(name);
      await this.changed();
    }
  }

  async changed() {
    try {
      await this.app.refreshIndexes();
    } catch (e) {
      this.failed(e, "Could not reload the indexes");
    }
    this.renderTable();
    this.app.emit("indexes-changed");
  }

  failed(e, what = "The server did not answer") {
    if (e instanceof ApiError && e.status === 401) {
      this.app.emit("signed-out");
      return;
    }
    this.formError.textContent = `${what}: ${e instanceof ApiError ? e.message : String(e)}`;
    this.status.textContent = "";
  }
}
