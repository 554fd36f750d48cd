// An answer's text with its citations made into links: `[2]` and `[1, 3]` point at the
// cards of sources 1-3; a number the model made up (no such source) is shown as such,
// never linked to another source.
import { h } from "./dom.js";

const GROUP = /\[(\d{1,4}(?:\s*,\s*\d{1,4})*)\]/g;

/**
 * Nodes for `text`: plain text, and for each citation group "[", links or "no source N"
 * markers, "]". `cardId(n)` names the element of source n; `title(n)` its title or null
 * when the answer had no source n.
 */
export function citedText(text, title, cardId, onOpen) {
  const nodes = [];
  let at = 0;
  for (const match of text.matchAll(GROUP)) {
    if (match.index > at) nodes.push(text.slice(at, match.index));
    const group = h("span", { class: "cites" }, "[");
    match[1].split(",").forEach((raw, i) => {
      const n = Number(raw.trim());
      if (i) group.append(", ");
      const named = title(n);
      if (named === null) {
        group.append(h("span", {
          class: "cite-missing",
          title: `The answer cites [${n}], but the model was given no source ${n}.`,
        }, `no source ${n}`));
      } else {
        const link = h("a", {
          class: "cite",
          href: `#${cardId(n)}`,
          "aria-label": `source ${n}: ${named}`,
        }, String(n));
        link.addEventListener("click", (event) => {
          event.preventDefault();
          onOpen(n);
        });
        group.append(link);
      }
    });
    group.append("]");
    nodes.push(group);
    at = match.index + match[0].length;
  }
  if (at < text.length) nodes.push(text.slice(at));
  return nodes;
}
