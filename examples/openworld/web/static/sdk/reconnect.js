// A Reconnector keeps a client connected: it connects, hands each new
// client to its "connect" listeners, waits for it to end, and connects
// again after a backoff, moving to the next URL after every failed dial or
// ended session so that reconnects spread over the servers given.
import { connect } from "./client.js";
import { Emitter } from "./emitter.js";
import { CloseError } from "./errors.js";
/** Defaults of ReconnectOptions' absent fields. */
export const ReconnectDefaults = {
    minBackoffMs: 100,
    maxBackoffMs: 10000,
};
/** Whether retrying cannot help: the server refused the credentials. */
function permanent(err) {
    return err instanceof CloseError && err.permanent;
}
/** Returns a random duration in [d/2, d]. */
function jitter(d) {
    return d / 2 + Math.random() * (d / 2);
}
export class Reconnector {
    constructor(opts) {
        this.cur = null;
        this.stopped = false;
        this.wake = () => undefined;
        this.started = false;
        if (opts.urls.length === 0)
            throw new RangeError("Reconnector: no URLs");
        this.opts = opts;
        this.events = new Emitter(opts.onListenerError ?? ((err) => console.error("cloudrift: listener threw", err)));
        this.done = new Promise((resolve) => (this.resolveDone = resolve));
    }
    /** Adds a listener; returns the function that removes it. */
    on(event, fn) {
        return this.events.on(event, fn);
    }
    /** The connected client, or null between sessions. */
    get current() {
        return this.cur;
    }
    /** Starts connecting (once); see done for the end. */
    start() {
        if (!this.started) {
            this.started = true;
            void this.run().then((err) => this.resolveDone(err), (err) => this.resolveDone(err instanceof Error ? err : new Error(String(err))));
        }
        return this;
    }
    /** Stops reconnecting and closes the current client; resolves once run has stopped. */
    async stop() {
        this.stopped = true;
        this.wake();
        if (!this.started)
            this.resolveDone(undefined);
        await this.cur?.close();
        await this.done;
    }
    /** Sleeps ms, or less when stop is called. */
    sleep(ms) {
        return new Promise((resolve) => {
            const t = setTimeout(resolve, ms);
            this.wake = () => {
                clearTimeout(t);
                resolve();
            };
        });
    }
    async run() {
        const minB = Math.max(1, this.opts.minBackoffMs ?? ReconnectDefaults.minBackoffMs);
        const maxB = Math.max(minB, this.opts.maxBackoffMs ?? ReconnectDefaults.maxBackoffMs);
        let backoff = minB;
        let next = 0;
        while (!this.stopped) {
            const url = this.opts.urls[next % this.opts.urls.length];
            next++;
            let c;
            try {
                c = await connect({ ...this.opts, url });
            }
            catch (err) {
                if (this.stopped)
                    break;
                this.events.emit("dialError", err);
                if (permanent(err))
                    return err;
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
            if (this.stopped)
                break;
            this.events.emit("disconnect", err);
            if (permanent(err))
                return err;
            if (Date.now() - connected >= maxB)
                backoff = minB;
            await this.sleep(jitter(backoff));
            backoff = Math.min(2 * backoff, maxB);
        }
        return undefined;
    }
}
