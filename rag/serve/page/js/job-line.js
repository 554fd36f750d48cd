// One index job on screen (the Indexes view's list): what it does, a progress bar and a
// line of text, fed by the job's server-sent events (GET /v1/jobs/ID: `progress`,
// `done` with the `rag index --json` report, `error`). A late subscriber gets the job's
// current state first, so a reload mid-job picks it up where it is.
import { ApiError } from "./api.js";
import { h, replace } from "./dom.js";

const KINDS = { files: "Uploading into", folders: "Adding a folder to", reindex: "Reindexing" };
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/**
 * Shows job {id, name, kind} at the top of `list` and follows it to its end.
 * @returns {Promise<object|null>} its report when it is done, null when it failed.
 */
export async function followJob(app, list, { id, name, kind }) {
  const bar = h("progress", { max: "1", "aria-label": `Progress of ${name}` });
  const text = h("p", { class: "job-text" }, "Waiting…");
  const item = h("li", { class: "job", "data-job": id }, h("strong", {}, `${KINDS[kind] || "Job on"} ${name}`), bar, text);
  list.prepend(item);
  let report = null;
  let ended = false;
  const fail = (message) => {
    bar.remove();
    item.classList.add("failed");
    text.classList.add("error");
    replace(text, message);
  };
  try {
    await app.api.watch(`/v1/jobs/${encodeURIComponent(id)}`, {
      onEvent: (event, data) => {
        if (event === "progress") progress(bar, text, data || {});
        else if (event === "done") {
          ended = true;
          report = data || {};
          done(item, bar, text, name, report);
        } else if (event === "error") {
          ended = true;
          fail(String(data?.error?.message || "The job failed."));
        }
      },
    });
    if (!ended) fail("The server stopped telling about this job; reload to see where it is.");
  } catch (e) {
    fail(e instanceof ApiError ? e.message : String(e));
    if (e instanceof ApiError && e.status === 401) app.emit("signed-out");
  }
  return report;
}

function progress(bar, text, data) {
  const done = Number(data.done) || 0;
  const total = Number(data.total) || 0;
  if (total > 0) {
    bar.max = total;
    bar.value = Math.min(done, total);
  } else bar.removeAttribute("value"); // not known ahead: indeterminate
  const said = {
    queued: "Waiting for another job to end…",
    starting: "Starting…",
    read: `Reading files: ${done} of ${total}`,
    ocr: `Reading scans (OCR): ${done} of ${total} pages`,
    embed: `Embedding chunks: ${done}`,
    write: "Writing the index…",
  }[data.stage];
  replace(text, said || String(data.stage || "Working…"), data.path ? ` (${data.path})` : "");
}

function done(item, bar, text, name, report) {
  bar.max = 1;
  bar.value = 1;
  item.classList.add("finished");
  replace(
    text,
    `Done: ${name} has ${plural(report.chunks ?? 0, "chunk")}; ${plural(report.files_read ?? 0, "file")} read ` +
      `(${report.files_embedded ?? 0} embedded, ${report.files_unchanged ?? 0} unchanged, ` +
      `${report.files_removed ?? 0} removed).`,
  );
  const skipped = Array.isArray(report.skipped) ? report.skipped : [];
  if (skipped.length) {
    item.append(
      h(
        "details",
        { class: "skipped" },
        h("summary", {}, `Skipped ${skipped.length}`),
        h("ul", {}, skipped.map((s) => h("li", {}, `${String(s.path).split("/").pop()}: ${s.reason}`))),
      ),
    );
  }
  for (const warning of (report.warnings || []).slice(0, 5)) item.append(h("p", { class: "warning" }, String(warning)));
}
