// The overview: queues with pause/resume, throughput and latency, workers, plugins.

import { api, q, seg } from "./api.js";
import { badge, count, fmt, h, num, s, table, update, when } from "./dom.js";
import { keepScroll, main, refreshNow } from "./shell.js";


// The statuses counted per queue, from the store's counts (every host's, restarts included).
const COUNTED = ["queued", "processing", "scheduled", "held", "waiting", "completed", "error", "cancelled"];
const LABELS = {
  queued: "Queued", processing: "Running", scheduled: "Scheduled", held: "Held", waiting: "Waiting",
  completed: "Completed", error: "Failed", cancelled: "Cancelled",
};

// Past this many queues the table folds to the busiest (or the first by the chosen order), with
// "Show all": 300 queues are 16,000 px of rows nobody reads at 3 a.m.
const FOLD = 20;
// Orders of the queue table: by name, busiest (running and queued jobs, then failed), or by one
// status's count (largest first). Each is a URL (`sort=`).
const busy = (queue) => (queue.jobs?.processing ?? 0) + (queue.jobs?.queued ?? 0);
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const ORDERS = {
  name: byName,
  busy: (a, b) => busy(b) - busy(a) || (b.jobs?.error ?? 0) - (a.jobs?.error ?? 0) || byName(a, b),
  ...Object.fromEntries(COUNTED.map((status) => [status, (a, b) => (b.jobs?.[status] ?? 0) - (a.jobs?.[status] ?? 0) || byName(a, b)])),
};
const ORDER_TEXT = { name: "by name", busy: "busiest first (running and queued jobs, then failed)" };

// The chart's ranges: the window asked of /v1/stats and the axis labels.
const RANGES = {
  "1h": { window: 3600, title: "last hour", labels: ["60 min ago", "30 min ago"] },
  "24h": { window: 86400, title: "last 24 hours", labels: ["24 h ago", "12 h ago"] },
  "7d": { window: 604800, title: "last 7 days", labels: ["7 days ago", "3½ days ago"] },
};

