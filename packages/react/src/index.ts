/**
 * @walsync/react: React hooks over a walsync client (the browser's `createSyncClient`, or the Node
 * one). Wrap the app in `<SyncProvider client={client}>`, then read with hooks:
 *
 * @example
 *   const client = await createSyncClient({ url: location.origin, token, dataDir: 'idb://app' });
 *   root.render(<SyncProvider client={client}><Board /></SyncProvider>);
 *
 *   function Board() {
 *     const tasks = useLiveQuery<Task>('SELECT * FROM task WHERE deleted_at IS NULL ORDER BY position');
 *     const status = useSyncStatus();          // 'connecting' | 'syncing' | 'up-to-date' | 'offline' | 'error' | 'closed'
 *     const pending = usePendingCount();       // local writes the server has not answered yet
 *     useSyncEvent('conflict', ({ table }) => toast(`the server kept its ${table}`));
 *     return tasks === undefined ? <Spinner /> : <List tasks={tasks} />;
 *   }
 */
export { SyncProvider, useHasLastResults, useSyncClient, type SyncClientLike } from './provider';
export { type LiveQueryOptions, useLiveQuery, useOptimisticLiveQuery, usePendingCount, useSubscription, useSyncEvent, useSyncStatus } from './hooks';
