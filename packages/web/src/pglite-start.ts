import { PGlite } from '@electric-sql/pglite';

/**
 * How every replica starts Postgres, in the browser and in Node: PGlite's options, with 32 MB of
 * shared buffers instead of 128 MB. The buffers are memory the WASM instance allocates and Postgres
 * initialises at every start (≈0.1–0.2 s, and ≈170 MB of a Node process' RSS at PGlite's default);
 * a page they do not hold is read from the replica's files (OPFS, the disk, or `memory://`'s own
 * memory), which costs little more than a buffer hit.
 */
export const REPLICA_START_PARAMS: string[] = [...PGlite.defaultStartParams, '-c', 'shared_buffers=32MB'];
