import type { SyncStatus } from './types';

export type ConnectionState = 'connecting' | 'handshaking' | 'hydrating' | 'live' | 'backoff' | 'refused' | 'failed' | 'closed';

export interface StatusInputs {
  reconnecting: boolean;
  pushing: boolean;
  /** The last attempt failed to apply what the server sent (cleared once live again). */
  failing: boolean;
  /** Live from a stored position, before the server said the client has everything (`up_to_date`). */
  catchingUp: boolean;
}

/**
 * The status an app sees in each state: `offline` while reconnecting after a connection was lost,
 * `error` while retrying after a failure to apply.
 */
const STATUS_OF: Record<ConnectionState, SyncStatus | ((connection: StatusInputs) => SyncStatus)> = {
  connecting: ({ reconnecting, failing }) => (failing ? 'error' : reconnecting ? 'offline' : 'connecting'),
  handshaking: ({ reconnecting, failing }) => (failing ? 'error' : reconnecting ? 'offline' : 'connecting'),
  hydrating: ({ failing }) => (failing ? 'error' : 'syncing'),
  live: ({ pushing, catchingUp }) => (pushing || catchingUp ? 'syncing' : 'up-to-date'),
  backoff: ({ failing }) => (failing ? 'error' : 'offline'),
  refused: 'offline',
  failed: 'error',
  closed: 'closed',
};

/** The status of a connection in `state` (the one table every status comes from). */
export function statusOf(state: ConnectionState, inputs: StatusInputs): SyncStatus {
  const status = STATUS_OF[state];
  return typeof status === 'function' ? status(inputs) : status;
}
