// A View is a live copy of the rows of some keys: it subscribes to them and
// keeps a local map that is always the server's state as of the last
// message read (the get snapshot, then every notification and resync, in
// the server's order, applied before the client's "notification" event).
//
// Views on the same key share one subscription per client: the client
// subscribes with the union of their uploader filters and each view keeps
// the rows its own filter matches. Do not also subscribe to a view's keys
// with get, or end their subscription with unsubscribe: the server keeps
// one filter per key and client.
//
// A view of a Client lives as long as the client. A view of a Reconnector
// (Reconnector.view) moves to each new connection and is subscribed there
// again, converging on the new server's rows.

import type { Client } from "./client.js";
import type { Reconnector } from "./reconnect.js";
import type { CloudSession, Notification } from "./cloud.js";
import { Emitter, Unsubscribe } from "./emitter.js";
import { CloudError } from "./errors.js";
import { ClientRef, CloudCode, CloudResult, Key, Row, compareRefs } from "./wire.js";

/** The identity of a key in maps. */
export function keyId(k: Key): string {
  return `${k.secondary}:${k.primary}`;
}

function refId(r: ClientRef): string {
  return `${r.id}@${r.server}`;
}

/** What changed in a view. */
export interface ViewChange {
  /**
   * "snapshot" and "resync" replace a key's rows; "ended": the client
   * ended, the view keeps its last rows; "unsubscribed": a Reconnector's
   * view lost its connection, keeps its last rows (complete is false) and
   * is subscribed again on the next connection.
   */
  type: "snapshot" | "updated" | "deleted" | "resync" | "ended" | "unsubscribed";
  /** The key that changed; absent for "ended" and "unsubscribed". */
  key?: Key;
  /** The row, for "updated" and "deleted". */
  row?: Row;
}

interface ViewEvents {
  [name: string]: unknown;
  change: ViewChange;
}

/** Keys whose views' filters have the same union; uploaders null: every uploader. */
export interface UnionGroup {
  keys: Key[];
  uploaders: ClientRef[] | null;
}

export class View {
  /** The view's keys, without duplicates, in the order given. */
  readonly keys: readonly Key[];
  /** @internal The uploader filter; null: every uploader. */
  readonly ups: Map<string, ClientRef> | null;
  private readonly byKey = new Map<string, Map<string, Row>>();
  private readonly missing = new Set<string>();
  private readonly truncated = new Map<string, boolean>();
  private readonly events: Emitter<ViewEvents>;
  private closed = false;
  /** The session and client that keep the view up to date; null between a Reconnector's connections. */
  private session: CloudSession | null = null;
  private client: Client | null = null;

  /** @internal Use Client.view or Reconnector.view. */
  constructor(keys: readonly Key[], uploaders: readonly ClientRef[], report: (err: unknown) => void, private readonly owner: Reconnector | null = null) {
    const seen = new Set<string>();
    const ks: Key[] = [];
    for (const k of keys) {
      const id = keyId(k);
      if (seen.has(id)) continue;
      seen.add(id);
      ks.push({ primary: k.primary, secondary: k.secondary });
      this.missing.add(id);
    }
    this.keys = ks;
    this.ups = uploaders.length === 0 ? null : new Map(uploaders.map((u) => [refId(u), u]));
    this.events = new Emitter<ViewEvents>(report);
  }

  /** @internal The view is kept up to date by session's client from now on. */
  attach(session: CloudSession, client: Client): void {
    this.session = session;
    this.client = client;
  }

  /** @internal A Reconnector's view lost its connection: it keeps its rows, incomplete. */
  unsubscribed(): void {
    this.session = null;
    this.client = null;
    for (const k of this.keys) this.missing.add(keyId(k));
    this.events.emit("change", { type: "unsubscribed" });
  }

  /** @internal The Reconnector that owns the view, if any. */
  get reconnector(): Reconnector | null {
    return this.owner;
  }

  /** Adds a listener for changes; returns the function that removes it. */
  on(event: "change", fn: (c: ViewChange) => void): Unsubscribe {
    return this.events.on(event, fn);
  }

  /** The rows, in key order (the order given), then uploader order. */
  rows(): Row[] {
    const out: Row[] = [];
    for (const k of this.keys) {
      const m = this.byKey.get(keyId(k));
      if (!m) continue;
      out.push(...[...m.values()].sort((a, b) => compareRefs(a.uploader, b.uploader)));
    }
    return out;
  }

  /** The row of uploader under key, if the view holds one. */
  row(key: Key, uploader: ClientRef): Row | undefined {
    return this.byKey.get(keyId(key))?.get(refId(uploader));
  }

  /**
   * Whether the view holds every row of its keys: false while a key's
   * snapshot is missing (a partial get: its resync follows) or was cut by
   * the server's download byte limit.
   */
  get complete(): boolean {
    if (this.missing.size > 0) return false;
    for (const t of this.truncated.values()) if (t) return false;
    return true;
  }

  /** null while the client runs, then why it ended; for a Reconnector's view: null until it stopped. */
  get err(): Error | null {
    if (this.owner !== null) return this.owner.runErr;
    return this.client?.err ?? null;
  }

