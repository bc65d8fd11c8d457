// The client wire format of cloudrift (docs/PROTOCOL.md): every WebSocket
// message is `u8 kind | u16 tag | payload`, big-endian. This module only
// encodes and decodes; decoders are strict (truncation, trailing bytes,
// unknown flags and invalid UTF-8 are errors) and never allocate more than
// the input can hold.

/** Message kinds a game client sends or receives. */
export const Kind = {
  Close: 5,
  User: 16,
  ClientWelcome: 32,
  ClientMove: 33,
  CloudPost: 64,
  CloudRelease: 65,
  CloudGet: 66,
  CloudUnsubscribe: 67,
  CloudReply: 68,
  CloudResult: 69,
  CloudNotify: 70,
  CloudResync: 71,
} as const;

/**
 * Kinds that only travel between servers (handshake, link keepalive,
 * client routing). A server never sends them to a game client: receiving
 * one is a protocol error. (33 is ClientSend on links, Move to a client.)
 */
export function isLinkKind(kind: number): boolean {
  return (kind >= 1 && kind <= 8 && kind !== Kind.Close) || (kind >= 34 && kind <= 36);
}

/** Extension kinds: the system protocols of server plugins (the cloud memory uses 64–71). */
export const FirstExtensionKind = 64;
export const LastExtensionKind = 95;

/** Whether kind is an extension kind (64–95). */
export function isExtensionKind(kind: number): boolean {
  return kind >= FirstExtensionKind && kind <= LastExtensionKind;
}

/** Close reasons (a KindClose message's code). */
export const Reason = {
  None: 0,
  Shutdown: 1,
  Protocol: 2,
  FrameTooLarge: 3,
  Auth: 4,
  WrongSystem: 5,
  NotDownstream: 6,
  Version: 7,
  HandshakeTimeout: 8,
  HeartbeatTimeout: 9,
  SlowPeer: 10,
  Replaced: 11,
  ClientProtocol: 12,
  PeerLeft: 13,
  IO: 14,
  UnknownPeer: 15,
  MessageTooLarge: 16,
  RateLimited: 17,
  ServerFull: 18,
  ReadTimeout: 19,
  SlowClient: 20,
  AuthRefused: 21,
  Kicked: 22,
  WriteTimeout: 23,
  WriteStalled: 24,
  Draining: 25,
} as const;

const reasonNames = [
  "none",
  "shutdown",
  "protocol error",
  "frame too large",
  "authentication failed",
  "wrong system",
  "group not allowed to connect",
  "unsupported version",
  "handshake timeout",
  "heartbeat timeout",
  "slow peer",
  "replaced by a newer link",
  "client protocol on a server port",
  "peer left the registry",
  "connection failed",
  "unexpected peer identity",
  "message too large",
  "rate limited",
  "server full",
  "read timeout",
  "slow client",
  "authentication refused",
  "kicked",
  "write timeout",
  "write stalled",
  "draining",
];

/** The name of a close reason, as the servers log it. */
export function reasonName(r: number): string {
  return reasonNames[r] ?? `reason(${r})`;
}

/** Outcome codes of cloud-memory requests. */
export const CloudCode = {
  OK: 0,
  BadRequest: 1,
  NotOwner: 2,
  Unavailable: 3,
  Rejected: 4,
  UploadLimit: 5,
  RowTooLarge: 6,
  TooManyKeys: 7,
  TooManySubscriptions: 8,
  NotSubscribed: 9,
  SubscribedToAll: 10,
  Timeout: 11,
  ShuttingDown: 12,
  RateLimited: 13,
} as const;

const cloudCodeNames = [
  "ok",
  "bad request",
  "not owner",
  "unavailable",
  "rejected",
  "upload limit",
  "row too large",
  "too many keys",
  "too many subscriptions",
  "not subscribed",
  "subscribed to all uploaders",
  "timeout",
  "shutting down",
  "rate limited",
];

/** The name of a cloud code. */
export function cloudCodeName(c: number): string {
  return cloudCodeNames[c] ?? `code(${c})`;
}

/** Size limits of the wire. */
export const Limits = {
  /** Longest key primary, in UTF-8 bytes. */
  maxPrimary: 255,
  /** Most keys (or uploaders) one request lists. */
  maxKeys: 65535,
  /** Longest message a Close or a cloud answer carries, in bytes. */
  maxMessage: 1024,
  /** Most URLs one Move carries (its count is a u8). */
  maxMoveURLs: 255,
  /** Longest URL a Move carries, in bytes (its length is a u16). */
  maxMoveURL: 65535,
} as const;

/**
 * The system-wide address of a game client: the external server holding
 * it and its ID there (a server's own ref has ID 0). IDs use all 64 bits,
 * hence bigint.
 */
