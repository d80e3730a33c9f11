import type { PGliteInterface } from '@electric-sql/pglite';
import type { LiveNamespace, PGliteWithLive } from '@electric-sql/pglite/live';
import { PGliteProvider } from '@electric-sql/pglite-react';
import type { SyncHandle } from '@walsync/web';
import { type ReactNode, createContext, createElement, useContext, useMemo } from 'react';
import { LastResults } from './last-results';
import { QueryOrder } from './query-order';

/** A walsync client whose `db` has live queries (the browser client's does; give a Node one the `live` extension). */
export type SyncClientLike = SyncHandle<PGliteInterface & { live: LiveNamespace }>;

const SyncContext = createContext<{ client: SyncClientLike; last: LastResults | undefined; order: QueryOrder } | undefined>(undefined);

/**
 * Makes `client` (and its database, for `@electric-sql/pglite-react`'s own hooks) available to the hooks below it.
 *
 * With `lastResults` (a localStorage key, one per replica), `useLiveQuery` keeps each query's last
 * rows there and, on the next start, returns them until the replica answers: a reload paints the
 * last view at once instead of waiting for the database to open.
 */
export function SyncProvider({ client, lastResults, children }: { client: SyncClientLike; lastResults?: string; children?: ReactNode }) {
  const last = useMemo(() => (lastResults ? new LastResults(lastResults) : undefined), [lastResults]);
  const value = useMemo(() => ({ client, last, order: new QueryOrder() }), [client, last]);
  return createElement(SyncContext.Provider, { value }, createElement(PGliteProvider, { db: client.db as PGliteWithLive }, children));
}

function useSyncContext() {
  const context = useContext(SyncContext);
  if (!context) throw new Error('useSyncClient (and every @walsync/react hook) must be used inside <SyncProvider client={...}>');
  return context;
}

/** The client of the nearest SyncProvider; throws outside one (a hook used outside the provider is a bug to see at once). */
export function useSyncClient(): SyncClientLike {
  return useSyncContext().client;
}

/** The provider's last results (see `lastResults`), if it keeps them. */
export function useLastResults(): LastResults | undefined {
  return useSyncContext().last;
}

/** The order of the provider's first queries and live-query setups (see QueryOrder). */
export function useQueryOrder(): QueryOrder {
  return useSyncContext().order;
}

/** Whether the last session left results that `useLiveQuery` shows until the replica answers. */
export function useHasLastResults(): boolean {
  return useSyncContext().last?.available ?? false;
}
