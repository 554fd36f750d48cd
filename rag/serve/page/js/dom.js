// Building the page from data without ever parsing it as HTML: every text goes in as a
// text node, every attribute through setAttribute, links only to http(s) addresses.

/**
 * h("a", {class: "x", href: safeHref(url)}, "text", child): an element. Strings become
 * text nodes; null/false children and attributes are skipped; `on*` props add listeners.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "style" || key.startsWith("on")) {
      throw new Error(`h(): ${key} is not allowed (the CSP forbids inline style and script)`);
    } else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Empties `el` and fills it with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** `text` as an http(s) URL, or null: never a script, data or relative address. */
export function safeHref(text) {
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch (e) {
    return null;
  }
}

let counter = 0;
/** A fresh id for label/aria wiring. */
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}