  /**
   * Ends the view: keys no other view needs are unsubscribed, the others
   * subscribed again with the narrower union of the remaining views'
   * filters. The view keeps its last rows. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.owner?.forgetView(this);
    const session = this.session;
    const client = this.client;
    if (session === null || client === null) return;
    const { gone, groups } = session.views.remove(this);
    if (client.err !== null) return;
    const errs: unknown[] = [];
    if (gone.length > 0) {
      await client.unsubscribe(gone).catch((err) => {
        if (!(err instanceof CloudError && err.code === CloudCode.NotSubscribed)) errs.push(err);
      });
    }
    for (const g of groups) await session.subscribe(g.keys, g.uploaders).catch((err) => errs.push(err));
    if (errs.length > 0) throw errs[0];
  }

  private matches(up: ClientRef): boolean {
    return this.ups === null || this.ups.has(refId(up));
  }

  /** @internal Sets the rows of k to those of rows the filter matches. */
  replace(k: Key, rows: readonly Row[], truncated: boolean, type: "snapshot" | "resync"): void {
    const m = new Map<string, Row>();
    for (const r of rows) if (this.matches(r.uploader)) m.set(refId(r.uploader), r);
    const id = keyId(k);
    this.byKey.set(id, m);
    this.missing.delete(id);
    this.truncated.set(id, truncated);
    this.events.emit("change", { type, key: k });
  }

  /** @internal Applies an update or a deletion. */
  apply(n: Notification): void {
    if (n.type === "resync" || !this.matches(n.row.uploader)) return;
    const id = keyId(n.key);
    if (n.type === "updated") {
      let m = this.byKey.get(id);
      if (!m) this.byKey.set(id, (m = new Map()));
      m.set(refId(n.row.uploader), n.row);
    } else {
      this.byKey.get(id)?.delete(refId(n.row.uploader));
    }
    this.events.emit("change", { type: n.type, key: n.key, row: n.row });
  }

  /** @internal The client ended. */
  ended(): void {
    this.events.emit("change", { type: "ended" });
  }
}

/** A client's views by key, and the union filters they subscribe with. */
export class ViewSet {
  private readonly byKey = new Map<string, View[]>();

  constructor(readonly report: (err: unknown) => void) {}

  /** Registers views and returns the subscriptions their keys now need. */
  add(...views: View[]): UnionGroup[] {
    const keys: Key[] = [];
    const seen = new Set<string>();
    for (const v of views) {
      for (const k of v.keys) {
        const id = keyId(k);
        const vs = this.byKey.get(id) ?? [];
        vs.push(v);
        this.byKey.set(id, vs);
        if (!seen.has(id)) {
          seen.add(id);
          keys.push(k);
        }
      }
    }
    return this.unionGroups(keys);
  }

  /** Unregisters v: the keys no view needs anymore, and the subscriptions the others now need. */
  remove(v: View): { gone: Key[]; groups: UnionGroup[] } {
    const gone: Key[] = [];
    for (const k of v.keys) {
      const id = keyId(k);
      const vs = (this.byKey.get(id) ?? []).filter((o) => o !== v);
      if (vs.length === 0) {
        this.byKey.delete(id);
        gone.push(k);
      } else {
        this.byKey.set(id, vs);
      }
    }
    return { gone, groups: this.unionGroups(v.keys) };
  }

  /** Groups keys by the union of the filters of the views on each. */
  private unionGroups(keys: readonly Key[]): UnionGroup[] {
    const groups: UnionGroup[] = [];
    const index = new Map<string, number>();
    for (const k of keys) {
      const views = this.byKey.get(keyId(k));
      if (!views || views.length === 0) continue;
      let ups: ClientRef[] | null = null;
      if (views.every((v) => v.ups !== null)) {
        const set = new Map<string, ClientRef>();
        for (const v of views) for (const [id, u] of v.ups!) set.set(id, u);
        ups = [...set.values()].sort(compareRefs);
      }
      const sig = ups === null ? "*" : ups.map(refId).join(",");
      let i = index.get(sig);
      if (i === undefined) {
        i = groups.length;
        index.set(sig, i);
        groups.push({ keys: [], uploaders: ups });
      }
      groups[i].keys.push(k);
    }
    return groups;
  }

  /** Replaces the rows of a view get's keys in every view of them. */
  snapshot(keys: readonly Key[], m: CloudResult): void {
    const rowsOf = new Map<string, Row[]>();
    for (const r of m.rows) {
      const id = keyId(r.key);
      const list = rowsOf.get(id) ?? [];
      list.push(r);
      rowsOf.set(id, list);
    }
    // With a truncated result, the key of the last row and every later key
    // may be incomplete.
    let cutFrom = keys.length;
    if (m.truncated) {
      cutFrom = 0;
      if (m.rows.length > 0) {
        const last = keyId(m.rows[m.rows.length - 1].key);
        cutFrom = keys.findIndex((k) => keyId(k) === last);
      }
    }
    const missing = new Set(m.missing.map(keyId));
    keys.forEach((k, i) => {
      const id = keyId(k);
      if (missing.has(id)) return; // a resync brings it
      for (const v of this.byKey.get(id) ?? []) v.replace(k, rowsOf.get(id) ?? [], i >= cutFrom, "snapshot");
    });
  }

  /** Applies a notification to every view of its key. */
  apply(n: Notification): void {
    for (const v of this.byKey.get(keyId(n.key)) ?? []) {
      if (n.type === "resync") v.replace(n.key, n.rows, n.truncated, "resync");
      else v.apply(n);
    }
  }

  /** Tells every view that the client ended (a Reconnector's views hear it from their Reconnector). */
  end(): void {
    const all = new Set<View>();
    for (const vs of this.byKey.values()) for (const v of vs) if (v.reconnector === null) all.add(v);
    for (const v of all) v.ended();
  }
}
