/** @walsync/server: capture, change history, the write API, HTTP. */
export { AuthenticationError, Tokens, type Principal } from './auth/tokens';
export { DEV_JWT_SECRET, loadConfig, type ServerConfig } from './config';
export { CHANGES_CHANNEL, type CapturedChange, type Operation, appendToHistory } from './history/change-history';
export { Scope, membershipSql } from './auth/scope';
export { CLIENT_MESSAGE_PREFIX, PUBLICATION, assertCaptureReady, ensureServerSchema } from './history/server-schema';
export type { Health } from './http/health';
export { Capture } from './replication/capture';
export { LeaderElection } from './replication/leader';

export { Replicator, type ReplicatorStatus } from './replication/replicator';
export { historyHorizon, pruneHistory } from './history/retention';
export { ChangeFeed, type FeedEntry } from './sessions/change-feed';
export { SyncEndpoint } from './sessions/sync-endpoint';
export { SyncSession } from './sessions/sync-session';
export { ClientStream } from './sessions/client-stream';
export { SessionRouter, type RoutedSession, type SessionKeys } from './sessions/session-router';
export { WalsyncServer, type WalsyncServerOptions } from './walsync-server';
export { WriteRequestError, WriteService } from './writes/write-service';
export { DEMO_USERS, seedDemo } from './demo/seed';
export type { DemoAppOptions } from './demo/demo-app';
