// stompede.js: a small STOMP 1.2 client over WebSocket for browsers, served by every stompede
// server at /stompede.js. An ES module with no dependencies.
//
//   import { Client } from "/stompede.js";
//
//   const client = new Client();                  // ws(s)://<this page's host>/ws
//   client.onConnect = () => {
//     client.subscribe("/topic/greetings", (message) => console.log(message.json()));
//     client.publish("/app/hello", { name: "Ada" }); // objects are sent as JSON
//   };
//   client.activate();
//
// What it does for you: negotiates STOMP 1.2 (WebSocket subprotocol v12.stomp), sends and
// checks heart-beats, reconnects with a growing delay when the connection drops and
// re-subscribes what you subscribed, escapes and unescapes headers, and reads frames split
// across or batched within WebSocket messages. See docs/browser-client.md for the reference.

const EOL = 10;
// WebSocket (and SockJS) ready states.
const OPEN = 1;
const CLOSED = 3;
const NUL = 0;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Connection states, as reported to `onStateChange`. */
export const State = Object.freeze({
  INACTIVE: "inactive",
  CONNECTING: "connecting",
  CONNECTED: "connected",
  DISCONNECTING: "disconnecting",
  WAITING_TO_RECONNECT: "waiting-to-reconnect",
});

/** A STOMP frame received from the server. */
export class Frame {
  /**
   * @param {string} command
   * @param {Object<string,string>} headers (the first of repeated headers wins, as STOMP 1.2 says)
   * @param {Uint8Array} binaryBody
   */
  constructor(command, headers, binaryBody) {
    this.command = command;
    this.headers = headers;
    this.binaryBody = binaryBody;
    this._body = undefined;
  }

  /** The body as UTF-8 text. */
  get body() {
    if (this._body === undefined) this._body = decoder.decode(this.binaryBody);
    return this._body;
  }

  /** The body parsed as JSON; throws a SyntaxError if it is not JSON. */
  json() {
    return JSON.parse(this.body);
  }
}

/** A MESSAGE frame, with `ack()` and `nack()` for subscriptions in a client ack mode. */
export class Message extends Frame {
  constructor(frame, client) {
    super(frame.command, frame.headers, frame.binaryBody);
    this._client = client;
  }

  /** Acknowledges the message (subscriptions with `ack: "client"` or `"client-individual"`). */
  ack(headers = {}) {
    this._client._sendFrame("ACK", { id: this.headers.ack, ...headers });
  }

  /** Refuses the message (subscriptions with `ack: "client"` or `"client-individual"`). */
  nack(headers = {}) {
    this._client._sendFrame("NACK", { id: this.headers.ack, ...headers });
  }
}

/** A subscription; `unsubscribe()` ends it (and it is not renewed on reconnect). */
export class Subscription {
  constructor(client, id, destination, callback, headers) {
    this.id = id;
    this.destination = destination;
    this._client = client;
    this._callback = callback;
    this._headers = headers;
  }

  /** Ends the subscription. */
  unsubscribe() {
    this._client._unsubscribe(this);
  }
}

/**
 * Decodes STOMP frames from a stream of bytes: frames may be split across WebSocket
 * messages or several may share one; EOLs between frames are heart-beats.
 */
export class FrameDecoder {
  /** @param {number} maxFrameSize refuse frames larger than this (bytes) */
  constructor(maxFrameSize = 16 * 1024 * 1024) {
    this.maxFrameSize = maxFrameSize;
    this._buffer = new Uint8Array(0);
  }

  /**
   * Adds `bytes` and returns what they complete: frames, and `null` for each heart-beat.
   * Throws an Error for bytes that are not STOMP.
   * @param {Uint8Array} bytes
   * @returns {Array<Frame|null>}
   */
  push(bytes) {
    const joined = new Uint8Array(this._buffer.length + bytes.length);
    joined.set(this._buffer);
    joined.set(bytes, this._buffer.length);
    const out = [];
    let at = 0;
    for (;;) {
      // Heart-beats: EOLs (LF or CRLF) between frames.
      while (at < joined.length && (joined[at] === EOL || (joined[at] === 13 && joined[at + 1] === EOL))) {
        at += joined[at] === 13 ? 2 : 1;
        out.push(null);
      }
      const frame = this._frameAt(joined, at);
      if (frame === undefined) break;
      out.push(frame.frame);
      at = frame.end;
    }
    this._buffer = joined.slice(at);
    if (this._buffer.length > this.maxFrameSize) {
      throw new Error(`a frame larger than ${this.maxFrameSize} bytes arrived`);
    }
    return out;
  }