export function overview(params = new URLSearchParams()) {
  const rangeName = RANGES[params.get("range")] ? params.get("range") : "1h";
  const range = RANGES[rangeName];
  // The queue table's order, fold and filter, from the URL.
  const chosenOrder = ORDERS[params.get("sort")] && Object.hasOwn(ORDERS, params.get("sort")) ? params.get("sort") : "";
  const showAll = params.get("all") === "1";
  let filterText = params.get("queues") ?? "";
  const here = (change) => `#/${q({ range: rangeName === "1h" ? "" : rangeName, sort: chosenOrder, all: showAll ? "1" : "", queues: filterText, ...change })}`;
  const queues = h("div");
  const queueFilter = h("input", {
    id: "queue-filter",
    type: "search",
    value: filterText,
    placeholder: "part of a name",
    autocomplete: "off",
    // Filtering as typed is no navigation: the address follows (a reload keeps the filter),
    // the history does not gain an entry per key.
    oninput: (e) => {
      filterText = e.target.value;
      history.replaceState(history.state, "", here({}));
      for (const name of Object.keys(RANGES)) document.getElementById(`range-${name}`)?.setAttribute("href", here({ range: name === "1h" ? "" : name }));
      if (lastQueues) drawQueues(lastQueues);
    },
  });
  const queueTools = h(
    "form",
    { class: "filters", role: "search", onsubmit: (e) => e.preventDefault() },
    h("label", { for: "queue-filter" }, "Filter queues", queueFilter),
  );
  const queueFold = h("div", { class: "muted small", id: "queue-fold", role: "status" });
  const chart = h("div", { class: "chart" });
  const latency = h("div");
  const workers = h("div");
  const plugins = h("div");
  const hosts = h("div");
  const note = h("div");
  // Links, not buttons: each range is a URL (Back returns to the one before, a reload keeps it).
  const rangeLinks = h(
    "nav",
    { class: "ranges", "aria-label": "Chart range" },
    Object.keys(RANGES).map((name) =>
      h("a", { id: `range-${name}`, href: here({ range: name === "1h" ? "" : name }), "aria-current": name === rangeName ? "true" : null, onclick: (e) => {
        // A link to the range shown already is no navigation: nothing to keep for.
        if (e.currentTarget.getAttribute("href") !== (location.hash || "#/")) keepScroll();
      } }, name),
    ),
  );
  main.replaceChildren(
    h("h1", {}, "Overview"),
    h("section", { class: "card", "aria-labelledby": "queues-h" }, h("h2", { id: "queues-h" }, "Queues"), note, queueTools, queues, queueFold),
    h(
      "div",
      { class: "grid" },
      h("section", { class: "card" }, h("h2", {}, `Throughput, ${range.title}`), rangeLinks, chart),
      h("section", { class: "card" }, h("h2", {}, "Latency"), latency),
    ),
    h("div", { class: "stack" }),
    h("section", { class: "card" }, h("h2", {}, "Hosts"), hosts),
    h("section", { class: "card" }, h("h2", {}, "Workers"), workers),
    h("section", { class: "card" }, h("h2", {}, "Plugins"), plugins),
  );

  const queueRow = (queue) => {
    const jobs = queue.jobs ?? {};
    const link = (status) =>
      h("a", { id: `count-${queue.name}-${status}`, href: `#/jobs${q({ queue: queue.name, status })}` }, count(jobs[status]));
    // A pause is the store's (every host, restarts included); a queue stopped without one is
    // stopped on this host only (`serve --paused`, `autostart = false`).
    const running = queue.processing && !queue.paused;
    const toggle = h(
      "button",
      {
        id: `queue-toggle-${queue.name}`,
        class: "ghost",
        type: "button",
        "aria-label": `${running ? "Pause" : "Resume"} queue ${queue.name}`,
        onclick: async () => {
          const verb = running ? "stop" : "start";
          try {
            await api(`/v1/queues/${seg(queue.name)}/${verb}`, { method: "POST" });
            note.replaceChildren();
            await refreshNow();
          } catch (e) {
            if (e.status !== 401) note.replaceChildren(h("div", { class: "alert", role: "alert" }, e.message));
          }
        },
      },
      running ? "Pause" : "Resume",
    );
    const state = queue.paused
      ? h(
          "td",
          {},
          badge("paused", "paused"),
          h("div", { class: "muted small", id: `paused-${queue.name}` }, `by ${queue.paused.by} `, when(queue.paused.at)),
        )
      : h("td", {}, running ? badge("processing-on", "running") : badge("paused", "stopped here"));
    return h(
      "tr",
      { "data-queue": queue.name },
      h("th", { scope: "row" }, h("a", { id: `queue-${queue.name}`, href: `#/jobs${q({ queue: queue.name })}` }, queue.name)),
      state,
      num(queue.concurrency),
      COUNTED.map((status) => h("td", { class: "num" }, link(status))),
      num(queue.worker_restarts),
      h("td", {}, toggle),
    );
  };

  // While a mouse is over the table its rows keep their places (counts still change): in an
  // order by counts, a refresh would move the row being pointed at. They catch up when it leaves.
  let pointing = false;
  let placed = [];
  queues.addEventListener("pointerenter", (e) => {
    if (e.pointerType === "mouse") pointing = true;
  });
  queues.addEventListener("pointerleave", () => {
    if (!pointing) return;
    pointing = false;
    if (lastQueues) drawQueues(lastQueues);
  });
  let lastQueues = null;
  const sortLink = (order, label) =>
    h("a", {
      class: "sort",
      id: `sort-${order}`,
      href: here({ sort: order }),
      onclick: () => keepScroll(),
    }, label);

  const drawQueues = (queueList) => {
    const needle = filterText.trim().toLowerCase();
    const matching = needle ? queueList.filter((queue) => queue.name.toLowerCase().includes(needle)) : queueList;
    const folded = !showAll && matching.length > FOLD;
    const orderName = chosenOrder || (folded ? "busy" : "name");
    let shown = [...matching].sort(ORDERS[orderName]);
    if (folded) shown = shown.slice(0, FOLD);
    if (pointing && placed.length) {
      const now = new Map(matching.map((queue) => [queue.name, queue]));
      shown = placed.map((name) => now.get(name)).filter(Boolean);
    }
    placed = shown.map((queue) => queue.name);
    const orderText = ORDER_TEXT[orderName] ?? `most ${LABELS[orderName].toLowerCase()} first`;
    update(queueFold, [queueList.length, matching.length, shown.length, folded, showAll, orderText, filterText], () => {
      const all = queueList.length;
      const of = needle ? `${count(matching.length)} of ${count(all)} queues match` : `${count(all)} queues`;
      if (folded) return [`Showing ${count(shown.length)} of ${of}, ${orderText}. `, h("a", { id: "queues-all", href: here({ all: "1" }), onclick: () => keepScroll() }, `Show all ${count(matching.length)}`)];
      if (showAll && matching.length > FOLD) return [`Showing all ${of}, ${orderText}. `, h("a", { id: "queues-fold", href: here({ all: "" }), onclick: () => keepScroll() }, `Show the first ${FOLD}`)];
      return needle ? `${of}.` : "";
    });
    const headers = [
      [sortLink("name", "Queue"), "", { "aria-sort": orderName === "name" ? "ascending" : null }],
      ["State"], ["Concurrency", "num"],
      ...COUNTED.map((status) => [sortLink(status, LABELS[status]), "num", { "aria-sort": orderName === status ? "descending" : null }]),
      ["Worker restarts", "num"], ["Action"],
    ];
    update(queues, [shown, orderName, queueList, filterText], () => {
      const drawn = table(
        headers,
        shown.map(queueRow),
        needle ? `No queue name contains "${filterText.trim()}".` : "No queue yet: add a job and its queue appears here.",
      );
      // The store's totals over every queue (not only those shown): the same counts the job
      // lists page through.
      const total = (status) => queueList.reduce((sum, queue) => sum + (queue.jobs?.[status] ?? 0), 0);
      drawn.querySelector?.("table")?.append(
        h(
          "tfoot",
          {},
          h(
            "tr",
            { id: "queue-totals" },
            h("th", { scope: "row" }, "All queues"),
            h("td", { class: "blank" }),
            h("td", { class: "blank" }),
            COUNTED.map((status) =>
              h("td", { class: "num", "data-label": LABELS[status] }, h("a", { id: `total-${status}`, href: `#/jobs${q({ status })}` }, count(total(status)))),
            ),
            h("td", { class: "blank" }),
            h("td", { class: "blank" }),
          ),
        ),
      );
      return drawn;
    });
  };

  return {
    refresh: async () => {
      const [queueList, stats, workerList, pluginList, hostList] = await Promise.all([
        api("/v1/queues"),
        api(`/v1/stats?window=${range.window}`),
        api("/v1/workers"),
        api("/v1/plugins"),
        api("/v1/hosts"),
      ]);
      lastQueues = queueList;
      drawQueues(queueList);
      update(chart, stats.series, () => throughputChart(stats, range));
      update(latency, [stats.samples, stats.run_ms, stats.wait_ms], () => latencyTable(stats, range));
      update(hosts, hostList, () => hostTable(hostList));
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
              h("td", {}, badge(w.state === "running" ? "processing" : w.state === "idle" || w.state === "starting" ? "" : "error", w.state)),
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

function throughputChart(stats, range) {
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
    "aria-label": `Jobs per second over the ${range.title}: ${completed} completed, ${failed} failed`,
  });
  svg.append(
    s("line", { class: "axis", x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
    s("line", { class: "axis", x1: left, y1: 10, x2: left, y2: H - bottom }),
    s("text", { x: left - 6, y: 16, "text-anchor": "end" }, fmt(peak)),
    s("text", { x: left - 6, y: H - bottom, "text-anchor": "end" }, "0"),
    s("text", { x: left, y: H - 6 }, range.labels[0]),
    s("text", { x: (W + left) / 2, y: H - 6, "text-anchor": "middle" }, range.labels[1]),
    s("text", { x: W - 2, y: H - 6, "text-anchor": "end" }, "now"),
    s("polyline", { class: "completed", points: line("completed") }),
    s("polyline", { class: "failed", points: line("failed") }),
  );
  return [
    svg,
    h(
      "div",
      { class: "legend" },
      h("span", {}, h("span", { class: "swatch completed" }), "completed per second (", h("span", { id: "chart-completed" }, count(completed)), ")"),
      h("span", {}, h("span", { class: "swatch failed" }), "failed per second (", h("span", { id: "chart-failed" }, count(failed)), ")"),
    ),
    h("p", { class: "muted small" }, `Every host sharing the store, kept 7 days; one point per ${stats.step / 60} min.`),
  ];
}

function hostTable(list) {
  return table(
    [["Host"], ["State"], ["Process"], ["Version"], ["Started"], ["Last heartbeat"]],
    list.map((host) =>
      h(
        "tr",
        { "data-host": host.name },
        h("th", { scope: "row" }, host.name, host.this ? h("span", { class: "muted" }, " (this one)") : null),
        h("td", {}, host.alive ? badge("processing-on", "alive") : badge("error", "silent")),
        h("td", { class: "mono" }, host.pid),
        h("td", {}, host.version),
        h("td", {}, when(host.started_at)),
        h("td", {}, when(host.heartbeat_at)),
      ),
    ),
    "No host has registered with the store.",
  );
}

function latencyTable(stats, range) {
  if (!stats.samples) return h("p", { class: "muted" }, `No attempt ended in the ${range.title}.`);
  const row = (label, p) =>
    h("tr", {}, h("th", { scope: "row" }, label), ...[p.p50, p.p90, p.p99, p.max].map((v) => num(fmt(v))));
  return [
    table([[""], ["p50", "num"], ["p90", "num"], ["p99", "num"], ["max", "num"]], [
      row("Run (ms)", stats.run_ms),
      row("Wait (ms)", stats.wait_ms),
    ]),
    h("p", { class: "muted" }, `Over `, h("span", { id: "latency-samples" }, count(stats.samples)), ` attempt${stats.samples === 1 ? "" : "s"} that ended in the ${range.title}, on every host (within a fifth above the true figure; the maximum exact). Wait is from when a job was due to its start.`),
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

