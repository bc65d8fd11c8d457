// The cloud-memory side of a client: requests with their IDs, answers,
// notifications, and the views they keep up to date. Everything runs on
// the WebSocket's message events, so answers, snapshots and notifications
// are applied in the order the server sent them.

import type { CallOptions, Client } from "./client.js";
import { CloudError, ClosedError, MessageTooLargeError, TimeoutError } from "./errors.js";
import { UnionGroup, View, ViewSet, keyId } from "./view.js";
import {
  ClientRef,
  CloudCode,
  CloudResult,
  Key,
  Kind,
  Limits,
  Query,
  Row,
  WireError,
  decodeCloudNotice,
  decodeCloudReply,
  decodeCloudResult,
  decodeCloudResync,
  encodeCloudGet,
  encodeCloudPost,
  encodeCloudRelease,
  encodeCloudUnsubscribe,
  keyProblem,
} from "./wire.js";

/** The answer to a get. */
export interface Result {
  /** Rows in query key order, then uploader order, after offset and within limit. */
  rows: Row[];
  /** Every matching row of the keys that answered, whatever offset, limit and the byte limit. */
  total: number;
  /** The server's download byte limit cut rows short (at least one row is returned). */
  truncated: boolean;
  /** The replicas owning missing did not answer in time; with subscribe, their rows come in a resync. */
  partial: boolean;
  missing: Key[];
}

/**
 * One change to a subscribed key. "updated": row was created (created) or
 * overwritten. "deleted": row was deleted (released, or its uploader is
 * gone); row holds its last value. "resync": rows replace everything known
 * about key that matches the subscription.
 */
export type Notification =
  | { type: "updated"; key: Key; row: Row; created: boolean }
  | { type: "deleted"; key: Key; row: Row }
  | { type: "resync"; key: Key; rows: Row[]; truncated: boolean };

interface Pending {
  resolve(r: CloudResult | null): void;
  reject(err: Error): void;
  /** The keys whose views take this get's snapshot, before later notifications. */
  viewKeys?: readonly Key[];
}

/** Validates request keys, returning the error to reject with. */
export function keysProblem(keys: readonly Key[]): CloudError | null {
  if (keys.length === 0) return new CloudError(CloudCode.BadRequest, "no keys");
  if (keys.length > Limits.maxKeys) return new CloudError(CloudCode.TooManyKeys, `${keys.length} keys`);
  for (const k of keys) {
    const p = keyProblem(k);
    if (p !== null) return new CloudError(CloudCode.BadRequest, p);
  }
  return null;
}

/** A row a client posted and did not release. */
export interface PostedRow {
  key: Key;
  data: Uint8Array;
}

/** Whether a post that failed with err certainly created no row: the server refused it, or it was never sent. */
function failedForSure(err: unknown): boolean {
  if (err instanceof CloudError) return err.code !== CloudCode.Timeout;
  return err instanceof MessageTooLargeError;
}

export class CloudSession {
  private seq = 0;
  private keep = false;
  /** @internal With keep: the rows posted and not released, by key id, the latest data of each. */
  readonly posted = new Map<string, PostedRow>();
  /** @internal With keep: the key ids the application posted or released on this session. */
  readonly touched = new Set<string>();
  private readonly pending = new Map<number, Pending>();
  /** @internal */
  readonly views: ViewSet;
  private ended: Error | null = null;

  constructor(
    private readonly client: Client,
    report: (err: unknown) => void,
    private readonly send: (kind: number, payload: Uint8Array) => void,
    private readonly callTimeoutMs: number,
  ) {
    this.views = new ViewSet(report);
  }

  /**
   * Posts a row. With keep (a Reconnector's repost), the row is recorded
   * as it is sent (the request goes out synchronously, so records and the
   * server see the same order) and forgotten when the post certainly
   * failed. user false: a row carried over from an earlier connection,
   * skipped when the application posted or released the key here itself.
   */
  post(key: Key, data: Uint8Array, opts?: CallOptions, user = true): Promise<void> {
    const bad = keysProblem([key]);
    if (bad) return Promise.reject(bad);
    const send = () => this.call(Kind.CloudPost, (req) => encodeCloudPost(req, key, data), opts).then(() => undefined);
    if (!this.keep) return send();
    const id = keyId(key);
    if (!user && this.touched.has(id)) return Promise.resolve();
    if (user) this.touched.add(id);
    const entry = { key: { primary: key.primary, secondary: key.secondary }, data: data.slice() };
    this.posted.set(id, entry);
    return send().catch((err) => {
      if (failedForSure(err) && this.posted.get(id) === entry) this.posted.delete(id);
      throw err;
    });
  }

  release(keys: readonly Key[], opts?: CallOptions): Promise<void> {
    const bad = keysProblem(keys);
    if (bad) return Promise.reject(bad);
    if (this.keep) {
      for (const k of keys) {
        this.posted.delete(keyId(k));
        this.touched.add(keyId(k));
      }
    }
    return this.call(Kind.CloudRelease, (req) => encodeCloudRelease(req, keys), opts).then(() => undefined);
  }

  /** @internal Records posted rows from now on (see post). */
  keepPosted(): void {
    this.keep = true;
  }

