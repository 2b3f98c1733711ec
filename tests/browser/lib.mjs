// Shared by the browser test scripts: launching the system Chromium (never a downloaded one)
// with the flags CI needs, and a tiny harness that reports each check and fails the process
// if any check fails. The scripts are run by tests/tests/browser.rs, which starts the server.

import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.STOMPEDE_CHROMIUM ?? "/usr/bin/chromium";

/** The server under test (`http://127.0.0.1:PORT/`) and where screenshots go. */
export const URL_UNDER_TEST = process.argv[2];
export const ARTIFACTS = process.env.STOMPEDE_ARTIFACTS ?? "../../target/browser";
if (!URL_UNDER_TEST) {
  console.error("usage: node SCRIPT.mjs http://HOST:PORT/");
  process.exit(2);
}
mkdirSync(ARTIFACTS, { recursive: true });

/** Launches Chromium; `extraArgs` adds flags (a test that injects a foreign page needs
 * `--disable-features=LocalNetworkAccessChecks`). */
export async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...extraArgs,
    ],
  });
}

/**
 * A page of a fresh browser context at `path` of the server under test, failing the check on
 * any page error or console error (unless `allowErrors` matches it), and recording every
 * request so checks can prove nothing left the server. `setup(context)`, if given, runs before
 * the page opens (routes, init scripts).
 */
export async function openPage(browser, path = "/", { allowErrors = null, setup = null } = {}) {
  const context = await browser.newContext();
  if (setup) await setup(context);
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  page.problems = [];
  page.requests = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !(allowErrors && allowErrors.test(m.text()))) {
      page.problems.push(`console error: ${m.text()}`);
    }
  });
  page.on("request", (r) => page.requests.push(r.url()));
  await page.goto(new URL(path, URL_UNDER_TEST).href);
  return page;
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

let failures = 0;

/** Runs one named check, printing PASS or FAIL with the reason. */
export async function check(name, body) {
  try {
    await body();
    console.log(`PASS ${name}`);
  } catch (e) {
    failures += 1;
    console.log(`FAIL ${name}: ${e.stack ?? e}`);
  }
}

/** Ends the script: exit status 1 if any check failed. */
export function finish() {
  console.log(failures === 0 ? "all checks passed" : `${failures} check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}
