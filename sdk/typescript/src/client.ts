// A Client is one WebSocket session with a cloudrift external server:
// connect() opens it and waits for the server's welcome, which names the
// client's ClientRef; afterwards the client sends and receives user
// messages (a 16-bit tag and a binary payload) and uses the cloud memory.
// The server may end the session at any time with a reason; the client
// then reports a CloseError (see the "close" event and Client.done).

import { Emitter, Unsubscribe, reportListenerError } from "./emitter.js";
import {
  ClosedError,
  CloseError,
  CloudError,
  CloudriftError,
  ConnectionError,
  MessageTooLargeError,
  ProtocolError,
  TimeoutError,
} from "./errors.js";
import { decodeJSON, decodeText, encodeJSON } from "./json.js";
import { CloudSession, Notification, PostedRow, Result } from "./cloud.js";
import type { UnionGroup, View } from "./view.js";
import {
  ClientRef,
  Frame,
  Key,
  Kind,
  Query,
  WireError,
  Move,
  decodeClose,
  decodeMove,
  decodeWS,
  decodeWelcome,
  encodeWS,
  isExtensionKind,
  isLinkKind,
} from "./wire.js";

/** The subset of the WHATWG WebSocket the SDK uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: any) => void) | null;
  onclose: ((ev: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  /** Bytes sent but not yet handed to the network (absent: 0). */
  readonly bufferedAmount?: number;
}

/**
 * Makes a WebSocket for url. headers is set only when ClientOptions.headers
 * is; a factory for an environment that cannot send headers should throw.
 */
export type WebSocketFactory = (url: string, headers?: Record<string, string>) => WebSocketLike;

/** Defaults of ClientOptions' absent fields. */
export const Defaults = {
  dialTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
  callTimeoutMs: 30_000,
  tokenParam: "token",
} as const;

/** Options of connect. Every field but url is optional. */
export interface ClientOptions {
  /** The external server's WebSocket endpoint: ws://host:port/path or wss://... */
  url: string;
  /**
   * A credential, added to the URL's query as tokenParam=token: the way
   * that works in browsers, which cannot set upgrade headers. The server's
   * Authenticate hook sees it in ClientInfo.Query.
   */
  token?: string;
  /** The query parameter that carries token. Default "token". */
  tokenParam?: string;
  /**
   * Headers of the upgrade request (for example Authorization), which the
   * server's Authenticate hook sees in ClientInfo.Header. Node.js's
   * WebSocket sends them; browsers cannot, and connect then fails.
   */
  headers?: Record<string, string>;
  /** Bounds all of connect: the upgrade and the welcome. Default 10s. */
  dialTimeoutMs?: number;
  /** How long close() waits for the server to answer the close. Default 10s. */
  closeTimeoutMs?: number;
  /**
   * Bounds the wait for each cloud-memory answer; past it the call rejects
   * with a TimeoutError (the server may still apply the operation). The
   * server answers within its own timeouts, except that it holds a Post
   * while it has no cloud replica yet. Default 30s; 0: no bound.
   */
  callTimeoutMs?: number;
  /** Makes the WebSocket. Default: the global WebSocket (browsers; Node.js 22, or 20 with --experimental-websocket). */
  webSocket?: WebSocketFactory;
  /**
   * Receives what an application listener threw (listeners never break the
   * SDK). Default: console.error.
   */
  onListenerError?: (err: unknown) => void;
}

/** One user message. */
export class Message {
  constructor(
    /** Chosen by the game, 0..65535. */
    readonly tag: number,
    /** The message's bytes; they belong to the receiver. */
    readonly payload: Uint8Array,
  ) {}
  /** The payload as UTF-8 text. */
  text(): string {
    return decodeText(this.payload);
  }
  /** The payload parsed as UTF-8 JSON. */
  json<T = unknown>(): T {
    return decodeJSON<T>(this.payload);
  }
}

