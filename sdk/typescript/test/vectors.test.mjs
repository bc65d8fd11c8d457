// The protocol's test vectors (protocol/testdata/vectors, written from the
// Go encoders): every valid message decodes to its description and its
// description encodes to its bytes, and every malformed server message
// ends the client with a ProtocolError the application sees, without a
// throw out of the WebSocket's event handler and without hanging.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import * as sdk from "../dist/index.js";
import { FakeWS, fakeClient, next, within } from "./helpers.mjs";

const { Kind, ProtocolError } = sdk;

const dir = new URL("../../../protocol/testdata/vectors/", import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, dir), "utf8")).vectors;

const hexOf = (b) => Buffer.from(b).toString("hex");
const bytesOf = (h) => new Uint8Array(Buffer.from(h, "hex"));

// Descriptions (see protocol/testdata/vectors/README.md) of SDK values,
// and SDK values of descriptions.
const keyJ = (k) => ({ primary: k.primary, secondary: k.secondary });
const refJ = (r) => ({ server: r.server, id: r.id.toString() });
const refV = (r) => ({ server: r.server, id: BigInt(r.id) });
const rowJ = (r) => ({ key: keyJ(r.key), uploader: refJ(r.uploader), addr: r.addr, via: r.via, data: hexOf(r.data) });
const rowV = (r) => ({ key: r.key, uploader: refV(r.uploader), addr: r.addr, via: r.via, data: bytesOf(r.data) });
const typeNames = { 1: "updated", 2: "deleted" };

/** For each kind: decode a payload to a description, encode a description to a payload. */
const codecs = {
  [Kind.ClientWelcome]: {
    decode: (p) => {
      const w = sdk.decodeWelcome(p);
      return { serverID: w.serverID, clientID: w.clientID.toString(), maxMessage: w.maxMessage };
    },
    encode: (m) => sdk.encodeWelcome({ serverID: m.serverID, clientID: BigInt(m.clientID), maxMessage: m.maxMessage }),
  },
  [Kind.Close]: {
    decode: (p) => {
      const c = sdk.decodeClose(p);
      return { reason: c.reason, reasonName: sdk.reasonName(c.reason), detail: c.message };
    },
    encode: (m) => sdk.encodeClose(m.reason, m.detail),
  },
  [Kind.ClientMove]: {
    decode: (p) => {
      const m = sdk.decodeMove(p);
      return { reason: m.reason, reasonName: sdk.reasonName(m.reason), urls: m.urls };
    },
    encode: (m) => sdk.encodeMove({ reason: m.reason, urls: m.urls }),
  },
  [Kind.User]: { decode: (p) => ({ payload: hexOf(p) }), encode: (m) => bytesOf(m.payload) },
  [Kind.CloudPost]: {
    decode: (p) => {
      const v = sdk.decodeCloudPost(p);
      return { req: v.req, key: keyJ(v.key), data: hexOf(v.data) };
    },
    encode: (m) => sdk.encodeCloudPost(m.req, m.key, bytesOf(m.data)),
  },
  [Kind.CloudRelease]: {
    decode: (p) => {
      const v = sdk.decodeCloudRelease(p);
      return { req: v.req, keys: v.keys.map(keyJ) };
    },
    encode: (m) => sdk.encodeCloudRelease(m.req, m.keys),
  },
  [Kind.CloudGet]: {
    decode: (p) => {
      const { req, query: q } = sdk.decodeCloudGet(p);
      return { req, subscribe: q.subscribe, offset: q.offset, limit: q.limit, keys: q.keys.map(keyJ), uploaders: q.uploaders.map(refJ) };
    },
    encode: (m) => sdk.encodeCloudGet(m.req, { ...m, uploaders: m.uploaders.map(refV) }),
  },
  [Kind.CloudUnsubscribe]: {
    decode: (p) => {
      const v = sdk.decodeCloudUnsubscribe(p);
      return { req: v.req, keys: v.keys.map(keyJ), uploaders: v.uploaders.map(refJ) };
    },
    encode: (m) => sdk.encodeCloudUnsubscribe(m.req, m.keys, m.uploaders.map(refV)),
  },
  [Kind.CloudReply]: {
    decode: (p) => {
      const v = sdk.decodeCloudReply(p);
      return { req: v.req, code: v.code, codeName: sdk.cloudCodeName(v.code), message: v.message };
    },
    encode: (m) => sdk.encodeCloudReply(m),
  },
  [Kind.CloudResult]: {
    decode: (p) => {
      const v = sdk.decodeCloudResult(p);
      return {
        req: v.req, code: v.code, codeName: sdk.cloudCodeName(v.code), message: v.message, truncated: v.truncated,
        partial: v.partial, total: v.total, missing: v.missing.map(keyJ), rows: v.rows.map(rowJ),
      };
    },
    encode: (m) => sdk.encodeCloudResult({ ...m, rows: m.rows.map(rowV) }),
  },
  [Kind.CloudNotify]: {
    decode: (p) => {
      const v = sdk.decodeCloudNotice(p);
      return { type: v.type, typeName: typeNames[v.type], created: v.created, row: rowJ(v.row) };
    },
    encode: (m) => sdk.encodeCloudNotice({ ...m, row: rowV(m.row) }),
  },
  [Kind.CloudResync]: {
    decode: (p) => {
      const v = sdk.decodeCloudResync(p);
      return { truncated: v.truncated, key: keyJ(v.key), rows: v.rows.map(rowJ) };
    },
    encode: (m) => sdk.encodeCloudResync({ ...m, rows: m.rows.map(rowV) }),
  },
};

for (const file of ["session.json", "cloud-requests.json", "cloud-answers.json", "cloud-notices.json"]) {
  test(`vectors of ${file} decode and encode byte-exact`, async (t) => {
    const vectors = load(file);
    assert.ok(vectors.length > 0);
    for (const v of vectors) {
      await t.test(v.name, () => {
        const c = codecs[v.kind];
        assert.ok(c, `no codec for kind ${v.kind}`);
        const f = sdk.decodeWS(bytesOf(v.hex));
        assert.deepEqual([f.kind, f.tag], [v.kind, v.tag]);
        assert.deepEqual(c.decode(f.payload), v.message);
        assert.equal(hexOf(sdk.encodeWS(v.kind, v.tag, c.encode(v.message))), v.hex);
      });
    }
  });
}

test("malformed server messages end the client with a ProtocolError", async (t) => {
  const vectors = load("malformed.json");
  assert.ok(vectors.length > 0);
  for (const v of vectors) {
    await t.test(v.name, async () => {
      const msg = bytesOf(v.hex);
      if (v.phase === "welcome") {
        let ws;
        const p = sdk.connect({ url: "ws://fake/", webSocket: (url) => (ws = new FakeWS(url)) });
        assert.doesNotThrow(() => ws.deliver(msg));
        await assert.rejects(within(p, "connect"), ProtocolError);
        assert.equal(ws.readyState, 3);
        return;
      }
      const { c, ws } = await fakeClient();
      const pending = c.post({ primary: "k", secondary: 1 }, new Uint8Array());
      const closed = next(c, "close");
      assert.doesNotThrow(() => ws.deliver(msg));
      const err = await closed;
      assert.ok(err instanceof ProtocolError, `${err}`);
      assert.equal(c.err, err);
      await assert.rejects(within(pending, "the pending post"), sdk.ClosedError);
      assert.equal(ws.readyState, 3);
    });
  }
});