  /** The complete frame starting at `start`, or undefined if more bytes are needed. */
  _frameAt(bytes, start) {
    // The header block ends at the first empty line.
    let lineStart = start;
    const lines = [];
    for (;;) {
      const eol = bytes.indexOf(EOL, lineStart);
      if (eol < 0) return undefined;
      let lineEnd = eol;
      if (lineEnd > lineStart && bytes[lineEnd - 1] === 13) lineEnd -= 1;
      if (lineEnd === lineStart) {
        lineStart = eol + 1;
        break;
      }
      lines.push(decoder.decode(bytes.subarray(lineStart, lineEnd)));
      lineStart = eol + 1;
    }
    const command = lines.shift();
    if (command === undefined) throw new Error("a frame without a command arrived");
    const escaped = command !== "CONNECTED" && command !== "CONNECT";
    const headers = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon < 0) throw new Error(`header line ${JSON.stringify(line)} has no ':'`);
      const name = escaped ? unescape(line.slice(0, colon)) : line.slice(0, colon);
      const value = escaped ? unescape(line.slice(colon + 1)) : line.slice(colon + 1);
      if (!(name in headers)) headers[name] = value;
    }
    let bodyEnd;
    if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (!Number.isInteger(length) || length < 0) {
        throw new Error(`content-length ${JSON.stringify(headers["content-length"])} is not a length`);
      }
      bodyEnd = lineStart + length;
      if (bodyEnd >= bytes.length) return undefined;
      if (bytes[bodyEnd] !== NUL) throw new Error(`${command} frame: no NUL after content-length bytes`);
    } else {
      bodyEnd = bytes.indexOf(NUL, lineStart);
      if (bodyEnd < 0) return undefined;
    }
    const body = bytes.slice(lineStart, bodyEnd);
    return { frame: new Frame(command, headers, body), end: bodyEnd + 1 };
  }
}

function unescape(text) {
  return text.replace(/\\(.)/g, (_, c) => {
    switch (c) {
      case "n": return "\n";
      case "r": return "\r";
      case "c": return ":";
      case "\\": return "\\";
      default: throw new Error(`header ${JSON.stringify(text)} has the undefined escape \\${c}`);
    }
  });
}

function escape(text) {
  return String(text).replace(/[\\\n\r:]/g, (c) => ({ "\\": "\\\\", "\n": "\\n", "\r": "\\r", ":": "\\c" })[c]);
}

/**
 * Encodes one frame. A string body is sent as a text WebSocket message, bytes as binary.
 * @returns {string|Uint8Array}
 */
export function encodeFrame(command, headers, body) {
  const escaped = command !== "CONNECT";
  let head = command + "\n";
  const bytes = typeof body === "string" ? null : body;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || value === null) continue;
    head += (escaped ? escape(name) : name) + ":" + (escaped ? escape(value) : value) + "\n";
  }
  if (bytes) {
    head += `content-length:${bytes.length}\n\n`;
    const h = encoder.encode(head);
    const out = new Uint8Array(h.length + bytes.length + 1);
    out.set(h);
    out.set(bytes, h.length);
    return out;
  }
  const text = body ?? "";
  if (text.length > 0) head += `content-length:${encoder.encode(text).length}\n`;
  return head + "\n" + text + "\0";
}

/** The default endpoint: this page's host, `/ws`, over wss when the page is https. */
function defaultUrl() {
  const location = globalThis.location;
  if (!location) throw new Error("no url given and no page location to derive one from");
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
}

/**
 * A STOMP client. Set the `on*` callbacks, then `activate()`.
 *
 * Options (all optional):
 * - `url`: the WebSocket endpoint (default: this page's host, path `/ws`);
 * - `connectHeaders`: extra CONNECT headers (`login`, `passcode`, ...);
 * - `heartbeat`: `{ outgoing, incoming }` in ms (default 10000 each; 0 turns one off);
 * - `reconnectDelay`: ms before the first reconnect attempt (default 1000; 0 never reconnects),
 *   doubled after each failed attempt up to `maxReconnectDelay` (default 30000);
 * - `maxFrameSize`: the largest frame accepted from the server (default 16 MiB);
 * - `webSocketFactory`: a function returning a WebSocket-like object to use instead of
 *   `new WebSocket(url, ["v12.stomp"])`, e.g. `() => new SockJS("/ws")` for the SockJS
 *   fallback (SockJS carries text only: binary bodies are not supported over it);
 * - `debug`: a function called with a line of text for each event.
 */
