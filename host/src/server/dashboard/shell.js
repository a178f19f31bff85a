// The page around the views: the view shown and its refresh every two seconds ("Updated N s
// ago"), the token form and Forget token, and actions behind a confirmation. The router is
// handed in (`setRouter`) so that no view module imports the page that routes to it.

import { hooks, TOKEN_KEY } from "./api.js";
import { confirmAction, h } from "./dom.js";

const REFRESH_MS = 2000;
let loginShown = false;
let route = () => {};

/** The function that shows the view the address names (app.js). */
export function setRouter(fn) {
  route = fn;
}

/** Runs `action` after confirmation, showing its outcome (or the server's error) in `note`. */
export async function act(note, question, okLabel, action, done, danger = false) {
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

export const main = document.getElementById("main");

let current = null; // { refresh } of the shown view
let lastOk = 0;
let lastError = "";
const updated = document.getElementById("updated");
// The refresh under way, and whether another was asked for meanwhile: an action's own refresh
// must read what the action changed, not draw what a refresh begun before it read (a button
// drawn from that would act on the state before).
let inflight = null;
let again = false;

/** Reads the shown view's data now (after the refresh under way, if any); resolves once drawn. */
export function refreshNow() {
  if (!current || loginShown) return Promise.resolve();
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = (async () => {
    do {
      again = false;
      await refreshOnce();
    } while (again && current && !loginShown);
  })().finally(() => {
    inflight = null;
  });
  return inflight;
}

async function refreshOnce() {
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
  updated.textContent = lastError
    ? `Update failed (${lastError}); last updated ${ago} s ago`
    : held
      ? `Updates paused; last updated ${ago} s ago`
      : `Updated ${ago} s ago`;
  updated.classList.toggle("stale", Boolean(lastError) || (!held && ago > 10));
}

// Updates paused by the operator (the Pause updates button): nothing moves under the pointer.
let held = false;
const live = document.getElementById("live");
live.addEventListener("click", () => {
  held = !held;
  live.textContent = held ? "Resume updates" : "Pause updates";
  live.setAttribute("aria-pressed", String(held));
  if (!held) refreshNow();
  showUpdated();
});

/** Text selected in the page: a redraw would drop it, so the refresh waits until it is gone. */
function selecting() {
  const selection = window.getSelection();
  return Boolean(selection && !selection.isCollapsed && main.contains(selection.anchorNode));
}

// A tick while a refresh is under way is skipped, not queued: a slow server is not asked
// back to back.
setInterval(() => {
  if (!document.hidden && !held && !selecting() && !inflight) refreshNow();
}, REFRESH_MS);
setInterval(showUpdated, 1000);

// ---------------------------------------------------------------- login


export function showLogin(message) {
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


hooks.signedIn = showSignOut;
hooks.unauthorized = showLogin;

/** Shows `view` (`{ refresh }`) and reads its data now; resolves once it was drawn. */
export function showView(view) {
  loginShown = false;
  current = view;
  lastOk = 0;
  lastError = "";
  return refreshNow();
}

let keptScroll = null;

/** The next view keeps this page's scroll position: a change within a page (the chart's
 * range) that is still a URL of its own. */
export function keepScroll() {
  keptScroll = window.scrollY;
}

/** The position [`keepScroll`] kept, once. */
export function takeKeptScroll() {
  const y = keptScroll;
  keptScroll = null;
  return y;
}

/** Stops refreshing the shown view (it is about to be left, e.g. after removing its job). */
export function leaveView() {
  current = null;
}
