// A Reconnector keeps a client connected: it connects, hands each new
// client to its "connect" listeners, waits for it to end, and connects
// again after a backoff, moving to the next URL after every failed dial or
// ended session so that reconnects spread over the servers given.

import { Client, ClientOptions, Message, connect } from "./client.js";
import type { Notification } from "./cloud.js";
import { Emitter, Unsubscribe } from "./emitter.js";
import { CloseError } from "./errors.js";

/** Defaults of ReconnectOptions' absent fields. */
export const ReconnectDefaults = {
  minBackoffMs: 100,
  maxBackoffMs: 10_000,
} as const;

/** Options of a Reconnector: the client's options, with several URLs. */
export interface ReconnectOptions extends Omit<ClientOptions, "url"> {
  /** The external servers' endpoints, tried in turn. At least one. */
  urls: readonly string[];
  /**
   * The first wait after a session ends or a dial fails; each further
   * failure doubles it up to maxBackoffMs. Every wait is jittered down by
   * up to half, so that clients dropped together do not return together.
   * A session that lasted at least maxBackoffMs resets the wait.
   * Defaults 100ms and 10s.
   */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** Events of a Reconnector. */
export interface ReconnectEvents {
  [name: string]: unknown;
  /** A new client is connected; listeners may send at once. */
  connect: Client;
  /** The current client ended, with why; a reconnect follows unless it is permanent. */
  disconnect: Error;
  /** A dial failed; a retry follows unless it is permanent. */
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

export class Reconnector {
  /** Resolves when run has stopped: undefined after stop, or the permanent error (AuthRefused). */
  readonly done: Promise<Error | undefined>;
  private readonly events: Emitter<ReconnectEvents>;
  private readonly opts: ReconnectOptions;
  private cur: Client | null = null;
  private stopped = false;
  private wake: () => void = () => undefined;
  private resolveDone!: (err: Error | undefined) => void;
  private started = false;

  constructor(opts: ReconnectOptions) {
    if (opts.urls.length === 0) throw new RangeError("Reconnector: no URLs");
    this.opts = opts;
    this.events = new Emitter<ReconnectEvents>(opts.onListenerError ?? ((err) => console.error("cloudrift: listener threw", err)));
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ReconnectEvents>(event: K, fn: (v: ReconnectEvents[K]) => void): Unsubscribe {
    return this.events.on(event, fn);
  }

  /** The connected client, or null between sessions. */
  get current(): Client | null {
    return this.cur;
  }

  /** Starts connecting (once); see done for the end. */
  start(): this {
    if (!this.started) {
      this.started = true;
      void this.run().then(
        (err) => this.resolveDone(err),
        (err) => this.resolveDone(err instanceof Error ? err : new Error(String(err))),
      );
    }
    return this;
  }

  /** Stops reconnecting and closes the current client; resolves once run has stopped. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    if (!this.started) this.resolveDone(undefined);
    await this.cur?.close();
    await this.done;
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

  private async run(): Promise<Error | undefined> {
    const minB = Math.max(1, this.opts.minBackoffMs ?? ReconnectDefaults.minBackoffMs);
    const maxB = Math.max(minB, this.opts.maxBackoffMs ?? ReconnectDefaults.maxBackoffMs);
    let backoff = minB;
    let next = 0;
    while (!this.stopped) {
      const url = this.opts.urls[next % this.opts.urls.length];
      next++;
      let c: Client;
      try {
        c = await connect({ ...this.opts, url });
      } catch (err) {
        if (this.stopped) break;
        this.events.emit("dialError", err as Error);
        if (permanent(err)) return err as Error;
        await this.sleep(jitter(backoff));
        backoff = Math.min(2 * backoff, maxB);
        continue;
      }
      if (this.stopped) {
        await c.close();
        break;
      }
      const connected = Date.now();
      this.cur = c;
      const offs = [
        c.on("message", (m) => this.events.emit("message", m)),
        c.on("notification", (n) => this.events.emit("notification", n)),
      ];
      this.events.emit("connect", c);
      const err = await c.done;
      offs.forEach((off) => off());
      this.cur = null;
      if (this.stopped) break;
      this.events.emit("disconnect", err);
      if (permanent(err)) return err;
      if (Date.now() - connected >= maxB) backoff = minB;
      await this.sleep(jitter(backoff));
      backoff = Math.min(2 * backoff, maxB);
    }
    return undefined;
  }
}
