// Small DOM helpers shared by the playground's modules. Text always goes in as text (textContent),
// never as HTML.

/** A new element: `el("span", "cls", "text")`; children appended with append(). */
export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

/** The SVG namespace, read from the page's own chart template (no URL written in a script). */
export function svgNamespace() {
  return document.getElementById("chart-template").content.firstElementChild.namespaceURI;
}

/** A new SVG element with `attrs` (attributes, never a style). */
export function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(svgNamespace(), tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}
