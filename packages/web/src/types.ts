/** The client's public types, shared by Node, the worker and the tabs (no database code here). */
import type { ChangeResult } from '@walsync/db/browser';

export type SyncStatus = 'connecting' | 'syncing' | 'up-to-date' | 'offline';

export interface SyncEvents {
  captured: [];
  push: [{ sent: number; applied: number; rejected: number; errors: number }];
  'pull:received': [{ changes: number; position: string }];
  'pull:applied': [{ changes: number; position: string }];
  conflict: [{ table: string; pk: Record<string, unknown>; result: ChangeResult }];
  error: [Error];
  'bootstrap:start': [{ total: Record<string, number> }];
  'bootstrap:progress': [{ table: string; sent: number; total: number }];
  'bootstrap:complete': [{ position: string }];
  status: [SyncStatus];
}

export class SyncClientError extends Error {
  constructor(
    readonly code: 'locked' | 'corrupt_database' | 'migration_failed' | 'refused' | 'bad_server_message' | 'apply_failed' | 'server_error',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SyncClientError';
  }
}
