// A small typed event emitter. Listeners run synchronously, in the order
// they were added; a listener that throws does not stop the others or the
// SDK: its error goes to the emitter's onListenerError.

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

export class Emitter<Events extends { [name: string]: unknown }> {
  private listeners: { [K in keyof Events]?: Array<(v: Events[K]) => void> } = {};

  constructor(private readonly onListenerError: (err: unknown) => void) {}

  /** Adds a listener for event; returns the function that removes it. */
  on<K extends keyof Events>(event: K, fn: (v: Events[K]) => void): Unsubscribe {
    const list = (this.listeners[event] ??= []);
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Whether event has a listener. */
  has<K extends keyof Events>(event: K): boolean {
    return (this.listeners[event]?.length ?? 0) > 0;
  }

  emit<K extends keyof Events>(event: K, v: Events[K]): void {
    const list = this.listeners[event];
    if (!list) return;
    for (const fn of list.slice()) {
      try {
        fn(v);
      } catch (err) {
        reportListenerError(this.onListenerError, err);
      }
    }
  }
}

/** Calls report, which must not throw; if it does, the error is logged. */
export function reportListenerError(report: (err: unknown) => void, err: unknown): void {
  try {
    report(err);
  } catch (e) {
    console.error("cloudrift: listener error handler threw", e);
  }
}