/** Events of a Client. */
export interface ClientEvents {
  [name: string]: unknown;
  /** A user message, in the order the server sent them. */
  message: Message;
  /** A cloud-memory notification, after the client's views applied it. */
  notification: Notification;
  /**
   * A message of an extension kind (64–95) the SDK does not consume itself
   * (the cloud memory's are): a game plugin's own protocol (see sendFrame).
   */
  frame: Frame;
  /**
   * The server asks the client to move to another server of its group (it
   * is draining): connect to one of the URLs (or the directory, or the
   * configured URLs when there are none), then close this client. The
   * session goes on until then. A Reconnector does this by itself.
   */
  move: Move;
  /** The client ended; the value is why (see Client.err). Emitted once. */
  close: Error;
}

/** Per-call options of cloud-memory operations. */
export interface CallOptions {
  /** Abandons the wait (the server may still apply the operation). */
  signal?: AbortSignal;
}

const OPEN = 1;

/** How long a client waits for the close event that should follow an error event. */
const errorGraceMs = 1000;

function defaultFactory(url: string, headers?: Record<string, string>): WebSocketLike {
  const WS = (globalThis as { WebSocket?: any }).WebSocket;
  if (typeof WS !== "function") {
    throw new ConnectionError("no global WebSocket: pass ClientOptions.webSocket (Node.js 20 needs --experimental-websocket)");
  }
  return headers ? new WS(url, { headers }) : new WS(url);
}

/** The URL connect dials: opts.url with the token in its query. */
export function dialURL(opts: ClientOptions): string {
  let u: URL;
  try {
    u = new URL(opts.url);
  } catch (err) {
    throw new ConnectionError(`bad URL ${JSON.stringify(opts.url)}`, 0, { cause: err });
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new ConnectionError(`URL ${JSON.stringify(opts.url)}: scheme must be ws or wss`);
  }
  if (opts.token !== undefined) u.searchParams.set(opts.tokenParam ?? Defaults.tokenParam, opts.token);
  return u.toString();
}

function toBytes(data: unknown): Uint8Array | null {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return null;
}

function protocolError(err: unknown): Error {
  if (err instanceof WireError) return new ProtocolError(err.message);
  return err instanceof Error ? err : new ProtocolError(String(err));
}

/**
 * Connects to opts.url and waits for the server's welcome. It resolves to
 * a connected client, or rejects: with a CloseError when the server
 * refused the client (reason AuthRefused, ServerFull, Shutdown, ...), a
 * TimeoutError when dialTimeoutMs passes first, a ProtocolError when the
 * server's first message is not a welcome, or a ConnectionError. Add
 * listeners right after it resolves: no message is delivered before.
 */
export function connect(opts: ClientOptions): Promise<Client> {
  return new Promise((resolve, reject) => {
    let ws: WebSocketLike;
    try {
      ws = (opts.webSocket ?? defaultFactory)(dialURL(opts), opts.headers);
      ws.binaryType = "arraybuffer";
    } catch (err) {
      reject(err instanceof CloudriftError ? err : new ConnectionError(`dial ${opts.url}: ${err}`, 0, { cause: err }));
      return;
    }
    let settled = false;
    const settle = (err: Error | null, c?: Client) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        ws.onmessage = ws.onclose = ws.onerror = null;
        try {
          ws.close(1000);
        } catch {
          // closing anyway
        }
        reject(err);
      } else {
        resolve(c!);
      }
    };
    const timeout = opts.dialTimeoutMs ?? Defaults.dialTimeoutMs;
    const timer = setTimeout(() => settle(new TimeoutError(`dial ${opts.url}: no welcome within ${timeout}ms`)), timeout);
    // Some WebSocket implementations (Node.js 20's) fire only an error
    // event, no close, when the connection cannot be made.
    ws.onerror = () => settle(new ConnectionError(`dial ${opts.url}: the connection failed`));
    ws.onclose = (ev) => {
      settle(new ConnectionError(`dial ${opts.url}: connection closed before the welcome (code ${ev.code}${ev.reason ? " " + ev.reason : ""})`, ev.code));
    };
    ws.onmessage = (ev) => {
      try {
        const b = toBytes(ev.data);
        if (b === null) throw new ProtocolError("text message instead of the welcome");
        const f = decodeWS(b);
        if (f.kind === Kind.Close) {
          const cl = decodeClose(f.payload);
          settle(new CloseError(cl.reason, cl.message));
          return;
        }
        if (f.kind !== Kind.ClientWelcome) throw new ProtocolError(`message of kind ${f.kind} instead of the welcome`);
        const w = decodeWelcome(f.payload);
        if (w.serverID === "" || w.clientID === 0n) throw new ProtocolError("welcome names no client");
        settle(null, new Client(ws, { server: w.serverID, id: w.clientID }, w.maxMessage, opts));
      } catch (err) {
        settle(protocolError(err));
      }
    };
  });
}