  async get(q: Query, opts?: CallOptions): Promise<Result> {
    const bad = keysProblem(q.keys);
    if (bad) throw bad;
    const r = (await this.call(Kind.CloudGet, (req) => encodeCloudGet(req, q), opts))!;
    return { rows: r.rows, total: r.total, truncated: r.truncated, partial: r.partial, missing: r.missing };
  }

  unsubscribe(keys: readonly Key[], uploaders: readonly ClientRef[], opts?: CallOptions): Promise<void> {
    const bad = keysProblem(keys);
    if (bad) return Promise.reject(bad);
    return this.call(Kind.CloudUnsubscribe, (req) => encodeCloudUnsubscribe(req, keys, uploaders), opts).then(() => undefined);
  }

  async view(keys: readonly Key[], uploaders: readonly ClientRef[], opts?: CallOptions): Promise<View> {
    const bad = keysProblem(keys);
    if (bad) throw bad;
    if (this.ended) throw this.ended;
    const v = new View(keys, uploaders, this.views.report);
    try {
      for (const g of this.attach(v)) await this.subscribe(g.keys, g.uploaders, opts);
    } catch (err) {
      await v.close().catch(() => undefined);
      throw err;
    }
    return v;
  }

  /** @internal Attaches views to this session; returns the subscriptions their keys now need. */
  attach(...views: View[]): UnionGroup[] {
    for (const v of views) v.attach(this, this.client);
    return this.views.add(...views);
  }

  /** @internal Subscribes keys with a union filter; the snapshot goes to their views. */
  subscribe(keys: readonly Key[], uploaders: readonly ClientRef[] | null, opts?: CallOptions): Promise<unknown> {
    const q: Query = { keys, uploaders: uploaders ?? [], subscribe: true };
    return this.call(Kind.CloudGet, (req) => encodeCloudGet(req, q), opts, keys);
  }

  /** Sends one request and waits for its answer, the client's end, or opts.signal. */
  private call(kind: number, encode: (req: number) => Uint8Array, opts?: CallOptions, viewKeys?: readonly Key[]): Promise<CloudResult | null> {
    if (this.ended) return Promise.reject(this.ended);
    const signal = opts?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
    do {
      this.seq = (this.seq + 1) >>> 0;
    } while (this.seq === 0 || this.pending.has(this.seq));
    const req = this.seq;
    let payload: Uint8Array;
    try {
      payload = encode(req);
    } catch (err) {
      return Promise.reject(err instanceof WireError ? new CloudError(CloudCode.BadRequest, err.message) : err);
    }
    const max = this.client.maxMessage;
    if (max > 0 && payload.length > max) return Promise.reject(new MessageTooLargeError(payload.length, max, `request of kind ${kind}`));
    return new Promise((resolve, reject) => {
      let onAbort: (() => void) | undefined;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        this.pending.delete(req);
        if (onAbort) signal!.removeEventListener("abort", onAbort);
        clearTimeout(timer);
      };
      this.pending.set(req, {
        resolve: (r) => (done(), resolve(r)),
        reject: (e) => (done(), reject(e)),
        viewKeys,
      });
      if (signal) {
        onAbort = () => this.pending.get(req)?.reject(signal.reason ?? new Error("aborted"));
        signal.addEventListener("abort", onAbort);
      }
      const timeout = this.callTimeoutMs;
      if (timeout > 0) {
        timer = setTimeout(() => this.pending.get(req)?.reject(new TimeoutError(`cloud request of kind ${kind}: no answer within ${timeout}ms`)), timeout);
      }
      try {
        this.send(kind, payload);
      } catch (err) {
        this.pending.get(req)?.reject(err as Error);
      }
    });
  }

  /** Handles one cloud message from the server; throws a WireError when it does not decode. */
  onFrame(kind: number, payload: Uint8Array, deliver: boolean): void {
    switch (kind) {
      case Kind.CloudReply: {
        const m = decodeCloudReply(payload);
        const p = this.pending.get(m.req);
        if (!p) return;
        if (m.code === CloudCode.OK) p.resolve(null);
        else p.reject(new CloudError(m.code, m.message));
        return;
      }
      case Kind.CloudResult: {
        const m = decodeCloudResult(payload);
        const p = this.pending.get(m.req);
        if (!p) return;
        if (m.code !== CloudCode.OK) {
          p.reject(new CloudError(m.code, m.message));
          return;
        }
        if (p.viewKeys) this.views.snapshot(p.viewKeys, m);
        p.resolve(m);
        return;
      }
      case Kind.CloudNotify: {
        const m = decodeCloudNotice(payload);
        const n: Notification =
          m.type === 1
            ? { type: "updated", key: m.row.key, row: m.row, created: m.created }
            : { type: "deleted", key: m.row.key, row: m.row };
        this.views.apply(n);
        if (deliver) this.client.emitNotification(n);
        return;
      }
      case Kind.CloudResync: {
        const m = decodeCloudResync(payload);
        const n: Notification = { type: "resync", key: m.key, rows: m.rows, truncated: m.truncated };
        this.views.apply(n);
        if (deliver) this.client.emitNotification(n);
        return;
      }
    }
  }

  /** Fails every pending request and ends the views; runs once, when the client ends. */
  end(err: ClosedError): void {
    this.ended = err;
    for (const p of [...this.pending.values()]) p.reject(err);
    this.pending.clear();
    this.views.end();
  }

  /** @internal Whether the client has ended. */
  get isEnded(): boolean {
    return this.ended !== null;
  }
}
