// The jobs list: filters, search (by id, error text, an input field), order, cursor paging,
// bulk retry and removal, and actions on the rows selected.

import { api, q } from "./api.js";
import { FINISHED, PENDING, STATUSES, badge, confirmAction, count as counted, h, table, update, when } from "./dom.js";
import { main, refreshNow } from "./shell.js";


/** Pages before this one a URL remembers (its `prev`): beyond, Previous goes to the first. */
const MAX_PREV = 50;

export function jobsView(params) {
  const filter = {
    status: params.get("status") ?? "",
    queue: params.get("queue") ?? "",
    job: params.get("job") ?? "",
    order: params.get("order") === "oldest" ? "oldest" : "newest",
    after: params.get("after") ?? "",
    error: params.get("error") ?? "",
    input: params.get("input") ?? "",
    // The cursors of the pages before this one, oldest first: in the URL, so Back, Forward and
    // a reload show the same page with the same Previous.
    prev: params.get("prev") ?? "",
  };
  const prev = filter.prev ? filter.prev.split(",") : [];
  const searching = Boolean(filter.error || filter.input);
  const go = (changes) => {
    if (!("after" in changes)) changes = { ...changes, after: "" };
    if (!("prev" in changes)) changes = { ...changes, prev: "" };
    const next = { ...filter, ...changes };
    if (next.order === "newest") delete next.order;
    location.hash = `#/jobs${q(next)}`;
  };
  const select = (id, label, value, options, onchange) =>
    h(
      "label",
      { for: id },
      label,
      h(
        "select",
        { id, onchange: (e) => onchange(e.target.value) },
        options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
      ),
    );
  const field = (id, label, value, placeholder) =>
    h("label", { for: id }, label, h("input", { id, type: "search", value, placeholder, autocomplete: "off" }));
  const searchNote = h("div", { role: "status" });
  const search = h(
    "form",
    {
      class: "filters",
      id: "job-search",
      onsubmit: (e) => {
        e.preventDefault();
        const id = document.getElementById("s-id").value.trim();
        if (id) {
          if (/^[1-9][0-9]*$/.test(id)) location.hash = `#/jobs/${id}`;
          else searchNote.replaceChildren(h("div", { class: "alert", role: "alert" }, `"${id}" is not a job id (a number).`));
          return;
        }
        go({ error: document.getElementById("s-error").value.trim(), input: document.getElementById("s-input").value.trim(), after: "" });
      },
    },
    field("s-id", "Job id", "", "e.g. 1234"),
    field("s-error", "Error contains", filter.error, "e.g. timed out"),
    field("s-input", "Input field", filter.input, "e.g. customer=acme"),
    h("button", { type: "submit", id: "s-go" }, "Search"),
    searching ? h("button", { type: "button", class: "ghost", id: "s-clear", onclick: () => go({ error: "", input: "", after: "" }) }, "Clear search") : null,
  );
  const queueSelect = h("span");
  const factorySelect = h("span");
  const summary = h("p", { class: "muted" });
  const bulk = h("div");
  const picked = h("div", { id: "selection" });
  const note = h("div");
  const list = h("div");
  const pager = h("div", { class: "pager" });
  main.replaceChildren(
    h("h1", {}, "Jobs"),
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "filters", role: "search" },
        select("f-status", "Status", filter.status, [["", "any"], ...STATUSES.map((st) => [st, st])], (v) =>
          go({ status: v, after: "" }),
        ),
        queueSelect,
        factorySelect,
        select("f-order", "Order", filter.order, [["newest", "newest first"], ["oldest", "oldest first"]], (v) =>
          go({ order: v, after: "" }),
        ),
      ),
      search,
      searchNote,
      summary,
      bulk,
      picked,
      note,
      list,
      pager,
    ),
  );

  const names = (items, current) => {
    const all = [...new Set([...items, current].filter(Boolean))].sort();
    return [["", "any"], ...all.map((n) => [n, n])];
  };

  // Bulk retry and removal run on the server (`/v1/operations`), a page at a time: while one
  // runs its progress shows with Cancel, and no second one can be started from here.
  const bulkActions = (count, running) => {
    if (running) {
      const verb = { retry: "Retrying", remove: "Removing", cancel: "Cancelling" }[running.action];
      const of = running.total === null ? "" : ` of ${counted(running.total)}`;
      return h(
        "div",
        { class: "actions", id: "bulk-progress", role: "status" },
        h("progress", { max: running.total || 1, value: running.total ? Math.min(running.done, running.total) : 0, "aria-label": "Bulk action progress" }),
        ` ${verb}: ${counted(running.done)}${of} done${running.skipped ? `, ${counted(running.skipped)} passed over` : ""}. `,
        h("button", { id: "bulk-cancel", type: "button", class: "ghost", onclick: () =>
          api(`/v1/operations/${running.id}/cancel`, { method: "POST" }).then(refreshNow, (e) => {
            if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
          }) }, "Cancel"),
      );
    }
    // A bulk action takes the status, queue and factory filter, never a search's matches.
    if (searching || (filter.status !== "error" && filter.status !== "cancelled")) return [];
    const scope = [filter.queue && `in queue ${filter.queue}`, filter.job && `of factory ${filter.job}`].filter(Boolean).join(" ");
    const kind = filter.status === "error" ? "failed" : "cancelled";
    const what = count === null ? `every ${kind} job` : count === 1 ? `the 1 ${kind} job` : `the ${counted(count)} ${kind} jobs`;
    const scoped = `${what}${scope ? ` ${scope}` : ""}`;
    const start = (action) => async () => {
      const question = action === "retry" ? `Retry ${scoped}? Each runs again with fresh attempts.` : `Remove ${scoped}? They are deleted for good.`;
      if (!(await confirmAction(question, action === "retry" ? "Retry all" : "Remove all", action === "remove"))) return;
      try {
        const body = { action, status: [filter.status], queue: filter.queue || null, job: filter.job || null };
        const started = await api("/v1/operations", { method: "POST", body });
        mine = started.id;
        note.replaceChildren();
        await refreshNow();
      } catch (e) {
        if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
      }
    };
    return h(
      "div",
      { class: "actions" },
      h("button", { id: "bulk-retry", type: "button", disabled: count === 0, onclick: start("retry") }, "Retry all matching"),
      h("button", { id: "bulk-remove", type: "button", class: "danger", disabled: count === 0, onclick: start("remove") }, "Remove all matching"),
    );
  };
  /** The operation this tab started: its outcome is told once it ends. */
  let mine = null;
  const told = (op) =>
    `${{ retry: "Retried", remove: "Removed", cancel: "Cancelled" }[op.action]} ${counted(op.done)} job${op.done === 1 ? "" : "s"}${
      op.skipped ? ` (${counted(op.skipped)} passed over: not one it could take, changed meanwhile, or still needed)` : ""
    }${op.state === "cancelled" ? "; cancelled before the rest" : op.state === "failed" ? `; stopped: ${op.error}` : ""}.`;

  // The rows selected on this page (id → status as listed), and what can be done to them: one
  // operation over exactly those jobs (each changed only if it still can be when reached).
  const selected = new Map();
  let shown = [];
  // While a mouse is over the rows, they are not redrawn: a new job at the top of a
  // newest-first list would push the row being pointed at down. They catch up when it leaves.
  let pointing = false;
  list.addEventListener("pointerenter", (e) => {
    if (e.pointerType === "mouse") pointing = true;
  });
  list.addEventListener("pointerleave", () => {
    if (!pointing) return;
    pointing = false;
    refreshNow();
  });
  let busy = false;
  const drawSelection = () => {
    const boxes = [...list.querySelectorAll("input.pick")];
    const all = list.querySelector("#select-page");
    if (all) {
      all.checked = boxes.length > 0 && boxes.every((b) => b.checked);
      all.indeterminate = !all.checked && boxes.some((b) => b.checked);
    }
    // Redrawn only when the selection or what may be started changed: a focused button stays.
    update(picked, [[...selected.entries()], busy], () => selectionActions());
  };
  const selectionActions = () => {
    if (!selected.size) return [];
    const statuses = [...selected.values()];
    const n = selected.size;
    const jobs = n === 1 ? "1 selected job" : `${n} selected jobs`;
    const act = (action, label, question, danger) =>
      h("button", {
        id: `selected-${action}`, type: "button", class: danger ? "danger" : null, disabled: busy,
        onclick: async () => {
          if (!(await confirmAction(question, label, danger))) return;
          // Never an empty list: the API refuses one, and it must never mean "everything".
          const ids = [...selected.keys()];
          if (!ids.length) return;
          try {
            const started = await api("/v1/operations", { method: "POST", body: { action, ids } });
            mine = started.id;
            selected.clear();
            for (const box of list.querySelectorAll("input.pick")) box.checked = false;
            drawSelection();
            note.replaceChildren();
            await refreshNow();
          } catch (e) {
            if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
          }
        },
      }, label);
    const some = (wanted) => statuses.some((st) => wanted.includes(st));
    return h(
        "div",
        { class: "actions", role: "group", "aria-label": "Selected jobs" },
        h("span", { id: "selected-count" }, `${n} selected.`),
        some(["error", "cancelled"]) ? act("retry", "Retry selected", `Retry the ${jobs}? Failed and cancelled ones run again with fresh attempts; the rest are passed over.`) : null,
        some(PENDING) ? act("cancel", "Cancel selected", `Cancel the ${jobs}? Pending ones are cancelled, running ones asked to stop; finished ones are passed over.`, true) : null,
        some(FINISHED) ? act("remove", "Remove selected", `Remove the ${jobs}? Finished ones are deleted for good; pending ones are passed over.`, true) : null,
        h("button", { id: "selected-clear", type: "button", class: "ghost", onclick: () => {
          selected.clear();
          for (const box of list.querySelectorAll("input.pick")) box.checked = false;
          drawSelection();
        } }, "Clear selection"),
      );
  };
  const pick = (job) =>
    h("input", {
      type: "checkbox", class: "pick", id: `pick-${job.id}`, "aria-label": `Select job ${job.id}`,
      checked: selected.has(job.id),
      onchange: (e) => {
        if (e.target.checked) selected.set(job.id, job.status);
        else selected.delete(job.id);
        drawSelection();
      },
    });
  const pickAll = () =>
    h("input", {
      type: "checkbox", id: "select-page", "aria-label": "Select every job on this page",
      onchange: (e) => {
        for (const job of shown) {
          if (e.target.checked) selected.set(job.id, job.status);
          else selected.delete(job.id);
        }
        for (const box of list.querySelectorAll("input.pick")) box.checked = e.target.checked;
        drawSelection();
      },
    });

  return {
    refresh: async () => {
      const [queues, factories, page, operations] = await Promise.all([
        api("/v1/queues"),
        api("/v1/factories"),
        // Summaries: a list read every two seconds must not carry every job's input and result.
        api(`/v1/jobs/summaries${q({ ...filter, prev: undefined, limit: 25 })}`),
        api("/v1/operations"),
      ]);
      const running = operations.find((op) => op.state === "running") ?? null;
      // A selection is the operator's: a row that left the page (it started, or newer jobs
      // pushed it off) stays selected until acted on or cleared; the server re-checks each
      // job against the action when it reaches it. Statuses are kept up to date where shown.
      if (!pointing) shown = page.jobs;
      for (const job of page.jobs) if (selected.has(job.id)) selected.set(job.id, job.status);
      busy = Boolean(running);
      const ended = mine && operations.find((op) => op.id === mine && op.state !== "running");
      if (ended) {
        mine = null;
        note.replaceChildren(h("div", { class: "note", role: "status", id: "bulk-done" }, told(ended)));
      }
      update(queueSelect, [queues.map((x) => x.name), filter.queue], ([list]) =>
        select("f-queue", "Queue", filter.queue, names(list, filter.queue), (v) => go({ queue: v, after: "" })),
      );
      update(factorySelect, [factories.map((f) => f.name), filter.job], ([list]) =>
        select("f-job", "Job", filter.job, names(list, filter.job), (v) => go({ job: v, after: "" })),
      );
      // Counts come from the store's per-queue counts (no scan); by factory, from an index,
      // counted up to 100,000.
      let count = null;
      let atLeast = false;
      if (filter.job && !searching) {
        const counted = await api(`/v1/jobs/count${q({ job: filter.job, queue: filter.queue, status: filter.status })}`);
        count = counted.count;
        atLeast = counted.at_least;
      } else if (!searching) {
        count = 0;
        for (const queue of queues) {
          if (filter.queue && queue.name !== filter.queue) continue;
          for (const [status, n] of Object.entries(queue.jobs ?? {})) {
            if (!filter.status || filter.status.split(",").includes(status)) count += n;
          }
        }
      }
      update(summary, [count, atLeast, page.searched ?? null, page.jobs.length, Boolean(page.next)], ([c, , searched, found, more]) => {
        if (searched !== null) {
          const bound = more && found < 25 ? " (a page searches at most 10,000 jobs or 32 MiB of their data: Next page searches on)" : "";
          return `${counted(found)} found among ${counted(searched)} jobs searched${bound}.`;
        }
        return c === null ? "" : c === 1 ? "1 job matches." : `${counted(c)}${atLeast ? " or more" : ""} jobs match.`;
      });
      update(bulk, [filter, count, running], () => bulkActions(count, running));
      // Failed and cancelled lists say why, so a pattern shows without opening each job.
      const showErrors = page.jobs.some((job) => job.last_error);
      // Scheduled jobs say when they run.
      const showRunAt = page.jobs.some((job) => job.status === "scheduled");
      if (!pointing) update(list, page.jobs, (jobs) =>
        table(
          [
            [pickAll(), "pick"], ["Id"], ["Job"], ["Queue"], ["Status"], ["Attempts", "num"],
            ...(showErrors ? [["Last error"]] : []),
            ...(showRunAt ? [["Runs at"]] : []),
            ["Created", "hide-narrow"], ["Finished", "hide-narrow"],
          ],
          jobs.map((job) =>
            h(
              "tr",
              { "data-job": job.id },
              h("td", { class: "pick" }, pick(job)),
              h("td", {}, h("a", { id: `job-link-${job.id}`, href: `#/jobs/${job.id}` }, job.id)),
              h("td", {}, job.job),
              h("td", {}, job.queue),
              h("td", {}, badge(job.status), job.progress && job.status === "processing" ? ` ${Math.round(job.progress.fraction * 100)} %` : ""),
              h("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
              showErrors ? h("td", { class: "last-error", title: job.last_error ?? "" }, job.last_error ?? "") : null,
              showRunAt ? h("td", { class: "run-at" }, job.status === "scheduled" ? when(job.run_at) : "") : null,
              h("td", { class: "hide-narrow" }, when(job.created_at)),
              h("td", { class: "hide-narrow" }, when(job.finished_at)),
            ),
          ),
          filter.after ? "No more jobs." : "No job matches.",
        ),
      );
      drawSelection();
      // The pager goes with the rows drawn.
      if (!pointing) update(pager, [filter.after, page.next], ([after, next]) => [
        after ? h("button", { id: "page-first", class: "ghost", type: "button", onclick: () => go({ after: "" }) }, "First page") : null,
        after
          ? h("button", { id: "page-back", class: "ghost", type: "button", onclick: () =>
              go({ after: prev.at(-1) ?? "", prev: prev.slice(0, -1).join(",") }) }, "Previous page")
          : null,
        next
          ? h("button", { id: "page-next", class: "ghost", type: "button", onclick: () =>
              go({ after: next, prev: after === "" && prev.length === 0 ? "" : [...prev, after].slice(-MAX_PREV).join(",") }) }, "Next page")
          : null,
      ]);
    },
  };
}

