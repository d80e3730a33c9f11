import { freePort } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { type PostgresTarget, scratchDir } from './postgres';
import { postgresTargets, seedWorkspaces, startDatabase } from './database';
import { TEST_JWT_SECRET, startServer } from './servers';

/**
 * What the client tests run against: the embedded Postgres with the test workspaces, a walsync
 * server on a port of its own (so it can be stopped and started where its clients expect it),
 * alice's token and a scratch directory for replicas. `dispose()` ends all of it.
 */
export async function startSyncFixture(name: string, target: PostgresTarget = postgresTargets()[0]!) {
  const db = await startDatabase(target);
  const port = await freePort();
  let server: WalsyncServer | undefined = await startServer(db.url, { port });
  const seed = await seedWorkspaces(db);
  const scratch = scratchDir(name);
  return {
    db,
    seed,
    token: await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice),
    scratch,
    url: `http://127.0.0.1:${port}`,
    async stopServer() {
      await server?.stop();
      server = undefined;
    },
    async startServer() {
      server = await startServer(db.url, { port });
    },
    async dispose() {
      await server?.stop();
      await db.dispose();
      scratch.remove();
    },
  };
}

export type SyncFixture = Awaited<ReturnType<typeof startSyncFixture>>;
