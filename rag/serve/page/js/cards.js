// A source as a card: its title, where it is, and its text with the spans that went into
// the prompt marked and the rest dimmed; and the candidates the model did not read.
import { h, safeHref } from "./dom.js";

/** Characters of context kept around each read span when a source is long. */
const CONTEXT = 240;
const LONG = 2400;

/**
 * Python counts characters by code point, JavaScript by UTF-16 unit: spans from the
 * server are code point offsets, turned here into string offsets.
 */
function unitOffsets(text, spans) {
  if (!/[\uD800-\uDFFF]/.test(text)) return spans;
  const units = [0];
  for (const ch of text) units.push(units[units.length - 1] + ch.length);
  const at = (i) => units[Math.max(0, Math.min(i, units.length - 1))];
  return spans.map(([a, b]) => [at(a), at(b)]);
}

/** [[start, end, read?]] covering `text`, spans first checked and sorted. */
function pieces(text, spans) {
  if (!Array.isArray(spans) || !spans.length) return [[0, text.length, true]];
  const sorted = unitOffsets(text, spans)
    .filter((s) => Array.isArray(s) && s.length === 2 && s[0] < s[1])
    .map(([a, b]) => [Math.max(0, a), Math.min(text.length, b)])
    .sort((x, y) => x[0] - y[0]);
  const out = [];
  let at = 0;
  for (const [a, b] of sorted) {
    if (b <= at) continue;
    if (a > at) out.push([at, a, false]);
    out.push([Math.max(a, at), b, true]);
    at = b;
  }
  if (at < text.length) out.push([at, text.length, false]);
  return out;
}

/** The text's nodes; in a long text, unread stretches far from any read span elided. */
function excerptNodes(text, spans, whole) {
  const nodes = [];
  for (const [a, b, read] of pieces(text, spans)) {
    const part = text.slice(a, b);
    if (read) {
      nodes.push(h("mark", {}, part));
    } else if (whole || text.length <= LONG || part.length <= 2 * CONTEXT) {
      nodes.push(h("span", { class: "unread" }, part));
    } else {
      const head = a === 0 ? "" : part.slice(0, CONTEXT);
      const tail = b === text.length ? "" : part.slice(-CONTEXT);
      nodes.push(h("span", { class: "unread" }, head));
      nodes.push(h("span", { class: "elided", title: "Not read by the model; left out here" }, " … "));
      nodes.push(h("span", { class: "unread" }, tail));
    }
  }
  return nodes;
}

/** Where a source is: a link for a web page, the path (and #page or section) for a file. */
function where(location, origin) {
  const href = safeHref(location);
  const place = href
    ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, location)
    : h("code", {}, location);
  return h("p", { class: "where" }, place, origin ? h("span", { class: "origin" }, ` · ${origin}`) : null);
}

export function sourceCard(source, id) {
  const text = String(source.text ?? "");
  const body = h("p", { class: "excerpt" }, excerptNodes(text, source.spans, false));
  const partial = pieces(text, source.spans).some(([a, b, read]) => !read && text.slice(a, b).trim());
  const note = partial
    ? "Marked: the sentences the model read; dimmed: the rest of the source."
    : "The model read all of this source.";
  const card = h(
    "article",
    { class: "card", id, tabindex: "-1", "aria-labelledby": `${id}-title` },
    h("h4", { id: `${id}-title` }, h("span", { class: "num" }, String(source.id)), String(source.title || "untitled")),
    where(String(source.location ?? ""), String(source.origin ?? "")),
    body,
    h("p", { class: "hint" }, note),
  );
  if (text.length > LONG && partial) {
    const more = h("button", { type: "button", class: "quiet small" }, "Show the whole source");
    more.addEventListener("click", () => {
      body.replaceChildren(...excerptNodes(text, source.spans, true));
      more.remove();
    });
    card.append(more);
  }
  return card;
}

export function droppedList(dropped) {
  const items = dropped.map((d) =>
    h(
      "li",
      {},
      h("strong", {}, String(d.title || "untitled")),
      where(String(d.location ?? ""), String(d.origin ?? "")),
      h("p", { class: "reason" }, `Not read: ${d.reason || "no reason given"}.`),
      h("p", { class: "unread clip" }, String(d.text ?? "").slice(0, 300)),
    ),
  );
  return h(
    "details",
    { class: "dropped" },
    h("summary", {}, `Candidates the model did not read (${dropped.length})`),
    h("ul", {}, items),
  );
}
