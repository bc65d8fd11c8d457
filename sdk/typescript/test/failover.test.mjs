// The Reconnector when its client server goes away for good: killed (the
// connection drops with no Close frame, as when the process dies) or shut
// down (a Close of ReasonShutdown). Given several URLs, it ends up on
// another client server and works there: a round trip, and a cloud view
// that converges again.
//
// The Reconnector does not carry subscriptions from one client to the
// next (a View belongs to one Client), so the test opens a new view on the
// new client, as an application does on "connect".
//
// Each test stops a server of its own (sdk_test.go starts them), so the
// test files running in parallel keep theirs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Reconnector, CloseError, ConnectionError, Reason, sameRef } from "../dist/index.js";
import { Tag, dial, killURL, next, noVictims, shutdownURL, until, urls, within } from "./helpers.mjs";

/** A key of this test run, so runs never see each other's rows. */
const run = `${process.pid}-${Date.now()}`;
const bytes = (s) => new TextEncoder().encode(s);
const text = (b) => new TextDecoder().decode(b);

/** The view's rows as "uploader=data", sorted. */
const rowsOf = (v) => v.rows().map((r) => `${r.uploader.id}@${r.uploader.server}=${text(r.data)}`).sort();
const rowOf = (ref, data) => `${ref.id}@${ref.server}=${data}`;

/**
 * Connects a Reconnector to victim first, then has the victim stopped as
 * how says ("kill" or "shutdown"), and checks that the Reconnector moves to
 * another server, that the session's end is reported as expected, and that
 * echo and a cloud view work on the new client.
 */
async function failover(t, victim, how, checkEnd) {
  const k = { primary: `sdk-failover-${run}-${how}`, secondary: 0 };
  const watcher = await dial(t, 0);
  await within(watcher.post(k, bytes("watcher")), "the watcher's post");
  const watched = await within(watcher.view([k]), "the watcher's view");

  const r = new Reconnector({ urls: [victim, ...urls], minBackoffMs: 10, maxBackoffMs: 100, dialTimeoutMs: 5000, closeTimeoutMs: 2000 });
  t.after(() => r.stop());
  const first = next(r, "connect");
  r.start();
  const c1 = await first;
  await within(c1.post(k, bytes("before")), "the first client's post");
  const v1 = await within(c1.view([k]), "the first client's view");
  assert.deepEqual(rowsOf(v1), [rowOf(watcher.ref, "watcher"), rowOf(c1.ref, "before")].sort());
  await until(() => watched.row(k, c1.ref) !== undefined, "the first client's row in the watcher's view");

  const gone = next(r, "disconnect");
  const second = next(r, "connect");
  const ended = next(v1, "change", (c) => c.type === "ended");
  c1.send(Tag.stop, bytes(how));
  checkEnd(await gone);
  await ended;
  assert.equal(rowsOf(v1).length, 2, "an ended view keeps its last rows");

  const c2 = await second;
  assert.notEqual(c2, c1);
  assert.notEqual(c2.ref.server, c1.ref.server, "the reconnector moved to another server");
  assert.equal(r.current, c2);
  const echoed = next(r, "message", (m) => m.tag === Tag.echo);
  c2.send(Tag.echo, bytes(`after ${how}`));
  assert.equal(text((await echoed).payload), `after ${how}`);

  // The stopped server's clients leave the cloud: their rows go.
  await until(() => watched.row(k, c1.ref) === undefined, "the first client's row to leave the watcher's view");

  const v2 = await within(c2.view([k]), "the view on the new client");
  await within(c2.post(k, bytes("after")), "the new client's post");
  await within(watcher.post(k, bytes("watcher again")), "the watcher's second post");
  const want = [rowOf(watcher.ref, "watcher again"), rowOf(c2.ref, "after")].sort();
  await until(() => JSON.stringify(rowsOf(v2)) === JSON.stringify(want), `the new view to converge to ${want}`);
  await until(() => JSON.stringify(rowsOf(watched)) === JSON.stringify(want), `the watcher's view to converge to ${want}`);
  assert.ok(sameRef(v2.row(k, c2.ref).uploader, c2.ref));

  await within(r.stop(), "stop");
  assert.equal(r.current, null);
  assert.equal(await within(r.done, "done"), undefined);
}

test("the reconnector moves on when its server is killed", { skip: noVictims }, async (t) => {
  await failover(t, killURL, "kill", (err) => {
    assert.ok(err instanceof ConnectionError, `${err}`);
    assert.equal(err.code, 1006, "the connection dropped without a Close frame");
  });
});

test("the reconnector moves on when its server shuts down", { skip: noVictims }, async (t) => {
  await failover(t, shutdownURL, "shutdown", (err) => {
    assert.ok(err instanceof CloseError, `${err}`);
    assert.equal(err.reason, Reason.Shutdown);
  });
});
