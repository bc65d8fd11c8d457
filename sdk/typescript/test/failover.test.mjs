// The Reconnector when its client server goes away for good: killed (the
// connection drops with no Close frame, as when the process dies), shut
// down (a Close of ReasonShutdown) or drained (a Move, which it follows
// before closing the old session). Given several URLs, it ends up on
// another client server and works there: a round trip, its failover
// event, and the view it opened (Reconnector.view) subscribed again on the
// new server and converging; with repost, the row it posted is there
// again, once, under its new ref.
//
// Each test stops a server of its own (sdk_test.go starts them), so the
// test files running in parallel keep theirs.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Reconnector, CloseError, ConnectionError, Reason, sameRef } from "../dist/index.js";
import { Tag, dial, directoryURL, drainURL, killURL, next, noVictims, shutdownURL, until, urls, within } from "./helpers.mjs";
import { fetchDirectory } from "../dist/index.js";

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

  const r = new Reconnector({ urls: [victim, ...urls], repost: true, minBackoffMs: 10, maxBackoffMs: 100, dialTimeoutMs: 5000, closeTimeoutMs: 2000 });
  t.after(() => r.stop());
  const first = next(r, "connect");
  r.start();
  const c1 = await first;
  const v = await within(r.view([k]), "the reconnector's view");
  await within(c1.post(k, bytes("before")), "the first client's post");
  await within(c1.post(k, bytes("latest")), "the first client's second post");
  const gone = { primary: `sdk-failover-${run}-${how}-released`, secondary: 0 };
  await within(c1.post(gone, bytes("x")), "the post to release");
  await within(c1.release([gone]), "the release");
  const before = [rowOf(watcher.ref, "watcher"), rowOf(c1.ref, "latest")].sort();
  await until(() => JSON.stringify(rowsOf(v)) === JSON.stringify(before) && v.complete, `the view to converge to ${before}`);
  await until(() => watched.row(k, c1.ref) !== undefined, "the first client's row in the watcher's view");

  const seen = [];
  const offSeen = watcher.on("notification", (n) => {
    if (n.key.primary !== k.primary) return;
    if (n.type === "updated" && !sameRef(n.row.uploader, c1.ref) && !sameRef(n.row.uploader, watcher.ref)) seen.push("new row");
    if (n.type === "deleted" && sameRef(n.row.uploader, c1.ref)) seen.push("old row gone");
  });
  t.after(offSeen);
  const lost = how === "drain" ? null : next(r, "disconnect");
  const second = next(r, "connect");
  const fo = next(r, "failover");
  const unsubscribed = next(v, "change", (c) => c.type === "unsubscribed");
  c1.send(Tag.stop, bytes(how));
  if (lost !== null) checkEnd(await lost);
  await unsubscribed;

  const c2 = await second;
  assert.notEqual(c2, c1);
  assert.notEqual(c2.ref.server, c1.ref.server, "the reconnector moved to another server");
  assert.equal(r.current, c2);
  const f = await fo;
  assert.deepEqual([f.from, f.to, f.fromURL], [c1.ref.server, c2.ref.server, victim]);
  checkEnd(f.err);
  assert.equal(f.reason, { kill: Reason.IO, shutdown: Reason.Shutdown, drain: Reason.Draining }[how]);
  assert.ok(f.durationMs >= 0);
  const echoed = next(r, "message", (m) => m.tag === Tag.echo);
  c2.send(Tag.echo, bytes(`after ${how}`));
  assert.equal(text((await echoed).payload), `after ${how}`);

  // The view converges on the new server: the first client's row is gone
  // with its server, the reposted row is there once, under the new ref.
  const want = [rowOf(watcher.ref, "watcher"), rowOf(c2.ref, "latest")].sort();
  await until(() => JSON.stringify(rowsOf(v)) === JSON.stringify(want) && v.complete, `the reconnector's view to converge to ${want}`);
  await until(() => JSON.stringify(rowsOf(watched)) === JSON.stringify(want), `the watcher's view to converge to ${want}`);
  assert.equal(v.err, null);
  if (how === "drain") {
    // Make before break: the row was posted again before the old session
    // closed, so the watcher never saw the client without it.
    assert.deepEqual(seen, ["new row", "old row gone"]);
  }
  const res = await within(c2.get({ keys: [gone] }), "a get of the released key");
  assert.equal(res.rows.length, 0, "a released row is not posted again");

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

test("the reconnector follows its server's Move when it drains", { skip: noVictims }, async (t) => {
  await failover(t, drainURL, "drain", (err) => {
    assert.equal(err, null, "a move closes the old session itself: no error");
  });
});

test("a reconnector given the directory connects to a server it lists", { skip: noVictims || (directoryURL === "" && "no directory") }, async (t) => {
  const d = await within(fetchDirectory(directoryURL, 5000), "the directory");
  assert.equal(d.group, "client");
  const live = d.servers.filter((s) => !s.draining).map((s) => s.id);
  assert.ok(live.length >= 2, `servers ${JSON.stringify(d.servers)}`);
  const r = new Reconnector({ directory: directoryURL, dialTimeoutMs: 5000, closeTimeoutMs: 2000 });
  t.after(() => r.stop());
  const first = next(r, "connect");
  r.start();
  const c = await first;
  assert.ok(live.includes(c.ref.server), `${c.ref.server} is not among ${live}`);
  const echoed = next(r, "message", (m) => m.tag === Tag.echo);
  c.send(Tag.echo, bytes("via the directory"));
  assert.equal(text((await echoed).payload), "via the directory");
});