/** One session with an external server. Make it with connect. */
export class Client {
  /** The client's system-wide address, as the server's welcome told it. */
  readonly ref: ClientRef;
  /** The largest payload the server accepts; 0: no limit announced. */
  readonly maxMessage: number;
  /** Resolves, never rejects, when the client has ended, with why (see err). */
  readonly done: Promise<Error>;

  private readonly events: Emitter<ClientEvents>;
  private readonly opts: ClientOptions;
  private readonly cloud: CloudSession;
  private ws: WebSocketLike;
  private closing = false;
  private endErr: Error | null = null;
  private resolveDone!: (err: Error) => void;

  /** @internal Use connect. */
  constructor(ws: WebSocketLike, ref: ClientRef, maxMessage: number, opts: ClientOptions) {
    this.ws = ws;
    this.ref = ref;
    this.maxMessage = maxMessage;
    this.opts = opts;
    const report = opts.onListenerError ?? ((err: unknown) => console.error("cloudrift: listener threw", err));
    this.events = new Emitter<ClientEvents>(report);
    this.cloud = new CloudSession(this, report, (kind, payload) => this.write(kind, 0, payload), opts.callTimeoutMs ?? Defaults.callTimeoutMs);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onclose = (ev) => {
      const why = this.closing
        ? new ClosedError("client closed")
        : new ConnectionError(`connection closed by the server (code ${ev.code}${ev.reason ? " " + ev.reason : ""})`, ev.code);
      this.finish(why);
    };
    ws.onerror = () => {
      // The close event follows; should it not, the client ends anyway.
      const t = setTimeout(() => this.finish(new ConnectionError("the connection failed")), errorGraceMs);
      void this.done.then(() => clearTimeout(t));
    };
  }

  /** Adds a listener; returns the function that removes it. */
  on<K extends keyof ClientEvents>(event: K, fn: (v: ClientEvents[K]) => void): Unsubscribe {
    return this.events.on(event, fn);
  }

  /** null while the client runs; then why it ended: CloseError, ClosedError, ProtocolError or ConnectionError. */
  get err(): Error | null {
    return this.endErr;
  }

