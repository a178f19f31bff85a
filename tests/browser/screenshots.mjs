// The README's pictures of the dashboard, from a running server with some history:
//   JOBHOST_URL=http://127.0.0.1:7878 JOB=<a failed job's id> node tests/browser/screenshots.mjs
// writes docs/dashboard-overview.png and docs/dashboard-failed-job.png.
import { chromium } from "playwright-core";

const url = (process.env.JOBHOST_URL || "http://127.0.0.1:7878").replace(/\/$/, "");
const job = process.env.JOB;
if (!job) throw new Error("JOB: the id of a failed job to show");
const out = new URL("../../docs/", import.meta.url).pathname;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${url}/`);
await page.locator("tr[data-queue]").first().waitFor();
await page.waitForTimeout(1500);
await page.screenshot({ path: `${out}dashboard-overview.png`, fullPage: true });
await page.goto(`${url}/#/jobs/${job}`);
await page.locator("#errors li").first().waitFor();
await page.waitForTimeout(500);
await page.screenshot({ path: `${out}dashboard-failed-job.png` });
await browser.close();
