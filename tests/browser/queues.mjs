// Point-to-point queues, acknowledgements and retained messages as @stomp/stompjs 7 sees them
// in Chromium: several clients in one page, against a server whose broker makes /queue/...
// point-to-point and retains /topic/retained/... (the broker example:
// `broker --point-to-point /queue --retain /topic/retained`).
//
// Checks: competing consumers with client-individual acks (messages split between them, each
// delivered and acked once, none lost); a NACKed message redelivered to the other consumer
// with `redelivered:true`; a consumer whose connection drops has its unacknowledged messages
// redelivered to another; prefetch-count honoured; a new subscriber first gets the retained
// message with `retained:true`.
//
// The page is /stompede.js, which every stompede server serves (the broker has no page at
// `/`): the clients need a page of the server itself, as Chromium keeps other pages off
// loopback. Every wait in the page has a deadline and waits on a condition (a message count, a
// RECEIPT), never on a sleep. A "barrier" is a SEND with a receipt: its RECEIPT comes after
// whatever the broker had queued for that connection, so a count checked after it is final.

import { fileURLToPath } from "node:url";
import { assert, assertEqual, check, finish, launch, openPage } from "./lib.mjs";

/** A file of an installed package (read from disk: these packages' exports hide their bundles). */
const installed = (path) => fileURLToPath(new URL(`./node_modules/${path}`, import.meta.url));
/** Destinations get this suffix, so runs against one server do not meet. */
const RUN = Math.random().toString(16).slice(2, 10);

/** Installed in the page as `window.q`: STOMP peers that record what they receive, and waits
 * with deadlines on what they recorded. */
