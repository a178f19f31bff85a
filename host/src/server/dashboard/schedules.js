// Schedules: the list with pause/resume and a form for a new one, and the editor (cron with a
// live preview, time zone, input) with Delete.

import { api, q, seg } from "./api.js";
import { badge, confirmAction, h, num, table, update, when } from "./dom.js";
import { main, refreshNow } from "./shell.js";


export function schedulesView() {
  const note = h("div");
  const list = h("div");
  const factories = h("span");
  const created = h("div", { "aria-live": "polite" });
  const field = (id, label, props = {}) => h("label", { for: id }, label, h("input", { id, name: id, autocomplete: "off", ...props }));
  // A new cron schedule: the server checks the expression, the zone and the input (against
  // the factory's schema) and its message shows here.
  const create = h(
    "details",
    { class: "card", id: "new-schedule" },
    h("summary", {}, "New schedule"),
    h(
      "form",
      {
        onsubmit: async (event) => {
          event.preventDefault();
          const value = (id) => document.getElementById(id).value;
          let input = null;
          try {
            input = value("ns-input").trim() ? JSON.parse(value("ns-input")) : null;
          } catch (e) {
            created.replaceChildren(h("div", { class: "alert", role: "alert" }, `Input: not JSON (${e.message}).`));
            return;
          }
          try {
            const body = { job: value("ns-job"), cron: value("ns-cron").trim(), timezone: value("ns-tz").trim() || "UTC", input };
            const sc = await api("/v1/schedules", { method: "POST", body });
            location.hash = `#/schedules/${sc.id}`;
          } catch (e) {
            if (e.status !== 401) created.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
          }
        },
      },
      h(
        "div",
        { class: "filters" },
        factories,
        field("ns-cron", "Cron expression", { placeholder: "*/5 * * * *", required: true, class: "mono", spellcheck: "false" }),
        field("ns-tz", "Time zone", { placeholder: "UTC" }),
      ),
      h("label", { for: "ns-input" }, "Input (JSON; empty for none)", h("textarea", { id: "ns-input", rows: 3, class: "json", spellcheck: "false" })),
      created,
      h("div", { class: "actions" }, h("button", { type: "submit", id: "ns-save" }, "Create schedule")),
    ),
  );
  main.replaceChildren(h("h1", {}, "Schedules"), create, h("section", { class: "card" }, note, list));
  const row = (sc) => {
    const trigger = sc.cron ? [h("code", {}, sc.cron), sc.timezone ? ` (${sc.timezone})` : " (UTC)"] : `once, after ${sc.delay_seconds} s`;
    return h(
      "tr",
      { "data-schedule": sc.id },
      h("td", {}, h("a", { href: `#/schedules/${sc.id}` }, sc.id)),
      h("td", {}, sc.job),
      h("td", {}, trigger),
      h("td", {}, sc.active ? badge("processing-on", "active") : badge("paused", "paused")),
      h("td", {}, when(sc.next_run_at)),
      h("td", { class: "hide-narrow" }, when(sc.last_run_at)),
      h("td", {}, sc.last_job_id ? h("a", { href: `#/jobs/${sc.last_job_id}` }, sc.last_job_id) : "—"),
      num(sc.runs),
      h("td", {}, sc.last_error ? h("span", { class: "badge error", title: sc.last_error }, sc.last_error) : "—"),
      h(
        "td",
        {},
        h(
          "button",
          {
            id: `schedule-toggle-${sc.id}`,
            class: "ghost",
            type: "button",
            "aria-label": `${sc.active ? "Pause" : "Resume"} schedule ${sc.id}`,
            onclick: async () => {
              try {
                await api(`/v1/schedules/${seg(sc.id)}`, { method: "PATCH", body: { active: !sc.active } });
                note.replaceChildren();
                await refreshNow();
              } catch (e) {
                if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
              }
            },
          },
          sc.active ? "Pause" : "Resume",
        ),
      ),
    );
  };
  return {
    refresh: async () => {
      const [schedules, known] = await Promise.all([api("/v1/schedules"), api("/v1/factories")]);
      update(factories, known.map((f) => f.name), (names) =>
        h("label", { for: "ns-job" }, "Job", h("select", { id: "ns-job", name: "ns-job" }, names.map((n) => h("option", { value: n }, n)))),
      );
      update(list, schedules, () =>
        table(
          [["Id"], ["Job"], ["When"], ["State"], ["Next run"], ["Last run", "hide-narrow"], ["Last job"], ["Runs", "num"], ["Last error"], ["Action"]],
          schedules.map(row),
          "No schedule yet: add one above, with `jobhost schedule add` or POST /v1/schedules.",
        ),
      );
    },
  };
}

