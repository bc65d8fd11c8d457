// Sessions against a real system: welcome, round trips, ordering, tokens,
// and the close reasons the server sends.

import { test } from "node:test";
import assert from "node:assert/strict";

import { connect, CloseError, ClosedError, MessageTooLargeError, Reason, Kind, decodeText } from "../dist/index.js";
import { Tag, collectU32, dial, next, noSystem, readU32, refusedToken, u32, urls, within } from "./helpers.mjs";

test("the welcome names the client", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  assert.match(c.ref.server, /^client-[12]$/);
  assert.equal(typeof c.ref.id, "bigint");
  assert.notEqual(c.ref.id, 0n);
  assert.equal(c.maxMessage, 1024);
  c.send(Tag.whoami, new Uint8Array());
  const m = await next(c, "message", (m) => m.tag === Tag.whoami);
  assert.equal(m.json().ref, `${c.ref.server}#${c.ref.id}`);
});

test("round trip of binary and JSON payloads", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  const bin = new Uint8Array([0, 1, 2, 253, 254, 255]);
  c.send(Tag.echo, bin);
  const m = await next(c, "message", (m) => m.tag === Tag.echo);
  assert.deepEqual(m.payload, bin);
  c.sendJSON(Tag.echo, { hello: "wörld", n: [1, 2] });
  const j = await next(c, "message", (m) => m.tag === Tag.echo);
  assert.deepEqual(j.json(), { hello: "wörld", n: [1, 2] });
  c.send(Tag.echo, new Uint8Array(1024)); // exactly the limit
  const big = await next(c, "message", (m) => m.tag === Tag.echo);
  assert.equal(big.payload.length, 1024);
});

test("messages keep their order both ways", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  const echoes = collectU32(c, Tag.echo, 200);
  for (let i = 0; i < 200; i++) c.send(Tag.echo, u32(i));
  assert.deepEqual(await echoes, [...Array(200).keys()]);

  const burst = collectU32(c, Tag.burstMsg, 1000);
  c.send(Tag.burst, u32(1000));
  assert.deepEqual(await burst, [...Array(1000).keys()]);
});

test("a token rides in the query, and headers work in Node", { skip: noSystem }, async (t) => {
  const q = await dial(t, 1, { token: "query-token" });
  q.send(Tag.whoami, new Uint8Array());
  assert.equal((await next(q, "message")).json().query, "query-token");

  const h = await dial(t, 1, { headers: { "X-Token": "header-token" } });
  h.send(Tag.whoami, new Uint8Array());
  assert.equal((await next(h, "message")).json().header, "header-token");
});

test("a refused client sees AuthRefused at connect", { skip: noSystem }, async () => {
  for (const opts of [{ token: refusedToken }, { headers: { "X-Token": refusedToken } }]) {
    const err = await within(connect({ url: urls[0], ...opts }).then(
      () => assert.fail("connected"),
      (e) => e,
    ), "the refusal");
    assert.ok(err instanceof CloseError, `${err}`);
    assert.equal(err.reason, Reason.AuthRefused);
    assert.ok(err.permanent);
    assert.match(err.detail, /refused/);
  }
});

test("send refuses a payload over the limit without sending", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  assert.throws(() => c.send(Tag.echo, new Uint8Array(1025)), MessageTooLargeError);
  assert.throws(() => c.send(70000, new Uint8Array()), RangeError);
  c.send(Tag.echo, u32(7));
  assert.equal(readU32((await next(c, "message")).payload), 7);
});

test("the server's close reasons reach the application", async (t) => {
  await t.test("message too large", { skip: noSystem }, async (t) => {
    const c = await dial(t);
    c.write(Kind.User, Tag.echo, new Uint8Array(1025)); // past the SDK's own check
    const err = await within(c.done, "the close");
    assert.ok(err instanceof CloseError, `${err}`);
    assert.equal(err.reason, Reason.MessageTooLarge);
    assert.equal(c.err, err);
    assert.throws(() => c.send(Tag.echo, new Uint8Array()), ClosedError);
  });
  await t.test("kicked", { skip: noSystem }, async (t) => {
    const c = await dial(t);
    const closed = next(c, "close");
    c.send(Tag.kick, new TextEncoder().encode("go away"));
    const err = await closed;
    assert.ok(err instanceof CloseError);
    assert.equal(err.reason, Reason.Kicked);
    assert.equal(err.detail, "go away");
  });
  await t.test("rate limited", { skip: noSystem }, async (t) => {
    const c = await dial(t);
    for (let i = 0; i < 1700 && c.err === null; i++) c.send(0, new Uint8Array()); // past the burst and 4×burst refused
    const err = await within(c.done, "the close");
    assert.ok(err instanceof CloseError, `${err}`);
    assert.equal(err.reason, Reason.RateLimited);
  });
});

test("extension frames reach the plugin that claims them", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  c.sendFrame(72, 9, new Uint8Array([4, 2]));
  const f = await next(c, "frame");
  assert.deepEqual([f.kind, f.tag, [...f.payload]], [72, 9, [4, 2]]);
  assert.throws(() => c.sendFrame(Kind.User, 0, new Uint8Array()), RangeError);

  c.sendFrame(73, 0, new Uint8Array()); // no plugin claims it
  const err = await within(c.done, "the close");
  assert.ok(err instanceof CloseError, `${err}`);
  assert.equal(err.reason, Reason.Protocol);
});

test("close ends the client with ClosedError", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  await within(c.close(), "close");
  assert.ok(c.err instanceof ClosedError);
  await within(c.close(), "a second close");
  assert.throws(() => c.send(Tag.echo, new Uint8Array()), ClosedError);
  await assert.rejects(c.get({ keys: [{ primary: "k", secondary: 0 }] }), ClosedError);
});

test("decodeText rejects invalid UTF-8", () => {
  assert.throws(() => decodeText(new Uint8Array([0xff])));
});
