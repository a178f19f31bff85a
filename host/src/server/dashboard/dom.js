// What every view draws with: elements built from data (text is only ever set as text, never
// parsed as markup), redraws only when the data changed (keyboard focus kept), tables, badges,
// numbers and times, and the confirmation dialog.

export const STATUSES = ["waiting", "queued", "scheduled", "held", "processing", "completed", "error", "cancelled"];
export const PENDING = ["waiting", "queued", "scheduled", "held", "processing"];
export const FINISHED = ["completed", "error", "cancelled"];

/** Builds an element: props are attributes (`on…` are listeners), children text or nodes. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "value" || key === "checked") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

const drawn = new WeakMap();

/**
 * Rebuilds `container` from `data` only when the data changed, keeping keyboard focus on the
 * element with the same id: a refresh every two seconds must not pull focus from a button.
 */
export function update(container, data, build) {
  const key = JSON.stringify(data);
  if (drawn.get(container) === key) return;
  drawn.set(container, key);
  const focused = container.contains(document.activeElement) ? document.activeElement.id : "";
  container.replaceChildren(...[build(data)].flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  if (focused) document.getElementById(focused)?.focus();
}

export function table(headers, rows, empty = "Nothing here.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  // Each cell carries its column's heading: on a phone a row shows as a card of labelled fields.
  const labels = headers.map(([label]) => (typeof label === "string" ? label : (label?.textContent ?? "")));
  for (const row of rows.flat(Infinity)) {
    if (!(row instanceof Element)) continue;
    [...row.children].forEach((cell, i) => {
      if (labels[i] && cell.tagName === "TD" && !cell.hasAttribute("data-label")) cell.dataset.label = labels[i];
    });
  }
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map(([label, cls, props]) => h("th", { class: cls, scope: "col", ...props }, label)))),
      h("tbody", {}, rows),
    ),
  );
}

export const badge = (status, label = status) => h("span", { class: `badge ${status}` }, label);
/** A count with the reader's thousands separators. */
export const count = (n) => (n ?? 0).toLocaleString();
export const num = (n) => h("td", { class: "num" }, count(n));
export const fmt = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3));

/**
 * An RFC 3339 time as local `YYYY-MM-DD HH:MM:SS` (with milliseconds when `precise`), with the
 * exact value as its title.
 */
export function when(rfc3339, precise = false) {
  if (!rfc3339) return h("span", { class: "muted" }, "—");
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  const pad = (n) => String(n).padStart(2, "0");
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(
    d.getMinutes(),
  )}:${pad(d.getSeconds())}${precise ? `.${String(d.getMilliseconds()).padStart(3, "0")}` : ""}`;
  return h("time", { datetime: rfc3339, title: rfc3339 }, text);
}

const confirmDialog = document.getElementById("confirm");

/** Asks before an action; resolves true when confirmed. */
export function confirmAction(text, okLabel, danger) {
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  document.getElementById("confirm-ok").className = danger ? "danger" : "";
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  // Focus on the harmless choice: Enter pressed out of habit must not remove anything.
  document.getElementById("confirm-back").focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
  });
}