export function scheduleEditor(id) {
  const note = h("div");
  const body = h("div");
  main.replaceChildren(h("h1", {}, `Schedule ${id}`), note, body);
  let loaded = false;
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];

  const form = (sc) => {
    const cron = h("input", { id: "cron", name: "cron", value: sc.cron, required: true, spellcheck: "false", autocomplete: "off", class: "mono" });
    const tz = h("input", { id: "tz", name: "tz", value: sc.timezone ?? "UTC", list: "zones", autocomplete: "off" });
    const problem = h("div", { id: "cron-error", "aria-live": "polite" });
    const preview = h("div", { id: "cron-preview", "aria-live": "polite" });
    const save = h("button", { id: "save", type: "submit" }, "Save");
    const input = h("textarea", { id: "sc-input", rows: 4, class: "json", spellcheck: "false", value: JSON.stringify(sc.input, null, 2) });
    let seq = 0;
    let timer = 0;
    const check = async () => {
      const mine = ++seq;
      try {
        // `/v1/cron/check` is `/v1/cron/next` answering a bad field in its body, not as a 400
        // the browser would log as an error.
        const next = await api(`/v1/cron/check${q({ expr: cron.value, tz: tz.value, count: 5 })}`);
        if (mine !== seq) return;
        if (next.error) {
          save.disabled = true;
          preview.replaceChildren();
          problem.replaceChildren(h("div", { class: "alert", role: "alert" }, next.error.message));
          return;
        }
        problem.replaceChildren();
        save.disabled = false;
        preview.replaceChildren(
          h("p", { class: "muted" }, "Next five runs:"),
          h("ul", { class: "times" }, next.times.map((t) => h("li", {}, when(t), h("span", { class: "muted mono" }, `  ${t}`)))),
        );
      } catch (e) {
        if (mine !== seq || e.status === 401) return;
        save.disabled = e.status === 400;
        preview.replaceChildren();
        problem.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
      }
    };
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(check, 250);
    };
    cron.addEventListener("input", later);
    tz.addEventListener("input", later);
    check();
    return h(
      "section",
      { class: "card" },
      h("p", { class: "muted" }, `Makes ${sc.job} jobs in queue ${sc.queue}. ${sc.runs} run${sc.runs === 1 ? "" : "s"} so far; next `, when(sc.next_run_at), "."),
      h(
        "form",
        {
          onsubmit: async (event) => {
            event.preventDefault();
            let parsed;
            try {
              parsed = JSON.parse(input.value);
            } catch (e) {
              note.replaceChildren(h("div", { class: "alert", role: "alert" }, `Input: not JSON (${e.message}).`));
              return;
            }
            try {
              const saved = await api(`/v1/schedules/${seg(id)}`, {
                method: "PATCH",
                body: { cron: cron.value, timezone: tz.value || "UTC", input: parsed },
              });
              note.replaceChildren(h("div", { class: "note", role: "status" }, `Saved: next run `, when(saved.next_run_at), "."));
              // Drawn again from what was saved (its next run has changed).
              loaded = false;
              await refreshNow();
            } catch (e) {
              if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
            }
          },
        },
        h("div", { class: "filters" }, h("label", { for: "cron" }, "Cron expression (minute hour day month weekday)", cron), h("label", { for: "tz" }, "Time zone", tz)),
        h("datalist", { id: "zones" }, zones.map((z) => h("option", { value: z }))),
        problem,
        preview,
        h("label", { for: "sc-input" }, `Input of each ${sc.job} job (JSON, checked against the factory's schema)`, input),
        h(
          "div",
          { class: "actions" },
          save,
          h("button", { id: "sc-delete", type: "button", class: "danger", onclick: async () => {
            if (!(await confirmAction(`Delete schedule ${id}? It makes no more jobs; the jobs it made stay.`, "Delete", true))) return;
            try {
              await api(`/v1/schedules/${seg(id)}`, { method: "DELETE" });
              location.hash = "#/schedules";
            } catch (e) {
              if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
            }
          } }, "Delete"),
          h("a", { href: "#/schedules" }, "Back to schedules"),
        ),
      ),
    );
  };

  return {
    refresh: async () => {
      // The form is drawn once: a refresh must not overwrite what the operator is typing.
      if (loaded) return;
      if (!/^[0-9]{1,20}$/.test(id)) {
        loaded = true;
        body.replaceChildren(h("p", { class: "alert", role: "alert" }, `\`${id}\` is not a schedule id (ids are decimal numbers).`));
        return;
      }
      let sc;
      try {
        sc = await api(`/v1/schedules/${seg(id)}`);
      } catch (e) {
        if (e.status !== 404 && e.status !== 400) throw e;
        loaded = true;
        body.replaceChildren(h("p", { class: "alert", role: "alert" }, e.message));
        return;
      }
      loaded = true;
      body.replaceChildren(
        sc.cron
          ? form(sc)
          : h("section", { class: "card" }, h("p", {}, `A one-shot schedule (after ${sc.delay_seconds} s): it has no cron expression to edit.`)),
      );
    },
  };
}

