// The dashboard in Debian's Chromium, against real `jobhost serve` processes started by
// tests/e2e/dashboard.rs (which passes their addresses in the environment): what an operator
// does, clicked and typed as an operator would. Each test saves a screenshot and fails on any
// browser console error or uncaught page error.
//
// Run through `cargo test` (see tests/e2e/dashboard.rs); alone:
//   JOBHOST_URL=http://127.0.0.1:7878 node --test tests/browser/

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const URL = required("JOBHOST_URL");
const SCREENSHOTS = process.env.JOBHOST_SCREENSHOTS || "target/dashboard-screenshots";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 20_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests through \`cargo test\` (tests/e2e/dashboard.rs)`);
  return value.replace(/\/$/, "");
}

/** The API, straight (not through the page): to set the scene and to check the outcome. */
async function api(path, { method = "GET", body, token, base = URL } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

async function until(what, check, within = WAIT) {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let browser;
before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
after(async () => {
  await browser?.close();
});

/**
 * A fresh tab (its own session storage) that records console errors; `body` runs with it,
 * then the screenshot is saved and no error may have been logged (but those `expected`
 * matches: the browser logs a 4xx answer the page asked for and shows).
 */
async function withPage(name, body, options = {}, expected = []) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && !expected.some((e) => e.test(message.text()))) {
      errors.push(`console: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => errors.push(`page error: ${error.message}`));
  try {
    await body(page);
  } finally {
    await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
    await context.close();
  }
  assert.deepEqual(errors, [], `${name}: the browser logged errors`);
}

const confirm = async (page) => {
  await page.locator("dialog#confirm").waitFor({ state: "visible" });
  // The harmless choice has the focus: Enter out of habit changes nothing.
  assert.equal(await page.evaluate(() => document.activeElement?.id), "confirm-back");
  await page.locator("#confirm-ok").click();
};

test("the overview shows the example queue and plugins; a job added through the API appears live and completes", async () => {
  await withPage("overview-and-a-job", async (page) => {
    await page.goto(`${URL}/`);
    const queueRow = page.locator('tr[data-queue="default"]');
    await queueRow.waitFor({ timeout: WAIT });
    for (const plugin of ["echo", "error", "fatal", "sleep"]) {
      await page.getByRole("rowheader", { name: plugin, exact: true }).waitFor();
    }
    await page.getByText("Rejected files (0)").waitFor();

    // The jobs list is open when the job is added: it must appear without a reload.
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.locator("#f-status").waitFor();
    const added = await api("/v1/jobs", { method: "POST", body: { job: "echo", input: { hello: "browser" } } });
    const row = page.locator(`tr[data-job="${added.id}"]`);
    await row.waitFor({ timeout: WAIT });
    await row.locator(".badge.completed").waitFor({ timeout: WAIT });
    await page.locator("#updated").filter({ hasText: /Updated \d+ s ago/ }).waitFor();

    await row.getByRole("link", { name: added.id }).click();
    await page.getByRole("heading", { name: `Job ${added.id}` }).waitFor();
    assert.deepEqual(JSON.parse(await page.locator("#input").textContent()), { hello: "browser" });
    assert.deepEqual(JSON.parse(await page.locator("#result").textContent()), { hello: "browser" });

    // Back on the overview, the hour's throughput counts it.
    await page.getByRole("link", { name: "Overview" }).click();
    await page.locator("#chart-completed").filter({ hasText: /^[1-9][\d,]*$/ }).waitFor({ timeout: WAIT });
  });
});

test("after a restart the overview shows the store's totals, the pause, the hosts and the throughput from before", async () => {
  // tests/e2e/dashboard.rs ran the open host once before: 2 completed and 1 failed in queue
  // `before-restart`, which it paused, then stopped it.
  const queue = "before-restart";
  await withPage("after-restart", async (page) => {
    // What did not change between two refreshes comes back as a bodiless 304.
    const unchanged = page.waitForResponse((r) => r.url().endsWith("/v1/plugins") && r.status() === 304, { timeout: WAIT });
    await page.goto(`${URL}/`);
    await page.locator(`#count-${queue}-completed`).filter({ hasText: /^2$/ }).waitFor({ timeout: WAIT });
    assert.equal(await page.locator(`#count-${queue}-error`).textContent(), "1");
    assert.match(await page.locator(`#paused-${queue}`).textContent(), /^by \S+ /);
    assert.equal(await page.locator(`#queue-toggle-${queue}`).textContent(), "Resume");
    // The chart and latency are the store's: the first life's attempts are in them.
    const figure = async (id) => Number((await page.locator(id).textContent()).replace(/,/g, ""));
    assert.ok((await figure("#chart-completed")) >= 2, "completed before the restart are charted");
    assert.ok((await figure("#chart-failed")) >= 1);
    assert.ok((await figure("#latency-samples")) >= 3);
    const me = page.locator("tr[data-host]").filter({ hasText: "(this one)" });
    await me.getByText("alive").waitFor();
    await unchanged;
    await page.getByRole("rowheader", { name: "echo", exact: true }).waitFor();

    // The range is a URL: 7 days, then Back to the last hour. Changing it keeps the page
    // where it was scrolled (the chart stays in view).
    await page.locator("#range-7d").scrollIntoViewIfNeeded();
    await page.evaluate(() => window.scrollBy(0, 40));
    const scrolled = await page.evaluate(() => window.scrollY);
    assert.ok(scrolled > 0, "the overview is scrolled down to the chart");
    await page.locator("#range-7d").click();
    await page.getByRole("heading", { name: "Throughput, last 7 days" }).waitFor();
    assert.match(page.url(), /range=7d/);
    assert.equal(await page.locator("#range-7d").getAttribute("aria-current"), "true");
    await until("the page stays where it was", async () => Math.abs((await page.evaluate(() => window.scrollY)) - scrolled) <= 1);
    assert.ok((await figure("#chart-completed")) >= 2);
    await page.goBack();
    await page.getByRole("heading", { name: "Throughput, last hour" }).waitFor();
    await page.locator("#chart-completed").waitFor();
    await page.locator("#latency-samples").waitFor();
  });
});