export class Client {
  constructor(options = {}) {
    this.url = options.url ?? defaultUrl();
    this.connectHeaders = options.connectHeaders ?? {};
    this.heartbeat = { outgoing: 10000, incoming: 10000, ...(options.heartbeat ?? {}) };
    this.reconnectDelay = options.reconnectDelay ?? 1000;
    this.maxReconnectDelay = options.maxReconnectDelay ?? 30000;
    this.maxFrameSize = options.maxFrameSize ?? 16 * 1024 * 1024;
    this.webSocketFactory = options.webSocketFactory ?? null;
    this.debug = options.debug ?? (() => {});

    /** Called with the CONNECTED frame on each (re)connection. */
    this.onConnect = () => {};
    /** Called when a connection ends, with the WebSocket CloseEvent. */
    this.onDisconnect = () => {};
    /** Called with an ERROR frame; the server closes the connection after it. */
    this.onStompError = () => {};
    /** Called with each new State. */
    this.onStateChange = () => {};

    /** The server's CONNECTED frame, while connected. */
    this.connectedFrame = null;
    /** Counters, for monitoring and tests. */
    this.stats = { connects: 0, heartbeatsReceived: 0, heartbeatsSent: 0, framesReceived: 0 };

    this.state = State.INACTIVE;
    this._ws = null;
    this._subscriptions = new Map();
    this._nextId = 0;
    this._receipts = new Map();
    this._timers = [];
    this._reconnectTimer = null;
    this._attempt = 0;
  }

  /** The WebSocket (or SockJS object) of the current connection, if any. */
  get webSocket() {
    return this._ws;
  }

  /** Whether the STOMP session is up. */
  get connected() {
    return this.state === State.CONNECTED;
  }

  /** Starts connecting (and reconnecting whenever the connection drops, until `deactivate`). */
  activate() {
    if (this.state !== State.INACTIVE) return;
    this._open();
  }

  /**
   * Disconnects gracefully: sends DISCONNECT, waits for its receipt (at most `timeout` ms) so
   * that everything sent before was processed, then closes. Resolves once closed.
   */
  async deactivate(timeout = 5000) {
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const ws = this._ws;
    if (this.state === State.CONNECTED && ws) {
      this._setState(State.DISCONNECTING);
      const receipt = this._watchReceipt(timeout);
      this._sendFrame("DISCONNECT", { receipt: receipt.id });
      await receipt.promise.catch((e) => this.debug(`no receipt for DISCONNECT: ${e.message}`));
    }
    this._setState(State.INACTIVE);
    if (ws && ws.readyState !== CLOSED) {
      const closed = new Promise((resolve) => ws.addEventListener("close", resolve, { once: true }));
      ws.close(1000, "client disconnects");
      await closed;
    }
  }

  /**
   * Subscribes to `destination`; `callback` gets each Message. The subscription is renewed
   * after a reconnect. Can be called before the connection is up.
   * @returns {Subscription}
   */
  subscribe(destination, callback, headers = {}) {
    const id = headers.id ?? `sub-${this._nextId++}`;
    const subscription = new Subscription(this, id, destination, callback, { ...headers, id });
    this._subscriptions.set(id, subscription);
    if (this.connected) this._sendSubscribe(subscription);
    return subscription;
  }

  /**
   * Sends `body` to `destination`. Strings are sent as they are, Uint8Arrays as binary, any
   * other value as JSON with `content-type: application/json`. With `{ receipt: true }`, the
   * returned promise resolves once the server has processed the frame.
   * Throws if not connected: messages are never queued without bound.
   */
  publish(destination, body = "", options = {}) {
    if (!this.connected) throw new Error(`cannot publish to ${destination}: not connected`);
    const headers = { destination, ...(options.headers ?? {}) };
    let payload = body;
    if (typeof body !== "string" && !(body instanceof Uint8Array)) {
      payload = JSON.stringify(body);
      headers["content-type"] ??= "application/json";
    }
    if (!options.receipt) {
      this._sendFrame("SEND", headers, payload);
      return Promise.resolve();
    }
    const receipt = this._watchReceipt(options.timeout ?? 10000);
    headers.receipt = receipt.id;
    this._sendFrame("SEND", headers, payload);
    return receipt.promise;
  }

  _open() {
    this._setState(State.CONNECTING);
    const ws = this.webSocketFactory ? this.webSocketFactory() : new WebSocket(this.url, ["v12.stomp"]);
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    const decoder = new FrameDecoder(this.maxFrameSize);
    ws.onopen = () => {
      const host = new URL(this.url, globalThis.location?.href).hostname;
      this._sendFrame("CONNECT", {
        "accept-version": "1.2",
        host,
        "heart-beat": `${this.heartbeat.outgoing},${this.heartbeat.incoming}`,
        ...this.connectHeaders,
      });
    };
    ws.onmessage = (event) => {
      const bytes = typeof event.data === "string" ? encoder.encode(event.data) : new Uint8Array(event.data);
      this._lastReceived = Date.now();
      let items;
      try {
        items = decoder.push(bytes);
      } catch (e) {
        this.debug(`closing: the server sent bytes that are not STOMP (${e.message})`);
        ws.close(4000, "invalid STOMP");
        return;
      }
      for (const frame of items) {
        if (frame === null) {
          this.stats.heartbeatsReceived += 1;
        } else {
          this.stats.framesReceived += 1;
          this._handle(frame);
        }
      }
    };
    ws.onclose = (event) => this._closed(ws, event);
    ws.onerror = () => this.debug(`WebSocket error on ${this.url}`);
  }