export interface ClientRef {
  server: string;
  id: bigint;
}

/** Formats a ref as "server#id", as the servers log it. */
export function refString(r: ClientRef): string {
  return `${r.server}#${r.id}`;
}

/** Whether two refs name the same client. */
export function sameRef(a: ClientRef, b: ClientRef): boolean {
  return a.id === b.id && a.server === b.server;
}

/** What a cloud-memory row is about; many uploaders may hold a row under one key. */
export interface Key {
  /** At most 255 bytes of UTF-8. */
  primary: string;
  /** An unsigned 32-bit integer. */
  secondary: number;
}

/** Formats a key as "primary/secondary". */
export function keyString(k: Key): string {
  return `${k.primary}/${k.secondary}`;
}

/** One row: the data one uploader holds under one key. */
export interface Row {
  key: Key;
  /** The client (or server, ID 0) that posted the row. */
  uploader: ClientRef;
  /** The uploader's remote address ("" for a server). */
  addr: string;
  /** The server the row came through. */
  via: string;
  data: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** UTF-8 bytes of s. */
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}

/** Orders refs by server (bytewise, as UTF-8), then ID: the uploader order of results. */
export function compareRefs(a: ClientRef, b: ClientRef): number {
  if (a.server !== b.server) {
    const x = utf8(a.server);
    const y = utf8(b.server);
    const n = Math.min(x.length, y.length);
    for (let i = 0; i < n; i++) {
      if (x[i] !== y[i]) return x[i] - y[i];
    }
    if (x.length !== y.length) return x.length - y.length;
  }
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** A payload did not decode. The SDK ends the client with a ProtocolError wrapping it. */
export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}

/** Checks that a key can be encoded; the message says why not. */
export function keyProblem(k: Key): string | null {
  if (typeof k.primary !== "string") return "key primary is not a string";
  if (utf8(k.primary).length > Limits.maxPrimary) return `key primary ${JSON.stringify(k.primary)} exceeds ${Limits.maxPrimary} bytes`;
  if (!Number.isInteger(k.secondary) || k.secondary < 0 || k.secondary > 0xffffffff) return `key secondary ${k.secondary} is not a u32`;
  return null;
}

/** Appends big-endian fields to a growing buffer. */
export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private n = 0;

  constructor(size = 64) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }

  private room(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.n + k));
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.room(1);
    this.buf[this.n++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.room(2);
    this.view.setUint16(this.n, v);
    this.n += 2;
    return this;
  }
  u32(v: number): this {
    this.room(4);
    this.view.setUint32(this.n, v >>> 0);
    this.n += 4;
    return this;
  }
  u64(v: bigint): this {
    this.room(8);
    this.view.setBigUint64(this.n, BigInt.asUintN(64, v));
    this.n += 8;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    return this;
  }
  /** A u8-length-prefixed string; longer than 255 bytes is a WireError. */
  str8(s: string): this {
    const b = utf8(s);
    if (b.length > 255) throw new WireError(`string of ${b.length} bytes does not fit a str8`);
    return this.u8(b.length).bytes(b);
  }
  key(k: Key): this {
    return this.str8(k.primary).u32(k.secondary);
  }
  ref(r: ClientRef): this {
    return this.str8(r.server).u64(r.id);
  }
  keys(ks: readonly Key[]): this {
    if (ks.length > Limits.maxKeys) throw new WireError(`${ks.length} keys, at most ${Limits.maxKeys}`);
    this.u16(ks.length);
    for (const k of ks) this.key(k);
    return this;
  }
  refs(rs: readonly ClientRef[]): this {
    if (rs.length > Limits.maxKeys) throw new WireError(`${rs.length} uploaders, at most ${Limits.maxKeys}`);
    this.u16(rs.length);
    for (const r of rs) this.ref(r);
    return this;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.n);
  }
}

/** Reads big-endian fields; any shortfall or bad value throws a WireError. */
export class Reader {
  private off = 0;
  private readonly view: DataView;

  constructor(private readonly b: Uint8Array, private readonly what: string) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private fail(msg: string): never {
    throw new WireError(`${this.what}: ${msg}`);
  }
  private need(n: number, field: string): void {
    const left = this.b.length - this.off;
    if (left < n) this.fail(`${field} truncated (need ${n} bytes, have ${left})`);
  }
  get left(): number {
    return this.b.length - this.off;
  }