test("a failed fatal job shows its timestamped errors, and retry from its page sends it back to queued", async () => {
  const queue = "dash-fatal";
  const job = await api("/v1/jobs", { method: "POST", body: { job: "fatal", queue, max_attempts: 2 } });
  await until("the fatal job failed", async () => (await api(`/v1/jobs/${job.id}`)).status === "error");
  // Paused, so the retried job stays queued long enough to be seen.
  await api(`/v1/queues/${queue}/stop`, { method: "POST" });
  await withPage("failed-job", async (page) => {
    await page.goto(`${URL}/#/jobs?status=error&queue=${queue}`);
    await page.locator(`tr[data-job="${job.id}"]`).getByRole("link").click();
    const errors = page.locator("#errors li");
    await until("both attempts' errors are listed", async () => (await errors.count()) === 2);
    for (let i = 0; i < 2; i++) {
      const stamp = await errors.nth(i).locator("time").getAttribute("datetime");
      assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/, "an RFC 3339 time with microseconds");
      assert.equal(await errors.nth(i).locator(".message").textContent(), "An error occurred.");
    }
    await page.locator(".badge.error").first().waitFor();
    assert.equal(await page.title(), `Job ${job.id} · jobhost`, "a title of its own");
    // Where it panicked: folded away until asked for, then the file and line and the frames.
    const backtrace = page.locator("#backtrace");
    assert.equal(await backtrace.isVisible(), false);
    await page.locator("#backtrace-box summary").click();
    assert.match(await backtrace.textContent(), /\] panicked at plugins\/fatal\/src\/lib\.rs:\d+:\d+\n\s+0: fatal::fatal/);
    await page.screenshot({ path: join(SCREENSHOTS, "failed-job-before-retry.png"), fullPage: true });

    await page.locator("#job-retry").click();
    await confirm(page);
    await page.locator("dd .badge.queued").waitFor({ timeout: WAIT });
    assert.equal((await api(`/v1/jobs/${job.id}`)).status, "queued");
    await page.getByText(`Job ${job.id} is queued again.`).waitFor();
  });
  await api(`/v1/queues/${queue}/start`, { method: "POST" });
  // A scheduled job's row says when it runs.
  const later = await api("/v1/jobs", { method: "POST", body: { job: "echo", queue: "dash-later", delay_seconds: 3600 } });
  await withPage("scheduled", async (page) => {
    await page.goto(`${URL}/#/jobs?status=scheduled&queue=dash-later`);
    const runAt = page.locator(`tr[data-job="${later.id}"] td.run-at time`);
    await runAt.waitFor({ timeout: WAIT });
    assert.equal(await runAt.getAttribute("datetime"), later.run_at);
    assert.equal(await page.title(), "Jobs: scheduled, dash-later · jobhost");
  });
});

test("failed lists show each job's last error; search finds jobs by error text, input field and id", async () => {
  const queue = "dash-triage";
  const acme = await api("/v1/jobs", { method: "POST", body: { job: "error", queue, input: { customer: "acme" } } });
  const slow = await api("/v1/jobs", { method: "POST", body: { job: "sleep", queue, input: 30, timeout_seconds: 1, max_attempts: 1 } });
  for (const job of [acme, slow]) {
    await until(`job ${job.id} failed`, async () => (await api(`/v1/jobs/${job.id}`)).status === "error");
  }
  await withPage("triage", async (page) => {
    await page.goto(`${URL}/#/jobs?status=error&queue=${queue}`);
    const row = (id) => page.locator(`tr[data-job="${id}"]`);
    await row(slow.id).waitFor({ timeout: WAIT });
    assert.match(await row(slow.id).locator("td.last-error").textContent(), /timed out/);
    assert.match(await row(acme.id).locator("td.last-error").textContent(), /An error occurred\./);

    await page.locator("#s-error").fill("TIMED OUT");
    await page.keyboard.press("Enter");
    await page.waitForURL(/error=TIMED(%20|\+)OUT/);
    await until("only the timed-out job is listed", async () => (await page.locator("tr[data-job]").count()) === 1);
    await row(slow.id).waitFor();
    await page.getByText(/^1 found among \d+ jobs searched\.$/).waitFor();
    assert.equal(await page.locator("#bulk-retry").count(), 0, "a bulk action never takes a search's matches");

    await page.locator("#s-clear").click();
    await page.locator("#s-input").fill("customer=acme");
    await page.locator("#s-go").click();
    await until("only acme's job is listed", async () =>
      (await page.locator("tr[data-job]").count()) === 1 && (await row(acme.id).count()) === 1);
    // Back returns to the error search, as a browser's history should.
    await page.goBack();
    await page.waitForURL((url) => !url.hash.includes("input="));

    await page.locator("#s-id").fill("abc");
    await page.keyboard.press("Enter");
    await page.getByText('"abc" is not a job id (a number).').waitFor();
    await page.locator("#s-id").fill(acme.id);
    await page.keyboard.press("Enter");
    await page.waitForURL(new RegExp(`#/jobs/${acme.id}$`));
    await page.locator("#errors li").first().waitFor({ timeout: WAIT });
  });
});

