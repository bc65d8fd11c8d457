// Moves and the directory, with fake WebSockets playing the servers: a
// client hears a Move and goes on; the Reconnector follows a Move to the
// first server that works, closing the old session only once the new one
// is up, falls back to the directory and the URLs, and reads the
// directory least loaded first.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";

import { Reconnector, Kind, Reason, encodeWS, encodeWelcome, encodeMove, directoryURLs, fetchDirectory, DirectoryError } from "../dist/index.js";
import { FakeWS, fakeClient, next, within } from "./helpers.mjs";

test("a Move reaches the client's listeners and the session goes on", async () => {
  const { c, ws } = await fakeClient();
  const moved = next(c, "move");
  ws.deliver(encodeWS(Kind.ClientMove, 0, encodeMove({ reason: Reason.Draining, urls: ["ws://b/"] })));
  assert.deepEqual(await moved, { reason: Reason.Draining, urls: ["ws://b/"] });
  const got = next(c, "message");
  ws.deliver(encodeWS(Kind.User, 1, new Uint8Array()));
  await got;
  assert.equal(c.err, null);
});

/**
 * Fake servers by URL: "ws://NAME/" welcomes as server NAME; a name
 * starting with "dead" fails to connect. log records opens and closes.
 */
function fakeServers() {
  const log = [];
  const sockets = new Map();
  let ids = 0n;
  const factory = (url) => {
    const name = new URL(url).host;
    const ws = new FakeWS(url);
    const close = ws.close.bind(ws);
    ws.close = (code) => {
      if (ws.readyState !== 3) log.push(`close ${name}`);
      close(code);
    };
    sockets.set(name, ws);
    queueMicrotask(() => {
      if (name.startsWith("dead")) {
        ws.readyState = 3;
        ws.onerror?.({});
        return;
      }
      log.push(`open ${name}`);
      ws.deliver(encodeWS(Kind.ClientWelcome, 0, encodeWelcome({ serverID: name, clientID: ++ids, maxMessage: 1024 })));
    });
    return ws;
  };
  return { log, sockets, factory };
}

const move = (...urls) => encodeWS(Kind.ClientMove, 0, encodeMove({ reason: Reason.Draining, urls }));

test("the reconnector follows a Move, making before breaking", async (t) => {
  const s = fakeServers();
  const r = new Reconnector({ urls: ["ws://a/"], webSocket: s.factory, minBackoffMs: 1, maxBackoffMs: 5, closeTimeoutMs: 50 });
  t.after(() => r.stop());
  const first = next(r, "connect");
  r.start();
  const c1 = await first;
  assert.equal(c1.ref.server, "a");
  const second = next(r, "connect");
  const fo = next(r, "failover");
  s.sockets.get("a").deliver(move("ws://dead-1/", "ws://b/"));
  const c2 = await second;
  assert.equal(c2.ref.server, "b");
  const f = await fo;
  assert.deepEqual([f.from, f.to, f.fromURL, f.toURL, f.reason, f.err], ["a", "b", "ws://a/", "ws://b/", Reason.Draining, null]);
  assert.ok(f.durationMs >= 0);
  await within(c1.done, "the old session's end");
  assert.ok(s.log.indexOf("open b") < s.log.indexOf("close a"), `opened b before closing a: ${s.log}`);
  assert.equal(r.current, c2);
});

test("a Move naming no server that works falls back to the directory, then the URLs", async (t) => {
  const dir = await directoryServer(() => ({ group: "g", partial: false, servers: [{ id: "c", url: "ws://c/", players: 1, capacity: 10, draining: false }] }));
  t.after(() => dir.close());
  for (const [name, extra] of [
    ["urls", { urls: ["ws://a/", "ws://c/"] }],
    ["directory", { urls: ["ws://a/"], directory: dir.url }],
  ]) {
    await t.test(name, async (t) => {
      const s = fakeServers();
      const r = new Reconnector({ ...extra, webSocket: s.factory, minBackoffMs: 1, maxBackoffMs: 5, closeTimeoutMs: 50 });
      t.after(() => r.stop());
      const first = next(r, "connect");
      const fo = next(r, "failover");
      r.start();
      // With the directory, the first connection goes to its server, c.
      const on = (await first).ref.server;
      s.sockets.get(on).deliver(move("ws://dead-2/"));
      const f = await fo;
      assert.equal(f.from, on);
      assert.notEqual(f.to, on);
      assert.equal(f.reason, Reason.Draining);
    });
  }
});

