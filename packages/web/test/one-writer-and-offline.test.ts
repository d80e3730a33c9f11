import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SyncFixture, startSyncFixture, waitFor } from '@walsync/test-support';
import { createSyncClient } from '@walsync/web';

describe('a client on disk', () => {
  let fixture: SyncFixture;
  let db: SyncFixture['db'];
  let seed: SyncFixture['seed'];
  let token: string;
  let scratch: SyncFixture['scratch'];
  let url: string;

  beforeAll(async () => {
    fixture = await startSyncFixture('web');
    ({ db, seed, token, scratch, url } = fixture);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('refuses a second client on the same data directory, and recovers the lock after the first one crashed', async () => {
    const dataDir = path.join(scratch.dir, 'locked');
    const first = await createSyncClient({ url, token, dataDir });
    await expect(createSyncClient({ url, token, dataDir })).rejects.toThrow(/already open in another walsync client/);
    await first.close();
    const again = await createSyncClient({ url, token, dataDir });
    await again.close();

    // A process that takes the lock and dies without releasing it.
    const holder = spawn(process.execPath, ['-e', `require('proper-lockfile').lock(${JSON.stringify(dataDir)}, { stale: 5000, update: 1000, lockfilePath: ${JSON.stringify(`${dataDir}/walsync.lock`)} }).then(() => { console.log('locked'); setInterval(() => {}, 1000); })`], {
      cwd: path.resolve(__dirname, '..'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise((resolve) => holder.stdout!.once('data', resolve));
    await expect(createSyncClient({ url, token, dataDir })).rejects.toThrow(/already open/);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const recovered = await waitFor('the stale lock to be taken over', async () => createSyncClient({ url, token, dataDir }).catch(() => undefined), 15_000);
    await recovered.close();
  });

  it('keeps writes made while the server is down and pushes them when it returns', async () => {
    const client = await createSyncClient({ url, token, dataDir: path.join(scratch.dir, 'offline') });
    try {
      await client.ready;
      await fixture.stopServer();
      await waitFor('the client to notice', () => client.status === 'offline');
      for (let i = 0; i < 5; i++) {
        await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [seed.workspaces.shared, seed.projects.launch, `offline ${i}`]);
      }
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(5);
      await fixture.startServer();
      await client.flush();
      const onServer = await db.query(`SELECT title FROM task WHERE title LIKE 'offline %' ORDER BY title`);
      expect(onServer.map((row) => row.title)).toEqual(['offline 0', 'offline 1', 'offline 2', 'offline 3', 'offline 4']);
      await waitFor('up to date', () => client.status === 'up-to-date');
    } finally {
      await client.close();
    }
  });
});
