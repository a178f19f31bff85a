// One job's page: input, result, attempts, errors, progress, and its actions.

import { api, q, seg } from "./api.js";
import { FINISHED, PENDING, badge, h, update, when } from "./dom.js";
import { act, leaveView, main } from "./shell.js";


/** `[RFC 3339] message` as stored in a job's error history. */
function errorItem(line) {
  const match = /^\[([^\]]+)\] ([\s\S]*)$/.exec(line);
  if (!match) return h("li", {}, line);
  return h("li", {}, when(match[1], true), h("span", { class: "message" }, match[2]));
}

const pretty = (value) => (value === null || value === undefined ? "null" : JSON.stringify(value, null, 2));

export function jobView(id) {
  const body = h("div");
  const note = h("div");
  main.replaceChildren(h("h1", {}, `Job ${id}`), note, body);

  const actions = (job) => {
    const path = `/v1/jobs/${seg(job.id)}`;
    const button = (key, label, question, call, done, cls) =>
      h(
        "button",
        { id: `job-${key}`, type: "button", class: cls, onclick: () => act(note, question, label, call, done, cls === "danger") },
        label,
      );
    return h(
      "div",
      { class: "actions" },
      PENDING.includes(job.status) && !job.cancel_requested
        ? button("cancel", "Cancel job", `Cancel job ${job.id} (${job.job})?${job.status === "processing" ? " It is asked to stop and ends cancelled when it returns." : ""}`,
            () => api(`${path}/cancel`, { method: "POST" }), (j) => `Job ${j.id} is ${j.status}${j.cancel_requested && j.status === "processing" ? " (cancel requested)" : ""}.`, "danger")
        : null,
      job.status === "error" || job.status === "cancelled"
        ? button("retry", "Retry", `Retry job ${job.id} (${job.job}) with fresh attempts?`,
            () => api(`${path}/retry`, { method: "POST" }), (j) => `Job ${j.id} is ${j.status} again.`)
        : null,
      job.status === "held" || job.status === "scheduled"
        ? button("start", "Start now", `Queue job ${job.id} (${job.job}) now?`,
            () => api(`${path}/start`, { method: "POST" }), (j) => `Job ${j.id} is ${j.status}.`)
        : null,
      FINISHED.includes(job.status)
        ? button("remove", "Remove", `Remove job ${job.id} (${job.job}) for good?`,
            () => api(path, { method: "DELETE" }), () => {
              // Not read again (it is gone): straight to the list.
              leaveView();
              location.hash = "#/jobs";
              return `Job ${job.id} was removed.`;
            }, "danger")
        : null,
    );
  };

  const render = ({ job, dependents, more }) => {
    const deps = job.dependencies;
    const fields = [
      // "Cancel requested" only while the request is pending: a finished job says what it ended as.
      ["Status", [badge(job.status), job.cancel_requested && job.status === "processing" ? " cancel requested" : ""]],
      ["Job", job.job],
      ["Queue", h("a", { href: `#/jobs${q({ queue: job.queue })}` }, job.queue)],
      ["Priority", job.priority],
      ["Attempts", `${job.attempts} of ${job.max_attempts}`],
      ["Timeout", job.timeout_seconds === null ? "the job's default" : `${job.timeout_seconds} s`],
      ["Created", when(job.created_at)],
      ["Runs at", when(job.run_at)],
      ["Started", when(job.started_at)],
      ["Finished", when(job.finished_at)],
      job.unique_key ? ["Unique key", h("code", {}, job.unique_key)] : null,
      job.schedule_id ? ["Schedule", h("a", { href: `#/schedules/${job.schedule_id}` }, job.schedule_id)] : null,
      deps
        ? ["Waits for", h("span", { id: "parents" },
            deps.parents.flatMap((p, i) => [i ? ", " : "", h("a", { href: `#/jobs/${p.id}` }, p.id), p.on_failure === "run" ? " (even if it fails)" : ""]),
            job.status === "waiting" ? ` — ${deps.waiting_for} of ${deps.parents.length} not done yet` : "")]
        : null,
      deps?.blocked_by ? ["Blocked by", [h("a", { href: `#/jobs/${deps.blocked_by}` }, deps.blocked_by), " failed; retrying it brings this job back"]] : null,
      job.group
        ? ["Group", [h("a", { id: "group-link", href: `#/groups/${job.group.id}` }, job.group.id), job.group.callback ? ` (its ${job.group.callback.replace("_", " ")} callback)` : ""]]
        : null,
    ].filter(Boolean);
    return [
      h(
        "section",
        { class: "card" },
        h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        // Progress belongs to a running attempt; a finished job's last report is history.
        job.progress && job.status === "processing"
          ? h(
              "p",
              { id: "progress" },
              h("progress", { max: 1, value: job.progress.fraction, "aria-label": "Progress" }),
              ` ${Math.round(job.progress.fraction * 100)} %`,
              job.progress.message ? ` — ${job.progress.message}` : "",
            )
          : null,
        actions(job),
      ),
      h(
        "div",
        { class: "grid" },
        h("section", { class: "card" }, h("h2", {}, "Input"), h("pre", { id: "input" }, pretty(job.input))),
        h("section", { class: "card" }, h("h2", {}, "Result"), h("pre", { id: "result" }, pretty(job.result))),
      ),
      dependents.length
        ? h(
            "section",
            { class: "card" },
            h("h2", {}, more ? `Jobs waiting for it (the first ${dependents.length.toLocaleString()})` : `Jobs waiting for it (${dependents.length})`),
            h("ul", { id: "dependents", class: "links" }, dependents.map((d) => h("li", {}, h("a", { href: `#/jobs/${d.id}` }, `${d.id} ${d.job}`), " ", badge(d.status)))),
          )
        : null,
      h("div", { class: "stack" }),
      h(
        "section",
        { class: "card" },
        h("h2", {}, `Errors (${job.errors.length})`),
        job.errors.length
          ? h("ol", { class: "errors", id: "errors" }, job.errors.map(errorItem))
          : h("p", { class: "muted" }, "None."),
        job.backtrace
          ? h(
              "details",
              // A redraw (the job changed) keeps it open if it was.
              { id: "backtrace-box", open: document.getElementById("backtrace-box")?.open === true },
              h("summary", {}, "Where it last panicked (backtrace)"),
              h("pre", { id: "backtrace" }, job.backtrace),
            )
          : null,
      ),
    ];
  };

  // An id is decimal digits: anything else is not asked for (the answer could only be an error).
  let gone = !/^[0-9]{1,20}$/.test(id);
  if (gone) body.replaceChildren(h("p", { class: "alert", role: "alert" }, `\`${id}\` is not a job id (ids are decimal numbers).`));
  return {
    refresh: async () => {
      // A job that is not there is not asked for again every two seconds.
      if (gone) return;
      try {
        const job = await api(`/v1/jobs/${seg(id)}`);
        const page = await api(`/v1/jobs/${seg(id)}/dependents`);
        update(body, { job, dependents: page.jobs, more: Boolean(page.next) }, render);
      } catch (e) {
        if (e.status === 404 || e.status === 400) {
          gone = true;
          update(body, "gone", () => h("p", { class: "alert", role: "alert" }, e.message));
          return;
        }
        throw e;
      }
    },
  };
}

