// The STOMP clients people use, from npm, in the browser against the hello app: each
// completes a round trip through /app/hello to /topic/greetings,
// a plain-text name in and a plain-text greeting out, as the guide has it.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { URL_UNDER_TEST, assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

/** A file of an installed package (read from disk: these packages' exports hide their bundles). */
const installed = (path) => fileURLToPath(new URL(`./node_modules/${path}`, import.meta.url));
const browser = await launch();
try {
  await check("@stomp/stompjs 7: round trip through /app/hello", async () => {
    const page = await openPage(browser);
    await page.addScriptTag({ path: installed("@stomp/stompjs/bundles/stomp.umd.min.js") });
    const result = await page.evaluate(() => new Promise((resolve, reject) => {
      const client = new StompJs.Client({ brokerURL: `ws://${location.host}/ws`, reconnectDelay: 0 });
      client.onConnect = (connected) => {
        client.subscribe("/topic/greetings", (message) => {
          resolve({ version: connected.headers.version, body: message.body, type: message.headers["content-type"] });
          client.deactivate();
        });
        client.publish({ destination: "/app/hello", body: "stompjs 7" });
      };
      client.onStompError = (frame) => reject(new Error(`ERROR ${frame.headers.message}`));
      client.onWebSocketClose = (event) => reject(new Error(`closed ${event.code}`));
      client.activate();
    }));
    assertEqual(result, { version: "1.2", body: "Hello, stompjs 7!", type: "text/plain;charset=UTF-8" }, "round trip");
    assertEqual(page.problems, [], "page problems");
  });

  await check("stompjs 2.3.3 (the Spring guide's client): round trip through /app/hello", async () => {
    const page = await openPage(browser);
    await page.addScriptTag({ path: installed("stompjs/lib/stomp.min.js") });
    const result = await page.evaluate(() => new Promise((resolve, reject) => {
      const client = Stomp.client(`ws://${location.host}/ws`);
      client.debug = null;
      client.connect({}, (connected) => {
        client.subscribe("/topic/greetings", (greeting) => {
          resolve({ version: connected.headers.version, content: greeting.body });
          client.disconnect();
        });
        client.send("/app/hello", {}, "stomp.js");
      }, (error) => reject(new Error(`connect failed: ${error.headers?.message ?? error}`)));
    }));
    // stomp.js 2.3.3 offers STOMP 1.0 and 1.1 only.
    assertEqual(result, { version: "1.1", content: "Hello, stomp.js!" }, "round trip");
    assertEqual(page.problems, [], "page problems");
  });
  await check("the guide's @stomp/stompjs snippet (docs/getting-started.md), as written but for the address, logs the ticks", async () => {
    const page = await openPage(browser);
    const doc = readFileSync(fileURLToPath(new URL("../../docs/getting-started.md", import.meta.url)), "utf8");
    const snippet = doc.split("```js\n")[1].split("```")[0];
    assert(snippet.includes("ws://127.0.0.1:8080/ws"), "the snippet names the address");
    const url = new URL("/ws", URL_UNDER_TEST).href.replace(/^http/, "ws");
    await page.addScriptTag({ path: installed("@stomp/stompjs/bundles/stomp.umd.min.js") });
    await page.addScriptTag({ content: snippet.replace("ws://127.0.0.1:8080/ws", url) });
    await page.waitForFunction(() => client.connected);
    const logged = page.waitForEvent("console", {
      predicate: (m) => m.type() === "log" && m.text().startsWith("tick "),
      timeout: 8000,
    });
    // A ticker publishes until the snippet's subscription (made once it connected) logs one.
    await page.evaluate((url) => {
      const ticker = new StompJs.Client({ brokerURL: url, reconnectDelay: 0 });
      let n = 0;
      ticker.onConnect = () => {
        window.tickTimer = setInterval(() => ticker.publish({ destination: "/topic/ticks", body: `tick ${n++}` }), 50);
      };
      window.ticker = ticker;
      ticker.activate();
    }, url);
    const message = await logged;
    await page.evaluate(() => { clearInterval(window.tickTimer); return window.ticker.deactivate(); });
    assert(/^tick \d+$/.test(message.text()), `logged: ${message.text()}`);
    assertEqual(page.problems, [], "page problems");
  });
} finally {
  await browser.close();
}
finish();
