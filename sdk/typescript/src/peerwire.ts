// The server's half of the cloud messages: decoders of a client's requests
// and encoders of the answers and notifications a server sends. A client
// does not need them to talk to a server; fake servers, tests and tools do,
// and with wire.ts they cover both directions of every client kind, checked
// against the protocol's test vectors (protocol/testdata/vectors).

import {
  ClientRef,
  CloudNotice,
  CloudReply,
  CloudResult,
  CloudResync,
  Key,
  Limits,
  Query,
  Reader,
  Row,
  WireError,
  Writer,
  utf8,
} from "./wire.js";

const flagSubscribe = 1;
const flagTruncated = 1;
const flagPartial = 2;
const flagCreated = 1;

/** A client's Post. */
export interface CloudPost {
  req: number;
  key: Key;
  data: Uint8Array;
}

export function decodeCloudPost(b: Uint8Array): CloudPost {
  const r = new Reader(b, "cloud post");
  return { req: r.u32("req"), key: r.key(), data: r.rest() };
}

/** A client's Release. */
export interface CloudRelease {
  req: number;
  keys: Key[];
}

export function decodeCloudRelease(b: Uint8Array): CloudRelease {
  const r = new Reader(b, "cloud release");
  const v = { req: r.u32("req"), keys: r.keys("keys") };
  r.end();
  return v;
}

/** A client's Get; the query's optional fields are all present. */
export interface CloudGet {
  req: number;
  query: Required<Query>;
}

export function decodeCloudGet(b: Uint8Array): CloudGet {
  const r = new Reader(b, "cloud get");
  const req = r.u32("req");
  const subscribe = (r.flags(flagSubscribe) & flagSubscribe) !== 0;
  const offset = r.u32("offset");
  const limit = r.u32("limit");
  const keys = r.keys("keys");
  const uploaders = r.refs("uploaders");
  r.end();
  return { req, query: { keys, uploaders, offset, limit, subscribe } };
}

/** A client's Unsubscribe. */
export interface CloudUnsubscribe {
  req: number;
  keys: Key[];
  uploaders: ClientRef[];
}

export function decodeCloudUnsubscribe(b: Uint8Array): CloudUnsubscribe {
  const r = new Reader(b, "cloud unsubscribe");
  const v = { req: r.u32("req"), keys: r.keys("keys"), uploaders: r.refs("uploaders") };
  r.end();
  return v;
}

/** Appends a u16-prefixed message of at most Limits.maxMessage bytes. */
function msg(w: Writer, s: string): Writer {
  const b = utf8(s);
  if (b.length > Limits.maxMessage) throw new WireError(`message of ${b.length} bytes, at most ${Limits.maxMessage}`);
  return w.u16(b.length).bytes(b);
}

function rows(w: Writer, rs: readonly Row[]): Writer {
  w.u32(rs.length);
  for (const r of rs) row(w, r);
  return w;
}

function row(w: Writer, r: Row): Writer {
  return w.key(r.key).ref(r.uploader).str8(r.addr).str8(r.via).u32(r.data.length).bytes(r.data);
}

export function encodeCloudReply(m: CloudReply): Uint8Array {
  return msg(new Writer().u32(m.req).u16(m.code), m.message).finish();
}

export function encodeCloudResult(m: CloudResult): Uint8Array {
  const w = msg(new Writer().u32(m.req).u16(m.code), m.message);
  w.u8((m.truncated ? flagTruncated : 0) | (m.partial ? flagPartial : 0)).u32(m.total).keys(m.missing);
  return rows(w, m.rows).finish();
}

export function encodeCloudNotice(m: CloudNotice): Uint8Array {
  return row(new Writer().u8(m.type).u8(m.created ? flagCreated : 0), m.row).finish();
}

export function encodeCloudResync(m: CloudResync): Uint8Array {
  return rows(new Writer().u8(m.truncated ? flagTruncated : 0).key(m.key), m.rows).finish();
}
