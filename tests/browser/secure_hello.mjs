// The guide's optional security step (`cargo run --example hello -- --secure`) with the
// guide's own page, unchanged, served at `/`: the page cannot connect before a form login
// (the SockJS handshake is refused with 401), connects and greets after it, and is
// disconnected when the user logs out on another tab. The page's two CDN scripts are
// answered from their npm copies, as in guide_page.mjs.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ARTIFACTS, URL_UNDER_TEST, assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const installed = (path) => fileURLToPath(new URL(`./node_modules/${path}`, import.meta.url));
const CDN = {
  "https://cdn.jsdelivr.net/npm/sockjs-client@1.5.0/dist/sockjs.min.js": installed("sockjs-client-1.5.0/dist/sockjs.min.js"),
  "https://cdn.jsdelivr.net/npm/stompjs@2.3.3/lib/stomp.min.js": installed("stompjs/lib/stomp.min.js"),
};
const USER = "user";
const PASSWORD = process.env.STOMPEDE_TEST_PASSWORD ?? "password";

async function setup(context) {
  for (const [url, file] of Object.entries(CDN)) {
    const body = readFileSync(file);
    await context.route(url, (route) => route.fulfill({ status: 200, contentType: "text/javascript", body }));
  }
}

const url = (path) => new URL(path, URL_UNDER_TEST).href;

/** Clicks Connect; resolves with the status of the SockJS `/ws/info` request it makes. */
async function connectAttempt(page) {
  const info = page.waitForResponse((r) => new URL(r.url()).pathname === "/ws/info");
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  return (await info).status();
}

/** Waits for a console line of stompjs (it logs every frame and the loss of its socket). */
function consoleLine(page, pattern) {
  return page.waitForEvent("console", { predicate: (m) => pattern.test(m.text()) });
}

async function signIn(page, password) {
  await page.goto(url("/login"));
  await page.fill("#username", USER);
  await page.fill("#password", password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState();
}

const browser = await launch();
try {
  await check("the guide's page behind a form login: refused before, greets after, closed by logout", async () => {
    // 401s show as console errors ("Failed to load resource"): they are what is tested.
    const page = await openPage(browser, "/", { setup, allowErrors: /status of 401/ });
    assertEqual(await page.title(), "WebSocket with STOMP", "the guide's page is served at / to anyone");

    const lost = consoleLine(page, /Whoops! Lost connection/);
    assertEqual(await connectAttempt(page), 401, "the SockJS handshake without a login");
    await lost;
    assertEqual(await page.evaluate(() => window.stompClient.connected), false, "connected before login");

    await signIn(page, "not the password");
    assert(page.url().endsWith("/login?error"), `a bad password goes back to the form (${page.url()})`);
    assertEqual(await page.textContent("#notice"), "Bad credentials", "the form says why");

    await signIn(page, PASSWORD);
    assertEqual(page.url(), url("/"), "signing in leads to the page");
    await page.getByRole("button", { name: "Connect", exact: true }).click();
    await page.waitForFunction(() => window.stompClient !== null && window.stompClient.connected === true);
    await page.fill("#name", "Ada");
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await page.waitForFunction(() => [...document.querySelectorAll("#response p")].some((p) => p.textContent === "Hello, Ada!"));
    await page.screenshot({ path: `${ARTIFACTS}/secure.png`, fullPage: true });

    // Log out on another tab of the same browser: the page's session is closed by the server.
    const error = consoleLine(page, /message:logged out/);
    const closed = consoleLine(page, /Whoops! Lost connection/);
    const other = await page.context().newPage();
    await other.goto(url("/logout"));
    await other.getByRole("button", { name: "Log Out" }).click();
    await other.waitForURL(url("/login?logout"));
    assertEqual(await other.textContent("#notice"), "You have been signed out", "the logout notice");
    await error;
    await closed;
    assertEqual(await page.evaluate(() => window.stompClient.connected), false, "connected after logout");

    // And the cookie session is over: connecting again is refused.
    const refusedAgain = consoleLine(page, /Whoops! Lost connection/);
    assertEqual(await connectAttempt(page), 401, "the SockJS handshake after logout");
    await refusedAgain;
    assertEqual(page.problems, [], "page problems");
    await page.context().close();
  });
} finally {
  await browser.close();
}
finish();
