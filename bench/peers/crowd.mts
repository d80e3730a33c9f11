/**
 * The other clients of a "100 clients connected" figure, in their own process so the measured client's
 * event loop is its own: real clients of one system, all on one workspace, each holding it whole.
 * Forked by peers.mts; told what to start over IPC, answers `{ ready }`, closes them all on `stop`.
 */
import { createSyncClient, type SyncClient } from '@walsync/web';
import { watchTasks, zeroClient, type BenchZero } from './zero-clients.mts';

export type CrowdOrder =
  | { system: 'walsync'; url: string; tokens: string[] }
  | { system: 'zero'; url: string; users: string[]; workspaceId: string };

const walsync: SyncClient[] = [];
const zero: BenchZero[] = [];

/** Clients started at once: enough to overlap one's network waits with another's work. */
const AT_ONCE = 4;

async function start(order: CrowdOrder): Promise<void> {
  const starts: Array<() => Promise<void>> =
    order.system === 'walsync'
      ? order.tokens.map((token) => async () => {
          const client = await createSyncClient({ url: order.url, token, dataDir: 'memory://' });
          walsync.push(client);
          await client.ready;
        })
      : order.users.map((user) => async () => {
          const client = zeroClient(order.url, user);
          zero.push(client);
          await watchTasks(client, order.workspaceId).until((_, complete) => complete);
        });
  for (let i = 0; i < starts.length; i += AT_ONCE) await Promise.all(starts.slice(i, i + AT_ONCE).map((begin) => begin()));
}

process.on('message', (message: CrowdOrder | 'stop') => {
  if (message === 'stop') {
    void Promise.all([...walsync.map((client) => client.close()), ...zero.map((client) => client.close())]).finally(() => process.exit(0));
    return;
  }
  start(message).then(
    () => process.send?.({ ready: true }),
    (error: Error) => process.send?.({ error: error.stack ?? String(error) }),
  );
});
