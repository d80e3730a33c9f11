import { spawn } from 'node:child_process';
import path from 'node:path';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, scratchDir, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

describe('a client process killed mid-apply and mid-push', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  const scratch = scratchDir('crash');
  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
    scratch.remove();
  });

  it('restarts from its stored position and outbox: it converges, and each committed write reaches the server once', async () => {
    const token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
    const dataDir = path.join(scratch.dir, 'client');
    const child = spawn(process.execPath, [path.join(__dirname, 'support/client-process.mjs')], {
      env: { ...process.env, URL: server.url, TOKEN: token, DATA_DIR: dataDir, WORKSPACE: seed.workspaces.shared, PROJECT: seed.projects.launch },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let written = -1;
    let ready = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (line === 'ready') ready = true;
        const match = /^wrote (\d+)$/.exec(line);
        if (match) written = Number(match[1]);
      }
    });
    await waitFor('the child client to be ready', () => ready, 30_000);
    // The server streams a large backlog at it while it writes.
    const backlog = (async () => {
      for (let i = 0; i < 20; i++) {
        await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'server ' || $3 || '-' || g FROM generate_series(1, 200) g`, [
          seed.workspaces.shared,
          seed.projects.launch,
          i,
        ]);
      }
    })();
    await waitFor('some writes', () => written >= 60, 30_000);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    await backlog;

    const client = await waitFor('the crashed client to be reopened', () => createSyncClient({ url: server.url, token, dataDir }).catch(() => undefined), 20_000);
    try {
      await client.ready;
      await client.flush();
      const local = (await client.db.query<{ title: string }>(`SELECT title FROM task WHERE title LIKE 'child %'`)).rows.map((row) => row.title).sort();
      expect(local.length).toBeGreaterThanOrEqual(written + 1);
      await waitFor('the server to hold every local write, once', async () => {
        const rows = await db.query(`SELECT title, count(*)::int AS n FROM task WHERE title LIKE 'child %' GROUP BY title`);
        return rows.length === local.length && rows.every((row) => row.n === 1);
      });
      await waitFor('the client to equal the server', async () => {
        const sql = `SELECT id::text, title, version FROM task ORDER BY id`;
        return JSON.stringify((await client.db.query(sql)).rows) === JSON.stringify(await db.query(sql));
      }, 30_000);
      expect((await client.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0]!.n).toBe(0);
    } finally {
      await client.close();
    }
  });
});