  /**
   * Bytes sent but not yet taken by the network: the WebSocket buffers
   * what the server has not read. It grows when the server holds this
   * client back (backpressure: the server stops reading a client whose
   * messages fill a busy link between servers, until it drains); a client
   * that sends much should wait for it to fall before sending more.
   */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount ?? 0;
  }

  /**
   * Sends one user message; it never blocks (see bufferedAmount). It
   * throws a MessageTooLargeError, without sending, when payload exceeds
   * maxMessage; a ClosedError once close was called or the client ended
   * (its cause is why); a RangeError for a tag outside 0..65535.
   */
  send(tag: number, payload: Uint8Array): void {
    this.sendLimited(Kind.User, tag, payload);
  }

  /**
   * Sends a message of an extension kind (64–95) to the server plugin that
   * claims it, as send does for user messages. A kind no plugin claims
   * makes the server end the session with Reason.Protocol.
   */
  sendFrame(kind: number, tag: number, payload: Uint8Array): void {
    if (!isExtensionKind(kind)) throw new RangeError(`kind ${kind} is not an extension kind (64-95)`);
    this.sendLimited(kind, tag, payload);
  }

  /** Sends a message whose payload must fit maxMessage. */
  private sendLimited(kind: number, tag: number, payload: Uint8Array): void {
    this.sendable();
    if (this.maxMessage > 0 && payload.length > this.maxMessage) throw new MessageTooLargeError(payload.length, this.maxMessage);
    this.write(kind, tag, payload);
  }

  /** Sends value as UTF-8 JSON (see send). */
  sendJSON(tag: number, value: unknown): void {
    this.send(tag, encodeJSON(value));
  }

  /**
   * Ends the session: sends a WebSocket close, waits up to closeTimeoutMs
   * for the server to answer, and resolves once the client has ended.
   * Idempotent. A reason the server sent first stays the client's err.
   */
  close(): Promise<void> {
    if (this.endErr === null && !this.closing) {
      this.closing = true;
      try {
        this.ws.close(1000);
      } catch {
        // the close event or the timer ends the client
      }
      const t = setTimeout(() => this.finish(new ClosedError("client closed")), this.opts.closeTimeoutMs ?? Defaults.closeTimeoutMs);
      void this.done.then(() => clearTimeout(t));
    }
    return this.done.then(() => undefined);
  }

  // Cloud memory: rows of shared memory that live while their uploader is
  // connected. A failed operation rejects with a CloudError (the server's
  // code), a ClosedError when the client ended first, or a
  // MessageTooLargeError when the request does not fit maxMessage.

  /** Creates or overwrites this client's row under key; resolves once the key's owner confirmed. */
  post(key: Key, data: Uint8Array, opts?: CallOptions): Promise<void> {
    return this.cloud.post(key, data, opts);
  }

  /** Deletes this client's rows under keys; subscribers get "deleted". */
  release(keys: readonly Key[], opts?: CallOptions): Promise<void> {
    return this.cloud.release(keys, opts);
  }

  /**
   * Reads rows; with q.subscribe also subscribes to q.keys, atomically with
   * the snapshot. Notifications that follow the snapshot may be emitted
   * before the promise resolves; a View orders them for you.
   */
  get(q: Query, opts?: CallOptions): Promise<Result> {
    return this.cloud.get(q, opts);
  }

  /** Ends the subscription to keys or, with uploaders, removes those uploaders from it. */
  unsubscribe(keys: readonly Key[], uploaders: readonly ClientRef[] = [], opts?: CallOptions): Promise<void> {
    return this.cloud.unsubscribe(keys, uploaders, opts);
  }

  /** Subscribes to keys (limited to uploaders, when given) and resolves to a live view once the snapshot arrived. */
  view(keys: readonly Key[], uploaders: readonly ClientRef[] = [], opts?: CallOptions): Promise<View> {
    return this.cloud.view(keys, uploaders, opts);
  }

  /** Throws unless the client may send. */
  private sendable(): void {
    if (this.endErr !== null) {
      throw this.endErr instanceof ClosedError ? this.endErr : new ClosedError(`client ended: ${this.endErr.message}`, { cause: this.endErr });
    }
    if (this.closing) throw new ClosedError("client closed");
  }

  /** @internal Sends one message of any kind. */
  write(kind: number, tag: number, payload: Uint8Array): void {
    if (!Number.isInteger(tag) || tag < 0 || tag > 0xffff) throw new RangeError(`tag ${tag} is not a u16`);
    this.sendable();
    if (this.ws.readyState !== OPEN) throw new ClosedError("connection is closing");
    try {
      this.ws.send(encodeWS(kind, tag, payload));
    } catch (err) {
      const e = new ConnectionError(`write: ${err}`, 0, { cause: err });
      this.fail(e);
      throw e;
    }
  }

  /** @internal Whether the client has ended or close was called. */
  get stopped(): boolean {
    return this.endErr !== null || this.closing;
  }

  /** @internal Ends the client because of err and closes the connection. */
  fail(err: Error): void {
    this.finish(err);
  }

  private onMessage(data: unknown): void {
    if (this.endErr !== null) return;
    try {
      const b = toBytes(data);
      if (b === null) throw new ProtocolError("unexpected text message");
      const f = decodeWS(b);
      switch (f.kind) {
        case Kind.User:
          if (!this.closing) this.events.emit("message", new Message(f.tag, f.payload.slice()));
          return;
        case Kind.Close: {
          const cl = decodeClose(f.payload);
          this.finish(new CloseError(cl.reason, cl.message));
          return;
        }
        case Kind.ClientWelcome:
          throw new ProtocolError("a second welcome");
        case Kind.ClientMove: {
          const m = decodeMove(f.payload);
          if (!this.closing) this.events.emit("move", m);
          return;
        }
        case Kind.CloudReply:
        case Kind.CloudResult:
        case Kind.CloudNotify:
        case Kind.CloudResync:
          this.cloud.onFrame(f.kind, f.payload, !this.closing);
          return;
        default:
          // Extension kinds are game plugins' protocols: the application
          // reads them. Any other kind is a server-link kind or one this
          // protocol does not define: the server broke the protocol.
          if (!isExtensionKind(f.kind)) {
            const what = isLinkKind(f.kind) ? "server-link kind" : "unknown kind";
            throw new ProtocolError(`unexpected message of ${what} ${f.kind} from the server`);
          }
          if (!this.closing) this.events.emit("frame", { kind: f.kind, tag: f.tag, payload: f.payload.slice() });
      }
    } catch (err) {
      this.finish(protocolError(err));
    }
  }

  /** @internal Records the rows posted from now on, for a Reconnector's repost. */
  keepPosted(): void {
    this.cloud.keepPosted();
  }

  /** @internal The rows posted and not released (with keepPosted). */
  get postedRows(): ReadonlyMap<string, PostedRow> {
    return this.cloud.posted;
  }

  /** @internal Whether the application posted or released the key id itself (with keepPosted). */
  touched(id: string): boolean {
    return this.cloud.touched.has(id);
  }

  /** @internal Posts a row carried over from an earlier connection, unless the application touched its key here. */
  repost(r: PostedRow, opts?: CallOptions): Promise<void> {
    return this.cloud.post(r.key, r.data, opts, false);
  }

  /** @internal Attaches a Reconnector's views; returns the subscriptions their keys need. */
  attachViews(views: View[]): UnionGroup[] {
    return this.cloud.attach(...views);
  }

  /** @internal Detaches a Reconnector's view (its subscription ends with the connection). */
  detachView(v: View): void {
    this.cloud.views.remove(v);
  }

  /** @internal Subscribes a group of view keys. */
  subscribeGroup(g: UnionGroup, opts?: CallOptions): Promise<unknown> {
    return this.cloud.subscribe(g.keys, g.uploaders, opts);
  }

  /** @internal Emits a notification (the cloud session's events go through the client). */
  emitNotification(n: Notification): void {
    this.events.emit("notification", n);
  }

  /** Records why the client ended, once, and releases everything. */
  private finish(err: Error): void {
    if (this.endErr !== null) return;
    this.endErr = err;
    const ws = this.ws;
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(1000);
    } catch {
      // already closed
    }
    const cause = err instanceof ClosedError ? err : new ClosedError(`client ended: ${err.message}`, { cause: err });
    this.cloud.end(cause);
    this.events.emit("close", err);
    try {
      this.resolveDone(err);
    } catch (e) {
      reportListenerError(this.opts.onListenerError ?? console.error, e);
    }
  }
}

export type { Notification, Result, CloudError, Move };
