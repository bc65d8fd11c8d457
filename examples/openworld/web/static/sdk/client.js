// A Client is one WebSocket session with a cloudrift external server:
// connect() opens it and waits for the server's welcome, which names the
// client's ClientRef; afterwards the client sends and receives user
// messages (a 16-bit tag and a binary payload) and uses the cloud memory.
// The server may end the session at any time with a reason; the client
// then reports a CloseError (see the "close" event and Client.done).
import { Emitter, reportListenerError } from "./emitter.js";
import { ClosedError, CloseError, CloudriftError, ConnectionError, MessageTooLargeError, ProtocolError, TimeoutError, } from "./errors.js";
import { decodeJSON, decodeText, encodeJSON } from "./json.js";
import { CloudSession } from "./cloud.js";
import { Kind, WireError, decodeClose, decodeWS, decodeWelcome, encodeWS, isExtensionKind, isLinkKind, } from "./wire.js";
/** Defaults of ClientOptions' absent fields. */
export const Defaults = {
    dialTimeoutMs: 10000,
    closeTimeoutMs: 10000,
    callTimeoutMs: 30000,
    tokenParam: "token",
};
/** One user message. */
export class Message {
    constructor(
    /** Chosen by the game, 0..65535. */
    tag, 
    /** The message's bytes; they belong to the receiver. */
    payload) {
        this.tag = tag;
        this.payload = payload;
    }
    /** The payload as UTF-8 text. */
    text() {
        return decodeText(this.payload);
    }
    /** The payload parsed as UTF-8 JSON. */
    json() {
        return decodeJSON(this.payload);
    }
}
const OPEN = 1;
/** How long a client waits for the close event that should follow an error event. */
const errorGraceMs = 1000;
function defaultFactory(url, headers) {
    const WS = globalThis.WebSocket;
    if (typeof WS !== "function") {
        throw new ConnectionError("no global WebSocket: pass ClientOptions.webSocket (Node.js 20 needs --experimental-websocket)");
    }
    return headers ? new WS(url, { headers }) : new WS(url);
}
/** The URL connect dials: opts.url with the token in its query. */
export function dialURL(opts) {
    let u;
    try {
        u = new URL(opts.url);
    }
    catch (err) {
        throw new ConnectionError(`bad URL ${JSON.stringify(opts.url)}`, 0, { cause: err });
    }
    if (u.protocol !== "ws:" && u.protocol !== "wss:") {
        throw new ConnectionError(`URL ${JSON.stringify(opts.url)}: scheme must be ws or wss`);
    }
    if (opts.token !== undefined)
        u.searchParams.set(opts.tokenParam ?? Defaults.tokenParam, opts.token);
    return u.toString();
}
function toBytes(data) {
    if (data instanceof ArrayBuffer)
        return new Uint8Array(data);
    if (ArrayBuffer.isView(data))
        return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return null;
}
function protocolError(err) {
    if (err instanceof WireError)
        return new ProtocolError(err.message);
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
export function connect(opts) {
    return new Promise((resolve, reject) => {
        let ws;
        try {
            ws = (opts.webSocket ?? defaultFactory)(dialURL(opts), opts.headers);
            ws.binaryType = "arraybuffer";
        }
        catch (err) {
            reject(err instanceof CloudriftError ? err : new ConnectionError(`dial ${opts.url}: ${err}`, 0, { cause: err }));
            return;
        }
        let settled = false;
        const settle = (err, c) => {
            if (settled)
                return;
            settled = true;
            clearTimeout(timer);
            if (err) {
                ws.onmessage = ws.onclose = ws.onerror = null;
                try {
                    ws.close(1000);
                }
                catch {
                    // closing anyway
                }
                reject(err);
            }
            else {
                resolve(c);
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
                if (b === null)
                    throw new ProtocolError("text message instead of the welcome");
                const f = decodeWS(b);
                if (f.kind === Kind.Close) {
                    const cl = decodeClose(f.payload);
                    settle(new CloseError(cl.reason, cl.message));
                    return;
                }
                if (f.kind !== Kind.ClientWelcome)
                    throw new ProtocolError(`message of kind ${f.kind} instead of the welcome`);
                const w = decodeWelcome(f.payload);
                if (w.serverID === "" || w.clientID === 0n)
                    throw new ProtocolError("welcome names no client");
                settle(null, new Client(ws, { server: w.serverID, id: w.clientID }, w.maxMessage, opts));
            }
            catch (err) {
                settle(protocolError(err));
            }
        };
    });
}
/** One session with an external server. Make it with connect. */
export class Client {
    /** @internal Use connect. */
    constructor(ws, ref, maxMessage, opts) {
        this.closing = false;
        this.endErr = null;
        this.ws = ws;
        this.ref = ref;
        this.maxMessage = maxMessage;
        this.opts = opts;
        const report = opts.onListenerError ?? ((err) => console.error("cloudrift: listener threw", err));
        this.events = new Emitter(report);
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
    on(event, fn) {
        return this.events.on(event, fn);
    }
    /** null while the client runs; then why it ended: CloseError, ClosedError, ProtocolError or ConnectionError. */
    get err() {
        return this.endErr;
    }
    /**
     * Sends one user message. It throws a MessageTooLargeError, without
     * sending, when payload exceeds maxMessage; a ClosedError once close was
     * called or the client ended (its cause is why); a RangeError for a tag
     * outside 0..65535.
     */
    send(tag, payload) {
        this.sendLimited(Kind.User, tag, payload);
    }
    /**
     * Sends a message of an extension kind (64–95) to the server plugin that
     * claims it, as send does for user messages. A kind no plugin claims
     * makes the server end the session with Reason.Protocol.
     */
    sendFrame(kind, tag, payload) {
        if (!isExtensionKind(kind))
            throw new RangeError(`kind ${kind} is not an extension kind (64-95)`);
        this.sendLimited(kind, tag, payload);
    }
    /** Sends a message whose payload must fit maxMessage. */
    sendLimited(kind, tag, payload) {
        this.sendable();
        if (this.maxMessage > 0 && payload.length > this.maxMessage)
            throw new MessageTooLargeError(payload.length, this.maxMessage);
        this.write(kind, tag, payload);
    }
    /** Sends value as UTF-8 JSON (see send). */
    sendJSON(tag, value) {
        this.send(tag, encodeJSON(value));
    }
    /**
     * Ends the session: sends a WebSocket close, waits up to closeTimeoutMs
     * for the server to answer, and resolves once the client has ended.
     * Idempotent. A reason the server sent first stays the client's err.
     */
    close() {
        if (this.endErr === null && !this.closing) {
            this.closing = true;
            try {
                this.ws.close(1000);
            }
            catch {
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
    post(key, data, opts) {
        return this.cloud.post(key, data, opts);
    }
    /** Deletes this client's rows under keys; subscribers get "deleted". */
    release(keys, opts) {
        return this.cloud.release(keys, opts);
    }
    /**
     * Reads rows; with q.subscribe also subscribes to q.keys, atomically with
     * the snapshot. Notifications that follow the snapshot may be emitted
     * before the promise resolves; a View orders them for you.
     */
    get(q, opts) {
        return this.cloud.get(q, opts);
    }
    /** Ends the subscription to keys or, with uploaders, removes those uploaders from it. */
    unsubscribe(keys, uploaders = [], opts) {
        return this.cloud.unsubscribe(keys, uploaders, opts);
    }
    /** Subscribes to keys (limited to uploaders, when given) and resolves to a live view once the snapshot arrived. */
    view(keys, uploaders = [], opts) {
        return this.cloud.view(keys, uploaders, opts);
    }
    /** Throws unless the client may send. */
    sendable() {
        if (this.endErr !== null) {
            throw this.endErr instanceof ClosedError ? this.endErr : new ClosedError(`client ended: ${this.endErr.message}`, { cause: this.endErr });
        }
        if (this.closing)
            throw new ClosedError("client closed");
    }
    /** @internal Sends one message of any kind. */
    write(kind, tag, payload) {
        if (!Number.isInteger(tag) || tag < 0 || tag > 0xffff)
            throw new RangeError(`tag ${tag} is not a u16`);
        this.sendable();
        if (this.ws.readyState !== OPEN)
            throw new ClosedError("connection is closing");
        try {
            this.ws.send(encodeWS(kind, tag, payload));
        }
        catch (err) {
            const e = new ConnectionError(`write: ${err}`, 0, { cause: err });
            this.fail(e);
            throw e;
        }
    }
    /** @internal Whether the client has ended or close was called. */
    get stopped() {
        return this.endErr !== null || this.closing;
    }
    /** @internal Ends the client because of err and closes the connection. */
    fail(err) {
        this.finish(err);
    }
    onMessage(data) {
        if (this.endErr !== null)
            return;
        try {
            const b = toBytes(data);
            if (b === null)
                throw new ProtocolError("unexpected text message");
            const f = decodeWS(b);
            switch (f.kind) {
                case Kind.User:
                    if (!this.closing)
                        this.events.emit("message", new Message(f.tag, f.payload.slice()));
                    return;
                case Kind.Close: {
                    const cl = decodeClose(f.payload);
                    this.finish(new CloseError(cl.reason, cl.message));
                    return;
                }
                case Kind.ClientWelcome:
                    throw new ProtocolError("a second welcome");
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
                    if (!this.closing)
                        this.events.emit("frame", { kind: f.kind, tag: f.tag, payload: f.payload.slice() });
            }
        }
        catch (err) {
            this.finish(protocolError(err));
        }
    }
    /** @internal Emits a notification (the cloud session's events go through the client). */
    emitNotification(n) {
        this.events.emit("notification", n);
    }
    /** Records why the client ended, once, and releases everything. */
    finish(err) {
        if (this.endErr !== null)
            return;
        this.endErr = err;
        const ws = this.ws;
        ws.onmessage = null;
        ws.onclose = null;
        try {
            ws.close(1000);
        }
        catch {
            // already closed
        }
        const cause = err instanceof ClosedError ? err : new ClosedError(`client ended: ${err.message}`, { cause: err });
        this.cloud.end(cause);
        this.events.emit("close", err);
        try {
            this.resolveDone(err);
        }
        catch (e) {
            reportListenerError(this.opts.onListenerError ?? console.error, e);
        }
    }
}
