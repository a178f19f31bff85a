// The jobhost dashboard: a hash-routed page over the HTTP API (/v1). Everything it shows is
// read from the API every few seconds; every action is one API call behind a confirmation.
// Text from jobs (inputs, results, errors) is only ever set as text, never parsed as markup.

const TOKEN_KEY = "jobhost-token";
const THEME_KEY = "jobhost-theme";
const REFRESH_MS = 2000;
const STATUSES = ["queued", "scheduled", "held", "processing", "completed", "error", "cancelled"];
const PENDING = ["queued", "scheduled", "held", "processing"];
const FINISHED = ["completed", "error", "cancelled"];
const authNeeded = document.querySelector('meta[name="jobhost-auth"]')?.content === "token";

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let loginShown = false;

/** One API call; an error answer becomes an ApiError carrying the server's message. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  showSignOut(Boolean(token));
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, "unreachable", `the server cannot be reached (${e.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data?.error ?? {};
    const message = error.message || `${response.status} ${response.statusText}`;
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(message);
    }
    throw new ApiError(response.status, error.code || `http_${response.status}`, message);
  }
  return data;
}

/** A name as one URL path segment (`.` and `..` escaped too, or the browser would resolve them). */
const seg = (name) => encodeURIComponent(name).replace(/\./g, "%2E");

const q = (params) => {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  const text = query.toString();
  return text ? `?${text}` : "";
};

// ---------------------------------------------------------------- DOM helpers

/** Builds an element: props are attributes (`on…` are listeners), children text or nodes. */
function h(tag, props = {}, ...children) {
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
function s(tag, attrs = {}, text) {
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
function update(container, data, build) {
  const key = JSON.stringify(data);
  if (drawn.get(container) === key) return;
  drawn.set(container, key);
  const focused = container.contains(document.activeElement) ? document.activeElement.id : "";
  container.replaceChildren(...[build(data)].flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  if (focused) document.getElementById(focused)?.focus();
}

function table(headers, rows, empty = "Nothing here.") {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls, scope: "col" }, label)))),
      h("tbody", {}, rows),
    ),
  );
}

const badge = (status, label = status) => h("span", { class: `badge ${status}` }, label);
const num = (n) => h("td", { class: "num" }, n ?? 0);
const fmt = (n) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3));

/**
 * An RFC 3339 time as local `YYYY-MM-DD HH:MM:SS` (with milliseconds when `precise`), with the
 * exact value as its title.
 */
