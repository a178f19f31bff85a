// Schedules: the list with pause/resume, and the editor with a live cron preview.

import { api, q, seg } from "./api.js";
import { badge, h, num, table, update, when } from "./dom.js";
import { main, refreshNow } from "./shell.js";


export function schedulesView() {
  const note = h("div");
  const list = h("div");
  main.replaceChildren(h("h1", {}, "Schedules"), h("section", { class: "card" }, note, list));
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
      const schedules = await api("/v1/schedules");
      update(list, schedules, () =>
        table(
          [["Id"], ["Job"], ["When"], ["State"], ["Next run"], ["Last run", "hide-narrow"], ["Last job"], ["Runs", "num"], ["Last error"], ["Action"]],
          schedules.map(row),
          "No schedule: add one with `jobhost schedule add` or POST /v1/schedules.",
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
            try {
              const saved = await api(`/v1/schedules/${seg(id)}`, {
                method: "PATCH",
                body: { cron: cron.value, timezone: tz.value || "UTC" },
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
        h("div", { class: "actions" }, save, h("a", { href: "#/schedules" }, "Back to schedules")),
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