test("a Move's servers are dialled before the directory is read again", async (t) => {
  let reads = 0;
  const dir = await directoryServer(() => {
    reads++;
    return { group: "g", partial: false, servers: [{ id: "a", url: "ws://a/", players: 0, capacity: 10, draining: false }] };
  });
  t.after(() => dir.close());
  const s = fakeServers();
  const r = new Reconnector({ directory: dir.url, webSocket: s.factory, closeTimeoutMs: 50 });
  t.after(() => r.stop());
  const first = next(r, "connect");
  r.start();
  assert.equal((await first).ref.server, "a");
  const second = next(r, "connect");
  s.sockets.get("a").deliver(move("ws://b/"));
  assert.equal((await second).ref.server, "b");
  assert.equal(reads, 1, "the directory was read again before the Move's server was tried");
});

test("the directory orders servers least loaded first, without draining ones", () => {
  const d = {
    group: "g",
    partial: true,
    servers: [
      { id: "u", url: "ws://u/", players: -1, capacity: 10, draining: false },
      { id: "f", url: "ws://f/", players: 9, capacity: 10, draining: false },
      { id: "d", url: "ws://d/", players: 0, capacity: 10, draining: true },
      { id: "n", url: "ws://n/", players: 3, capacity: 0, draining: false },
      { id: "l", url: "ws://l/", players: 1, capacity: 10, draining: false },
      { id: "l2", url: "ws://l2/", players: 2, capacity: 20, draining: false },
    ],
  };
  assert.deepEqual(directoryURLs(d), ["ws://l/", "ws://l2/", "ws://f/", "ws://n/", "ws://u/"]);
});

test("fetchDirectory reads a directory and rejects what is not one", async (t) => {
  const good = { group: "g", partial: false, servers: [{ id: "x", url: "ws://x/", players: 0, capacity: 1, draining: false }] };
  const dir = await directoryServer(() => good);
  t.after(() => dir.close());
  assert.deepEqual(await within(fetchDirectory(dir.url, 5000), "the directory"), good);
  const bad = await directoryServer(() => null, 503);
  t.after(() => bad.close());
  await assert.rejects(within(fetchDirectory(bad.url, 5000), "the failing directory"), DirectoryError);
  await assert.rejects(fetchDirectory("ws://x/servers"), DirectoryError);
});

test("the reconnector connects to the directory's least loaded server, and to the URLs when it fails", async (t) => {
  const dir = await directoryServer(() => ({
    group: "g",
    partial: false,
    servers: [
      { id: "heavy", url: "ws://heavy/", players: 8, capacity: 10, draining: false },
      { id: "light", url: "ws://light/", players: 2, capacity: 10, draining: false },
      { id: "idle", url: "ws://idle/", players: 0, capacity: 10, draining: true },
    ],
  }));
  t.after(() => dir.close());
  const s = fakeServers();
  const r = new Reconnector({ urls: ["ws://conf/"], directory: dir.url, webSocket: s.factory });
  const first = next(r, "connect");
  r.start();
  assert.equal((await first).ref.server, "light");
  await r.stop();

  const broken = await directoryServer(() => null, 500);
  t.after(() => broken.close());
  const r2 = new Reconnector({ urls: ["ws://conf/"], directory: broken.url, webSocket: s.factory });
  const dirErr = next(r2, "dialError");
  const conf = next(r2, "connect");
  r2.start();
  assert.ok((await dirErr) instanceof DirectoryError);
  assert.equal((await conf).ref.server, "conf");
  await r2.stop();
});

test("a reconnector needs a server", () => {
  assert.throws(() => new Reconnector({ urls: [] }), RangeError);
  assert.throws(() => new Reconnector({ urls: ["http://x/"] }), RangeError);
  assert.throws(() => new Reconnector({ directory: "ws://x/servers" }), RangeError);
});

/** Serves body() as JSON at /servers on a loopback port (status for failures). */
async function directoryServer(body, status = 200) {
  const srv = createServer((req, res) => {
    if (req.url !== "/servers" || status !== 200) {
      res.writeHead(status === 200 ? 404 : status);
      res.end("no");
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify(body()));
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${srv.address().port}/servers`, close: () => new Promise((r) => srv.close(r)) };
}
