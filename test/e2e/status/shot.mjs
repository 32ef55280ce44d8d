#!/usr/bin/env node
// Opens furrow's /status page in headless Chromium, waits for the first
// successful refresh, takes a full-page screenshot, and prints ONE JSON object
// on stdout mapping every data-stat name on the page to its trimmed text.
//
//   node shot.mjs <url> <screenshot.png>
//
// The url may carry #token=... (the page sends it as a bearer token).
// Chromium: $CHROMIUM_PATH, else /usr/bin/chromium, else /usr/bin/chromium-browser.
// Exit codes: 0 ok, 2 usage, 3 no Chromium / no playwright-core,
// 4 auth refused (401/403), 5 page never loaded data within 30 s, 6 other failure.

import { existsSync } from "node:fs";
import { resolve } from "node:path";

const LOAD_TIMEOUT_MS = 30_000;
const started = Date.now();

class Exit extends Error {
  constructor(code, msg) { super(msg); this.code = code; }
}

// Before the browser is up: report and exit. After: throw, so that Chromium is
// closed before the process exits.
let browser;
function fail(code, msg) {
  if (browser) throw new Exit(code, msg);
  process.stderr.write(`shot.mjs: ${msg}\n`);
  process.exit(code);
}

const [url, out] = process.argv.slice(2);
if (!url || !out || process.argv.length > 4) {
  fail(2, "usage: node shot.mjs <url> <screenshot.png>");
}

function findChromium() {
  const fromEnv = process.env.CHROMIUM_PATH;
  if (fromEnv) {
    if (!existsSync(fromEnv)) {
      fail(3, `CHROMIUM_PATH=${fromEnv} does not exist; install Chromium with: apt-get install -y chromium`);
    }
    return fromEnv;
  }
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (existsSync(p)) return p;
  }
  fail(3, "Chromium not found (looked at $CHROMIUM_PATH, /usr/bin/chromium, /usr/bin/chromium-browser); " +
    "install it with: apt-get install -y chromium");
}

const executablePath = findChromium();

let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  fail(3, `cannot load playwright-core (${e.message}); run 'npm ci' in test/e2e/status`);
}

// A hard stop, in case Chromium itself hangs.
const watchdog = setTimeout(() => {
  process.stderr.write("shot.mjs: gave up after 90 s\n");
  process.exit(6);
}, 90_000);
watchdog.unref();

try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--headless"],
    timeout: LOAD_TIMEOUT_MS,
  });
  // The test servers use throwaway certificates.
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, ignoreHTTPSErrors: true });

  const pageOrigin = new URL(url).origin;
  page.on("pageerror", (err) => process.stderr.write(`shot.mjs: page error: ${err.message}\n`));
  page.on("console", (msg) => {
    if (msg.type() === "error") process.stderr.write(`shot.mjs: console error: ${msg.text()}\n`);
  });
  // The page must be self-contained: report anything it asks of another origin.
  page.on("request", (req) => {
    const u = req.url();
    if (u.startsWith("data:") || u.startsWith("blob:")) return;
    try {
      if (new URL(u).origin !== pageOrigin) process.stderr.write(`shot.mjs: WARNING external request: ${u}\n`);
    } catch { /* ignore */ }
  });

  // The server may still be starting: retry the navigation until the deadline.
  for (;;) {
    try {
      await page.goto(url, { waitUntil: "domcontentloaded", timeout: Math.max(1000, LOAD_TIMEOUT_MS - (Date.now() - started)) });
      break;
    } catch (e) {
      if (Date.now() - started > LOAD_TIMEOUT_MS - 500) {
        fail(5, `the page never loaded within ${LOAD_TIMEOUT_MS / 1000} s: ${String(e.message).split("\n")[0]}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  // Wait for the first successful refresh, or for the page to say it was refused.
  const remaining = Math.max(1000, LOAD_TIMEOUT_MS - (Date.now() - started));
  let outcome;
  try {
    const handle = await page.waitForFunction(() => {
      const u = document.querySelector('[data-stat="updated"]');
      if (u && u.textContent.trim() !== "") return "ok";
      if (document.querySelector("#banner[data-auth-error]")) return "auth";
      return false;
    }, null, { timeout: remaining, polling: 100 });
    outcome = await handle.jsonValue();
  } catch (e) {
    const bannerText = await page.locator("#banner").textContent().catch(() => "");
    await page.screenshot({ path: resolve(out), fullPage: true }).catch(() => {});
    fail(5, `the page never loaded data within ${LOAD_TIMEOUT_MS / 1000} s` +
      (bannerText && bannerText.trim() ? ` (page says: ${bannerText.trim()})` : "") +
      `; screenshot of the state it was in: ${out}`);
  }

  await page.screenshot({ path: resolve(out), fullPage: true });

  if (outcome === "auth") {
    const bannerText = (await page.locator("#banner").textContent()) || "";
    fail(4, `not authorized: ${bannerText.trim()} (screenshot: ${out})`);
  }

  const stats = await page.$$eval("[data-stat]", (els) => {
    const o = {};
    for (const e of els) o[e.getAttribute("data-stat")] = (e.textContent || "").trim();
    return o;
  });
  process.stdout.write(JSON.stringify(stats) + "\n");
  process.stderr.write(`shot.mjs: done in ${Date.now() - started} ms, screenshot ${out}\n`);
} catch (e) {
  process.exitCode = e instanceof Exit ? e.code : 6;
  process.stderr.write(`shot.mjs: ${e && e.message ? e.message : String(e)}\n`);
} finally {
  if (browser) await browser.close().catch(() => {});
}
