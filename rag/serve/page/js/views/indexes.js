// MOUNT POINT (helper "indexes"): the Indexes view, in <section id="view-indexes">,
// reached at #/indexes. To fill: the rows of app.indexes (GET /v1/indexes), upload files
// (POST /v1/indexes/NAME/files, multipart), add a folder, reindex, delete; follow each
// job with app.api.watch(`/v1/jobs/${id}`, {onEvent}) (progress, done, error), then
// await app.refreshIndexes() and app.emit("indexes-changed") so Ask's sources update.

/** @returns {object|null} the view's handle ({show()}), or null: no nav link shown. */
export function mount(root, app) {
  void root;
  void app;
  return null;
}