test("removing every cancelled job runs on the server with progress, one operation at a time", async () => {
  const queue = "dash-bulk";
  const jobs = Array.from({ length: 5000 }, (_, n) => ({ job: "echo", queue, hold: true, input: n }));
  const batch = await api("/v1/jobs/batch", { method: "POST", body: { jobs, group: { name: "bulk" } } });
  await api(`/v1/groups/${batch.group.id}/cancel`, { method: "POST" });
  await withPage("bulk", async (page) => {
    await page.goto(`${URL}/#/jobs?status=cancelled&queue=${queue}`);
    await page.getByText("5,000 jobs match.").waitFor({ timeout: WAIT });
    await page.locator("#bulk-remove").click();
    await confirm(page);
    // While it runs: its progress and Cancel, and no button to start another.
    await page.locator("#bulk-progress").waitFor({ timeout: WAIT });
    assert.match(await page.locator("#bulk-progress").textContent(), /Removing: [\d,]+ of 5,000 done/);
    assert.equal(await page.locator("#bulk-retry, #bulk-remove").count(), 0);
    await page.getByText("Removed 5,000 jobs.").waitFor({ timeout: 60_000 });
    const left = (await api("/v1/queues")).find((q) => q.name === queue);
    assert.equal(left?.jobs?.cancelled ?? 0, 0);
  });
});

