// The guide's own page (../shared/seed/index.html, served unchanged by the server under test at
// /guide.html) against the hello app, as a person who copied it would use it: Connect, type a
// name, Send, and `Hello, <name>!` appears on every connected page. Its two CDN scripts
// (sockjs-client 1.5.0, stompjs 2.3.3) are answered from the npm copies of those exact
// versions, for the page and for the SockJS iframe alike (the endpoint's default
// client_library_url is the same CDN address), so nothing leaves the machine. Run once with
// SockJS choosing its transport, then with each transport forced.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ARTIFACTS, URL_UNDER_TEST, assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const installed = (path) => fileURLToPath(new URL(`./node_modules/${path}`, import.meta.url));

/** The page's two CDN scripts, each answered with the npm copy of the same version. */
const CDN = {
  "https://cdn.jsdelivr.net/npm/sockjs-client@1.5.0/dist/sockjs.min.js": installed("sockjs-client-1.5.0/dist/sockjs.min.js"),
  "https://cdn.jsdelivr.net/npm/stompjs@2.3.3/lib/stomp.min.js": installed("stompjs/lib/stomp.min.js"),
};

const TRANSPORTS = [
  "websocket",
  "xhr-streaming",
  "xhr-polling",
  "eventsource",
  "htmlfile",
  "iframe-htmlfile",
  "iframe-xhr-polling",
  "iframe-eventsource",
];

/**
 * Makes the page's unchanged `new SockJS('/ws')` use only `transport`: the constructor that
 * sockjs.min.js installs on `window` is wrapped as it is installed. Only in the top frame: the
 * iframe transports load the library into their own page, which must stay as served.
 */
function forceTransport(transport) {
  if (window.top !== window) return;
  let wrapped;
  Object.defineProperty(window, "SockJS", {
    configurable: true,
    get: () => wrapped,
    set(SockJS) {
      wrapped = function (url, reserved, options) {
        return new SockJS(url, reserved, { ...(options ?? {}), transports: [transport] });
      };
      Object.assign(wrapped, SockJS);
      wrapped.prototype = SockJS.prototype;
    },
  });
}

async function setup(context, transport) {
  context.routed = [];
  for (const [url, file] of Object.entries(CDN)) {
    const body = readFileSync(file);
    await context.route(url, (route) => {
      context.routed.push(url);
      route.fulfill({ status: 200, contentType: "text/javascript", body });
    });
  }
  if (transport) await context.addInitScript(forceTransport, transport);
}

/** Clicks the guide's Connect button and waits until its stompClient is connected. */
async function connect(page) {
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  await page.waitForFunction(() => window.stompClient !== null && window.stompClient.connected === true);
}

async function send(page, name) {
  await page.fill("#name", name);
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

async function waitForGreeting(page, text) {
  await page.waitForFunction(
    (text) => [...document.querySelectorAll("#response p")].some((p) => p.textContent === text),
    text,
  );
}

const greetings = (page) => page.locator("#response p").allTextContents();

const browser = await launch();
try {
  for (const transport of [null, ...TRANSPORTS]) {
    const label = transport ?? "SockJS's own choice";
    await check(`the guide's page, unchanged, greets on two pages (${label})`, async () => {
      const open = () => openPage(browser, "/guide.html", { setup: (context) => setup(context, transport) });
      const first = await open();
      const second = await open();
      assertEqual(await first.title(), "WebSocket with STOMP", "the guide's page title");

      await connect(first);
      const used = await first.evaluate(() => window.stompClient.ws.transport);
      assertEqual(used, transport ?? "websocket", "the SockJS transport in use");
      // The first page's own greeting proves its subscription is in place.
      await send(first, `Ada ${label}`);
      await waitForGreeting(first, `Hello, Ada ${label}!`);

      await connect(second);
      await send(second, "Grace");
      await waitForGreeting(second, "Hello, Grace!");
      await waitForGreeting(first, "Hello, Grace!");
      await send(first, "Lin");
      await waitForGreeting(second, "Hello, Lin!");
      await waitForGreeting(first, "Hello, Lin!");
      assertEqual(await greetings(first), [`Hello, Ada ${label}!`, "Hello, Grace!", "Hello, Lin!"], "first page's greetings");
      assertEqual(await greetings(second), ["Hello, Grace!", "Hello, Lin!"], "second page's greetings");
      if (transport === null) await first.screenshot({ path: `${ARTIFACTS}/guide.png`, fullPage: true });

      for (const page of [first, second]) {
        await page.getByRole("button", { name: "Disconnect", exact: true }).click();
        await page.waitForFunction(() => window.stompClient.connected === false);
        const origin = new URL(URL_UNDER_TEST).origin;
        const wsOrigin = origin.replace(/^http/, "ws");
        const foreign = page.requests.filter((u) => !u.startsWith(origin) && !u.startsWith(wsOrigin) && !(u in CDN));
        assertEqual(foreign, [], "requests that were neither to the server nor one of the two CDN scripts");
        for (const url of Object.keys(CDN)) {
          assert(page.context().routed.includes(url), `${url} was loaded (from its npm copy)`);
        }
        if (transport?.startsWith("iframe-")) {
          const loads = page.context().routed.filter((u) => u.includes("sockjs-client")).length;
          assert(loads >= 2, `the iframe loaded sockjs-client 1.5.0 too (${loads} load(s))`);
        }
        assertEqual(page.problems, [], "page problems");
        await page.context().close();
      }
    });
  }
} finally {
  await browser.close();
}
finish();
