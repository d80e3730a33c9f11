import type { SyncEvents } from './types';

type Listener<K extends keyof SyncEvents> = (...args: SyncEvents[K]) => void;

/**
 * The one observer of the client's events, for the Node client, the worker and every tab. A
 * listener that throws does not stop the others or the sync loop.
 *
 * @example
 *   const events = new SyncEmitter();
 *   const off = events.on('status', (status) => console.log(status));
 *   events.emit('status', 'offline');
 *   off();
 */
export class SyncEmitter {
  private readonly listeners = new Map<keyof SyncEvents, Set<Listener<never>>>();

  on<K extends keyof SyncEvents>(event: K, listener: Listener<K>): () => void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(event, set);
    return () => set.delete(listener as Listener<never>);
  }

  emit<K extends keyof SyncEvents>(event: K, ...args: SyncEvents[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as Listener<K>)(...args);
      } catch (error) {
        // An application's listener is its own: reported, without breaking the loop that emitted.
        if (typeof reportError === 'function') reportError(error);
        else console.error('a walsync event listener threw', error);
      }
    }
  }
}

/** A promise with its settle functions, settled once (later calls are ignored). */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
