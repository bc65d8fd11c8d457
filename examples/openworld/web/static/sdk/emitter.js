// A small typed event emitter. Listeners run synchronously, in the order
// they were added; a listener that throws does not stop the others or the
// SDK: its error goes to the emitter's onListenerError.
export class Emitter {
    constructor(onListenerError) {
        this.onListenerError = onListenerError;
        this.listeners = {};
    }
    /** Adds a listener for event; returns the function that removes it. */
    on(event, fn) {
        var _a;
        const list = ((_a = this.listeners)[event] ?? (_a[event] = []));
        list.push(fn);
        return () => {
            const i = list.indexOf(fn);
            if (i >= 0)
                list.splice(i, 1);
        };
    }
    /** Whether event has a listener. */
    has(event) {
        return (this.listeners[event]?.length ?? 0) > 0;
    }
    emit(event, v) {
        const list = this.listeners[event];
        if (!list)
            return;
        for (const fn of list.slice()) {
            try {
                fn(v);
            }
            catch (err) {
                reportListenerError(this.onListenerError, err);
            }
        }
    }
}
/** Calls report, which must not throw; if it does, the error is logged. */
export function reportListenerError(report, err) {
    try {
        report(err);
    }
    catch (e) {
        console.error("cloudrift: listener error handler threw", e);
    }
}
