/** @walsync/web for Node: the PGlite sync client over a directory or `memory://`. */
export { createSyncClient } from './node';
export { SyncClient } from './sync-client';
export { readRows, type ReadRowsOptions } from './rows-read';
export { ReplicaStore, type OpenedReplica, type UnsentChange } from './replica-store';
export { ReplicaUpkeep } from './replica-upkeep';
export type { ConnectionState } from './connection-status';
export { SyncClientError, type Subscription, type SubscriptionInput, type SubscriptionParamsOf, type SyncClientErrorCode, type SyncClientOptions, type SyncEvents, type SyncHandle, type SyncStatus } from './types';