function when(rfc3339, precise = false) {
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
function confirmAction(text, okLabel, danger) {
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel;
  document.getElementById("confirm-ok").className = danger ? "danger" : "";
  confirmDialog.returnValue = "";
  confirmDialog.showModal();
  document.getElementById("confirm-ok").focus();
  return new Promise((resolve) => {
    confirmDialog.addEventListener("close", () => resolve(confirmDialog.returnValue === "ok"), { once: true });
  });
}

/** Runs `action` after confirmation, showing its outcome (or the server's error) in `note`. */
async function act(note, question, okLabel, action, done, danger = false) {
  if (!(await confirmAction(question, okLabel, danger))) return;
  // A bulk action can take seconds: say so, and let no second click start another.
  note.replaceChildren(h("div", { class: "note", role: "status" }, "Working…"));
  const buttons = [...main.querySelectorAll("button")].filter((b) => !b.disabled);
  for (const b of buttons) b.disabled = true;
  try {
    const result = await action();
    note.replaceChildren(h("div", { class: "note", role: "status" }, done(result)));
    await refreshNow();
  } catch (e) {
    if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// ---------------------------------------------------------------- refresh loop

let current = null; // { refresh } of the shown view
let lastOk = 0;
let lastError = "";
let busy = false;
const updated = document.getElementById("updated");

async function refreshNow() {
  if (!current || busy || loginShown) return;
  busy = true;
  const view = current;
  try {
    await view.refresh();
    if (view === current) {
      lastOk = Date.now();
      lastError = "";
    }
  } catch (e) {
    if (e.status !== 401) lastError = e.message;
  } finally {
    busy = false;
    showUpdated();
  }
}

function showUpdated() {
  if (loginShown || !lastOk) {
    updated.textContent = lastError ? `Update failed: ${lastError}` : "";
    updated.classList.toggle("stale", Boolean(lastError));
    return;
  }
  const ago = Math.max(0, Math.round((Date.now() - lastOk) / 1000));
  updated.textContent = lastError ? `Update failed (${lastError}); last updated ${ago} s ago` : `Updated ${ago} s ago`;
  updated.classList.toggle("stale", Boolean(lastError) || ago > 10);
}

setInterval(() => {
  if (!document.hidden) refreshNow();
}, REFRESH_MS);
setInterval(showUpdated, 1000);

// ---------------------------------------------------------------- login

const main = document.getElementById("main");

function showLogin(message) {
  loginShown = true;
  current = null;
  lastOk = 0;
  showUpdated();
  const input = h("input", {
    id: "token",
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
  });
  const problem = h("div");
  const form = h(
    "form",
    {
      onsubmit: (event) => {
        event.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        // A token travels in a header: printable ASCII only.
        if (!/^[\x21-\x7e]+$/.test(token)) {
          problem.replaceChildren(h("div", { class: "alert", role: "alert" }, "A token is printable ASCII without spaces: check what was pasted."));
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, token);
        loginShown = false;
        route();
      },
    },
    h("label", { for: "token" }, "Token", input),
    h("button", { type: "submit" }, "Open the dashboard"),
  );
  main.replaceChildren(
    h(
      "section",
      { class: "card login" },
      h("h1", {}, "This server needs a token"),
      h(
        "p",
        { class: "muted" },
        "Give the bearer token from the server's token_file. It is kept in this tab only and sent in a header, never in a URL.",
      ),
      problem,
      form,
    ),
  );
  if (message && message !== "this server needs `Authorization: Bearer <token>`") {
    problem.replaceChildren(h("div", { class: "alert", role: "alert" }, message));
  }
  input.focus();
}

const signOut = document.getElementById("sign-out");
function showSignOut(shown) {
  signOut.hidden = !shown;
}
signOut.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignOut(false);
  showLogin();
});

// ---------------------------------------------------------------- overview

function overview() {
  const queues = h("div");
  const chart = h("div", { class: "chart" });
  const latency = h("div");
  const workers = h("div");
  const plugins = h("div");
  const note = h("div");
  main.replaceChildren(
    h("h1", {}, "Overview"),
    h("section", { class: "card", "aria-labelledby": "queues-h" }, h("h2", { id: "queues-h" }, "Queues"), note, queues),
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, "Throughput, last hour"), chart),
      h("section", { class: "card" }, h("h2", {}, "Latency"), latency),
    ),
    h("div", { class: "stack" }),
    h("section", { class: "card" }, h("h2", {}, "Workers"), workers),
    h("section", { class: "card" }, h("h2", {}, "Plugins"), plugins),
  );

  const queueRow = (queue, failedLastHour) => {
    const jobs = queue.jobs ?? {};
    const link = (status) =>
      h("a", { id: `count-${queue.name}-${status}`, href: `#/jobs${q({ queue: queue.name, status })}` }, jobs[status] ?? 0);
    const toggle = h(
      "button",
      {
        id: `queue-toggle-${queue.name}`,
        class: "ghost",
        type: "button",
        "aria-label": `${queue.processing ? "Pause" : "Resume"} queue ${queue.name}`,
        onclick: async () => {
          const verb = queue.processing ? "stop" : "start";
          try {
            await api(`/v1/queues/${seg(queue.name)}/${verb}`, { method: "POST" });
            note.replaceChildren();
            await refreshNow();
          } catch (e) {
            if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
          }
        },
      },
      queue.processing ? "Pause" : "Resume",
    );
    return h(
      "tr",
      { "data-queue": queue.name },
      h("th", { scope: "row" }, h("a", { id: `queue-${queue.name}`, href: `#/jobs${q({ queue: queue.name })}` }, queue.name)),
      h("td", {}, queue.processing ? badge("processing-on", "running") : badge("paused", "paused")),
      num(queue.concurrency),
      h("td", { class: "num" }, link("queued")),
      h("td", { class: "num" }, link("processing")),
      h("td", { class: "num" }, link("scheduled")),
      h("td", { class: "num" }, link("held")),
      h("td", { class: "num" }, h("a", { id: `count-${queue.name}-failed`, href: `#/jobs${q({ queue: queue.name, status: "error" })}`, title: "Failed in the last hour; the link lists every failed job of the queue" }, failedLastHour)),
      num(queue.worker_restarts),
      h("td", {}, toggle),
    );
  };

  return {
    refresh: async () => {
      const [queueList, stats, workerList, pluginList] = await Promise.all([
        api("/v1/queues"),
        api("/v1/stats?step=10"),
        api("/v1/workers"),
        api("/v1/plugins"),
      ]);
      const rows = queueList.map((queue) => ({ queue, failed: stats.queues[queue.name]?.failed ?? 0 }));
      update(queues, rows, () =>
        table(
          [
            ["Queue"], ["State"], ["Concurrency", "num"], ["Queued", "num"], ["Running", "num"],
            ["Scheduled", "num"], ["Held", "num"], ["Failed (1 h)", "num"], ["Worker restarts", "num"], ["Action"],
          ],
          rows.map((r) => queueRow(r.queue, r.failed)),
          "No queue yet: add a job and its queue appears here.",
        ),
      );
      update(chart, stats.series, () => throughputChart(stats));
      update(latency, [stats.samples, stats.run_ms, stats.wait_ms], () => latencyTable(stats));
      update(workers, [workerList, pluginList.isolation], () => [
        h("p", { class: "muted" }, `Plugin code runs ${pluginList.isolation === "process" ? "in worker processes" : "in the host process"}.`),
        table(
          [["Worker"], ["Process"], ["State"], ["Job"], ["Queue"], ["Restarts", "num"]],
          workerList.map((w) =>
            h(
              "tr",
              {},
              h("td", {}, w.id),
              h("td", { class: "mono" }, w.pid ?? "—"),
              h("td", {}, badge(w.state === "running" ? "processing" : w.state === "idle" ? "" : "error", w.state)),
              h("td", {}, w.job ? h("a", { href: `#/jobs/${w.job}` }, w.job) : "—"),
              h("td", {}, w.queue ?? "—"),
              num(w.restarts),
            ),
          ),
          "No worker started yet.",
        ),
      ]);
      update(plugins, pluginList, () => pluginSection(pluginList));
    },
  };
}

