// The jobhost dashboard: a hash-routed page over the HTTP API (/v1). Everything it shows is
// read from the API every few seconds; every action is one API call behind a confirmation.
// Text from jobs (inputs, results, errors) is only ever set as text, never parsed as markup.
// This module routes and themes; each view is a module of its own (native ES modules, no
// build step): api.js, dom.js and shell.js below them, overview.js, jobs.js, job.js and
// schedules.js, new.js and group.js the views.

import { TOKEN_KEY, authNeeded } from "./api.js";
import { main, setRouter, showLogin, showView, takeKeptScroll } from "./shell.js";
import { overview } from "./overview.js";
import { jobsView } from "./jobs.js";
import { jobView } from "./job.js";
import { groupView } from "./group.js";
import { scheduleEditor, schedulesView } from "./schedules.js";
import { newJobView } from "./new.js";

const THEME_KEY = "jobhost-theme";


function route() {
  if (authNeeded && !sessionStorage.getItem(TOKEN_KEY)) {
    showLogin();
    return;
  }
  focusAfter = document.activeElement && document.activeElement !== document.body ? document.activeElement.id : "";
  // Where this entry of the history was scrolled to (Back, Forward, reload); a new one is at
  // the top. Read before the old view goes: replacing it scrolls.
  clearTimeout(scrollSave);
  const scrollTo = takeKeptScroll() ?? history.state?.scroll ?? 0;
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
  let view;
  if (parts[0] === "jobs" && parts[1]) {
    view = jobView(parts[1]);
    section = "jobs";
  } else if (parts[0] === "jobs") {
    view = jobsView(params);
    section = "jobs";
  } else if (parts[0] === "groups" && parts[1]) {
    view = groupView(parts[1]);
    section = "jobs";
  } else if (parts[0] === "schedules" && parts[1]) {
    view = scheduleEditor(parts[1]);
    section = "schedules";
  } else if (parts[0] === "schedules") {
    view = schedulesView();
    section = "schedules";
  } else if (parts[0] === "new") {
    view = newJobView();
    section = "new";
  } else {
    view = overview(params);
  }
  for (const a of document.querySelectorAll("nav a[data-section]")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  // A title per page, so that tabs, history and bookmarks tell them apart.
  const filters = ["status", "queue", "job", "error", "input"].map((k) => params.get(k)).filter(Boolean);
  const where =
    parts[0] === "jobs" && parts[1] ? `Job ${parts[1]}`
    : parts[0] === "jobs" ? `Jobs${filters.length ? `: ${filters.join(", ")}` : ""}`
    : parts[0] === "groups" && parts[1] ? `Group ${parts[1]}`
    : parts[0] === "schedules" && parts[1] ? `Schedule ${parts[1]}`
    : parts[0] === "schedules" ? "Schedules"
    : parts[0] === "new" ? "New job"
    : "Overview";
  document.title = `${where} · jobhost`;
  showView(view).then(() => {
    // A filter chosen from the keyboard redraws the page: focus goes back to it.
    if (focusAfter) document.getElementById(focusAfter)?.focus({ preventScroll: true });
    focusAfter = "";
    // Once drawn, the page is long enough to scroll back to where it was.
    window.scrollTo(0, scrollTo);
  });
}

// The browser would restore the scroll before a view has drawn its rows: the dashboard keeps
// each history entry's position in its state instead, and restores it once drawn.
history.scrollRestoration = "manual";
let scrollSave = 0;
window.addEventListener("scroll", () => {
  clearTimeout(scrollSave);
  scrollSave = setTimeout(() => history.replaceState({ ...(history.state ?? {}), scroll: window.scrollY }, ""), 100);
});

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

setRouter(route);
window.addEventListener("hashchange", route);
route();

