// One eval run as `rag eval report` tells it: the accuracy table with its 95% intervals
// and the comparison with the baseline (results.json), the plot, and the questions the
// evidence helped and hurt, each with both answers and the passages the model read.
import { h } from "./dom.js";

const pct = (x) => (x == null || !Number.isFinite(Number(x)) ? "–" : (100 * Number(x)).toFixed(1));
const fixed = (x, digits) => (x == null || !Number.isFinite(Number(x)) ? "–" : Number(x).toFixed(digits));
const signed = (x) => (x == null ? "–" : `${Number(x) >= 0 ? "+" : ""}${pct(x)}`);
const pValue = (p) => (Number(p) < 0.001 ? "p<0.001" : `p=${Number(p).toPrecision(2)}`);

const COLUMNS = [
  ["condition", "Condition"],
  ["n", "n"],
  ["acc", "Accuracy %"],
  ["ci", "95% CI"],
  ["em", "EM %"],
  ["f1", "F1 %"],
  ["hit", "Hit@k %"],
  ["latency", "Latency s"],
  ["tokens", "Prompt tokens"],
  ["helped", "Helped / hurt"],
  ["versus", "Against the baseline"],
];

/** The run's page: `detail` is GET /v1/runs/NAME. */
export function runPage(name, detail) {
  const results = detail?.results || {};
  const about = [
    results.benchmark,
    results.model,
    results.n != null ? `${results.n} questions` : null,
    results.k != null ? `k=${results.k}` : null,
    results.seed != null ? `seed ${results.seed}` : null,
  ].filter((x) => x != null && x !== "");
  const notes = Array.isArray(results.notes) ? results.notes : [];
  const helped = Array.isArray(detail?.helped) ? detail.helped : [];
  const hurt = Array.isArray(detail?.hurt) ? detail.hurt : [];
  return h(
    "article",
    { class: "run", "aria-labelledby": "run-title" },
    h("h2", { id: "run-title", tabindex: "-1" }, String(name)),
    h("p", { class: "hint" }, about.map(String).join(" · ")),
    accuracyTable(results),
    notes.map((note) => h("p", { class: "warning" }, String(note))),
    detail?.plot
      ? h(
          "figure",
          { class: "run-plot" },
          h("img", {
            src: `/v1/runs/${encodeURIComponent(name)}/plot.png`,
            alt: "Accuracy per condition, with 95% bootstrap intervals as whiskers",
          }),
          h("figcaption", { class: "hint" }, "The report's plot (report.png)."),
        )
      : h("p", { class: "hint" }, "No plot: `rag eval report` on the run folder draws one."),
    questions("helped", "Questions the evidence helped", "right with the evidence, wrong without", helped),
    questions("hurt", "Questions the evidence hurt", "right without the evidence, wrong with it", hurt),
  );
}

function accuracyTable(results) {
  const conditions = results.conditions && typeof results.conditions === "object" ? results.conditions : {};
  const comparisons = Array.isArray(results.comparisons) ? results.comparisons : [];
  const against = new Map(comparisons.map((c) => [String(c.condition), c]));
  const rows = Object.entries(conditions).map(([condition, m]) => {
    const c = against.get(condition);
    const ci = Array.isArray(m?.accuracy_ci) ? m.accuracy_ci : [null, null];
    const cells = {
      n: String(m?.n ?? "–"),
      acc: pct(m?.accuracy),
      ci: `${pct(ci[0])}–${pct(ci[1])}`,
      em: pct(m?.em),
      f1: pct(m?.f1),
      hit: pct(m?.hit_at_k),
      latency: fixed(m?.mean_latency_s, 2),
      tokens: fixed(m?.mean_prompt_tokens, 0),
      helped: c ? `+${c.helped} / −${c.hurt}` : "–",
      versus: c ? versus(c) : "baseline",
    };
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, condition),
      COLUMNS.slice(1).map(([key]) => h("td", { "data-key": key }, cells[key])),
    );
  });
  const caption = "Contains-answer accuracy per condition, with its 95% bootstrap interval.";
  return [
    h("p", { class: "hint run-caption", id: "run-table-caption" }, caption),
    h(
      "div",
      { class: "table-wrap", role: "region", "aria-labelledby": "run-table-caption", tabindex: "0" },
      h(
        "table",
        { class: "run-table", "aria-labelledby": "run-table-caption" },
        h("thead", {}, h("tr", {}, COLUMNS.map(([, label]) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, rows),
      ),
    ),
  ];
}

/** "+20.0 (−10.0 to 50.0) p=0.5" against `c.baseline`, a star when significant. */
function versus(c) {
  const ci = Array.isArray(c.delta_ci) ? c.delta_ci : [null, null];
  const star = c.significant ? " *" : "";
  return `${signed(c.delta)} (${signed(ci[0])} to ${signed(ci[1])}) vs ${c.baseline}, ${pValue(c.p_value)}${star}`;
}

function questions(kind, heading, meaning, items) {
  const id = `run-${kind}`;
  return h(
    "section",
    { class: `run-questions ${kind}`, "aria-labelledby": id },
    h("h3", { id }, `${heading} (${items.length})`),
    h("p", { class: "hint" }, items.length ? `Each ${meaning}.` : `None: no question was ${meaning}.`),
    items.map((item) => question(item)),
  );
}

function question(item) {
  const gold = Array.isArray(item.answers) ? item.answers.map(String).join(" · ") : "";
  const evidence = Array.isArray(item.evidence) ? item.evidence : [];
  return h(
    "details",
    { class: "run-question" },
    h("summary", {}, String(item.question ?? item.qid ?? "a question")),
    h(
      "dl",
      { class: "run-answers" },
      h("dt", {}, "Gold answers"),
      h("dd", {}, gold || "–"),
      h("dt", {}, `${item.baseline ?? "baseline"} answered`),
      h("dd", { class: "closed-answer" }, String(item.closed_answer ?? "–")),
      h("dt", {}, `${item.condition ?? "with evidence"} answered`),
      h("dd", { class: "evidence-answer" }, String(item.answer ?? "–")),
    ),
    h("h4", {}, `Evidence in the prompt (${evidence.length})`),
    evidence.length
      ? h("ol", { class: "run-evidence" }, evidence.map((e) => passage(e)))
      : h("p", { class: "hint" }, "None recorded."),
  );
}

function passage(e) {
  const text = e?.text;
  return h(
    "li",
    {},
    h(
      "details",
      {},
      h("summary", {}, String(e?.title || "untitled")),
      e?.location ? h("p", { class: "where" }, h("code", {}, String(e.location))) : null,
      text == null
        ? h("p", { class: "hint" }, "Its text was not recorded (a line written before predictions kept it).")
        : h("p", { class: "excerpt" }, String(text)),
    ),
  );
}
