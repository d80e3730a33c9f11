/** @walsync/web: the PGlite sync client. */
export { SyncClient, SyncClientError, createSyncClient, type SyncClientOptions, type SyncEvents, type SyncStatus } from './sync-client';
