import { Tokens } from '@walsync/server';
import { type SyncFixture, TEST_JWT_SECRET, postgresTargets, startSyncFixture, waitFor } from '@walsync/test-support';
import { createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** A row whose scope column changes is a removal for the workspace it left and the whole row for the one it entered. */
describe.each(postgresTargets())('a row moved between workspaces ($name)', (target) => {
  let fixture: SyncFixture;

  beforeAll(async () => {
    fixture = await startSyncFixture('moves', target);
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it('leaves the replicas of the workspace it left and reaches those of the one it entered, both ways', async () => {
    const { db, seed, url } = fixture;
    const tokens = new Tokens(TEST_JWT_SECRET);
    const alice = await createSyncClient({ url, token: await tokens.issue(seed.users.alice), dataDir: 'memory://' });
    const carol = await createSyncClient({ url, token: await tokens.issue(seed.users.carol), dataDir: 'memory://' });
    const has = async (client: typeof alice, id: string) => (await client.db.query(`SELECT 1 FROM task WHERE id = $1`, [id])).rows.length === 1;
    try {
      await Promise.all([alice.ready, carol.ready]);
      const [task] = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'on the move') RETURNING id`, [
        seed.workspaces.shared,
        seed.projects.launch,
      ]);
      await waitFor('alice has the task', () => has(alice, task!.id));
      expect(await has(carol, task!.id)).toBe(false);

      // Out of Acme into carol's workspace, by SQL.
      await db.query(`UPDATE task SET workspace_id = $2, project_id = $3 WHERE id = $1`, [task!.id, seed.workspaces.other, seed.projects.secret]);
      await waitFor('carol to get it', () => has(carol, task!.id));
      await waitFor('alice to lose it', async () => !(await has(alice, task!.id)));

      // And back.
      await db.query(`UPDATE task SET workspace_id = $2, project_id = $3, title = 'back home' WHERE id = $1`, [task!.id, seed.workspaces.shared, seed.projects.launch]);
      await waitFor('alice to get it back', async () => (await alice.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [task!.id])).rows[0]?.title === 'back home');
      await waitFor('carol to lose it', async () => !(await has(carol, task!.id)));
    } finally {
      await alice.close();
      await carol.close();
    }
  });
});
