// SockJS in the browser: sockjs-client 1.6 from npm carrying @stomp/stompjs 7 and the legacy
// stompjs 2.3.3, each transport forced in turn, through /app/hello; and the hello page itself
// over SockJS. The server serves sockjs.min.js (also to the iframe page) from node_modules.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const installed = (path) => fileURLToPath(new URL(`./node_modules/${path}`, import.meta.url));

// Transports sockjs-client offers a same-origin page in Chromium; the iframe ones load
// /ws/iframe.html, which loads the client from the configured URL.
const TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling", "eventsource", "htmlfile", "iframe-eventsource", "iframe-htmlfile", "iframe-xhr-polling"];

const browser = await launch();
try {
  const page = await openPage(browser);
  await page.addScriptTag({ path: installed("sockjs-client/dist/sockjs.min.js") });
  await page.addScriptTag({ path: installed("@stomp/stompjs/bundles/stomp.umd.min.js") });
  await page.addScriptTag({ path: installed("stompjs/lib/stomp.min.js") });

  for (const transport of TRANSPORTS) {
    await check(`@stomp/stompjs 7 over SockJS ${transport}: round trip through /app/hello`, async () => {
      const result = await page.evaluate((transport) => new Promise((resolve, reject) => {
        let sock;
        const client = new StompJs.Client({
          webSocketFactory: () => (sock = new SockJS("/ws", null, { transports: [transport] })),
          reconnectDelay: 0,
        });
        client.onConnect = () => {
          client.subscribe("/topic/greetings", (message) => {
            resolve({ transport: sock.transport, content: message.body });
            client.deactivate();
          });
          client.publish({ destination: "/app/hello", body: transport });
        };
        client.onStompError = (frame) => reject(new Error(`ERROR ${frame.headers.message}`));
        client.onWebSocketClose = (event) => reject(new Error(`closed ${event.code} ${event.reason}`));
        client.activate();
        setTimeout(() => reject(new Error("no round trip within 8 s")), 8000);
      }), transport);
      assertEqual(result, { transport, content: `Hello, ${transport}!` }, "round trip");
    });

    await check(`stompjs 2.3.3 over SockJS ${transport} (the Spring guide's code): round trip`, async () => {
      const result = await page.evaluate((transport) => new Promise((resolve, reject) => {
        const socket = new SockJS("/ws", null, { transports: [transport] });
        const stompClient = Stomp.over(socket);
        stompClient.debug = null;
        stompClient.connect({}, () => {
          stompClient.subscribe("/topic/greetings", (greeting) => {
            resolve({ transport: socket.transport, content: greeting.body });
            stompClient.disconnect();
          });
          stompClient.send("/app/hello", {}, `guide ${transport}`);
        }, (error) => reject(new Error(`connect failed: ${error.headers?.message ?? error}`)));
        setTimeout(() => reject(new Error("no round trip within 8 s")), 8000);
      }), transport);
      assertEqual(result, { transport, content: `Hello, guide ${transport}!` }, "round trip");
    });
  }

  await check("the snippet of docs/sockjs.md builds its three clients", async () => {
    const doc = readFileSync(fileURLToPath(new URL("../../docs/sockjs.md", import.meta.url)), "utf8");
    const snippet = doc.split("```js\n")[1].split("```")[0];
    // As written; only the import its comment names is added, and the clients are kept.
    const content = `import { Client } from "/stompede.js";\n${snippet}\nwindow.snippet = { client, legacy, ours };`;
    await page.addScriptTag({ type: "module", content });
    await page.waitForFunction(() => window.snippet !== undefined);
    const kinds = await page.evaluate(() => ({
      client: typeof window.snippet.client.activate,
      legacy: typeof window.snippet.legacy.connect,
      ours: typeof window.snippet.ours.activate,
    }));
    assertEqual(kinds, { client: "function", legacy: "function", ours: "function" }, "the three clients");
  });

  await check("no errors in the page", async () => {
    assertEqual(page.problems, [], "page problems");
  });

  for (const transport of ["", "xhr-streaming", "xhr-polling", "eventsource"]) {
    const label = transport || "default transports";
    await check(`the hello page through SockJS (${label})`, async () => {
      const hello = await openPage(browser, `/?sockjs=${transport}`);
      await hello.click("#connect");
      await hello.waitForSelector('#status[data-state="connected"]');
      const status = await hello.textContent("#status");
      assert(status.startsWith("Connected (SockJS "), `status: ${status}`);
      if (transport) assertEqual(status, `Connected (SockJS ${transport})`, "status");
      await hello.fill("#name", "Sock");
      await hello.click("#send");
      await hello.waitForSelector('#response p:has-text("Hello, Sock!")');
      await hello.click("#disconnect");
      await hello.waitForSelector('#status[data-state="inactive"]');
      assertEqual(hello.problems, [], "page problems");
      await hello.context().close();
    });
  }
} finally {
  await browser.close();
}
finish();
