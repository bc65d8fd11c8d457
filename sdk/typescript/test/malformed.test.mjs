// What a client does with malformed or unexpected server messages: it
// ends with a ProtocolError the application sees (connect rejects, or the
// close event fires and pending calls reject), and never throws out of a
// WebSocket event or hangs. A fake WebSocket plays the server.

import { test } from "node:test";
import assert from "node:assert/strict";

import { connect, encodeWS, encodeWelcome, encodeClose, Kind, Reason, ProtocolError, CloseError, ClosedError, TimeoutError } from "../dist/index.js";
import { FakeWS, fakeClient, next, within, welcome } from "./helpers.mjs";

test("the welcome's 64-bit ID survives", async () => {
  const { c, ws } = await fakeClient();
  assert.equal(c.ref.id, 0xfedcba9876543210n);
  assert.equal(c.maxMessage, 100);
  assert.equal(ws.binaryType, "arraybuffer");
  c.send(7, new Uint8Array([1, 2]));
  assert.deepEqual([...ws.sent[0]], [16, 0, 7, 1, 2]);
  assert.equal(c.bufferedAmount, 0); // the fake has none
  ws.bufferedAmount = 1234;
  assert.equal(c.bufferedAmount, 1234);
});

test("connect rejects a bad first message", async (t) => {
  const cases = {
    "truncated welcome": welcome.subarray(0, welcome.length - 1),
    "welcome with trailing bytes": new Uint8Array([...welcome, 0]),
    "short message": new Uint8Array([32, 0]),
    "user message first": encodeWS(Kind.User, 1, new Uint8Array()),
    "text message": "hello",
    "welcome without a client": encodeWS(Kind.ClientWelcome, 0, encodeWelcome({ serverID: "", clientID: 0n, maxMessage: 0 })),
  };
  for (const [name, msg] of Object.entries(cases)) {
    await t.test(name, async () => {
      let ws;
      const p = connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)) });
      assert.doesNotThrow(() => ws.deliver(msg));
      await assert.rejects(within(p, "connect"), ProtocolError);
      assert.equal(ws.readyState, 3);
    });
  }
});

test("connect rejects a refusal with its reason, and times out", async () => {
  let ws;
  const p = connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)) });
  ws.deliver(encodeWS(Kind.Close, 0, encodeClose(Reason.ServerFull, "full")));
  const err = await within(p.catch((e) => e), "connect");
  assert.ok(err instanceof CloseError);
  assert.equal(err.reason, Reason.ServerFull);
  assert.equal(err.detail, "full");

  const slow = connect({ url: "ws://fake/", webSocket: (url) => new FakeWS(url), dialTimeoutMs: 50 });
  await assert.rejects(within(slow, "connect"), TimeoutError);
});

test("a bad message ends the client with a ProtocolError", async (t) => {
  const cases = {
    "short message": new Uint8Array([16]),
    "text message": "hi",
    "second welcome": welcome,
    "link kind": encodeWS(6, 0, new Uint8Array()),
    "truncated close": encodeWS(Kind.Close, 0, new Uint8Array([0, 22, 0, 5, 104])),
    "truncated cloud reply": encodeWS(Kind.CloudReply, 0, new Uint8Array([0, 0, 0, 1, 0])),
    "cloud result claiming 2^32-1 rows": encodeWS(Kind.CloudResult, 0, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])),
    "cloud result with unknown flags": encodeWS(Kind.CloudResult, 0, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
    "notice of unknown type": encodeWS(Kind.CloudNotify, 0, new Uint8Array([9, 0, 1, 107, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
    "row data longer than the message": encodeWS(Kind.CloudResync, 0, new Uint8Array([0, 1, 107, 0, 0, 0, 0, 0, 0, 0, 1, 1, 107, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1])),
  };
  for (const [name, msg] of Object.entries(cases)) {
    await t.test(name, async () => {
      const { c, ws } = await fakeClient();
      const pending = c.get({ keys: [{ primary: "k", secondary: 0 }] });
      const closed = next(c, "close");
      assert.doesNotThrow(() => ws.deliver(msg));
      const err = await closed;
      assert.ok(err instanceof ProtocolError, `${err}`);
      assert.equal(c.err, err);
      await assert.rejects(within(pending, "the pending get"), ClosedError);
      assert.equal(ws.readyState, 3);
    });
  }
});

test("extension kinds are delivered, unknown kinds end the client", async () => {
  const { c, ws } = await fakeClient();
  const frame = next(c, "frame");
  ws.deliver(encodeWS(80, 3, new Uint8Array([7])));
  const f = await frame;
  assert.deepEqual([f.kind, f.tag, [...f.payload]], [80, 3, [7]]);
  const got = next(c, "message");
  ws.deliver(encodeWS(Kind.User, 9, new Uint8Array([4])));
  assert.equal((await got).tag, 9);
  assert.equal(c.err, null);
  const closed = next(c, "close");
  assert.doesNotThrow(() => ws.deliver(encodeWS(120, 0, new Uint8Array([1, 2, 3]))));
  const err = await closed;
  assert.ok(err instanceof ProtocolError, `${err}`);
  assert.match(err.message, /unknown kind 120/);
});

test("a throwing listener breaks neither the client nor other listeners", async () => {
  const errors = [];
  let ws;
  const p = connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)), onListenerError: (e) => errors.push(e) });
  ws.deliver(welcome);
  const c = await p;
  c.on("message", () => {
    throw new Error("listener bug");
  });
  const got = next(c, "message");
  assert.doesNotThrow(() => ws.deliver(encodeWS(Kind.User, 1, new Uint8Array())));
  await got;
  assert.equal(errors.length, 1);
  assert.equal(c.err, null);
});

test("the connection's end without a reason is a ConnectionError", async () => {
  const { c, ws } = await fakeClient();
  ws.close(1006);
  const err = await within(c.done, "the end");
  assert.equal(err.name, "ConnectionError");
  assert.equal(err.code, 1006);
});

test("a cloud call without an answer times out", async () => {
  let ws;
  const p = connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)), callTimeoutMs: 50 });
  ws.deliver(welcome);
  const c = await p;
  await assert.rejects(within(c.post({ primary: "k", secondary: 1 }, new Uint8Array()), "the post"), TimeoutError);
  assert.equal(c.err, null);
  // A late answer is ignored.
  ws.deliver(encodeWS(Kind.CloudReply, 0, new Uint8Array([0, 0, 0, 1, 0, 0, 0, 0])));
  assert.equal(c.err, null);
});