function throughputChart(stats) {
  const series = stats.series;
  const [W, H, left, bottom] = [720, 190, 44, 22];
  const peak = Math.max(0.1, ...series.map((p) => Math.max(p.completed, p.failed)));
  const x = (i) => left + (i * (W - left - 6)) / Math.max(1, series.length - 1);
  const y = (v) => H - bottom - (v / peak) * (H - bottom - 10);
  const line = (key) => series.map((p, i) => `${x(i).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
  const total = (key) => Math.round(series.reduce((sum, p) => sum + p[key] * stats.step, 0));
  const [completed, failed] = [total("completed"), total("failed")];
  const svg = s("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Jobs per second over the last hour: ${completed} completed, ${failed} failed`,
  });
  svg.append(
    s("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
    s("line", { class: "axis", x1: left, y1: 10, x2: left, y2: H - bottom }),
    s("text", { x: left - 6, y: 16, "text-anchor": "end" }, fmt(peak)),
    s("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"),
    s("text", { x: left, y: H - 6 }, "60 min ago"),
    s("text", { x: (W + left) / 2, y: H - 6, "text-anchor": "middle" }, "30 min ago"),
    s("text", { x: W - 2, y: H - 6, "text-anchor": "end" }, "now"),
    s("polyline", { class: "completed", points: line("completed") }),
    s("polyline", { class: "failed", points: line("failed") }),
  );
  return [
    svg,
    h(
      "div",
      { class: "legend" },
      h("span", {}, h("span", { class: "swatch completed" }), `completed per second (${completed} in the hour)`),
      h("span", {}, h("span", { class: "swatch failed" }), `failed per second (${failed})`),
    ),
  ];
}

function latencyTable(stats) {
  if (!stats.samples) return h("p", { class: "muted" }, "No attempt has ended since the host started.");
  const row = (label, p) =>
    h("tr", {}, h("th", { scope: "row" }, label), ...[p.p50, p.p90, p.p99, p.max].map((v) => num(fmt(v))));
  return [
    table([[""], ["p50", "num"], ["p90", "num"], ["p99", "num"], ["max", "num"]], [
      row("Run (ms)", stats.run_ms),
      row("Wait (ms)", stats.wait_ms),
    ]),
    h("p", { class: "muted" }, `Over the latest ${stats.samples} attempt${stats.samples === 1 ? "" : "s"} on this host. Wait is from when a job was due to its start.`),
  ];
}

function pluginSection(list) {
  return [
    table(
      [["Plugin"], ["Version"], ["Job factories"], ["File", "hide-narrow"]],
      list.plugins.map((p) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, p.name),
          h("td", {}, p.version),
          h("td", {}, p.factories.join(", ")),
          h("td", { class: "mono hide-narrow" }, p.path),
        ),
      ),
      "No plugin is loaded: put plugin files in a plugin directory.",
    ),
    h("h2", {}, `Rejected files (${list.rejected.length})`),
    list.rejected.length
      ? table(
          [["File"], ["Reason"]],
          list.rejected.map((r) => h("tr", {}, h("td", { class: "mono" }, r.path), h("td", {}, r.reason))),
        )
      : h("p", { class: "muted" }, "None: every plugin file found was loaded."),
    list.conflicts.length
      ? [
          h("h2", {}, "Conflicts"),
          h("ul", { class: "plain" }, list.conflicts.map((c) => h("li", {}, c.message))),
        ]
      : null,
  ];
}

