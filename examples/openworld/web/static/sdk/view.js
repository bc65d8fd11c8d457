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
import { Emitter } from "./emitter.js";
import { CloudError } from "./errors.js";
import { CloudCode, compareRefs } from "./wire.js";
/** The identity of a key in maps. */
export function keyId(k) {
    return `${k.secondary}:${k.primary}`;
}
function refId(r) {
    return `${r.id}@${r.server}`;
}
export class View {
    /** @internal Use Client.view. */
    constructor(session, client, keys, uploaders) {
        this.session = session;
        this.client = client;
        this.byKey = new Map();
        this.missing = new Set();
        this.truncated = new Map();
        this.closed = false;
        const seen = new Set();
        const ks = [];
        for (const k of keys) {
            const id = keyId(k);
            if (seen.has(id))
                continue;
            seen.add(id);
            ks.push({ primary: k.primary, secondary: k.secondary });
            this.missing.add(id);
        }
        this.keys = ks;
        this.ups = uploaders.length === 0 ? null : new Map(uploaders.map((u) => [refId(u), u]));
        this.events = new Emitter(session.views.report);
    }
    /** Adds a listener for changes; returns the function that removes it. */
    on(event, fn) {
        return this.events.on(event, fn);
    }
    /** The rows, in key order (the order given), then uploader order. */
    rows() {
        const out = [];
        for (const k of this.keys) {
            const m = this.byKey.get(keyId(k));
            if (!m)
                continue;
            out.push(...[...m.values()].sort((a, b) => compareRefs(a.uploader, b.uploader)));
        }
        return out;
    }
    /** The row of uploader under key, if the view holds one. */
    row(key, uploader) {
        return this.byKey.get(keyId(key))?.get(refId(uploader));
    }
    /**
     * Whether the view holds every row of its keys: false while a key's
     * snapshot is missing (a partial get: its resync follows) or was cut by
     * the server's download byte limit.
     */
    get complete() {
        if (this.missing.size > 0)
            return false;
        for (const t of this.truncated.values())
            if (t)
                return false;
        return true;
    }
    /** null while the client runs, then why it ended. */
    get err() {
        return this.client.err;
    }
    /**
     * Ends the view: keys no other view needs are unsubscribed, the others
     * subscribed again with the narrower union of the remaining views'
     * filters. The view keeps its last rows. Idempotent.
     */
    async close() {
        if (this.closed)
            return;
        this.closed = true;
        const { gone, groups } = this.session.views.remove(this);
        if (this.client.err !== null)
            return;
        const errs = [];
        if (gone.length > 0) {
            await this.client.unsubscribe(gone).catch((err) => {
                if (!(err instanceof CloudError && err.code === CloudCode.NotSubscribed))
                    errs.push(err);
            });
        }
        for (const g of groups)
            await this.session.subscribe(g.keys, g.uploaders).catch((err) => errs.push(err));
        if (errs.length > 0)
            throw errs[0];
    }
    matches(up) {
        return this.ups === null || this.ups.has(refId(up));
    }
    /** @internal Sets the rows of k to those of rows the filter matches. */
    replace(k, rows, truncated, type) {
        const m = new Map();
        for (const r of rows)
            if (this.matches(r.uploader))
                m.set(refId(r.uploader), r);
        const id = keyId(k);
        this.byKey.set(id, m);
        this.missing.delete(id);
        this.truncated.set(id, truncated);
        this.events.emit("change", { type, key: k });
    }
    /** @internal Applies an update or a deletion. */
    apply(n) {
        if (n.type === "resync" || !this.matches(n.row.uploader))
            return;
        const id = keyId(n.key);
        if (n.type === "updated") {
            let m = this.byKey.get(id);
            if (!m)
                this.byKey.set(id, (m = new Map()));
            m.set(refId(n.row.uploader), n.row);
        }
        else {
            this.byKey.get(id)?.delete(refId(n.row.uploader));
        }
        this.events.emit("change", { type: n.type, key: n.key, row: n.row });
    }
    /** @internal The client ended. */
    ended() {
        this.events.emit("change", { type: "ended" });
    }
}
/** A client's views by key, and the union filters they subscribe with. */
export class ViewSet {
    constructor(report) {
        this.report = report;
        this.byKey = new Map();
    }
    /** Registers v and returns the subscriptions its keys now need. */
    add(v) {
        for (const k of v.keys) {
            const id = keyId(k);
            const vs = this.byKey.get(id) ?? [];
            vs.push(v);
            this.byKey.set(id, vs);
        }
        return this.unionGroups(v.keys);
    }
    /** Unregisters v: the keys no view needs anymore, and the subscriptions the others now need. */
    remove(v) {
        const gone = [];
        for (const k of v.keys) {
            const id = keyId(k);
            const vs = (this.byKey.get(id) ?? []).filter((o) => o !== v);
            if (vs.length === 0) {
                this.byKey.delete(id);
                gone.push(k);
            }
            else {
                this.byKey.set(id, vs);
            }
        }
        return { gone, groups: this.unionGroups(v.keys) };
    }
    /** Groups keys by the union of the filters of the views on each. */
    unionGroups(keys) {
        const groups = [];
        const index = new Map();
        for (const k of keys) {
            const views = this.byKey.get(keyId(k));
            if (!views || views.length === 0)
                continue;
            let ups = null;
            if (views.every((v) => v.ups !== null)) {
                const set = new Map();
                for (const v of views)
                    for (const [id, u] of v.ups)
                        set.set(id, u);
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
    snapshot(keys, m) {
        const rowsOf = new Map();
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
            if (missing.has(id))
                return; // a resync brings it
            for (const v of this.byKey.get(id) ?? [])
                v.replace(k, rowsOf.get(id) ?? [], i >= cutFrom, "snapshot");
        });
    }
    /** Applies a notification to every view of its key. */
    apply(n) {
        for (const v of this.byKey.get(keyId(n.key)) ?? []) {
            if (n.type === "resync")
                v.replace(n.key, n.rows, n.truncated, "resync");
            else
                v.apply(n);
        }
    }
    /** Tells every view that the client ended. */
    end() {
        const all = new Set();
        for (const vs of this.byKey.values())
            for (const v of vs)
                all.add(v);
        for (const v of all)
            v.ended();
    }
}
