/**
 * Between a worker's bootstrap (./worker-boot.ts) and the tab that started it, before the worker's
 * main module runs: a module of its own, so the bootstrap stays a few kilobytes.
 */

/**
 * The channel a worker's bootstrap speaks on before PGliteWorker's handshake (which takes no other
 * message first): one per worker, named by the tab that started it (`?boot=` in the worker's URL).
 */
export const bootChannelName = (boot: string) => `walsync-boot:${boot}`;

/** The bootstrap cannot reach the server for the worker's code; it asks again on the backoff. */
export type BootMessage = { type: 'unreachable' };