// ---------------------------------------------------------------- jobs

/** The cursors of the pages before this one (Previous page), for the filter shown. */
const cursors = [];

function jobsView(params) {
  const filter = {
    status: params.get("status") ?? "",
    queue: params.get("queue") ?? "",
    job: params.get("job") ?? "",
    order: params.get("order") === "oldest" ? "oldest" : "newest",
    after: params.get("after") ?? "",
  };
  const go = (changes) => {
    if (!("after" in changes) || changes.after === "") cursors.length = 0;
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
  const queueSelect = h("span");
  const factorySelect = h("span");
  const summary = h("p", { class: "muted" });
  const bulk = h("div");
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
      summary,
      bulk,
      note,
      list,
      pager,
    ),
  );

  const names = (items, current) => {
    const all = [...new Set([...items, current].filter(Boolean))].sort();
    return [["", "any"], ...all.map((n) => [n, n])];
  };

  const bulkActions = (count) => {
    if (filter.status !== "error" && filter.status !== "cancelled") return [];
    const scope = [filter.queue && `in queue ${filter.queue}`, filter.job && `of factory ${filter.job}`].filter(Boolean).join(" ");
    const kind = filter.status === "error" ? "failed" : "cancelled";
    const what = count === null ? `every ${kind} job` : count === 1 ? `the 1 ${kind} job` : `the ${count} ${kind} jobs`;
    const scoped = `${what}${scope ? ` ${scope}` : ""}`;
    const selection = { status: filter.status, queue: filter.queue, job: filter.job };
    return h(
      "div",
      { class: "actions" },
      h(
        "button",
        {
          id: "bulk-retry",
          type: "button",
          disabled: count === 0,
          onclick: () =>
            act(note, `Retry ${scoped}? Each runs again with fresh attempts.`, "Retry all", () =>
              api(`/v1/jobs/retry${q(selection)}`, { method: "POST" }),
              (r) => `${r.retried} job${r.retried === 1 ? "" : "s"} sent back to queued.`),
        },
        "Retry all matching",
      ),
      h(
        "button",
        {
          id: "bulk-remove",
          type: "button",
          class: "danger",
          disabled: count === 0,
          onclick: () =>
            act(note, `Remove ${scoped}? They are deleted for good.`, "Remove all", () =>
              api(`/v1/jobs${q(selection)}`, { method: "DELETE" }),
              (r) => {
                const n = Object.values(r.removed).reduce((a, b) => a + b, 0);
                return `${n} job${n === 1 ? "" : "s"} removed.`;
              }, true),
        },
        "Remove all matching",
      ),
    );
  };

  return {
    refresh: async () => {
      const [queues, factories, page] = await Promise.all([
        api("/v1/queues"),
        api("/v1/factories"),
        // Summaries: a list read every two seconds must not carry every job's input and result.
        api(`/v1/jobs/summaries${q({ ...filter, order: filter.order, limit: 25 })}`),
      ]);
      update(queueSelect, [queues.map((x) => x.name), filter.queue], ([list]) =>
        select("f-queue", "Queue", filter.queue, names(list, filter.queue), (v) => go({ queue: v, after: "" })),
      );
      update(factorySelect, [factories.map((f) => f.name), filter.job], ([list]) =>
        select("f-job", "Job", filter.job, names(list, filter.job), (v) => go({ job: v, after: "" })),
      );
      // Counts come from the store's per-queue counts (no scan); by factory there are none.
      let count = null;
      if (!filter.job) {
        count = 0;
        for (const queue of queues) {
          if (filter.queue && queue.name !== filter.queue) continue;
          for (const [status, n] of Object.entries(queue.jobs ?? {})) {
            if (!filter.status || status === filter.status) count += n;
          }
        }
      }
      update(summary, count, (c) => (c === null ? "" : c === 1 ? "1 job matches." : `${c} jobs match.`));
      update(bulk, [filter, count], () => bulkActions(count));
      update(list, page.jobs, (jobs) =>
        table(
          [["Id"], ["Job"], ["Queue"], ["Status"], ["Attempts", "num"], ["Created", "hide-narrow"], ["Finished", "hide-narrow"]],
          jobs.map((job) =>
            h(
              "tr",
              { "data-job": job.id },
              h("td", {}, h("a", { id: `job-link-${job.id}`, href: `#/jobs/${job.id}` }, job.id)),
              h("td", {}, job.job),
              h("td", {}, job.queue),
              h("td", {}, badge(job.status), job.progress && job.status === "processing" ? ` ${Math.round(job.progress.fraction * 100)} %` : ""),
              h("td", { class: "num" }, `${job.attempts}/${job.max_attempts}`),
              h("td", { class: "hide-narrow" }, when(job.created_at)),
              h("td", { class: "hide-narrow" }, when(job.finished_at)),
            ),
          ),
          filter.after ? "No more jobs." : "No job matches.",
        ),
      );
      update(pager, [filter.after, page.next], ([after, next]) => [
        after ? h("button", { id: "page-first", class: "ghost", type: "button", onclick: () => go({ after: "" }) }, "First page") : null,
        after && cursors.length
          ? h("button", { id: "page-back", class: "ghost", type: "button", onclick: () => go({ after: cursors.pop() }) }, "Previous page")
          : null,
        next
          ? h("button", { id: "page-next", class: "ghost", type: "button", onclick: () => {
              cursors.push(after);
              go({ after: next });
            } }, "Next page")
          : null,
      ]);
    },
  };
}

