// MOUNT POINT (helper "runs"): the eval Runs view, in <section id="view-runs">, reached
// at #/runs. To fill: GET /v1/runs (an empty list or 404: return null, no nav link),
// each run's results (GET /v1/runs/NAME), its plot (<img> of /v1/runs/NAME/plot.png:
// img-src 'self' allows it), and the helped/hurt questions with their evidence shown
// as text (js/dom.js h(): text nodes only; tests/test_page_routes.py checks).

/** @returns {object|null} the view's handle ({show()}), or null: no nav link shown. */
export function mount(root, app) {
  void root;
  void app;
  return null;
}