test("rows selected on a page are retried or cancelled together; the others are left alone", async () => {
  const queue = "dash-pick";
  const jobs = Array.from({ length: 4 }, (_, n) => ({ job: "echo", queue, hold: true, input: n }));
  const ids = (await api("/v1/jobs/batch", { method: "POST", body: { jobs } })).jobs.map((j) => j.id);
  // Stopped, so that retried jobs stay queued to be seen.
  await api(`/v1/queues/${queue}/stop`, { method: "POST" });
  for (const id of ids.slice(0, 3)) await api(`/v1/jobs/${id}/cancel`, { method: "POST" });
  const status = async (id) => (await api(`/v1/jobs/${id}`)).status;
  await withPage("selection", async (page) => {
    await page.goto(`${URL}/#/jobs?queue=${queue}&order=oldest`);
    await page.locator(`#pick-${ids[3]}`).waitFor({ timeout: WAIT });
    // Two of the cancelled ones, from the keyboard and the mouse; they stay ticked across refreshes.
    await page.locator(`#pick-${ids[0]}`).check();
    await page.locator(`#pick-${ids[1]}`).focus();
    await page.keyboard.press("Space");
    await page.getByText("2 selected.").waitFor();
    assert.equal(await page.locator("#select-page").evaluate((b) => b.indeterminate), true);
    // Cancelled ones only: Retry and Remove, no Cancel.
    assert.equal(await page.locator("#selected-cancel").count(), 0);
    await page.waitForTimeout(2500);
    assert.equal(await page.locator(`#pick-${ids[0]}`).isChecked(), true, "a refresh keeps the selection");
    await page.locator("#selected-retry").click();
    await confirm(page);
    await page.getByText("Retried 2 jobs.").waitFor({ timeout: WAIT });
    assert.deepEqual(await Promise.all(ids.map(status)), ["queued", "queued", "cancelled", "held"]);
    assert.equal(await page.locator("#selected-count").count(), 0, "the selection is done with");

    // Every row of the page, then cancel: the pending ones are cancelled, the cancelled one passed over.
    await page.locator("#select-page").check();
    await page.getByText("4 selected.").waitFor();
    await page.locator("#selected-cancel").click();
    await confirm(page);
    await page.getByText(/^Cancelled 3 jobs \(1 passed over/).waitFor({ timeout: WAIT });
    assert.deepEqual(await Promise.all(ids.map(status)), ["cancelled", "cancelled", "cancelled", "cancelled"]);
    await page.locator(`#pick-${ids[2]}`).check();
    await page.locator("#selected-clear").click();
    assert.equal(await page.locator("#selected-count").count(), 0);
    assert.equal(await page.locator(`#pick-${ids[2]}`).isChecked(), false);
    // Filtered by factory too, the list says how many match.
    await page.goto(`${URL}/#/jobs?queue=${queue}&job=echo&status=cancelled`);
    await page.getByText("4 jobs match.").waitFor({ timeout: WAIT });
  });
  await api(`/v1/queues/${queue}/start`, { method: "POST" });
});

// axe-core (from npm), injected into each page: WCAG 2 A and AA rules, contrast included.
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

test("every view passes axe-core's WCAG 2 AA rules, contrast included, in the light and the dark theme", async () => {
  const failed = await api("/v1/jobs", { method: "POST", body: { job: "error", queue: "dash-axe", input: { customer: "acme" } } });
  await until("the axe job failed", async () => (await api(`/v1/jobs/${failed.id}`)).status === "error");
  const views = ["#/", "#/jobs?status=error", `#/jobs/${failed.id}`, "#/schedules", "#/new"];
  for (const colorScheme of ["light", "dark"]) {
    // The page's content security policy admits only its own scripts: axe comes in past it.
    await withPage(`axe-${colorScheme}`, async (page) => {
      for (const view of views) {
        await page.goto(`${URL}/${view}`);
        await page.locator("#main h1").waitFor({ timeout: WAIT });
        await until(`${view} has drawn its data`, async () => (await page.locator("#main .muted:text('Loading…')").count()) === 0);
        await page.addScriptTag({ content: AXE });
        const result = await page.evaluate(() =>
          window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
        );
        const found = result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; ")})`);
        assert.deepEqual(found, [], `${colorScheme} ${view}`);
      }
    }, { colorScheme, bypassCSP: true });
  }
});

test("a schedule is created, its input edited and checked, and deleted from the dashboard", async () => {
  await withPage("schedule-crud", async (page) => {
    await page.goto(`${URL}/#/schedules`);
    await page.locator("#new-schedule summary").click();
    await page.locator("#ns-job").selectOption("pack");
    await page.locator("#ns-cron").fill("0 3 * * *");
    await page.locator("#ns-tz").fill("Europe/Paris");
    // The typed fixture's schema refuses this input: the server's message shows.
    await page.locator("#ns-input").fill('"not an object"');
    await page.locator("#ns-save").click();
    await page.locator("#new-schedule [role=alert]").waitFor({ timeout: WAIT });
    await page.locator("#ns-job").selectOption("echo");
    await page.locator("#ns-input").fill('{"report": "daily"}');
    await page.locator("#ns-save").click();
    await page.waitForURL(/#\/schedules\/\d+$/);
    const id = page.url().split("/").pop();
    const made = await api(`/v1/schedules/${id}`);
    assert.deepEqual([made.job, made.cron, made.timezone, made.input], ["echo", "0 3 * * *", "Europe/Paris", { report: "daily" }]);

    const input = page.locator("#sc-input");
    await input.waitFor({ timeout: WAIT });
    await input.fill('{"report": "weekly"');
    await page.locator("#save").click();
    await page.getByText(/^Input: not JSON/).waitFor();
    await input.fill('{"report": "weekly"}');
    await page.locator("#save").click();
    await page.getByText(/^Saved: next run/).waitFor({ timeout: WAIT });
    assert.deepEqual((await api(`/v1/schedules/${id}`)).input, { report: "weekly" });

    await page.locator("#sc-delete").click();
    await confirm(page);
    await page.waitForURL(/#\/schedules$/);
    const gone = await fetch(`${URL}/v1/schedules/${id}`);
    assert.equal(gone.status, 404);
  }, {}, [/status of 400/]);
});

test("pages survive Back, Forward and a reload; updates can be paused and resumed", async () => {
  const queue = "dash-pages";
  const jobs = Array.from({ length: 60 }, (_, n) => ({ job: "echo", queue, hold: true, input: n }));
  await api("/v1/jobs/batch", { method: "POST", body: { jobs } });
  await withPage("paging", async (page) => {
    await page.goto(`${URL}/#/jobs?queue=${queue}&status=held`);
    const first = async () => page.locator("tr[data-job]").first().getAttribute("data-job");
    const pageOne = await until("page 1 shows", first);
    await page.getByText("60 jobs match.").waitFor({ timeout: WAIT });
    await page.locator("#page-next").click();
    const pageTwo = await until("page 2 shows", async () => ((await first()) !== pageOne ? first() : null));
    await page.locator("#page-next").click();
    const pageThree = await until("page 3 shows", async () => ((await first()) !== pageTwo ? first() : null));
    await page.reload();
    await until("a reload shows page 3 again", async () => (await first()) === pageThree);
    await page.locator("#page-back").click();
    await until("Previous after a reload shows page 2", async () => (await first()) === pageTwo);
    await page.locator("#page-back").click();
    await until("and then page 1", async () => (await first()) === pageOne);
    await page.goBack();
    await until("Back shows page 2", async () => (await first()) === pageTwo);
    await page.goForward();
    await until("Forward shows page 1", async () => (await first()) === pageOne);

    // Scrolled down, off to a job and Back: the list is where it was; a reload keeps it too.
    const room = await page.evaluate(() => document.documentElement.scrollHeight - window.innerHeight);
    assert.ok(room > 200, `the page scrolls (${room} px)`);
    const target = Math.floor(room / 2);
    await page.evaluate((y) => window.scrollTo(0, y), target);
    await until("the position is kept", async () => (await page.evaluate(() => history.state?.scroll)) === target);
    await page.locator("tr[data-job] a").first().click();
    await page.getByRole("heading", { name: `Job ${pageOne}` }).waitFor();
    assert.equal(await page.evaluate(() => window.scrollY), 0, "a new page starts at the top");
    await page.goBack();
    await until("Back scrolls the list to where it was", async () => (await page.evaluate(() => window.scrollY)) === target);
    await page.reload();
    await until("a reload too", async () => (await page.evaluate(() => window.scrollY)) === target);
    await page.evaluate(() => window.scrollTo(0, 0));

    // With the mouse over the rows, a new job does not push them down; leaving, it shows.
    await page.locator("tr[data-job]").nth(2).hover();
    const arrived = await api("/v1/jobs", { method: "POST", body: { job: "echo", queue, hold: true } });
    const until2 = Date.now() + 4500;
    while (Date.now() < until2) {
      assert.equal(await first(), pageOne, "rows moved under the pointer");
      await new Promise((r) => setTimeout(r, 250));
    }
    await page.mouse.move(5, 5);
    await until("leaving the rows shows the new job", async () => (await first()) === arrived.id);
    const pageOneNow = arrived.id;

    // Paused updates: a new job does not move the rows until updates resume.
    await page.locator("#live").click();
    assert.equal(await page.locator("#live").getAttribute("aria-pressed"), "true");
    await page.getByText(/^Updates paused; last updated \d+ s ago$/).waitFor();
    const added = await api("/v1/jobs", { method: "POST", body: { job: "echo", queue, hold: true } });
    // Two refresh periods and more: the list stays as it was.
    const end = Date.now() + 4500;
    while (Date.now() < end) {
      assert.equal(await first(), pageOneNow, "rows moved while updates were paused");
      await new Promise((r) => setTimeout(r, 250));
    }
    await page.locator("#live").click();
    await until("resumed updates show the new job", async () => (await first()) === added.id);
  });
});

test("cancel a running sleep job from its page; pause and resume a queue from the keyboard", async () => {
  const job = await api("/v1/jobs", { method: "POST", body: { job: "sleep", input: 120 } });
  await until("the sleep job runs", async () => (await api(`/v1/jobs/${job.id}`)).status === "processing");
  await withPage("cancel-and-pause", async (page) => {
    await page.goto(`${URL}/#/jobs/${job.id}`);
    await page.locator("dd .badge.processing").waitFor({ timeout: WAIT });
    await page.locator("#progress progress").waitFor({ timeout: WAIT });
    await page.locator("#job-cancel").click();
    await confirm(page);
    await page.locator("dd .badge.cancelled").waitFor({ timeout: WAIT });
    assert.equal((await api(`/v1/jobs/${job.id}`)).status, "cancelled");
    // Finished: neither a pending cancel request nor a running attempt's progress is shown.
    assert.equal(await page.locator("#progress").count(), 0);
    assert.doesNotMatch(await page.locator("dl.fields").textContent(), /cancel requested/);

    await page.getByRole("link", { name: "Overview" }).click();
    const toggle = page.locator("#queue-toggle-default");
    await toggle.waitFor();
    await toggle.focus();
    await page.keyboard.press("Enter");
    await page.locator('tr[data-queue="default"] .badge.paused').waitFor({ timeout: WAIT });
    const paused = (await api("/v1/queues")).find((q) => q.name === "default");
    assert.equal(paused.processing, false);
    // Who paused it and when: the store's record, which a restart keeps.
    const by = await page.locator("#paused-default").textContent();
    assert.ok(by.startsWith(`by ${paused.paused.by} `) && /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(by), by);
    // The store's totals per status, summed over the queues, each linking to its list.
    const cancelled = async () => (await api("/v1/queues")).reduce((sum, q) => sum + (q.jobs.cancelled ?? 0), 0);
    await until("the cancelled total is the store's", async () =>
      (await page.locator("#total-cancelled").textContent()) === (await cancelled()).toLocaleString("en-US"));
    assert.ok((await cancelled()) >= 1);
    await page.locator("#total-cancelled").click();
    await page.waitForURL(/#\/jobs\?status=cancelled/);
    await page.getByRole("link", { name: "Overview" }).click();
    await toggle.waitFor();
    await toggle.focus();
    // Focus stays on the button through the refresh, so the same key resumes.
    await until("the button offers Resume", async () => (await toggle.textContent()) === "Resume");
    await page.keyboard.press("Enter");
    await page.locator('tr[data-queue="default"] .badge.processing-on').waitFor({ timeout: WAIT });
    assert.equal((await api("/v1/queues")).find((q) => q.name === "default").processing, true);
  });
});

test("the schedule editor previews the next runs and shows the server's message for a bad field", async () => {
  const schedule = await api("/v1/schedules", { method: "POST", body: { job: "echo", cron: "*/5 * * * *" } });
  await withPage("schedule-editor", async (page) => {
    await page.goto(`${URL}/#/schedules`);
    const row = page.locator(`tr[data-schedule="${schedule.id}"]`);
    await row.waitFor({ timeout: WAIT });
    await row.locator(`#schedule-toggle-${schedule.id}`).click();
    await row.locator(".badge.paused").waitFor({ timeout: WAIT });
    assert.equal((await api(`/v1/schedules/${schedule.id}`)).active, false);
    await row.locator(`#schedule-toggle-${schedule.id}`).click();
    await row.locator(".badge.processing-on").waitFor({ timeout: WAIT });

    await row.getByRole("link", { name: schedule.id, exact: true }).click();
    const cron = page.locator("#cron");
    await cron.waitFor();
    await page.locator("#cron-preview li").first().waitFor();
    await cron.fill("* * * * 9");
    const alert = page.locator("#cron-error [role=alert]");
    await alert.waitFor({ timeout: WAIT });
    assert.match(await alert.textContent(), /field 5 \(day of week\)/);
    assert.equal(await page.locator("#save").isDisabled(), true, "a bad expression cannot be saved");

    await cron.fill("0 12 * * 1-5");
    await page.locator("#tz").fill("Europe/Paris");
    await until("five runs are previewed", async () => (await page.locator("#cron-preview li").count()) === 5);
    const first = await page.locator("#cron-preview li time").first().getAttribute("datetime");
    assert.match(first, /T1[01]:00:00\.000000\+00:00$/, "noon in Paris is 11:00 or 10:00 UTC");
    await page.locator("#save").click();
    await page.getByText(/^Saved: next run/).waitFor();
    const saved = await api(`/v1/schedules/${schedule.id}`);
    assert.deepEqual([saved.cron, saved.timezone], ["0 12 * * 1-5", "Europe/Paris"]);
  });
});

test("with a token, the dashboard shows no data until the token is given, and never puts it in a URL", async () => {
  const base = required("JOBHOST_TOKEN_URL");
  const token = required("JOBHOST_TOKEN");
  await withPage("token", async (page) => {
    const urls = [];
    page.on("request", (request) => urls.push(request.url()));
    await page.goto(`${base}/`);
    await page.getByRole("heading", { name: "This server needs a token" }).waitFor();
    await page.waitForTimeout(2500); // refreshes would have happened by now
    assert.equal(await page.locator("tr[data-queue]").count(), 0, "no data before the token");
    assert.equal(urls.filter((u) => u.includes("/v1/")).length, 0, "not even a request");

    await page.locator("#token").fill(token);
    await page.keyboard.press("Enter");
    await page.locator('tr[data-queue="default"]').waitFor({ timeout: WAIT });
    // Kept for the tab: a reload does not ask again.
    await page.reload();
    await page.locator('tr[data-queue="default"]').waitFor({ timeout: WAIT });
    assert.ok(urls.length > 0 && urls.every((u) => !u.includes(token)), "the token is never in a URL");
  });
});

test("hostile names and data show as text, fit the screen, and odd queue names still work", async () => {
  const markup = "<img src=x onerror=\"window.__pwned = 1\">";
  const job = await api("/v1/jobs", {
    method: "POST",
    body: { job: "echo", queue: "...", hold: true, input: { html: markup }, unique_key: "k".repeat(200) },
  });
  await withPage(
    "hostile",
    async (page) => {
      await page.goto(`${URL}/#/jobs/${job.id}`);
      await page.locator("#input").waitFor({ timeout: WAIT });
      assert.deepEqual(JSON.parse(await page.locator("#input").textContent()), { html: markup });
      assert.equal(await page.evaluate(() => window.__pwned), undefined, "markup in a job never runs");
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `a 200-character key makes the page ${overflow} px too wide`);
      // `...` is a queue name, not a path step (`.` and `..` are refused as names): pause and
      // resume reach it.
      await page.goto(`${URL}/`);
      const toggle = page.locator('[id="queue-toggle-..."]');
      await toggle.waitFor({ timeout: WAIT });
      const before = (await api("/v1/queues")).find((q) => q.name === "...").processing;
      const label = await toggle.textContent();
      await toggle.click();
      await until("the `...` queue changed", async () => (await api("/v1/queues")).find((q) => q.name === "...").processing !== before);
      // The button is redrawn from the refresh that follows the change: until then it still
      // offers what was just done.
      await until("the button offers the way back", async () => (await toggle.textContent()) !== label);
      await toggle.click();
      await until("the `...` queue changed back", async () => (await api("/v1/queues")).find((q) => q.name === "...").processing === before);
      // A malformed address names the problem instead of failing.
      await page.goto(`${URL}/#/jobs/%E0%A4%A`);
      await page.locator("[role=alert]").waitFor({ timeout: WAIT });
    },
    { viewport: { width: 390, height: 844 } },
  );
});

test("on a phone-sized screen in dark mode the pages fit the width and read light on dark", async () => {
  // The longest queue name there can be must wrap, not widen its table.
  await api("/v1/jobs", { method: "POST", body: { job: "echo", queue: "w".repeat(64), hold: true } });
  await withPage(
    "phone-dark",
    async (page) => {
      for (const path of ["/", "/#/jobs", "/#/schedules"]) {
        await page.goto(`${URL}${path}`);
        await page.locator("#updated").filter({ hasText: /Updated/ }).waitFor({ timeout: WAIT });
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert.ok(overflow <= 0, `${path} is ${overflow} px wider than the screen`);
        // Nor does any table scroll sideways inside it: rows are cards of labelled fields.
        const sideways = await page.evaluate(() =>
          [...document.querySelectorAll(".scroll")].filter((s) => s.scrollWidth > s.clientWidth + 1).length,
        );
        assert.equal(sideways, 0, `${path}: ${sideways} table(s) scroll sideways`);
      }
      await page.goto(`${URL}/`);
      await page.locator('tr[data-queue="default"]').waitFor();
      // A count's link is a target of at least 24 by 24 px, and labelled by its column.
      const link = page.locator("#count-default-completed");
      const box = await link.boundingBox();
      assert.ok(box.width >= 24 && box.height >= 24, `a count's link is ${box.width} x ${box.height} px`);
      assert.equal(await link.evaluate((a) => a.parentElement.dataset.label), "Completed");
      const [bg, fg] = await page.evaluate(() => {
        const style = getComputedStyle(document.body);
        return [style.backgroundColor, style.color];
      });
      const light = (rgb) => rgb.match(/\d+/g).slice(0, 3).reduce((a, b) => a + Number(b), 0) / 3;
      assert.ok(light(bg) < 60 && light(fg) > 180, `dark background, light text: ${bg} / ${fg}`);
    },
    { viewport: { width: 390, height: 844 }, colorScheme: "dark", isMobile: true, hasTouch: true },
  );
});

test("a page on another site cannot change anything, and a rebound name gets neither the dashboard nor the API", async () => {
  const { createServer } = await import("node:http");
  const queue = "csrf-target";
  const setup = await api("/v1/jobs", { method: "POST", body: { job: "echo", queue, input: "setup" } });
  await until("the setup job ran", async () => (await api(`/v1/jobs/${setup.id}`)).status === "completed");
  // What any site the operator visits could serve: forms (which need no permission to post
  // anywhere) and no-cors fetches, aimed at the API.
  const attack = `<!doctype html><title>elsewhere</title>
    <iframe name="sink1"></iframe><iframe name="sink2"></iframe><iframe name="sink3"></iframe>
    <form id="f1" method="POST" action="${URL}/v1/jobs" enctype="text/plain" target="sink1">
      <input name='{"job":"echo","queue":"${queue}","input":"csrf-form' value='"}'></form>
    <form id="f2" method="POST" action="${URL}/v1/queues/${queue}/stop" target="sink2"></form>
    <form id="f3" method="POST" action="${URL}/v1/jobs/${setup.id}/retry" target="sink3"
      enctype="application/x-www-form-urlencoded"><input name="a" value="b"></form>
    <script>
      window.pending = 5;
      for (const name of ["sink1", "sink2", "sink3"]) {
        document.querySelector("iframe[name=" + name + "]").addEventListener("load", () => window.pending--, { once: true });
      }
      for (const id of ["f1", "f2", "f3"]) document.getElementById(id).submit();
      const body = JSON.stringify({ job: "echo", queue: "${queue}", input: "csrf-fetch" });
      fetch("${URL}/v1/jobs", { method: "POST", mode: "no-cors", body: new Blob([body]) })
        .catch(() => {}).finally(() => window.pending--);
      fetch("${URL}/v1/jobs", { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body })
        .catch(() => {}).finally(() => window.pending--);
    </script>`;
  const elsewhere = createServer((_, response) => {
    response.writeHead(200, { "Content-Type": "text/html" });
    response.end(attack);
  });
  await new Promise((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    // localhost and 127.0.0.1 are different sites to the browser.
    await page.goto(`http://localhost:${elsewhere.address().port}/`);
    await page.waitForFunction(() => window.pending === 0, null, { timeout: WAIT });
  } finally {
    await context.close();
    elsewhere.close();
  }
  const jobs = await api(`/v1/jobs?queue=${queue}&limit=100`);
  assert.deepEqual(jobs.jobs.map((j) => [j.id, j.status]), [[setup.id, "completed"]], "no job added or retried");
  const queues = await api("/v1/queues");
  const target = queues.find((q) => q.name === queue);
  assert.equal(target.processing, true, `the queue was stopped: ${JSON.stringify(target)}`);

  // DNS rebinding: a name of the attacker's that resolves to this machine.
  const port = new globalThis.URL(URL).port;
  const rebound = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--host-resolver-rules=MAP rebound.example 127.0.0.1"],
  });
  try {
    const page = await rebound.newPage();
    const answer = await page.goto(`http://rebound.example:${port}/`);
    assert.equal(answer.status(), 421);
    assert.match(await page.content(), /host_not_allowed/);
    const posted = await page.evaluate(async () => {
      const response = await fetch("/v1/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ job: "echo", queue: "csrf-target", input: "rebound" }),
      });
      return response.status;
    });
    assert.equal(posted, 421);
  } finally {
    await rebound.close();
  }
  const after = await api(`/v1/jobs?queue=${queue}&limit=100`);
  assert.equal(after.jobs.length, 1, "the rebound page added a job");
});

test("a new job's form follows its factory's schema and shows the server's messages at the fields", async () => {
  await withPage(
    "new-job",
    async (page) => {
      await page.goto(`${URL}/#/new?factory=pack`);
      await page.locator("#new-factory").waitFor({ timeout: WAIT });
      assert.equal(await page.locator("#new-factory").inputValue(), "pack");
      // Fields drawn from the schema: a nested object's field, an enum as a choice, an array
      // as JSON.
      await page.locator("#field-customer-name").fill("Ada");
      await page.locator("#field-priority").selectOption("high");
      await page.locator("#field-items").fill('[{"sku": "A-1", "quantity": 0}]');
      await page.locator("#new-submit").click();
      const items = page.locator('[data-pointer="/items"] > .field-error');
      await until("the server's message shows at the field", async () => /minimum/.test(await items.textContent()));
      assert.match(await items.textContent(), /\/items\/0\/quantity/);
      await page.screenshot({ path: join(SCREENSHOTS, "new-job-refused.png"), fullPage: true });
      assert.equal((await api("/v1/jobs?job=pack")).jobs.length, 0, "nothing was stored");

      await page.locator("#field-items").fill('[{"sku": "A-1", "quantity": 2}]');
      await page.locator("#new-submit").click();
      await page.waitForURL(/#\/jobs\/\d+$/, { timeout: WAIT });
      const id = decodeURIComponent(page.url().split("/").pop());
      const done = await until("the job completes", async () => {
        const job = await api(`/v1/jobs/${id}`);
        return job.status === "completed" && job;
      });
      assert.deepEqual(done.result, { lines: 1, units: 2 });
      assert.deepEqual(done.input.customer, { name: "Ada" });

      // A factory that takes any JSON gets a JSON editor with its example.
      await page.goto(`${URL}/#/new?factory=echo`);
      await page.reload();
      const editor = page.locator("textarea#field");
      await editor.waitFor({ timeout: WAIT });
      assert.match(await editor.inputValue(), /foo/);
    },
    {},
    [/status of 400/],
  );
});

test("a job shows what it waits for and what waits for it; a group's page shows its progress and cancels it", async () => {
  await withPage("workflows", async (page) => {
    const parent = await api("/v1/jobs", { method: "POST", body: { job: "echo", input: "first", hold: true } });
    const child = await api("/v1/jobs", { method: "POST", body: { job: "echo", input: "second", depends_on: [parent.id] } });
    await page.goto(`${URL}/#/jobs/${child.id}`);
    const parents = page.locator("#parents");
    await parents.waitFor({ timeout: WAIT });
    assert.match(await parents.textContent(), /1 of 1 not done yet/);
    await parents.locator("a").click();
    await page.waitForURL(new RegExp(`#/jobs/${parent.id}$`));
    const dependents = page.locator("#dependents");
    await dependents.waitFor({ timeout: WAIT });
    assert.match(await dependents.textContent(), new RegExp(`${child.id} echo`));
    await page.locator("#job-start").click();
    await confirm(page);
    await until("the child completes once its parent did", async () => (await api(`/v1/jobs/${child.id}`)).status === "completed");

    // A group whose members are held: its page offers to cancel them, and its on-complete
    // callback then runs.
    const made = await api("/v1/jobs/batch", {
      method: "POST",
      body: {
        jobs: [{ job: "echo", hold: true }, { job: "echo", hold: true }, { job: "echo", hold: true }],
        group: { name: "import <b>3</b>", on_complete: { job: "echo", input: "all done" }, on_success: { job: "echo" } },
      },
    });
    await page.goto(`${URL}/#/jobs/${made.jobs[1].id}`);
    await page.locator("#group-link").click();
    await page.waitForURL(new RegExp(`#/groups/${made.group.id}$`));
    const progress = page.locator("#group-progress");
    await progress.waitFor({ timeout: WAIT });
    assert.equal(await progress.textContent(), "0 of 3 finished");
    assert.equal(await page.locator("dd", { hasText: "import" }).textContent(), "import <b>3</b>", "a name is text");
    await page.locator("#group-cancel").click();
    await confirm(page);
    await until("the group page shows every member cancelled", async () => (await progress.textContent()) === "3 of 3 finished");
    const callbacks = page.locator("#group-callbacks");
    await until("on complete ran and on success was cancelled", async () => {
      const text = await callbacks.textContent();
      return /on complete: job \d+ completed/.test(text) && /on success: job \d+ cancelled/.test(text);
    });
    assert.equal(await page.locator("#group-cancel").count(), 0, "nothing left to cancel");
  });
});

// Last of the file: it adds 30 queues, which fold the overview of every test after it.
test("with many queues the overview shows the busiest, filters by name, orders by a column and shows all on demand", async () => {
  const names = Array.from({ length: 30 }, (_, n) => `fold-${String(n).padStart(2, "0")}`);
  await api("/v1/jobs/batch", { method: "POST", body: { jobs: names.map((queue) => ({ job: "echo", queue, hold: true })) } });
  // Two stopped queues with jobs waiting to run: the busiest.
  for (const [queue, n] of [["fold-07", 50], ["fold-13", 40]]) {
    await api(`/v1/queues/${queue}/stop`, { method: "POST" });
    await api("/v1/jobs/batch", { method: "POST", body: { jobs: Array.from({ length: n }, () => ({ job: "echo", queue })) } });
  }
  const all = await api("/v1/queues");
  const busy = (queue) => (queue.jobs?.processing ?? 0) + (queue.jobs?.queued ?? 0);
  const rows = (page) => page.locator("#queues-h ~ div tbody tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.queue));
  await withPage("overview-many-queues", async (page) => {
    await page.goto(`${URL}/#/`);
    const fold = page.locator("#queue-fold");
    await until("the overview folds its queues", async () => /^Showing 20 of [\d,]+ queues, busiest first/.test(await fold.textContent()));
    let shown = await rows(page);
    assert.equal(shown.length, 20);
    const byName = new Map(all.map((queue) => [queue.name, queue]));
    const counts = shown.map((name) => busy(byName.get(name)));
    assert.deepEqual(counts, [...counts].sort((a, b) => b - a), "busiest first");
    assert.equal(counts[0], Math.max(...all.map(busy)), "the busiest queue of all is the first");
    assert.ok(shown.includes("fold-07") && shown.includes("fold-13"), `${shown}`);
    assert.ok(shown.indexOf("fold-07") < shown.indexOf("fold-13"));
    // The totals are every queue's, not only the rows shown.
    const totalHeld = all.reduce((sum, queue) => sum + (queue.jobs?.held ?? 0), 0);
    assert.equal(await page.locator("#total-held").textContent(), totalHeld.toLocaleString("en-US"));

    // A filter as typed, kept in the address through a reload.
    await page.locator("#queue-filter").fill("FOLD-2");
    await until("the filter shows fold-20 to fold-29", async () => (await rows(page)).length === 10);
    assert.deepEqual(await rows(page), names.slice(20), "by name when everything fits");
    assert.match(await fold.textContent(), /^10 of [\d,]+ queues match\.$/);
    assert.match(page.url(), /queues=FOLD-2/);
    await page.reload();
    await until("the filter survives a reload", async () => (await rows(page)).length === 10);
    assert.equal(await page.locator("#queue-filter").inputValue(), "FOLD-2");
    await page.locator("#queue-filter").fill("no such queue");
    await page.getByText('No queue name contains "no such queue".').waitFor({ timeout: WAIT });
    await page.locator("#queue-filter").fill("");
    await until("the fold is back", async () => (await rows(page)).length === 20);

    // Ordered by a column (largest first), then every queue, and Back to the fold.
    await page.locator("#sort-held").click();
    await page.waitForURL(/sort=held/);
    await until("the order is the held count", async () => (await page.locator("#sort-held").locator("xpath=..").getAttribute("aria-sort")) === "descending");
    shown = await rows(page);
    const held = shown.map((name) => byName.get(name).jobs?.held ?? 0);
    assert.deepEqual(held, [...held].sort((a, b) => b - a), "most held first");
    await page.locator("#queues-all").click();
    await page.waitForURL(/all=1/);
    await until("every queue shows", async () => (await rows(page)).length === all.length);
    assert.match(await fold.textContent(), new RegExp(`^Showing all ${all.length} queues, most held first\\.`));
    await page.goBack();
    await until("Back shows the fold again", async () => (await rows(page)).length === 20);
  });
});
