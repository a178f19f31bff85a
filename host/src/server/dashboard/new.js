// A new job: pick a factory, fill a form generated from its input's JSON Schema (fields,
// types, required, enums, ranges, descriptions; nested objects as fieldsets; anything the form
// cannot draw as a JSON editor), submit with an Idempotency-Key, and read the server's
// validation messages at the fields they name.

import { api } from "./api.js";
import { h } from "./dom.js";
import { main } from "./shell.js";

/** A fresh Idempotency-Key (crypto.randomUUID needs a secure context; this does not). */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `schema` with its `$ref`s into the root's `$defs` followed. */
function resolve(schema, root) {
  let seen = 0;
  while (schema && typeof schema === "object" && schema.$ref && seen++ < 32) {
    schema = root.$defs?.[schema.$ref.replace(/^#\/\$defs\//, "")];
  }
  return schema && typeof schema === "object" ? schema : {};
}

/** What a schema is, for drawing: its base schema and whether `null` is allowed. */
function shape(schema, root) {
  let s = resolve(schema, root);
  let nullable = false;
  const alternatives = s.anyOf || s.oneOf;
  if (alternatives && alternatives.length === 2) {
    const other = alternatives.find((a) => resolve(a, root).type !== "null");
    if (other && alternatives.some((a) => resolve(a, root).type === "null")) {
      nullable = true;
      s = { ...resolve(other, root), description: s.description ?? resolve(other, root).description };
    }
  }
  let type = s.type;
  if (Array.isArray(type)) {
    nullable = nullable || type.includes("null");
    const rest = type.filter((t) => t !== "null");
    type = rest.length === 1 ? rest[0] : undefined;
  }
  let kind = "json";
  if (Array.isArray(s.enum) && s.enum.every((v) => typeof v === "string")) kind = "enum";
  else if (type === "object" && s.properties && !s.anyOf && !s.oneOf) kind = "object";
  else if (type === "string" || type === "integer" || type === "number" || type === "boolean") kind = type;
  return { schema: s, kind, nullable };
}

const idFor = (pointer) => `field${pointer.replace(/[^A-Za-z0-9_-]/g, "-")}`;

/**
 * One field for `schema` at `pointer`: its element and how to read its value (`undefined`:
 * left empty, so omitted). Errors are shown in its `.field-error` slot, found by pointer.
 */
function field(name, schema, root, pointer, required) {
  const { schema: s, kind, nullable } = shape(schema, root);
  const id = idFor(pointer);
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert" });
  const hint = s.description ? h("span", { class: "hint" }, s.description) : null;
  const label = `${name}${required && !nullable ? " *" : ""}`;
  const wrap = (control, extra) =>
    h("div", { class: "field", "data-pointer": pointer }, h("label", { for: id }, label, hint), control, extra, error);
  if (kind === "object") {
    const needed = new Set(s.required ?? []);
    const children = Object.entries(s.properties).map(([key, sub]) =>
      field(key, sub, root, `${pointer}/${key.replace(/~/g, "~0").replace(/\//g, "~1")}`, needed.has(key)),
    );
    const element = h(
      "fieldset",
      { class: "field", "data-pointer": pointer, id },
      h("legend", {}, label),
      hint,
      children.map((c) => c.element),
      error,
    );
    return {
      element,
      read: () => {
        const value = {};
        let any = false;
        for (const [i, key] of Object.keys(s.properties).entries()) {
          const v = children[i].read();
          if (v !== undefined) {
            value[key] = v;
            any = true;
          }
        }
        return any || required ? value : undefined;
      },
    };
  }
  if (kind === "boolean") {
    const box = h("input", { type: "checkbox", id, checked: s.default === true });
    return { element: wrap(box), read: () => box.checked };
  }
  if (kind === "enum") {
    const select = h(
      "select",
      { id },
      required && !nullable ? null : h("option", { value: "" }, "—"),
      s.enum.map((v) => h("option", { value: v }, v)),
    );
    if (typeof s.default === "string") select.value = s.default;
    return { element: wrap(select), read: () => (select.value === "" ? undefined : select.value) };
  }
  if (kind === "string" || kind === "integer" || kind === "number") {
    const numeric = kind !== "string";
    const input = h("input", {
      id,
      type: numeric ? "number" : "text",
      step: kind === "integer" ? 1 : numeric ? "any" : undefined,
      min: s.minimum,
      max: s.maximum,
      value: s.default ?? "",
    });
    const read = () => {
      if (input.value === "") return undefined;
      return numeric ? Number(input.value) : input.value;
    };
    return { element: wrap(input), read };
  }
  // Arrays, alternatives and the rest: JSON, checked by the server against the schema.
  const area = h("textarea", { id, rows: 4, spellcheck: "false", class: "json" });
  const read = () => {
    if (area.value.trim() === "") return undefined;
    try {
      return JSON.parse(area.value);
    } catch (e) {
      throw Object.assign(new Error(`${name}: not valid JSON (${e.message})`), { pointer });
    }
  };
  return { element: wrap(area, h("span", { class: "hint" }, "JSON")), read };
}

/** Shows each server message at the field its pointer names, or the nearest one above it. */
function showErrors(form, fields) {
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const { pointer, message } of fields ?? []) {
    let at = pointer;
    let target = null;
    for (;;) {
      target = [...form.querySelectorAll("[data-pointer]")].find((el) => el.dataset.pointer === at);
      if (target || at === "") break;
      at = at.slice(0, at.lastIndexOf("/"));
    }
    const slot = target?.querySelector(":scope > .field-error");
    if (slot) slot.textContent += `${slot.textContent ? " " : ""}${pointer === at ? "" : `${pointer}: `}${message}`;
  }
}

export function newJobView() {
  const note = h("div");
  const body = h("div");
  main.replaceChildren(h("h1", {}, "New job"), note, h("section", { class: "card" }, body));
  let loaded = false;
  const draw = (factories, name) => {
    const factory = factories.find((f) => f.name === name) ?? factories[0];
    const root = factory?.input_schema ?? true;
    const picker = h(
      "select",
      { id: "new-factory", onchange: () => draw(factories, picker.value) },
      factories.map((f) => h("option", { value: f.name }, f.name)),
    );
    picker.value = factory?.name ?? "";
    const form = h("form", { id: "new-job", novalidate: true });
    const top = shape(root === true ? {} : root, root);
    const input =
      factory?.typed && top.kind === "object"
        ? field("input", root, root, "", true)
        : field("input", {}, {}, "", false);
    if (!(factory?.typed && top.kind === "object") && factory?.example) {
      input.element.querySelector("textarea").value = factory.example;
    }
    const queue = h("input", { id: "new-queue", type: "text", placeholder: "default" });
    const result = h("div");
    form.append(
      h("p", { class: "muted" }, factory?.description ?? "", factory?.typed ? "" : " (takes any JSON)"),
      input.element,
      h("div", { class: "actions" }, h("label", { for: "new-queue" }, "Queue", queue), h("button", { id: "new-submit", type: "submit" }, "Add job")),
      result,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      showErrors(form, []);
      result.replaceChildren();
      let value;
      try {
        value = input.read();
      } catch (e) {
        showErrors(form, [{ pointer: e.pointer ?? "", message: e.message }]);
        return;
      }
      const request = { job: factory.name, input: value === undefined ? null : value };
      if (queue.value.trim()) request.queue = queue.value.trim();
      try {
        const added = await api("/v1/jobs", { method: "POST", body: request, headers: { "Idempotency-Key": newKey() } });
        location.hash = `#/jobs/${encodeURIComponent(added.id)}`;
      } catch (e) {
        if (e.status === 401) return;
        showErrors(form, e.fields);
        result.replaceChildren(h("div", { class: "alert", role: "alert", id: "new-error" }, e.message));
      }
    });
    body.replaceChildren(h("label", { for: "new-factory" }, "Factory", picker), form);
  };
  return {
    refresh: async () => {
      if (loaded) return;
      const factories = await api("/v1/factories");
      loaded = true;
      if (!factories.length) {
        body.replaceChildren(h("p", { class: "muted" }, "No factory: load a plugin first."));
        return;
      }
      draw(factories, new URLSearchParams(location.hash.split("?")[1] ?? "").get("factory"));
    },
  };
}