  _handle(frame) {
    switch (frame.command) {
      case "CONNECTED": {
        this.connectedFrame = frame;
        this._attempt = 0;
        this.stats.connects += 1;
        this._startHeartbeats(frame.headers["heart-beat"]);
        this._setState(State.CONNECTED);
        for (const subscription of this._subscriptions.values()) this._sendSubscribe(subscription);
        this.onConnect(frame);
        break;
      }
      case "MESSAGE": {
        const subscription = this._subscriptions.get(frame.headers.subscription);
        if (subscription) subscription._callback(new Message(frame, this));
        else this.debug(`MESSAGE for unknown subscription ${frame.headers.subscription}`);
        break;
      }
      case "RECEIPT": {
        const pending = this._receipts.get(frame.headers["receipt-id"]);
        if (pending) pending.resolve(frame);
        break;
      }
      case "ERROR": {
        this.debug(`ERROR: ${frame.headers.message ?? frame.body}`);
        const pending = this._receipts.get(frame.headers["receipt-id"]);
        if (pending) pending.reject(new Error(frame.headers.message ?? "ERROR"));
        this.onStompError(frame);
        break;
      }
      default:
        this.debug(`ignoring unexpected ${frame.command} frame`);
    }
  }

  _closed(ws, event) {
    if (ws !== this._ws) return;
    this._stopHeartbeats();
    this._ws = null;
    this.connectedFrame = null;
    for (const pending of this._receipts.values()) pending.reject(new Error("connection closed"));
    this._receipts.clear();
    this.debug(`connection closed (${event.code} ${event.reason})`);
    this.onDisconnect(event);
    if (this.state === State.INACTIVE || this.state === State.DISCONNECTING || this.reconnectDelay <= 0) {
      this._setState(State.INACTIVE);
      return;
    }
    const delay = Math.min(this.reconnectDelay * 2 ** this._attempt, this.maxReconnectDelay);
    this._attempt += 1;
    this._setState(State.WAITING_TO_RECONNECT);
    this.debug(`reconnecting in ${delay} ms`);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (this.state === State.WAITING_TO_RECONNECT) this._open();
    }, delay);
  }

  _startHeartbeats(header) {
    const [serverSends, serverWants] = (header ?? "0,0").split(",").map((n) => Number(n) || 0);
    const { outgoing, incoming } = this.heartbeat;
    if (outgoing > 0 && serverWants > 0) {
      const every = Math.max(outgoing, serverWants);
      this._timers.push(setInterval(() => {
        if (this._ws?.readyState === OPEN) {
          this._ws.send("\n");
          this.stats.heartbeatsSent += 1;
        }
      }, every));
    }
    if (incoming > 0 && serverSends > 0) {
      const every = Math.max(incoming, serverSends);
      this._lastReceived = Date.now();
      this._timers.push(setInterval(() => {
        const silent = Date.now() - this._lastReceived;
        if (silent > 2 * every) {
          this.debug(`no heart-beat from the server for ${silent} ms: closing to reconnect`);
          this._ws?.close(4001, "heart-beat timeout");
        }
      }, every));
    }
  }

  _stopHeartbeats() {
    for (const timer of this._timers) clearInterval(timer);
    this._timers = [];
  }

  _sendSubscribe(subscription) {
    this._sendFrame("SUBSCRIBE", { destination: subscription.destination, ...subscription._headers });
  }

  _unsubscribe(subscription) {
    if (!this._subscriptions.delete(subscription.id)) return;
    if (this.connected) this._sendFrame("UNSUBSCRIBE", { id: subscription.id });
  }

  _watchReceipt(timeout) {
    const id = `receipt-${this._nextId++}`;
    let settle;
    const promise = new Promise((resolve, reject) => {
      const timer = setTimeout(() => settle(reject, new Error(`no RECEIPT ${id} within ${timeout} ms`)), timeout);
      settle = (fn, value) => {
        clearTimeout(timer);
        this._receipts.delete(id);
        fn(value);
      };
      this._receipts.set(id, { resolve: (f) => settle(resolve, f), reject: (e) => settle(reject, e) });
    });
    return { id, promise };
  }

  _sendFrame(command, headers, body) {
    if (!this._ws || this._ws.readyState !== OPEN) {
      throw new Error(`cannot send ${command}: the WebSocket is not open`);
    }
    this._ws.send(encodeFrame(command, headers, body));
  }

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange(state);
  }
}
