// A Reconnector keeps a client connected to one server of a group: it
// connects, hands each new client to its "connect" listeners, follows the
// server's Move requests (connecting elsewhere before closing the old
// session), and after a session ends connects again after a backoff. Its
// views (Reconnector.view) are subscribed again on every new connection,
// and with repost the rows the client posted are posted again.
//
// The servers come from the directory (its servers that are not draining,
// least loaded first), then the urls in turn, starting one further at
// every connection so that reconnects spread over them. A directory that
// cannot be read is skipped.

import { Client, ClientOptions, Defaults, Message, connect } from "./client.js";
import type { CallOptions } from "./client.js";
import type { Notification, PostedRow } from "./cloud.js";
import { directoryProblem, directoryURLs, fetchDirectory } from "./directory.js";
import { Emitter, Unsubscribe } from "./emitter.js";
import { CloseError, CloudError, ConnectionError } from "./errors.js";
import { UnionGroup, View } from "./view.js";
import { ClientRef, CloudCode, Key, Move, Reason } from "./wire.js";
import { keysProblem } from "./cloud.js";

/** Defaults of ReconnectOptions' absent fields. */
export const ReconnectDefaults = {
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
} as const;

/** Options of a Reconnector: the client's options, with several URLs. */
export interface ReconnectOptions extends Omit<ClientOptions, "url"> {
  /** The external servers' endpoints, tried in turn. At least one, unless directory is set. */
  urls?: readonly string[];
  /**
   * A group's directory, http(s)://host:port/servers on any of its
   * servers' client port, read (with fetch, within dialTimeoutMs) before
   * every connection.
   */
  directory?: string;
  /**
   * Posts again, on each new connection, the rows the previous ones
   * posted (Client.post) and did not release, with the latest data of
   * each key: rows live only as long as the connection that posted them.
   * A key the application posts or releases on the new connection first is
   * left as it made it. A repost that fails is retried while the
   * connection lasts.
   */
  repost?: boolean;
  /**
   * The first wait after a session ends or every server failed to
   * connect; each further failure doubles it up to maxBackoffMs. Every
   * wait is jittered down by up to half, so that clients dropped together
   * do not return together. A session that lasted at least maxBackoffMs
   * resets the wait. Defaults 100ms and 10s.
   */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** One move of a Reconnector from a server to another. */
export interface Failover {
  /** The servers' IDs (their welcomes'). */
  from: string;
  to: string;
  fromURL: string;
  toURL: string;
  /** Reason.Draining for a Move; the server's reason when it closed the session; Reason.IO when the connection failed without one. */
  reason: number;
  /** How the previous session ended; null when it moved (closed once the new session was up). */
  err: Error | null;
  /** From the Move's arrival, or the previous session's end, to the new session's welcome. */
  durationMs: number;
}

/** Events of a Reconnector. */
export interface ReconnectEvents {
  [name: string]: unknown;
  /** A new client is connected; listeners may send at once. */
  connect: Client;
  /** After "connect", for every connection but the first: the client moved or reconnected. */
  failover: Failover;
  /** The current client ended, with why; a reconnect follows unless it is permanent. */
  disconnect: Error;
  /** A dial failed; the next server, or a retry, follows unless it is permanent. */
  dialError: Error;
  /** Every client's user messages, in order. */
  message: Message;
  /** Every client's cloud notifications. */
  notification: Notification;
}

/** Whether retrying cannot help: the server refused the credentials. */
function permanent(err: unknown): boolean {
  return err instanceof CloseError && err.permanent;
}

/** Returns a random duration in [d/2, d]. */
function jitter(d: number): number {
  return d / 2 + Math.random() * (d / 2);
}

function wsProblem(u: string): boolean {
  try {
    const p = new URL(u);
    return (p.protocol !== "ws:" && p.protocol !== "wss:") || p.host === "";
  } catch {
    return true;
  }
}

/** A session that ended or moved, for its failover event. */
interface Lost {
  from: string;
  url: string;
  reason: number;
  err: Error | null;
  at: number;
}

/** How a watched session ended: moved to a new one, or not. */
interface Outcome {
  next?: { c: Client; url: string; at: number; move: Move };
}

export class Reconnector {
  /** Resolves when run has stopped: undefined after stop, or the permanent error (AuthRefused). */
  readonly done: Promise<Error | undefined>;
  private readonly events: Emitter<ReconnectEvents>;
  private readonly opts: ReconnectOptions;
  private readonly urls: readonly string[];
  private readonly views: View[] = [];
  private cur: Client | null = null;
  private stopped = false;
  private wake: () => void = () => undefined;
  private resolveDone!: (err: Error | undefined) => void;
  private started = false;
  private finished: Error | null | undefined = undefined;
  private next = 0;

