// stompede.js, the browser client every stompede server serves, checked in the browser
// against a hello server whose heart-beats are 100 ms (see tests/tests/browser.rs).

import { assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

const browser = await launch();
try {
  // The ERROR frames the reconnect check provokes are logged by nobody but the client.
  const page = await openPage(browser, "/", { allowErrors: /WebSocket/ });

  /** Runs `body` in the page with the module imported as `stompede`. */
  const inPage = (body, arg) => page.evaluate(
    async ([source, arg]) => {
      const stompede = await import("/stompede.js");
      const waitFor = async (condition, what, ms = 8000) => {
        const deadline = Date.now() + ms;
        while (!condition()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      const connected = async (options = {}) => {
        const client = new stompede.Client({ reconnectDelay: 50, ...options });
        client.activate();
        await waitFor(() => client.connected, "CONNECTED");
        return client;
      };
      return await new Function("stompede", "waitFor", "connected", "arg", `return (async () => { ${source} })();`)(stompede, waitFor, connected, arg);
    },
    [body, arg],
  );

  await check("the decoder reads frames split across and batched within messages", async () => {
    const out = await inPage(`
      const d = new stompede.FrameDecoder();
      const bytes = new TextEncoder().encode("\\nMESSAGE\\nx:a\\\\cb\\n\\nhello\\0\\r\\nRECEIPT\\nreceipt-id:7\\n\\n\\0MESSAGE\\ncontent-length:3\\n\\na\\0b\\0");
      const seen = [];
      for (let i = 0; i < bytes.length; i += 5) {
        for (const f of d.push(bytes.subarray(i, i + 5))) seen.push(f === null ? "beat" : [f.command, f.headers, f.body]);
      }
      return seen;
    `);
    assertEqual(out, [
      "beat",
      ["MESSAGE", { x: "a:b" }, "hello"],
      "beat",
      ["RECEIPT", { "receipt-id": "7" }, ""],
      ["MESSAGE", { "content-length": "3" }, "a\u0000b"],
    ], "decoded");
  });

  await check("the decoder refuses bytes that are not STOMP", async () => {
    const message = await inPage(`
      try { new stompede.FrameDecoder().push(new TextEncoder().encode("MESSAGE\\nno colon\\n\\n\\0")); return "accepted"; }
      catch (e) { return e.message; }
    `);
    assertEqual(message, 'header line "no colon" has no \':\'', "error");
  });

  await check("STOMP 1.2 session, plain-text publish with a receipt through the handler", async () => {
    const out = await inPage(`
      const client = await connected();
      const got = [];
      client.subscribe("/topic/greetings", (m) => got.push([m.body, m.headers["content-type"]]));
      await client.publish("/app/hello", "module", { receipt: true });
      await waitFor(() => got.length === 1, "the greeting");
      const version = client.connectedFrame.headers.version;
      await client.deactivate();
      return { version, got, state: client.state };
    `);
    assertEqual(out, { version: "1.2", got: [["Hello, module!", "text/plain;charset=UTF-8"]], state: "inactive" }, "session");
  });

  await check("objects are published as JSON and read back with json()", async () => {
    const out = await inPage(`
      const client = await connected();
      const got = [];
      client.subscribe("/topic/json", (m) => got.push([m.json(), m.headers["content-type"]]));
      await client.publish("/topic/warm-up", "", { receipt: true });
      await client.publish("/topic/json", { name: "module", n: [1, 2] }, { receipt: true });
      await waitFor(() => got.length === 1, "the JSON message");
      await client.deactivate();
      return got;
    `);
    assertEqual(out, [[{ name: "module", n: [1, 2] }, "application/json"]], "JSON message");
  });

  await check("binary bodies and headers needing escapes travel intact", async () => {
    const out = await inPage(`
      const client = await connected();
      let message = null;
      client.subscribe("/topic/bytes", (m) => { message = m; });
      await client.publish("/topic/warm-up", "", { receipt: true });
      await client.publish("/topic/bytes", new Uint8Array([0, 1, 2, 255]), { headers: { "x-note": "a:b\\nc\\\\d" } });
      await waitFor(() => message !== null, "the message");
      await client.deactivate();
      return { bytes: Array.from(message.binaryBody), note: message.headers["x-note"] };
    `);
    assertEqual(out, { bytes: [0, 1, 2, 255], note: "a:b\nc\\d" }, "message");
  });

  await check("heart-beats flow both ways and keep an idle session open", async () => {
    const out = await inPage(`
      const client = await connected({ heartbeat: { outgoing: 100, incoming: 100 } });
      // The server (100 ms heart-beats) closes a session silent for longer than twice that,
      // so ten beats each way on one connection prove the client sends them.
      await waitFor(() => client.stats.heartbeatsReceived >= 10 && client.stats.heartbeatsSent >= 10, "ten heart-beats each way");
      const result = { connects: client.stats.connects, connected: client.connected, header: client.connectedFrame.headers["heart-beat"] };
      await client.deactivate();
      return result;
    `);
    assertEqual(out, { connects: 1, connected: true, header: "100,100" }, "session");
  });

  await check("after the server closes the connection the client reconnects and re-subscribes", async () => {
    const out = await inPage(`
      const client = await connected();
      const greetings = [];
      let error = null;
      client.onStompError = (frame) => { error = frame.headers.message; };
      client.subscribe("/topic/greetings", (m) => greetings.push(m.body));
      // A payload the handler cannot take (not UTF-8 text): the server sends ERROR and closes.
      client.publish("/app/hello", new Uint8Array([0xff, 0xfe]));
      await waitFor(() => client.stats.connects === 2 && client.connected, "the reconnect");
      await client.publish("/app/hello", "again", { receipt: true });
      await waitFor(() => greetings.length === 1, "the greeting after the reconnect");
      await client.deactivate();
      return { greetings, error };
    `);
    assertEqual(out.greetings, ["Hello, again!"], "greetings");
    assert(out.error.includes("hello::greeting"), `the ERROR names the handler: ${out.error}`);
  });

  await check("unsubscribe stops delivery; publish while disconnected throws", async () => {
    const out = await inPage(`
      const client = await connected();
      const a = [], b = [];
      const subA = client.subscribe("/topic/a", (m) => a.push(m.body));
      client.subscribe("/topic/b", (m) => b.push(m.body));
      await client.publish("/topic/a", "1", { receipt: true });
      subA.unsubscribe();
      await client.publish("/topic/a", "2", { receipt: true });
      await client.publish("/topic/b", "done", { receipt: true });
      await waitFor(() => b.length === 1 && a.length >= 1, "the messages");
      await client.deactivate();
      let thrown = null;
      try { client.publish("/topic/a", "3"); } catch (e) { thrown = e.message; }
      return { a, b, thrown };
    `);
    assertEqual(out, { a: ["1"], b: ["done"], thrown: "cannot publish to /topic/a: not connected" }, "delivery");
  });

  await check("no unexpected errors in the page", async () => {
    assertEqual(page.problems, [], "page problems");
  });
  await check("the page of docs/browser-client.md, served as written, logs the greeting", async () => {
    // A page without an icon link: Chromium asks for /favicon.ico, which is not served (404).
    const page = await openPage(browser, "/snippet.html", { allowErrors: /status of 404/ });
    const greeting = await page.waitForEvent("console", {
      predicate: (m) => m.type() === "log",
      timeout: 8000,
    });
    assertEqual(greeting.text(), "Hello, Ada!", "what the snippet logged");
    assertEqual(page.problems, [], "page problems");
    const paths = page.requests.map((u) => new URL(u).pathname).filter((p) => p !== "/favicon.ico");
    // (The WebSocket is not a request in Playwright's sense; the greeting proves it.)
    assertEqual([...new Set(paths)].sort(), ["/snippet.html", "/stompede.js"], "what the page loaded");
    await page.context().close();
  });
} finally {
  await browser.close();
}
finish();
