import { spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../../db/test/support/postgres';
import { type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, waitFor } from '../../server/test/support/database';
import { TEST_JWT_SECRET, startServer } from '../../server/test/support/servers';
import { createSyncClient } from '@walsync/web';

describe('a client on disk', () => {
  let db: TestDatabase;
  let server: WalsyncServer | undefined;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  let port: number;
  const scratch = scratchDir('web');
  const serve = async () => {
    server = await startServer(db.url, { port });
  };

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    port = await freePort();
    await serve();
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  it('refuses a second client on the same data directory, and recovers the lock after the first one crashed', async () => {
    const dataDir = path.join(scratch.dir, 'locked');
    const first = await createSyncClient({ url: server!.url, token, dataDir });
    await expect(createSyncClient({ url: server!.url, token, dataDir })).rejects.toThrow(/already open in another walsync client/);
    await first.close();
    const again = await createSyncClient({ url: server!.url, token, dataDir });
    await again.close();

    // A process that takes the lock and dies without releasing it.
    const holder = spawn(process.execPath, ['-e', `require('proper-lockfile').lock(${JSON.stringify(dataDir)}, { stale: 5000, update: 1000, lockfilePath: ${JSON.stringify(`${dataDir}/walsync.lock`)} }).then(() => { console.log('locked'); setInterval(() => {}, 1000); })`], {
      cwd: path.resolve(__dirname, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    await expect(createSyncClient({ url: server!.url, token, dataDir })).rejects.toThrow(/already open/);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const recovered = await waitFor('the stale lock to be taken over', async () => createSyncClient({ url: server!.url, token, dataDir }).catch(() => undefined), 15_000);
    await recovered.close();
  });

  it('keeps writes made while the server is down and pushes them when it returns', async () => {
    const client = await createSyncClient({ url: `http://127.0.0.1:${port}`, token, dataDir: path.join(scratch.dir, 'offline') });
    try {
      await client.ready;
      await server!.stop();
      server = undefined;
      await waitFor('the client to notice', () => client.status === 'offline');
      for (let i = 0; i < 5; i++) {
        await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [seed.workspaces.shared, seed.projects.launch, `offline ${i}`]);
      }
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(5);
      await serve();
      await client.flush();
      const onServer = await db.query(`SELECT title FROM task WHERE title LIKE 'offline %' ORDER BY title`);
      expect(onServer.map((row) => row.title)).toEqual(['offline 0', 'offline 1', 'offline 2', 'offline 3', 'offline 4']);
      await waitFor('up to date', () => client.status === 'up-to-date');
    } finally {
      await client.close();
    }
  });
});
