import { randomUUID } from 'node:crypto';
import { type ChangeResult, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { commitAwaitingStandby } from './support/synchronous-standby';

/**
 * A commit waiting for a synchronous standby is in the WAL, so capture stores it and the stream sends
 * it, while Postgres still shows it running to every other transaction. What the server reads because
 * of the stream (the user's workspaces after a membership change, a subscription's root row, the rows
 * a client's write touches) must see it: each of these read it before it showed.
 */
describe.each(postgresTargets())('what follows a commit Postgres still shows running ($name)', (target) => {
  const tokens = new Tokens(TEST_JWT_SECRET);
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let clients: BareClient[] = [];
  let wall = Date.now();

  beforeAll(async () => {
    db = await startDatabase(target);
    seed = await seedWorkspaces(db);
    server = await startServer(db.url);
  });
  afterEach(() => {
    for (const client of clients) client.close();
    clients = [];
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  const connect = async (user: 'alice' | 'bob', subscriptions?: unknown[]) => {
    const client = await BareClient.connect(server.url);
    clients.push(client);
    client.send({ type: 'hello', protocol: 1, token: await tokens.issue(seed.users[user]), clientId: `${user}-${randomUUID()}`, schemaVersion: null, position: null, ...(subscriptions ? { subscriptions } : {}) });
    await client.next('welcome');
    await client.snapshot();
    await client.next('up_to_date');
    return client;
  };
  /** Waits until change_history holds a change of `table` whose row matches `where` (SQL on `data`). */
  const captured = (table: string, where: string, params: unknown[]) =>
    waitFor(`capture to store the held ${table} change`, async () => (await db.query(`SELECT 1 FROM change_history WHERE table_name = $1 AND ${where}`, [table, ...params])).length > 0);
  const pause = () => new Promise((resolve) => setTimeout(resolve, 500));

  it('takes a workspace from a member removed by such a commit, and sends nothing of it after', async () => {
    const bob = await connect('bob');
    const held = await commitAwaitingStandby(db, `UPDATE workspace_member SET deleted_at = now() WHERE user_id = $1 AND workspace_id = $2`, [seed.users.bob, seed.workspaces.shared]);
    try {
      await captured('workspace_member', `data->>'user_id' = $2 AND data->>'deleted_at' IS NOT NULL`, [seed.users.bob]);
      await pause();
      // Committed and shown at once: bob is no longer a member when it commits.
      await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after the removal')`, [seed.workspaces.shared, seed.projects.launch]);
      await pause();
    } finally {
      await held.release();
      await held.restore();
    }
    // Read before the removal showed, the scope kept the workspace: no scope_removed, and its changes went on.
    const removed = await bob.next('scope_removed', 5_000).catch((error) => {
      throw new Error(`bob was never told he left the workspace; the stream sent him: ${bob.messages.filter((message) => message.type === 'changes').flatMap((message) => message.changes.map((change) => change.data?.title ?? change.table)).join(', ')}`, { cause: error });
    });
    expect(removed).toMatchObject({ workspaceId: seed.workspaces.shared });
    const titles = bob.messages.filter((message) => message.type === 'changes').flatMap((message) => message.changes.map((change) => change.data?.title));
    expect(titles).not.toContain('after the removal');
    await db.query(`UPDATE workspace_member SET deleted_at = NULL WHERE user_id = $1 AND workspace_id = $2`, [seed.users.bob, seed.workspaces.shared]);
  });

  it('admits a subscription to a project such a commit made, which the stream already sent', async () => {
    const alice = await connect('alice', [{ name: 'project', params: { projectId: seed.projects.launch } }]);
    const project = randomUUID();
    const held = await commitAwaitingStandby(db, `INSERT INTO project (id, workspace_id, name) VALUES ($1, $2, 'held project')`, [project, seed.workspaces.shared]);
    try {
      await alice.next((message) => message.type === 'changes' && message.changes.some((change) => change.data?.id === project));
      alice.send({ type: 'subscribe', subscription: { name: 'project', params: { projectId: project } } });
      await pause();
    } finally {
      await held.release();
      await held.restore();
    }
    // Its root row read before it showed: refused as outside the user's workspaces.
    const answer = await alice.next((message) => message.type === 'snapshot_start' || message.type === 'subscription_refused');
    expect(answer).toMatchObject({ type: 'snapshot_start', subscriptions: [{ name: 'project', params: { projectId: project } }] });
  });

  it("applies a write to a row such a commit made, instead of answering that the row does not exist", async () => {
    const task = randomUUID();
    const held = await commitAwaitingStandby(db, `INSERT INTO task (id, workspace_id, project_id, title) VALUES ($1, $2, $3, 'held task')`, [task, seed.workspaces.shared, seed.projects.launch]);
    let results: ChangeResult[];
    try {
      await captured('task', `data->>'id' = $2`, [task]);
      const clientId = 'alice-writes';
      const response = fetch(`${server.url}/changes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await tokens.issue(seed.users.alice)}` },
        body: JSON.stringify({
          clientId,
          changes: [
            { changeId: randomUUID(), hlc: formatHlc({ wallMs: (wall = Math.max(wall, Date.now()) + 1), counter: 0, node: clientId }), table: 'task', op: 'update', pk: { id: task }, data: { title: 'held task, renamed' } },
            {
              changeId: randomUUID(),
              hlc: formatHlc({ wallMs: (wall = Math.max(wall, Date.now()) + 1), counter: 0, node: clientId }),
              table: 'comment',
              op: 'insert',
              pk: { id: randomUUID() },
              data: { workspace_id: seed.workspaces.shared, task_id: task, author_id: seed.users.alice, body: 'on the held task' },
            },
          ],
        }),
      });
      await pause();
      await held.release();
      results = ((await (await response).json()) as { results: ChangeResult[] }).results;
    } finally {
      await held.release().catch(() => undefined);
      await held.restore();
    }
    expect(results.map((result) => (result.status === 'applied' ? 'applied' : `${result.status}: ${'reason' in result ? result.reason : result.code}`))).toEqual(['applied', 'applied']);
    expect(await db.query(`SELECT title FROM task WHERE id = $1`, [task])).toEqual([{ title: 'held task, renamed' }]);
  });
});