  u8(field: string): number {
    this.need(1, field);
    return this.b[this.off++];
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.off);
    this.off += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }
  u64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.off);
    this.off += 8;
    return v;
  }
  /** n bytes, copied out of the input. */
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.b.slice(this.off, this.off + n);
    this.off += n;
    return v;
  }
  text(n: number, field: string): string {
    this.need(n, field);
    const p = this.b.subarray(this.off, this.off + n);
    this.off += n;
    try {
      return decoder.decode(p);
    } catch {
      return this.fail(`${field} is not valid UTF-8`);
    }
  }
  str8(field: string): string {
    return this.text(this.u8(`${field} length`), field);
  }
  str16(field: string, limit: number): string {
    const n = this.u16(`${field} length`);
    if (n > limit) this.fail(`${field} is ${n} bytes, limit ${limit}`);
    return this.text(n, field);
  }
  flags(known: number): number {
    const f = this.u8("flags");
    if ((f & ~known) !== 0) this.fail(`unknown flags 0x${(f & ~known).toString(16)}`);
    return f;
  }
  rest(): Uint8Array {
    const v = this.b.slice(this.off);
    this.off = this.b.length;
    return v;
  }
  /** Fails unless count elements of at least size bytes each can fit. */
  private check(count: number, size: number, field: string): void {
    if (count > Math.floor(this.left / size)) this.fail(`${count} ${field} need at least ${count * size} bytes, have ${this.left}`);
  }
  key(): Key {
    return { primary: this.str8("key primary"), secondary: this.u32("key secondary") };
  }
  ref(field: string): ClientRef {
    return { server: this.str8(`${field} server`), id: this.u64(`${field} id`) };
  }
  keys(field: string): Key[] {
    const n = this.u16(`${field} count`);
    this.check(n, 5, field);
    const out: Key[] = [];
    for (let i = 0; i < n; i++) out.push(this.key());
    return out;
  }
  refs(field: string): ClientRef[] {
    const n = this.u16(`${field} count`);
    this.check(n, 9, field);
    const out: ClientRef[] = [];
    for (let i = 0; i < n; i++) out.push(this.ref(field));
    return out;
  }
  row(): Row {
    const key = this.key();
    const uploader = this.ref("uploader");
    const addr = this.str8("addr");
    const via = this.str8("via");
    const n = this.u32("data length");
    return { key, uploader, addr, via, data: this.bytes(n, "data") };
  }
  rows(): Row[] {
    const n = this.u32("row count");
    this.check(n, 20, "rows");
    const out: Row[] = [];
    for (let i = 0; i < n; i++) out.push(this.row());
    return out;
  }
  end(): void {
    if (this.left > 0) this.fail(`${this.left} trailing bytes`);
  }
}

/** A decoded client message. */
export interface Frame {
  kind: number;
  tag: number;
  payload: Uint8Array;
}

/** Encodes one WebSocket message: kind, tag, payload. */
export function encodeWS(kind: number, tag: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(3 + payload.length);
  out[0] = kind;
  out[1] = (tag >> 8) & 0xff;
  out[2] = tag & 0xff;
  out.set(payload, 3);
  return out;
}

/** Splits one WebSocket message; payload aliases b. */
export function decodeWS(b: Uint8Array): Frame {
  if (b.length < 3) throw new WireError(`client message of ${b.length} bytes, shorter than its 3-byte header`);
  return { kind: b[0], tag: (b[1] << 8) | b[2], payload: b.subarray(3) };
}

/** The server's greeting: who the client is, and its message limit. */
export interface Welcome {
  serverID: string;
  clientID: bigint;
  maxMessage: number;
}

export function decodeWelcome(b: Uint8Array): Welcome {
  const r = new Reader(b, "client welcome");
  const w = { serverID: r.str8("server ID"), clientID: r.u64("client ID"), maxMessage: r.u32("max message") };
  r.end();
  return w;
}

export function encodeWelcome(w: Welcome): Uint8Array {
  return new Writer().str8(w.serverID).u64(w.clientID).u32(w.maxMessage).finish();
}

/** A Close payload: reason and detail. */
export function decodeClose(b: Uint8Array): { reason: number; message: string } {
  const r = new Reader(b, "close");
  const v = { reason: r.u16("reason"), message: r.str16("message", Limits.maxMessage) };
  r.end();
  return v;
}

export function encodeClose(reason: number, message: string): Uint8Array {
  const m = utf8(message);
  return new Writer().u16(reason).u16(m.length).bytes(m).finish();
}

/**
 * A server's request that the client connect to another server of its
 * group, then close this session (make before break): the server is
 * draining. urls, least loaded first, may be empty: use the directory or
 * the configured URLs.
 */
export interface Move {
  reason: number;
  urls: string[];
}

export function decodeMove(b: Uint8Array): Move {
  const r = new Reader(b, "move");
  const reason = r.u16("reason");
  const n = r.u8("url count");
  if (n * 2 > r.left) throw new WireError(`move: ${n} URLs need at least ${n * 2} bytes, have ${r.left}`);
  const urls: string[] = [];
  for (let i = 0; i < n; i++) urls.push(r.str16("url", Limits.maxMoveURL));
  r.end();
  return { reason, urls };
}

