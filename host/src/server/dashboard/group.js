// One group's page: how far its members got, its callbacks, and cancelling what is left.

import { api, seg } from "./api.js";
import { badge, h, update, when } from "./dom.js";
import { act, main } from "./shell.js";

export function groupView(id) {
  const body = h("div");
  const note = h("div");
  main.replaceChildren(h("h1", {}, `Group ${id}`), note, body);

  const render = (group) => {
    const done = Object.entries(group.counts)
      .filter(([status]) => ["completed", "error", "cancelled"].includes(status))
      .reduce((sum, [, n]) => sum + n, 0) + group.removed;
    const fields = [
      group.name ? ["Name", group.name] : null,
      ["Created", when(group.created_at)],
      ["Members", h("span", { id: "group-progress" }, `${done.toLocaleString()} of ${group.total.toLocaleString()} finished${group.finished ? "" : ""}`)],
    ].filter(Boolean);
    const counts = Object.entries(group.counts).map(([status, n]) => h("li", {}, badge(status), ` ${n.toLocaleString()}`));
    if (group.removed) counts.push(h("li", {}, badge("removed"), ` ${group.removed.toLocaleString()}`));
    return [
      h(
        "section",
        { class: "card" },
        h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        h("progress", { max: Math.max(group.total, 1), value: done, "aria-label": "Members finished" }),
        h("ul", { id: "group-counts", class: "links" }, counts),
        group.finished
          ? null
          : h("div", { class: "actions" }, h("button", {
              id: "group-cancel", type: "button", class: "danger",
              onclick: () => act(note, `Cancel every pending member of group ${group.id}? Its on-complete callback then runs.`, "Cancel group",
                () => api(`/v1/groups/${seg(group.id)}/cancel`, { method: "POST" }), (r) => `${r.cancelled} members cancelled.`, true),
            }, "Cancel group")),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Callbacks"),
        group.callbacks.length
          ? h("ul", { id: "group-callbacks", class: "links" }, group.callbacks.map((c) =>
              h("li", {}, `${c.kind.replace("_", " ")}: `, h("a", { href: `#/jobs/${c.id}` }, `job ${c.id}`), " ", c.status ? badge(c.status) : badge("removed"))))
          : h("p", { class: "muted" }, "None."),
      ),
    ];
  };

  let gone = !/^[0-9]{1,20}$/.test(id);
  if (gone) body.replaceChildren(h("p", { class: "alert", role: "alert" }, `\`${id}\` is not a group id (ids are decimal numbers).`));
  return {
    refresh: async () => {
      if (gone) return;
      try {
        update(body, await api(`/v1/groups/${seg(id)}`), render);
      } catch (e) {
        if (e.status === 404) {
          gone = true;
          update(body, "gone", () => h("p", { class: "alert", role: "alert" }, e.message));
          return;
        }
        throw e;
      }
    },
  };
}
