// The cloud-memory side of a client: requests with their IDs, answers,
// notifications, and the views they keep up to date. Everything runs on
// the WebSocket's message events, so answers, snapshots and notifications
// are applied in the order the server sent them.
import { CloudError, MessageTooLargeError, TimeoutError } from "./errors.js";
import { View, ViewSet } from "./view.js";
import { CloudCode, Kind, Limits, WireError, decodeCloudNotice, decodeCloudReply, decodeCloudResult, decodeCloudResync, encodeCloudGet, encodeCloudPost, encodeCloudRelease, encodeCloudUnsubscribe, keyProblem, } from "./wire.js";
/** Validates request keys, returning the error to reject with. */
export function keysProblem(keys) {
    if (keys.length === 0)
        return new CloudError(CloudCode.BadRequest, "no keys");
    if (keys.length > Limits.maxKeys)
        return new CloudError(CloudCode.TooManyKeys, `${keys.length} keys`);
    for (const k of keys) {
        const p = keyProblem(k);
        if (p !== null)
            return new CloudError(CloudCode.BadRequest, p);
    }
    return null;
}
export class CloudSession {
    constructor(client, report, send, callTimeoutMs) {
        this.client = client;
        this.send = send;
        this.callTimeoutMs = callTimeoutMs;
        this.seq = 0;
        this.pending = new Map();
        this.ended = null;
        this.views = new ViewSet(report);
    }
    post(key, data, opts) {
        const bad = keysProblem([key]);
        if (bad)
            return Promise.reject(bad);
        return this.call(Kind.CloudPost, (req) => encodeCloudPost(req, key, data), opts).then(() => undefined);
    }
    release(keys, opts) {
        const bad = keysProblem(keys);
        if (bad)
            return Promise.reject(bad);
        return this.call(Kind.CloudRelease, (req) => encodeCloudRelease(req, keys), opts).then(() => undefined);
    }
    async get(q, opts) {
        const bad = keysProblem(q.keys);
        if (bad)
            throw bad;
        const r = (await this.call(Kind.CloudGet, (req) => encodeCloudGet(req, q), opts));
        return { rows: r.rows, total: r.total, truncated: r.truncated, partial: r.partial, missing: r.missing };
    }
    unsubscribe(keys, uploaders, opts) {
        const bad = keysProblem(keys);
        if (bad)
            return Promise.reject(bad);
        return this.call(Kind.CloudUnsubscribe, (req) => encodeCloudUnsubscribe(req, keys, uploaders), opts).then(() => undefined);
    }
    async view(keys, uploaders, opts) {
        const bad = keysProblem(keys);
        if (bad)
            throw bad;
        if (this.ended)
            throw this.ended;
        const v = new View(this, this.client, keys, uploaders);
        try {
            for (const g of this.views.add(v))
                await this.subscribe(g.keys, g.uploaders, opts);
        }
        catch (err) {
            await v.close().catch(() => undefined);
            throw err;
        }
        return v;
    }
    /** @internal Subscribes keys with a union filter; the snapshot goes to their views. */
    subscribe(keys, uploaders, opts) {
        const q = { keys, uploaders: uploaders ?? [], subscribe: true };
        return this.call(Kind.CloudGet, (req) => encodeCloudGet(req, q), opts, keys);
    }
    /** Sends one request and waits for its answer, the client's end, or opts.signal. */
    call(kind, encode, opts, viewKeys) {
        if (this.ended)
            return Promise.reject(this.ended);
        const signal = opts?.signal;
        if (signal?.aborted)
            return Promise.reject(signal.reason ?? new Error("aborted"));
        do {
            this.seq = (this.seq + 1) >>> 0;
        } while (this.seq === 0 || this.pending.has(this.seq));
        const req = this.seq;
        let payload;
        try {
            payload = encode(req);
        }
        catch (err) {
            return Promise.reject(err instanceof WireError ? new CloudError(CloudCode.BadRequest, err.message) : err);
        }
        const max = this.client.maxMessage;
        if (max > 0 && payload.length > max)
            return Promise.reject(new MessageTooLargeError(payload.length, max, `request of kind ${kind}`));
        return new Promise((resolve, reject) => {
            let onAbort;
            let timer;
            const done = () => {
                this.pending.delete(req);
                if (onAbort)
                    signal.removeEventListener("abort", onAbort);
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
            }
            catch (err) {
                this.pending.get(req)?.reject(err);
            }
        });
    }
    /** Handles one cloud message from the server; throws a WireError when it does not decode. */
    onFrame(kind, payload, deliver) {
        switch (kind) {
            case Kind.CloudReply: {
                const m = decodeCloudReply(payload);
                const p = this.pending.get(m.req);
                if (!p)
                    return;
                if (m.code === CloudCode.OK)
                    p.resolve(null);
                else
                    p.reject(new CloudError(m.code, m.message));
                return;
            }
            case Kind.CloudResult: {
                const m = decodeCloudResult(payload);
                const p = this.pending.get(m.req);
                if (!p)
                    return;
                if (m.code !== CloudCode.OK) {
                    p.reject(new CloudError(m.code, m.message));
                    return;
                }
                if (p.viewKeys)
                    this.views.snapshot(p.viewKeys, m);
                p.resolve(m);
                return;
            }
            case Kind.CloudNotify: {
                const m = decodeCloudNotice(payload);
                const n = m.type === 1
                    ? { type: "updated", key: m.row.key, row: m.row, created: m.created }
                    : { type: "deleted", key: m.row.key, row: m.row };
                this.views.apply(n);
                if (deliver)
                    this.client.emitNotification(n);
                return;
            }
            case Kind.CloudResync: {
                const m = decodeCloudResync(payload);
                const n = { type: "resync", key: m.key, rows: m.rows, truncated: m.truncated };
                this.views.apply(n);
                if (deliver)
                    this.client.emitNotification(n);
                return;
            }
        }
    }
    /** Fails every pending request and ends the views; runs once, when the client ends. */
    end(err) {
        this.ended = err;
        for (const p of [...this.pending.values()])
            p.reject(err);
        this.pending.clear();
        this.views.end();
    }
    /** @internal Whether the client has ended. */
    get isEnded() {
        return this.ended !== null;
    }
}