function installHelpers(run) {
  const DEADLINE = 10000;
  const waiters = new Set();
  const changed = () => { for (const test of [...waiters]) test(); };

  /** Resolves once `predicate()` holds; rejects after DEADLINE or when a peer in `peers` got
   * an ERROR or lost its connection. */
  const waitFor = (predicate, what, peers = []) => new Promise((resolve, reject) => {
    const done = () => { clearTimeout(timer); waiters.delete(test); };
    const test = () => {
      const trouble = peers.map((p) => p.trouble()).find(Boolean);
      if (trouble) { done(); reject(new Error(`${trouble} (waiting for ${what})`)); return; }
      if (predicate()) { done(); resolve(); }
    };
    const timer = setTimeout(() => { waiters.delete(test); reject(new Error(`timed out after ${DEADLINE} ms waiting for ${what}`)); }, DEADLINE);
    waiters.add(test);
    test();
  });

  let serial = 0;
  const unique = (what) => `${what}-${++serial}`;

  /** A connected @stomp/stompjs 7 client that records MESSAGEs, RECEIPTs and ERRORs. */
  async function connect(name) {
    const peer = { name, messages: [], receipts: new Set(), errors: [], closed: false, leaving: false };
    const client = new StompJs.Client({
      brokerURL: `ws://${location.host}/ws`,
      reconnectDelay: 0,
      heartbeatIncoming: 0,
      heartbeatOutgoing: 0,
    });
    peer.client = client;
    client.onConnect = (frame) => { peer.version = frame.headers.version; changed(); };
    client.onStompError = (frame) => { peer.errors.push(`${frame.headers.message}: ${frame.body}`); changed(); };
    client.onWebSocketClose = () => { peer.closed = true; changed(); };
    client.onUnhandledReceipt = (frame) => { peer.receipts.add(frame.headers["receipt-id"]); changed(); };
    peer.trouble = () => {
      if (peer.errors.length) return `${name} got ERROR ${peer.errors[0]}`;
      if (peer.closed && !peer.leaving) return `${name}: the WebSocket closed`;
      return null;
    };
    peer.awaitReceipt = (id) => waitFor(() => peer.receipts.has(id), `${name}'s RECEIPT ${id}`, [peer]);
    /** SUBSCRIBE with a receipt, awaited; `onMessage(peer, message)` runs as each arrives. */
    peer.subscribe = async (destination, id, headers = {}, onMessage = null) => {
      const receipt = unique(`${id}-subscribed`);
      client.subscribe(destination, (message) => {
        peer.messages.push(message);
        changed();
        if (onMessage) onMessage(peer, message);
      }, { ...headers, id, receipt });
      await peer.awaitReceipt(receipt);
    };
    peer.unsubscribe = async (id) => {
      const receipt = unique(`${id}-unsubscribed`);
      client.unsubscribe(id, { receipt });
      await peer.awaitReceipt(receipt);
    };
    /** A SEND whose RECEIPT is awaited: the broker has routed the message. */
    peer.send = async (destination, body, headers = {}) => {
      const receipt = unique("send");
      client.publish({ destination, body, headers: { ...headers, receipt } });
      await peer.awaitReceipt(receipt);
    };
    peer.barrier = () => peer.send(`/topic/js-barrier-${run}`, "");
    peer.ack = async (message) => { const receipt = unique("ack"); message.ack({ receipt }); await peer.awaitReceipt(receipt); };
    peer.nack = async (message) => { const receipt = unique("nack"); message.nack({ receipt }); await peer.awaitReceipt(receipt); };
    peer.bodies = (sub) => peer.messages.filter((m) => !sub || m.headers.subscription === sub).map((m) => m.body);
    /** DISCONNECT (awaiting its RECEIPT), or with `abruptly` just close the WebSocket. */
    peer.leave = async ({ abruptly = false } = {}) => {
      peer.leaving = true;
      if (abruptly) client.forceDisconnect();
      else await client.deactivate();
    };
    client.activate();
    await waitFor(() => peer.version, `${name}'s CONNECTED`, [peer]);
    if (peer.version !== "1.2") throw new Error(`${name} connected with STOMP ${peer.version}`);
    return peer;
  }

  /** What is left in `destination` (unacknowledged messages return to the front of the queue
   * when their consumer leaves), or null when nothing is: a sentinel sent now must be the
   * first thing a new consumer gets, and the only one. */
  async function leftover(destination, producer) {
    await producer.send(destination, "sentinel");
    const checker = await connect("checker");
    try {
      await checker.subscribe(destination, "check", { ack: "client-individual" });
      await waitFor(() => checker.messages.length, `the sentinel from ${destination}`, [checker]);
      await checker.ack(checker.messages[0]);
      await checker.barrier();
      const first = checker.messages[0];
      if (first.body !== "sentinel" || first.headers.redelivered) {
        return `${destination} still held ${JSON.stringify(first.body)} (${JSON.stringify(first.headers)}) before the sentinel`;
      }
      if (checker.messages.length !== 1) return `after the sentinel came ${checker.bodies().slice(1)}`;
      return null;
    } catch (e) {
      return e.message;
    } finally {
      await checker.leave();
    }
  }

  window.q = { run, waitFor, connect, leftover };
}

const browser = await launch();

/** A page of the server with stompjs 7 and the helpers; `body(page)` runs the check in it. */
async function inPage(body) {
  // The browser asks the server for /favicon.ico, which it does not have (a 404).
  const page = await openPage(browser, "/stompede.js", { allowErrors: /status of 404/ });
  try {
    await page.addScriptTag({ path: installed("@stomp/stompjs/bundles/stomp.umd.min.js") });
    await page.evaluate(installHelpers, RUN);
    await body(page);
    assertEqual(page.problems, [], "page problems");
  } finally {
    await page.context().close();
  }
}

