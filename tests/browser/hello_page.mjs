// The hello page, as a person uses it: two pages connect, one sends a name, both show the
// greeting; disconnect works; the page loads nothing from anywhere but the server.

import { ARTIFACTS, URL_UNDER_TEST, assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const browser = await launch();
try {
  const first = await openPage(browser);
  const second = await openPage(browser);

  await check("the page is the guide's page", async () => {
    assertEqual(await first.title(), "Hello WebSocket", "title");
    for (const id of ["name", "connect", "disconnect", "send", "response"]) {
      assert(await first.locator(`#${id}`).count() === 1, `#${id} exists`);
    }
  });

  await check("both pages connect", async () => {
    for (const page of [first, second]) {
      await page.click("#connect");
      await page.waitForSelector('#status[data-state="connected"]');
      assertEqual(await page.textContent("#status"), "Connected", "status text");
      assert(await page.isDisabled("#connect"), "Connect is disabled while connected");
    }
  });

  await check("a name sent from one page greets on both", async () => {
    await first.fill("#name", "Ada");
    await first.click("#send");
    for (const page of [first, second]) {
      await page.waitForSelector('#response p:has-text("Hello, Ada!")');
      assertEqual(await page.locator("#response p").allTextContents(), ["Hello, Ada!"], "greetings");
    }
    await first.screenshot({ path: `${ARTIFACTS}/hello.png`, fullPage: true });
  });

  await check("pressing Enter in the name field sends too", async () => {
    await second.fill("#name", "Grace");
    await second.press("#name", "Enter");
    await first.waitForSelector('#response p:has-text("Hello, Grace!")');
  });

  await check("disconnect stops the greetings for that page only", async () => {
    await first.click("#disconnect");
    await first.waitForSelector('#status[data-state="inactive"]');
    assert(await first.isDisabled("#send"), "Send is disabled while disconnected");
    await second.fill("#name", "Bob");
    await second.click("#send");
    await second.waitForSelector('#response p:has-text("Hello, Bob!")');
    // The first page's DISCONNECT was acknowledged (receipt) before its status changed, so
    // the server had dropped its subscription before Bob's greeting was published.
    assertEqual(await first.locator("#response p").allTextContents(), ["Hello, Ada!", "Hello, Grace!"], "first page's greetings");
  });

  await check("reconnecting after a disconnect works", async () => {
    await first.click("#connect");
    await first.waitForSelector('#status[data-state="connected"]');
    await first.fill("#name", "Lin");
    await first.click("#send");
    await second.waitForSelector('#response p:has-text("Hello, Lin!")');
    await first.waitForSelector('#response p:has-text("Hello, Lin!")');
  });

  await check("the page works offline: every request went to the server", async () => {
    const origin = new URL(URL_UNDER_TEST).origin;
    const wsOrigin = origin.replace(/^http/, "ws");
    for (const page of [first, second]) {
      const foreign = page.requests.filter((u) => !u.startsWith(origin) && !u.startsWith(wsOrigin));
      assertEqual(foreign, [], "requests to other origins");
      assert(page.requests.some((u) => u.endsWith("/stompede.js")), "the page loaded /stompede.js");
    }
  });

  await check("no errors in the pages", async () => {
    assertEqual([...first.problems, ...second.problems], [], "page problems");
  });
} finally {
  await browser.close();
}
finish();
