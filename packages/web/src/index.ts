/** @walsync/web for Node: the PGlite sync client over a directory or `memory://`. */
export { createSyncClient } from './node';
export { SyncClient, SyncClientError, type SyncClientOptions, type SyncEvents, type SyncStatus } from './sync-client';