try {
  await check("competing consumers with client-individual acks: 100 messages split, each acked once, none lost", () => inPage(async (page) => {
    const result = await page.evaluate(async () => {
      const destination = `/queue/js-work-${q.run}`;
      const n = 100;
      const acked = [];
      const ackAtOnce = (peer, message) => { acked.push(message.headers.ack); message.ack(); };
      const workers = [await q.connect("worker-1"), await q.connect("worker-2")];
      const producer = await q.connect("producer");
      try {
        for (const [i, w] of workers.entries()) {
          await w.subscribe(destination, `work-${i + 1}`, { ack: "client-individual", "prefetch-count": "10" }, ackAtOnce);
        }
        for (let i = 0; i < n; i++) producer.client.publish({ destination, body: `job-${i}` });
        await producer.barrier();
        await q.waitFor(() => workers[0].messages.length + workers[1].messages.length >= n, `${n} messages`, workers);
        for (const w of workers) await w.barrier(); // its ACKs are settled, nothing more was on its way
        const got = workers.flatMap((w) => w.messages);
        const badAck = got.find((m) => m.headers.ack !== `${m.headers.subscription}-${m.headers["message-id"]}`);
        for (const [i, w] of workers.entries()) await w.unsubscribe(`work-${i + 1}`);
        for (const w of workers) await w.barrier();
        return {
          leftover: await q.leftover(destination, producer),
          deliveries: got.length,
          distinct: new Set(got.map((m) => m.body)).size,
          allSent: Array.from({ length: n }, (_, i) => `job-${i}`).every((b) => got.some((m) => m.body === b)),
          split: workers.map((w) => w.messages.length),
          redelivered: got.filter((m) => m.headers.redelivered).length,
          badAck: badAck ? badAck.headers : null,
          acks: acked.length,
          distinctAcks: new Set(acked).size,
          afterUnsubscribe: workers[0].messages.length + workers[1].messages.length,
        };
      } finally {
        for (const p of [...workers, producer]) await p.leave();
      }
    });
    const { split, ...rest } = result;
    assertEqual(rest, {
      leftover: null, deliveries: 100, distinct: 100, allSent: true, redelivered: 0, badAck: null, acks: 100, distinctAcks: 100, afterUnsubscribe: 100,
    }, "competing consumers");
    assert(split[0] > 0 && split[1] > 0, `both consumers get some: split ${split}`);
    console.log(`  split ${split[0]}/${split[1]}`);
  }));

  await check("a NACKed message is redelivered to the other consumer with redelivered:true", () => inPage(async (page) => {
    const result = await page.evaluate(async () => {
      const destination = `/queue/js-nack-${q.run}`;
      const [a, b, producer] = [await q.connect("a"), await q.connect("b"), await q.connect("producer")];
      try {
        await a.subscribe(destination, "a", { ack: "client-individual" });
        await b.subscribe(destination, "b", { ack: "client-individual" });
        await producer.send(destination, "m-0");
        await producer.send(destination, "m-1");
        await q.waitFor(() => a.messages.length + b.messages.length >= 2, "2 messages", [a, b]);
        await a.barrier();
        await b.barrier();
        const first = { a: a.bodies(), b: b.bodies() };
        if (a.messages.length !== 1 || b.messages.length !== 1) return { first };
        await a.nack(a.messages[0]);
        await b.nack(b.messages[0]);
        await q.waitFor(() => a.messages.length >= 2 && b.messages.length >= 2, "each NACKed message at the other", [a, b]);
        await a.barrier();
        await b.barrier();
        const again = (p) => ({ body: p.messages[1]?.body, redelivered: p.messages[1]?.headers.redelivered, count: p.messages.length });
        const outcome = { first, a: again(a), b: again(b) };
        for (const p of [a, b]) { await p.ack(p.messages[1]); await p.unsubscribe(p.name); }
        return { ...outcome, leftover: await q.leftover(destination, producer) };
      } finally {
        for (const p of [a, b, producer]) await p.leave();
      }
    });
    assertEqual(result.first.a.length + result.first.b.length, 2, `one each first (${JSON.stringify(result.first)})`);
    assertEqual(result.first.a.length, 1, `round robin gave a ${result.first.a} and b ${result.first.b}`);
    assertEqual(result.a, { body: result.first.b[0], redelivered: "true", count: 2 }, "a after the NACKs");
    assertEqual(result.b, { body: result.first.a[0], redelivered: "true", count: 2 }, "b after the NACKs");
    assertEqual(result.leftover, null, "what the queue still held");
  }));

  await check("a consumer's connection drops: its unacknowledged messages go to another, redelivered", () => inPage(async (page) => {
    const result = await page.evaluate(async () => {
      const destination = `/queue/js-drop-${q.run}`;
      const [leaver, stayer, producer] = [await q.connect("leaver"), await q.connect("stayer"), await q.connect("producer")];
      try {
        await leaver.subscribe(destination, "leaver", { ack: "client-individual" });
        for (const body of ["held-0", "held-1", "held-2"]) await producer.send(destination, body);
        await q.waitFor(() => leaver.messages.length >= 3, "3 messages at the first consumer", [leaver]);
        await stayer.subscribe(destination, "stayer", { ack: "client-individual" });
        await stayer.barrier();
        const beforeDrop = stayer.bodies();
        await leaver.leave({ abruptly: true }); // the WebSocket closes, no DISCONNECT
        await q.waitFor(() => stayer.messages.length >= 3, "the 3 messages at the second consumer", [stayer]);
        await stayer.barrier();
        const outcome = { beforeDrop, bodies: stayer.bodies(), marks: stayer.messages.map((m) => m.headers.redelivered) };
        for (const m of stayer.messages) await stayer.ack(m);
        await stayer.unsubscribe("stayer");
        return { ...outcome, leftover: await q.leftover(destination, producer) };
      } finally {
        for (const p of [stayer, producer]) await p.leave();
      }
    });
    assertEqual(result, {
      beforeDrop: [], bodies: ["held-0", "held-1", "held-2"], marks: ["true", "true", "true"], leftover: null,
    }, "redelivery after the drop");
  }));

  await check("prefetch-count:2 holds two unacknowledged messages until an ACK", () => inPage(async (page) => {
    const result = await page.evaluate(async () => {
      const destination = `/queue/js-prefetch-${q.run}`;
      const [consumer, producer] = [await q.connect("prefetcher"), await q.connect("producer")];
      try {
        await consumer.subscribe(destination, "pf", { ack: "client-individual", "prefetch-count": "2" });
        for (let i = 0; i < 5; i++) await producer.send(destination, `p-${i}`);
        await q.waitFor(() => consumer.messages.length >= 2, "2 messages", [consumer]);
        await consumer.barrier();
        const held = consumer.bodies();
        await consumer.ack(consumer.messages[0]);
        await q.waitFor(() => consumer.messages.length >= 3, "a third message after an ACK", [consumer]);
        await consumer.barrier();
        const afterOneAck = consumer.bodies();
        for (const m of consumer.messages.slice(1)) await consumer.ack(m);
        await q.waitFor(() => consumer.messages.length >= 5, "the rest after ACKs", [consumer]);
        for (const m of consumer.messages.slice(3)) await consumer.ack(m);
        await consumer.barrier();
        const all = consumer.bodies();
        await consumer.unsubscribe("pf");
        return { held, afterOneAck, all, leftover: await q.leftover(destination, producer) };
      } finally {
        for (const p of [consumer, producer]) await p.leave();
      }
    });
    assertEqual(result, {
      held: ["p-0", "p-1"], afterOneAck: ["p-0", "p-1", "p-2"], all: ["p-0", "p-1", "p-2", "p-3", "p-4"], leftover: null,
    }, "prefetch");
  }));

  await check("a new subscriber first gets the retained message, with retained:true", () => inPage(async (page) => {
    const result = await page.evaluate(async () => {
      const destination = `/topic/retained/js-${q.run}`;
      const [producer, subscriber] = [await q.connect("producer"), await q.connect("subscriber")];
      try {
        await producer.send(destination, "old", { "x-kind": "state" });
        await producer.send(destination, "latest", { "x-kind": "state" });
        await subscriber.subscribe(destination, "r");
        await q.waitFor(() => subscriber.messages.length >= 1, "the retained message", [subscriber]);
        await subscriber.barrier();
        const first = subscriber.messages.map((m) => ({ body: m.body, retained: m.headers.retained, kind: m.headers["x-kind"] }));
        await producer.send(destination, "live");
        await q.waitFor(() => subscriber.messages.length >= 2, "a live message", [subscriber]);
        const live = subscriber.messages[1];
        return { first, live: { body: live.body, retained: live.headers.retained ?? null } };
      } finally {
        for (const p of [producer, subscriber]) await p.leave();
      }
    });
    assertEqual(result, {
      first: [{ body: "latest", retained: "true", kind: "state" }],
      live: { body: "live", retained: null },
    }, "retained message");
  }));
} finally {
  await browser.close();
}
finish();