export function encodeMove(m: Move): Uint8Array {
  if (m.urls.length > Limits.maxMoveURLs) throw new WireError(`${m.urls.length} URLs, at most ${Limits.maxMoveURLs}`);
  const w = new Writer().u16(m.reason).u8(m.urls.length);
  for (const u of m.urls) {
    const b = utf8(u);
    if (b.length > Limits.maxMoveURL) throw new WireError(`URL of ${b.length} bytes, at most ${Limits.maxMoveURL}`);
    w.u16(b.length).bytes(b);
  }
  return w.finish();
}

// Cloud-memory flags.
const flagSubscribe = 1; // CloudGet
const flagTruncated = 1; // CloudResult, CloudResync
const flagPartial = 2; // CloudResult
const flagCreated = 1; // CloudNotice

/** A query for rows (see Client.get). */
export interface Query {
  /** Keys to read, in the order results come back. Required. */
  keys: readonly Key[];
  /** When not empty, only rows (and notifications) of these uploaders. */
  uploaders?: readonly ClientRef[];
  /** Skips that many rows of the ordered result. */
  offset?: number;
  /** Caps how many rows come back; 0 or absent: no cap. */
  limit?: number;
  /** Also subscribe to the keys, atomically with the snapshot. */
  subscribe?: boolean;
}

export function encodeCloudPost(req: number, key: Key, data: Uint8Array): Uint8Array {
  return new Writer(16 + data.length).u32(req).key(key).bytes(data).finish();
}

export function encodeCloudRelease(req: number, keys: readonly Key[]): Uint8Array {
  return new Writer().u32(req).keys(keys).finish();
}

export function encodeCloudGet(req: number, q: Query): Uint8Array {
  return new Writer()
    .u32(req)
    .u8(q.subscribe ? flagSubscribe : 0)
    .u32(q.offset ?? 0)
    .u32(q.limit ?? 0)
    .keys(q.keys)
    .refs(q.uploaders ?? [])
    .finish();
}

export function encodeCloudUnsubscribe(req: number, keys: readonly Key[], uploaders: readonly ClientRef[]): Uint8Array {
  return new Writer().u32(req).keys(keys).refs(uploaders).finish();
}

/** The answer to a Post, Release or Unsubscribe. */
export interface CloudReply {
  req: number;
  code: number;
  message: string;
}

export function decodeCloudReply(b: Uint8Array): CloudReply {
  const r = new Reader(b, "cloud reply");
  const v = { req: r.u32("req"), code: r.u16("code"), message: r.str16("message", Limits.maxMessage) };
  r.end();
  return v;
}

/** The answer to a Get. */
export interface CloudResult extends CloudReply {
  truncated: boolean;
  partial: boolean;
  total: number;
  missing: Key[];
  rows: Row[];
}

export function decodeCloudResult(b: Uint8Array): CloudResult {
  const r = new Reader(b, "cloud result");
  const req = r.u32("req");
  const code = r.u16("code");
  const message = r.str16("message", Limits.maxMessage);
  const flags = r.flags(flagTruncated | flagPartial);
  const total = r.u32("total");
  const missing = r.keys("missing");
  const rows = r.rows();
  r.end();
  return { req, code, message, truncated: (flags & flagTruncated) !== 0, partial: (flags & flagPartial) !== 0, total, missing, rows };
}

/** A change to one row of a subscribed key. */
export interface CloudNotice {
  /** 1: updated (created or overwritten); 2: deleted. */
  type: 1 | 2;
  created: boolean;
  row: Row;
}

export function decodeCloudNotice(b: Uint8Array): CloudNotice {
  const r = new Reader(b, "cloud notice");
  const type = r.u8("type");
  const flags = r.flags(flagCreated);
  const row = r.row();
  r.end();
  if (type !== 1 && type !== 2) throw new WireError(`cloud notice: unknown type ${type}`);
  const created = (flags & flagCreated) !== 0;
  if (type === 2 && created) throw new WireError("cloud notice: created flag on a deletion");
  return { type, created, row };
}

/** Everything known about one subscribed key, replacing what the client held. */
export interface CloudResync {
  truncated: boolean;
  key: Key;
  rows: Row[];
}

export function decodeCloudResync(b: Uint8Array): CloudResync {
  const r = new Reader(b, "cloud resync");
  const truncated = (r.flags(flagTruncated) & flagTruncated) !== 0;
  const key = r.key();
  const rows = r.rows();
  r.end();
  return { truncated, key, rows };
}