  constructor(opts: ReconnectOptions) {
    this.urls = opts.urls ?? [];
    if (this.urls.length === 0 && !opts.directory) throw new RangeError("Reconnector: no URLs and no directory");
    for (const u of this.urls) if (wsProblem(u)) throw new RangeError(`Reconnector: URL ${JSON.stringify(u)}: want ws:// or wss://`);
    if (opts.directory) {
      const bad = directoryProblem(opts.directory);
      if (bad !== null) throw new RangeError(`Reconnector: ${bad}`);
    }
    this.opts = opts;
    this.events = new Emitter<ReconnectEvents>(this.report);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  private get report(): (err: unknown) => void {
    return this.opts.onListenerError ?? ((err) => console.error("cloudrift: listener threw", err));
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ReconnectEvents>(event: K, fn: (v: ReconnectEvents[K]) => void): Unsubscribe {
    return this.events.on(event, fn);
  }

  /** The connected client, or null between sessions. */
  get current(): Client | null {
    return this.cur;
  }

  /** @internal A view's err: null while running (between connections too), then the permanent error that stopped it (null after stop). */
  get runErr(): Error | null {
    return this.finished ?? null;
  }

  /** Starts connecting (once); see done for the end. */
  start(): this {
    if (!this.started) {
      this.started = true;
      void this.run().then(
        (err) => this.end(err),
        (err) => this.end(err instanceof Error ? err : new Error(String(err))),
      );
    }
    return this;
  }

  private end(err: Error | undefined): void {
    this.finished = err ?? null;
    this.resolveDone(err);
  }

  /** Stops reconnecting and closes the current client; resolves once run has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    if (!this.started) this.end(undefined);
    await this.cur?.close();
    await this.done;
  }

  /**
   * Subscribes to keys (limited to uploaders, when given) on the current
   * connection and every later one: the view survives failovers and
   * converges again on each new server (complete is false from a
   * session's end until the new snapshot arrived). Resolves once the
   * snapshot arrived, or at once, incomplete, between connections.
   */
  async view(keys: readonly Key[], uploaders: readonly ClientRef[] = [], opts?: CallOptions): Promise<View> {
    const bad = keysProblem(keys);
    if (bad) throw bad;
    const v = new View(keys, uploaders, this.report, this);
    this.views.push(v);
    const c = this.cur;
    if (c === null) return v;
    try {
      for (const g of c.attachViews([v])) await c.subscribeGroup(g, opts);
    } catch (err) {
      if (c.err !== null) return v; // the connection ended: the next one subscribes it
      await v.close().catch(() => undefined);
      throw err;
    }
    return v;
  }

  /** @internal Drops a closed view. */
  forgetView(v: View): void {
    const i = this.views.indexOf(v);
    if (i >= 0) this.views.splice(i, 1);
  }

  /** Sleeps ms, or less when stop is called. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  /** The servers to try, in order: the directory's, then the URLs from where the last turn stopped; avoid last, or with drop not at all. */
  private async candidates(avoid: string, drop: boolean): Promise<string[]> {
    const out: string[] = [];
    const add = (u: string) => {
      if (!out.includes(u)) out.push(u);
    };
    if (this.opts.directory) {
      try {
        directoryURLs(await fetchDirectory(this.opts.directory, this.opts.dialTimeoutMs)).forEach(add);
      } catch (err) {
        this.events.emit("dialError", err as Error);
      }
    }
    const n = this.urls.length;
    if (n > 0) {
      const start = this.next % n;
      this.next = start + 1;
      for (let i = 0; i < n; i++) add(this.urls[(start + i) % n]);
    }
    const i = avoid === "" ? -1 : out.indexOf(avoid);
    if (i >= 0) {
      out.splice(i, 1);
      if (!drop) out.push(avoid);
    }
    return out;
  }

  /** Connects to the first of urls that works; a permanent refusal stops it. */
  private async dialAny(urls: readonly string[]): Promise<{ c?: Client; url?: string; err?: Error }> {
    let last: Error = new ConnectionError("no server to connect to (the directory gave none)");
    for (const url of urls) {
      if (this.stopped) break;
      try {
        const c = await connect({ ...this.opts, url });
        if (this.opts.repost) c.keepPosted();
        return { c, url };
      } catch (err) {
        last = err as Error;
        if (this.stopped) break;
        this.events.emit("dialError", last);
        if (permanent(err)) return { err: last };
      }
    }
    return { err: last };
  }

  private async run(): Promise<Error | undefined> {
    const minB = Math.max(1, this.opts.minBackoffMs ?? ReconnectDefaults.minBackoffMs);
    const maxB = Math.max(minB, this.opts.maxBackoffMs ?? ReconnectDefaults.maxBackoffMs);
    let backoff = minB;
    let lost: Lost | null = null;
    let carry = new Map<string, PostedRow>();
    let avoid = "";
    while (!this.stopped) {
      const d = await this.dialAny(await this.candidates(avoid, false));
      let c = d.c;
      let url = d.url ?? "";
      if (c === undefined) {
        if (this.stopped) break;
        if (permanent(d.err)) return d.err;
      }
      let old: Client | null = null; // the session moved from, closed once c has restored
      while (c !== undefined) {
        if (this.stopped) {
          await old?.close();
          await c.close();
          return undefined;
        }
        const connected = Date.now();
        const restore = this.adopt(c, url, lost, carry, minB, maxB);
        if (old !== null) {
          // Make before break: the old session stays until the new one has
          // subscribed the views and posted the rows again (or tried to,
          // for as long as a dial may take).
          let t: ReturnType<typeof setTimeout> | undefined;
          const timeout = new Promise((r) => (t = setTimeout(r, this.opts.dialTimeoutMs ?? Defaults.dialTimeoutMs)));
          await Promise.race([restore.tried, c.done, timeout]);
          clearTimeout(t);
          await old.close();
          old = null;
        }
        const out = await this.watch(c, url);
        if (out.next !== undefined) {
          await restore.stop();
          carry = carryRows(carry, c);
          this.handOver(c);
          old = c;
          lost = { from: c.ref.server, url, reason: out.next.move.reason, err: null, at: out.next.at };
          c = out.next.c;
          url = out.next.url;
          continue;
        }
        this.handOver(c);
        await c.close();
        await restore.stop();
        carry = carryRows(carry, c);
        if (this.stopped) return undefined;
        const err = c.err!;
        this.events.emit("disconnect", err);
        if (permanent(err)) return err;
        lost = { from: c.ref.server, url, reason: err instanceof CloseError ? err.reason : Reason.IO, err, at: Date.now() };
        if (Date.now() - connected >= maxB) backoff = minB;
        avoid = url;
        c = undefined;
      }
      if (this.stopped) break;
      await this.sleep(jitter(backoff));
      backoff = Math.min(2 * backoff, maxB);
    }
    return undefined;
  }

  /**
   * Makes c the current client: attaches the views, starts subscribing
   * them and posting carry again, and emits "connect" and "failover".
   * Returns a promise that resolves once every view and row was tried
   * once, and what stops the restoring and waits for it.
   */
  private adopt(
    c: Client,
    url: string,
    lost: Lost | null,
    carry: Map<string, PostedRow>,
    minB: number,
    maxB: number,
  ): { tried: Promise<void>; stop: () => Promise<void> } {
    const welcomed = Date.now();
    this.cur = c;
    const offs = [c.on("message", (m) => this.events.emit("message", m)), c.on("notification", (n) => this.events.emit("notification", n))];
    const groups = this.views.length > 0 ? c.attachViews([...this.views]) : [];
    const ctl = new AbortController();
    let markTried!: () => void;
    const tried = new Promise<void>((r) => (markTried = r));
    const restoring = this.restore(c, groups, [...carry.values()], minB, maxB, ctl.signal, markTried).finally(markTried);
    this.events.emit("connect", c);
    if (lost !== null) {
      this.events.emit("failover", {
        from: lost.from,
        to: c.ref.server,
        fromURL: lost.url,
        toURL: url,
        reason: lost.reason,
        err: lost.err,
        durationMs: welcomed - lost.at,
      });
    }
    return {
      tried,
      stop: async () => {
        offs.forEach((off) => off());
        ctl.abort();
        await restoring;
      },
    };
  }

  /** Waits for c to end, or follows a Move: resolves with the new session once one is up (c stays while none is). */
  private watch(c: Client, url: string): Promise<Outcome> {
    return new Promise((resolve) => {
      let moving = false;
      let ended = false;
      let settled = false;
      const settle = (o: Outcome) => {
        if (settled) return;
        settled = true;
        off();
        resolve(o);
      };
      const off = c.on("move", (m) => {
        if (moving || this.stopped) return;
        moving = true;
        const at = Date.now();
        void (async () => {
          // The Move's servers first; the directory is read (which may
          // take a while) only when none of them takes the client.
          const urls = m.urls.filter((u) => !wsProblem(u) && u !== url);
          let d = await this.dialAny(urls);
          if (d.c === undefined && !this.stopped && !permanent(d.err)) {
            d = await this.dialAny((await this.candidates(url, true)).filter((u) => !urls.includes(u)));
          }
          moving = false;
          if (d.c !== undefined) {
            if (settled) await d.c.close();
            else settle({ next: { c: d.c, url: d.url!, at, move: m } });
          } else if (ended) {
            settle({});
          }
        })();
      });
      void c.done.then(() => {
        ended = true;
        if (!moving) settle({});
      });
    });
  }

  /** Detaches the views from c, which is ending or moving: they keep their rows, incomplete, until the next connection. */
  private handOver(c: Client): void {
    if (this.cur === c) this.cur = null;
    for (const v of this.views) {
      c.detachView(v);
      v.unsubscribed();
    }
  }

  /**
   * Subscribes the views' keys and posts rows on c, retrying failures with
   * the backoff while c lasts and signal is not aborted; calls tried once
   * each was tried once.
   */
  private async restore(
    c: Client,
    groups: UnionGroup[],
    rows: PostedRow[],
    minB: number,
    maxB: number,
    signal: AbortSignal,
    tried: () => void,
  ): Promise<void> {
    let wait = minB;
    const opts = { signal };
    while ((groups.length > 0 || rows.length > 0) && c.err === null && !this.stopped && !signal.aborted) {
      // A pass stops at the first rate-limited answer: every further
      // request would be refused too, and enough refusals end the session
      // for flooding. The backoff comes first.
      let limited = false;
      const failed = (err: unknown) => {
        if (err instanceof CloudError && err.code === CloudCode.RateLimited) limited = true;
      };
      const failedGroups: UnionGroup[] = [];
      for (const g of groups) {
        if (limited) failedGroups.push(g);
        else await c.subscribeGroup(g, opts).catch((err) => (failed(err), failedGroups.push(g)));
      }
      const failedRows: PostedRow[] = [];
      for (const r of rows) {
        if (limited) failedRows.push(r);
        else await c.repost(r, opts).catch((err) => (failed(err), failedRows.push(r)));
      }
      tried();
      groups = failedGroups;
      rows = failedRows;
      if (groups.length === 0 && rows.length === 0) return;
      let t: ReturnType<typeof setTimeout> | undefined;
      let onAbort: (() => void) | undefined;
      await Promise.race([
        new Promise((r) => (t = setTimeout(r, jitter(wait)))),
        c.done,
        new Promise<void>((r) => signal.addEventListener("abort", (onAbort = () => r()))),
      ]);
      clearTimeout(t);
      if (onAbort) signal.removeEventListener("abort", onAbort);
      wait = Math.min(2 * wait, maxB);
    }
  }
}

/** The rows to post on the next connection: those c posted and did not release, and those of carry c did not get to and the application did not touch on c. */
function carryRows(carry: Map<string, PostedRow>, c: Client): Map<string, PostedRow> {
  const rows = new Map(c.postedRows);
  for (const [id, r] of carry) if (!rows.has(id) && !c.touched(id)) rows.set(id, r);
  return rows;
}
