import { PGlite } from '@electric-sql/pglite';

/**
 * How every replica starts Postgres, in the browser and in Node: PGlite's options, with 8 MB of
 * shared buffers instead of 128 MB, and room for 5 connections instead of 100 (PGlite runs one).
 * Postgres sizes its shared memory from both, and PGlite's runtime zeroes all of it at every start:
 * 42 MB at 32 MB of buffers, ≈125 ms of a 300 ms reopen (a profile: `memset` under `mmap`); 12 MB
 * now. A page the buffers do not hold is read from the replica's files (OPFS, the disk, or
 * `memory://`'s own memory), which costs little more than a buffer hit.
 */
export const REPLICA_START_PARAMS: string[] = [...PGlite.defaultStartParams, '-c', 'shared_buffers=8MB', '-c', 'max_connections=5'];
