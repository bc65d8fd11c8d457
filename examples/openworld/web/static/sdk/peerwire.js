// The server's half of the cloud messages: decoders of a client's requests
// and encoders of the answers and notifications a server sends. A client
// does not need them to talk to a server; fake servers, tests and tools do,
// and with wire.ts they cover both directions of every client kind, checked
// against the protocol's test vectors (protocol/testdata/vectors).
import { Limits, Reader, WireError, Writer, utf8, } from "./wire.js";
const flagSubscribe = 1;
const flagTruncated = 1;
const flagPartial = 2;
const flagCreated = 1;
export function decodeCloudPost(b) {
    const r = new Reader(b, "cloud post");
    return { req: r.u32("req"), key: r.key(), data: r.rest() };
}
export function decodeCloudRelease(b) {
    const r = new Reader(b, "cloud release");
    const v = { req: r.u32("req"), keys: r.keys("keys") };
    r.end();
    return v;
}
export function decodeCloudGet(b) {
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
export function decodeCloudUnsubscribe(b) {
    const r = new Reader(b, "cloud unsubscribe");
    const v = { req: r.u32("req"), keys: r.keys("keys"), uploaders: r.refs("uploaders") };
    r.end();
    return v;
}
/** Appends a u16-prefixed message of at most Limits.maxMessage bytes. */
function msg(w, s) {
    const b = utf8(s);
    if (b.length > Limits.maxMessage)
        throw new WireError(`message of ${b.length} bytes, at most ${Limits.maxMessage}`);
    return w.u16(b.length).bytes(b);
}
function rows(w, rs) {
    w.u32(rs.length);
    for (const r of rs)
        row(w, r);
    return w;
}
function row(w, r) {
    return w.key(r.key).ref(r.uploader).str8(r.addr).str8(r.via).u32(r.data.length).bytes(r.data);
}
export function encodeCloudReply(m) {
    return msg(new Writer().u32(m.req).u16(m.code), m.message).finish();
}
export function encodeCloudResult(m) {
    const w = msg(new Writer().u32(m.req).u16(m.code), m.message);
    w.u8((m.truncated ? flagTruncated : 0) | (m.partial ? flagPartial : 0)).u32(m.total).keys(m.missing);
    return rows(w, m.rows).finish();
}
export function encodeCloudNotice(m) {
    return row(new Writer().u8(m.type).u8(m.created ? flagCreated : 0), m.row).finish();
}
export function encodeCloudResync(m) {
    return rows(new Writer().u8(m.truncated ? flagTruncated : 0).key(m.key), m.rows).finish();
}