// ---------------------------------------------------------------- one job

/** `[RFC 3339] message` as stored in a job's error history. */
function errorItem(line) {
  const match = /^\[([^\]]+)\] ([\s\S]*)$/.exec(line);
  if (!match) return h("li", {}, line);
  return h("li", {}, when(match[1], true), h("span", { class: "message" }, match[2]));
}

const pretty = (value) => (value === null || value === undefined ? "null" : JSON.stringify(value, null, 2));

function jobView(id) {
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
              current = null;
              location.hash = "#/jobs";
              return `Job ${job.id} was removed.`;
            }, "danger")
        : null,
    );
  };

  const render = (job) => {
    const fields = [
      ["Status", [badge(job.status), job.cancel_requested ? " cancel requested" : ""]],
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
    ].filter(Boolean);
    return [
      h(
        "section",
        { class: "card" },
        h("dl", { class: "fields" }, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        job.progress
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
      h("div", { class: "stack" }),
      h(
        "section",
        { class: "card" },
        h("h2", {}, `Errors (${job.errors.length})`),
        job.errors.length
          ? h("ol", { class: "errors", id: "errors" }, job.errors.map(errorItem))
          : h("p", { class: "muted" }, "None."),
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
        update(body, job, render);
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

// ---------------------------------------------------------------- schedules

function schedulesView() {
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

function scheduleEditor(id) {
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

// ---------------------------------------------------------------- routing and theme

function route() {
  if (authNeeded && !sessionStorage.getItem(TOKEN_KEY)) {
    showLogin();
    return;
  }
  loginShown = false;
  focusAfter = document.activeElement && document.activeElement !== document.body ? document.activeElement.id : "";
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = raw.split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a malformed escape stays as typed; the API names what is wrong with it
    }
  });
  let section = "overview";
  if (parts[0] === "jobs" && parts[1]) {
    current = jobView(parts[1]);
    section = "jobs";
  } else if (parts[0] === "jobs") {
    current = jobsView(params);
    section = "jobs";
  } else if (parts[0] === "schedules" && parts[1]) {
    current = scheduleEditor(parts[1]);
    section = "schedules";
  } else if (parts[0] === "schedules") {
    current = schedulesView();
    section = "schedules";
  } else {
    current = overview();
  }
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `jobhost: ${section}`;
  busy = false;
  lastOk = 0;
  lastError = "";
  refreshNow().then(() => {
    // A filter chosen from the keyboard redraws the page: focus goes back to it.
    if (focusAfter) document.getElementById(focusAfter)?.focus();
    focusAfter = "";
  });
}

let focusAfter = "";

document.querySelector(".skip").addEventListener("click", (event) => {
  // Not a navigation: `#main` is not a route.
  event.preventDefault();
  main.focus();
});

const themeButton = document.getElementById("theme");
function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  themeButton.textContent = `Theme: ${theme || "auto"}`;
}
themeButton.addEventListener("click", () => {
  const order = ["auto", "light", "dark"];
  const now = localStorage.getItem(THEME_KEY) || "auto";
  const next = order[(order.indexOf(now) + 1) % order.length];
  localStorage.setItem(THEME_KEY, next);
  applyTheme(next);
});
applyTheme(localStorage.getItem(THEME_KEY) || "auto");

window.addEventListener("hashchange", route);
route();
