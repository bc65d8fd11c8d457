// The Reconnector against a real system: it moves over the URLs given,
// reconnects after the server ends a session, stops on a permanent refusal,
// and stops when asked.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Reconnector, CloseError, ConnectionError, Reason } from "../dist/index.js";
import { Tag, next, noSystem, refusedToken, urls, within } from "./helpers.mjs";

/** A port nothing listens on: dials fail at once. */
const dead = "ws://127.0.0.1:1/";

test("reconnects after the server ends the session, across URLs", { skip: noSystem }, async (t) => {
  const r = new Reconnector({ urls: [dead, ...urls], minBackoffMs: 10, maxBackoffMs: 100, dialTimeoutMs: 5000 });
  t.after(() => r.stop());
  const dialErr = next(r, "dialError");
  const first = next(r, "connect");
  r.start();
  assert.ok((await dialErr) instanceof ConnectionError);
  const c1 = await first;
  assert.equal(r.current, c1);

  // Messages of every session reach the reconnector's listeners.
  const echoed = next(r, "message", (m) => m.tag === Tag.echo);
  c1.send(Tag.echo, new Uint8Array([1]));
  assert.deepEqual((await echoed).payload, new Uint8Array([1]));

  const gone = next(r, "disconnect");
  const second = next(r, "connect");
  c1.send(Tag.kick, new TextEncoder().encode("reconnect, please"));
  const err = await gone;
  assert.ok(err instanceof CloseError);
  assert.equal(err.reason, Reason.Kicked);
  const c2 = await second;
  assert.notEqual(c2, c1);
  assert.notEqual(`${c2.ref.server}#${c2.ref.id}`, `${c1.ref.server}#${c1.ref.id}`);
  const again = next(r, "message", (m) => m.tag === Tag.echo);
  c2.send(Tag.echo, new Uint8Array([2]));
  assert.deepEqual((await again).payload, new Uint8Array([2]));

  await within(r.stop(), "stop");
  assert.equal(r.current, null);
  assert.ok(c2.err !== null);
  assert.equal(await within(r.done, "done"), undefined);
});

test("a refused token stops the reconnector", { skip: noSystem }, async () => {
  const r = new Reconnector({ urls, token: refusedToken, minBackoffMs: 10, maxBackoffMs: 100 });
  r.start();
  const err = await within(r.done, "the reconnector to give up");
  assert.ok(err instanceof CloseError);
  assert.equal(err.reason, Reason.AuthRefused);
});

test("stop during the backoff returns at once", async () => {
  const r = new Reconnector({ urls: [dead], minBackoffMs: 60_000, maxBackoffMs: 60_000 });
  const failed = next(r, "dialError");
  r.start();
  await failed;
  await within(r.stop(), "stop", 2000);
});
