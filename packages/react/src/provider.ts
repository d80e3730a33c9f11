import type { PGliteInterface } from '@electric-sql/pglite';
import type { LiveNamespace, PGliteWithLive } from '@electric-sql/pglite/live';
import { PGliteProvider } from '@electric-sql/pglite-react';
import type { SyncHandle } from '@walsync/web';
import { type ReactNode, createContext, createElement, useContext } from 'react';

/** A walsync client whose `db` has live queries (the browser client's does; give a Node one the `live` extension). */
export type SyncClientLike = SyncHandle<PGliteInterface & { live: LiveNamespace }>;

const SyncContext = createContext<SyncClientLike | undefined>(undefined);

/** Makes `client` (and its database, for `@electric-sql/pglite-react`'s own hooks) available to the hooks below it. */
export function SyncProvider({ client, children }: { client: SyncClientLike; children?: ReactNode }) {
  return createElement(SyncContext.Provider, { value: client }, createElement(PGliteProvider, { db: client.db as PGliteWithLive }, children));
}

/** The client of the nearest SyncProvider; throws outside one (a hook used outside the provider is a bug to see at once). */
export function useSyncClient(): SyncClientLike {
  const client = useContext(SyncContext);
  if (!client) throw new Error('useSyncClient (and every @walsync/react hook) must be used inside <SyncProvider client={...}>');
  return client;
}
