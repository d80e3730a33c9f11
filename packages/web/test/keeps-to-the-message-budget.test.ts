import { type SyncFixture, startSyncFixture } from '@walsync/test-support';
import { createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The server closes a socket that sends more than 100 messages a second (a hostile client must not
 * cost everyone else). An honest client never comes near it: it acknowledges a fast stream of
 * commits and pushes a stream of its own writes in fewer messages than that, so it stays connected.
 */
describe('an honest client keeps to the server’s message budget', () => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('message-budget');
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('stays connected through thousands of commits a second and a stream of its own writes', async () => {
    const { db, seed, url, token } = fixture;
    const [{ id: task }] = (await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'busy') RETURNING id`, [
      seed.workspaces.shared,
      seed.projects.launch,
    ])) as [{ id: string }];
    const client = await createSyncClient({ url, token, dataDir: 'memory://' });
    const errors: string[] = [];
    const statuses: string[] = [];
    client.on('error', (error) => errors.push(error.message));
    client.on('status', (status) => statuses.push(status));
    try {
      await client.ready;
      const [{ id: mine }] = (await client.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'mine 0') RETURNING id`, [
        seed.workspaces.shared,
        seed.projects.launch,
      ])).rows as [{ id: string }];
      // Each commit is its own changes message; the client's own writes go out while they stream in.
      const COMMITS = 3000;
      const writing = (async () => {
        for (let i = 1; i <= 300; i++) {
          await client.db.query(`UPDATE task SET title = $2 WHERE id = $1`, [mine, `mine ${i}`]);
          await new Promise((resolve) => setTimeout(resolve, 2));
        }
      })();
      const started = performance.now();
      for (let i = 1; i <= COMMITS; i++) await db.query(`UPDATE task SET title = $2 WHERE id = $1`, [task, `busy ${i}`]);
      const perSecond = COMMITS / ((performance.now() - started) / 1000);
      await writing;
      await client.flush();
      for (let tries = 0; (await client.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [task])).rows[0]?.title !== `busy ${COMMITS}`; tries++) {
        if (tries > 1500) throw new Error('the last commit never arrived');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // The stream was faster than the budget (1.5 times it, so a loaded CI machine still proves it):
      // one ack per commit would have been closed as a flood.
      expect(perSecond).toBeGreaterThan(150);
      expect(errors).toEqual([]);
      expect(statuses).not.toContain('offline');
      expect((await db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [mine]))[0]!.title).toBe('mine 300');
    } finally {
      await client.close();
    }
  });

  it('stays connected while the app writes without pause for seconds', async () => {
    const { db, seed, url, token } = fixture;
    const client = await createSyncClient({ url, token, dataDir: 'memory://' });
    const errors: string[] = [];
    const pushes: number[] = [];
    client.on('error', (error) => errors.push(error.message));
    client.on('push', (push) => pushes.push(push.sent));
    try {
      await client.ready;
      const [{ id }] = (await client.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'typing') RETURNING id`, [
        seed.workspaces.shared,
        seed.projects.launch,
      ])).rows as [{ id: string }];
      let written = 0;
      for (const until = performance.now() + 3000; performance.now() < until; ) {
        await client.db.query(`UPDATE task SET title = $2 WHERE id = $1`, [id, `typing ${++written}`]);
      }
      await client.flush();
      expect(errors).toEqual([]);
      expect(client.status).toBe('up-to-date');
      expect((await db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [id]))[0]!.title).toBe(`typing ${written}`);
      // Every write went, in fewer pushes than the budget allows over those seconds.
      expect(pushes.reduce((sum, sent) => sum + sent, 0)).toBe(written + 1);
      expect(pushes.length).toBeLessThan(3 * 60);
    } finally {
      await client.close();
    }
  });
});
