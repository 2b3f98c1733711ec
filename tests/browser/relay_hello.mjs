// The hello app on two nodes that relay to RabbitMQ: a page on each node connects, a name
// sent from either page greets on both (the reply of one node's handler reaches the other
// node's subscriber through the broker).

import { URL_UNDER_TEST, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const SECOND = process.argv[3];
if (!SECOND) {
  console.error("usage: node relay_hello.mjs http://NODE_A/ http://NODE_B/");
  process.exit(2);
}

const browser = await launch();
try {
  const first = await openPage(browser);
  const second = await openPage(browser, new URL("/", SECOND).href);

  await check("a page on each node connects", async () => {
    for (const page of [first, second]) {
      await page.click("#connect");
      await page.waitForSelector('#status[data-state="connected"]');
    }
    assertEqual(new URL(first.url()).port === new URL(second.url()).port, false, "two nodes");
  });

  await check("a greeting from either node reaches both pages", async () => {
    await first.fill("#name", "Ada");
    await first.click("#send");
    for (const page of [first, second]) await page.waitForSelector('#response p:has-text("Hello, Ada!")');
    await second.fill("#name", "Grace");
    await second.click("#send");
    for (const page of [first, second]) {
      await page.waitForSelector('#response p:has-text("Hello, Grace!")');
      assertEqual(await page.locator("#response p").allTextContents(), ["Hello, Ada!", "Hello, Grace!"], "greetings");
      assertEqual(page.problems, [], "page problems");
    }
  });
} finally {
  await browser.close();
}
finish();
