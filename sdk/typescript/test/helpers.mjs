// Shared helpers of the Node tests: the system's URLs (set by sdk_test.go)
// and bounded waits. Every wait fails the test after its bound instead of
// hanging.

import { connect, encodeWS, encodeWelcome, Kind } from "../dist/index.js";

/** The client servers' WebSocket URLs. */
export const urls = (process.env.CLOUDRIFT_TEST_URLS ?? "").split(",").filter(Boolean);

/** Whether a system is running; tests that need one skip without it. */
export const noSystem = urls.length === 0 ? "CLOUDRIFT_TEST_URLS is not set (run go test ./sdk/typescript)" : false;

/** The client servers the failover test stops: killed, and shut down (sdk_test.go). */
export const killURL = process.env.CLOUDRIFT_TEST_KILL_URL ?? "";
export const shutdownURL = process.env.CLOUDRIFT_TEST_SHUTDOWN_URL ?? "";
export const drainURL = process.env.CLOUDRIFT_TEST_DRAIN_URL ?? "";

/** Whether the servers to stop are there; the failover tests skip without them. */
export const noVictims =
  noSystem || (killURL === "" || shutdownURL === "" || drainURL === "" ? "CLOUDRIFT_TEST_KILL_URL, _SHUTDOWN_URL or _DRAIN_URL is not set" : false);

/** The client group's directory (GET /servers). */
export const directoryURL = process.env.CLOUDRIFT_TEST_DIRECTORY ?? "";

/** The token the server's Authenticate refuses. */
export const refusedToken = process.env.CLOUDRIFT_TEST_REFUSED_TOKEN ?? "refuse-me";

/** The echo plugin's tags (sdk_test.go). */
export const Tag = { echo: 1, kick: 2, whoami: 3, burst: 4, burstMsg: 5, stop: 6 };

/** The bound of every wait. */
export const patience = 15_000;

/** Resolves or rejects as p does, or rejects after ms naming what. */
export function within(p, what, ms = patience) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timed out after ${ms}ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

/** The next event of target (a Client, View or Reconnector) that satisfies pred. */
export function next(target, event, pred = () => true, ms = patience) {
  let off;
  const p = new Promise((resolve) => {
    off = target.on(event, (v) => {
      if (pred(v)) resolve(v);
    });
  });
  return within(p, `a ${event} event`, ms).finally(() => off());
}

/** Polls cond every 5ms until it holds, failing after ms. */
export async function until(cond, what, ms = patience) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms}ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Connects to urls[i] (bounded); the test closes the client with t.after. */
export async function dial(t, i = 0, opts = {}) {
  const c = await within(connect({ url: urls[i], dialTimeoutMs: 5000, closeTimeoutMs: 2000, ...opts }), `connect to ${urls[i]}`);
  t.after(() => c.close());
  return c;
}

/** A 4-byte big-endian u32. */
export function u32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/** Reads a 4-byte big-endian u32. */
export function readU32(b) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(0);
}

/** Resolves to the u32 payloads of the next n messages of tag c receives (bounded). */
export function collectU32(c, tag, n) {
  const got = [];
  let off;
  const p = new Promise((resolve) => {
    off = c.on("message", (m) => {
      if (m.tag !== tag) return;
      got.push(readU32(m.payload));
      if (got.length === n) resolve(got);
    });
  });
  return within(p, `${n} messages of tag ${tag}`).finally(() => off());
}

/** A WebSocket whose server side the test drives. */
export class FakeWS {
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.binaryType = "blob";
    this.sent = [];
    this.onmessage = this.onclose = this.onerror = this.onopen = null;
  }
  send(b) {
    this.sent.push(b);
  }
  close(code = 1005) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason: "" }));
  }
  /** Delivers one message from the server; throws if the SDK's handler throws. */
  deliver(data) {
    this.onmessage?.({ data: data instanceof Uint8Array ? data.slice().buffer : data });
  }
}

export const welcome = encodeWS(Kind.ClientWelcome, 0, encodeWelcome({ serverID: "client-1", clientID: 0xfedcba9876543210n, maxMessage: 100 }));

/** Connects over a fake WebSocket that sends the welcome. */
export async function fakeClient() {
  let ws;
  const p = connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)) });
  ws.deliver(welcome);
  const c = await within(p, "connect");
  return { c, ws };
}

