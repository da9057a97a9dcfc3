// Formatting and DOM helpers. Money arrives as integer micro-USD and is never turned into a float.

export function usd(micros) {
  const value = BigInt(String(micros ?? 0));
  const sign = value < 0n ? "-" : "";
  const abs = value < 0n ? -value : value;
  const fraction = String(abs % 1000000n).padStart(6, "0");
  return `${sign}$${abs / 1000000n}.${fraction}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function count(value) {
  return Number(value ?? 0).toLocaleString();
}

// Builds an element; strings become text nodes, so user data is never parsed as HTML.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value != null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child != null) node.append(child);
  return node;
}

export function table(columns, rows, empty) {
  if (rows.length === 0) return el("p", { class: "note" }, empty);
  const head = el("tr", {}, columns.map(([label, , cls]) => el("th", { class: cls }, label)));
  const body = rows.map((row) => el("tr", {}, columns.map(([, cell, cls]) => el("td", { class: cls }, cell(row)))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

export function card(label, value, id) {
  return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value", id }, value));
}

export function errorBox(error) {
  return el("p", { class: "error", role: "alert" }, error.message || String(error));
}

export function lines(text) {
  return text.split(/[\n,]/).map((part) => part.trim()).filter(Boolean);
}
