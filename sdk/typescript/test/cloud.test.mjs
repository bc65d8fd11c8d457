// Cloud memory against a real system: post, get (offset, limit, uploader
// filter), subscribe and notifications, release, unsubscribe, and views
// converging across client servers.

import { test } from "node:test";
import assert from "node:assert/strict";

import { CloudCode, CloudError, MessageTooLargeError, decodeJSON, encodeJSON, sameRef } from "../dist/index.js";
import { dial, next, noSystem, until, within } from "./helpers.mjs";

/** A key of this test run, so runs never see each other's rows. */
const run = `${process.pid}-${Date.now()}`;
const key = (name, secondary = 0) => ({ primary: `sdk-${run}-${name}`, secondary });
const bytes = (s) => new TextEncoder().encode(s);

test("post and get with offset, limit and uploader filter", { skip: noSystem }, async (t) => {
  const a = await dial(t, 0);
  const b = await dial(t, 1);
  const k = key("get");
  await within(a.post(k, bytes("a1")), "a's post");
  await within(b.post(k, encodeJSON({ from: "b" })), "b's post");
  await within(a.post(k, bytes("a2")), "a's overwrite");

  const all = await within(a.get({ keys: [k] }), "get");
  assert.equal(all.total, 2);
  assert.equal(all.rows.length, 2);
  assert.ok(!all.truncated && !all.partial);
  const mine = all.rows.find((r) => sameRef(r.uploader, a.ref));
  assert.equal(new TextDecoder().decode(mine.data), "a2");
  assert.equal(mine.via, a.ref.server);
  assert.ok(mine.addr.startsWith("127.0.0.1:"));
  assert.deepEqual(decodeJSON(all.rows.find((r) => sameRef(r.uploader, b.ref)).data), { from: "b" });

  const second = await within(a.get({ keys: [k], offset: 1, limit: 1 }), "get with offset");
  assert.equal(second.total, 2);
  assert.deepEqual(second.rows.map((r) => r.uploader), [all.rows[1].uploader]);

  const onlyB = await within(a.get({ keys: [k], uploaders: [b.ref] }), "get of b's rows");
  assert.equal(onlyB.rows.length, 1);
  assert.ok(sameRef(onlyB.rows[0].uploader, b.ref));

  await within(b.release([k]), "release");
  const after = await within(a.get({ keys: [k] }), "get after release");
  assert.equal(after.total, 1);
});

test("subscribe delivers updates and deletions in order", { skip: noSystem }, async (t) => {
  const watcher = await dial(t, 1);
  const poster = await dial(t, 0);
  const k = key("sub");
  const seen = [];
  watcher.on("notification", (n) => seen.push(n));
  const snap = await within(watcher.get({ keys: [k], subscribe: true }), "subscribe");
  assert.equal(snap.total, 0);

  await within(poster.post(k, bytes("1")), "post 1");
  await within(poster.post(k, bytes("2")), "post 2");
  await within(poster.release([k]), "release");
  await until(() => seen.length >= 3, "three notifications");
  assert.deepEqual(seen.map((n) => n.type), ["updated", "updated", "deleted"]);
  assert.equal(seen[0].created, true);
  assert.equal(seen[1].created, false);
  assert.equal(new TextDecoder().decode(seen[2].row.data), "2");
  assert.ok(sameRef(seen[2].row.uploader, poster.ref));

  await within(watcher.unsubscribe([k]), "unsubscribe");
  const err = await watcher.unsubscribe([k]).catch((e) => e);
  assert.ok(err instanceof CloudError);
  assert.equal(err.code, CloudCode.NotSubscribed);
  await within(poster.post(k, bytes("3")), "post 3");
  await within(watcher.get({ keys: [k] }), "a round trip after the post");
  assert.equal(seen.length, 3);
});

test("a disconnected uploader's rows are deleted for subscribers", { skip: noSystem }, async (t) => {
  const watcher = await dial(t, 0);
  const k = key("gone");
  await within(watcher.get({ keys: [k], subscribe: true }), "subscribe");
  const leaver = await dial(t, 1);
  await within(leaver.post(k, bytes("bye")), "post");
  const deleted = next(watcher, "notification", (n) => n.type === "deleted");
  await leaver.close();
  const n = await deleted;
  assert.ok(sameRef(n.row.uploader, leaver.ref));
});

test("errors carry the server's code", { skip: noSystem }, async (t) => {
  const c = await dial(t);
  const bad = await c.get({ keys: [] }).catch((e) => e);
  assert.ok(bad instanceof CloudError);
  assert.equal(bad.code, CloudCode.BadRequest);
  const long = await c.post({ primary: "x".repeat(256), secondary: 0 }, bytes("")).catch((e) => e);
  assert.equal(long.code, CloudCode.BadRequest);
  await assert.rejects(c.post(key("big"), new Uint8Array(2000)), MessageTooLargeError);
  const many = Array.from({ length: 65 }, (_, i) => ({ primary: "m", secondary: i }));
  const tooMany = await within(c.get({ keys: many }).catch((e) => e), "get of 65 keys");
  assert.ok(tooMany instanceof CloudError, `${tooMany}`);
  assert.equal(tooMany.code, CloudCode.TooManyKeys);
  assert.equal(c.err, null);
});

test("views converge across servers", { skip: noSystem }, async (t) => {
  const a = await dial(t, 0);
  const b = await dial(t, 1);
  const k1 = key("view", 1);
  const k2 = key("view", 2);
  await within(b.post(k1, bytes("b-before")), "post before the view");

  const v = await within(a.view([k1, k2]), "view");
  const onlyB = await within(a.view([k1], [b.ref]), "filtered view");
  assert.ok(v.complete);
  assert.deepEqual(v.rows().map((r) => new TextDecoder().decode(r.data)), ["b-before"]);

  const changes = [];
  v.on("change", (c) => changes.push(c.type));
  await within(a.post(k2, bytes("a")), "a's post");
  await within(b.post(k1, bytes("b-after")), "b's post");
  await until(() => v.rows().length === 2 && new TextDecoder().decode(v.row(k1, b.ref)?.data ?? new Uint8Array()) === "b-after", "the view to converge");
  assert.deepEqual(v.rows().map((r) => r.key.secondary), [1, 2]);
  assert.ok(changes.includes("updated"));
  await until(() => onlyB.rows().length === 1 && new TextDecoder().decode(onlyB.rows()[0].data) === "b-after", "the filtered view");

  await within(a.post(k1, bytes("a-on-1")), "a's post under k1");
  await until(() => v.rows().length === 3, "the view to see a under k1");
  assert.equal(onlyB.rows().length, 1, "the filtered view holds b's row only");

  await b.close();
  await until(() => v.rows().length === 2 && onlyB.rows().length === 0, "b's rows to leave the views");

  await within(onlyB.close(), "closing the filtered view");
  await within(a.post(k2, bytes("a2")), "a's post after closing");
  await until(() => new TextDecoder().decode(v.row(k2, a.ref)?.data ?? new Uint8Array()) === "a2", "the open view to follow");
  await within(v.close(), "closing the view");
  assert.equal(v.rows().length, 2, "a closed view keeps its rows");
});
