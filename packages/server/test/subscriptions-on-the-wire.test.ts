import { comparePositions } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { commitWhileSnapshotIsTaken } from './support/snapshot-lock';
import { commitAwaitingStandby } from './support/synchronous-standby';

/** Subscriptions as a client without the library sees them: what each message answers, and what the stream sends. */
describe.each(postgresTargets())('subscriptions on the wire ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let second: string;
  const tokens = new Tokens(TEST_JWT_SECRET);
  let clients: BareClient[] = [];

  beforeAll(async () => {
    db = await startDatabase(target);
    seed = await seedWorkspaces(db);
    [{ id: second }] = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Second') RETURNING id`, [seed.workspaces.shared])) as [{ id: string }];
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'launch 1'), ($1, $2, 'launch 2'), ($1, $3, 'second 1')`, [seed.workspaces.shared, seed.projects.launch, second]);
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

  let clientId = '';
  const open = async (subscriptions?: unknown[]) => {
    const client = await BareClient.connect(server.url);
    clients.push(client);
    clientId = `c${clients.length}-${Date.now()}`;
    client.send({ type: 'hello', protocol: 1, token: await tokens.issue(seed.users.alice), clientId, schemaVersion: null, position: null, ...(subscriptions ? { subscriptions } : {}) });
    await client.next('welcome');
    return client;
  };
  const project = (projectId: string) => ({ name: 'project', params: { projectId } });

  it('hydrates only the named subscriptions and the whole tables, and streams only their changes', async () => {
    const client = await open([project(seed.projects.launch)]);
    const { start, rows } = await client.snapshot();
    expect(start.subscriptions).toEqual([project(seed.projects.launch)]);
    expect(start.total).toEqual({ workspace: 1, workspace_member: 2, project: 2, task: 2, comment: 0 });
    expect(rows.task!.map((row) => row.title).sort()).toEqual(['launch 1', 'launch 2']);
    await client.next('up_to_date');

    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'second live')`, [seed.workspaces.shared, second]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'launch live')`, [seed.workspaces.shared, seed.projects.launch]);
    const batch = await client.next((message) => message.type === 'changes' && message.changes.length > 0);
    expect(batch.changes.map((change: { data?: { title: string } }) => change.data?.title)).toEqual(['launch live']);
  });

  it('adds a subscription where its snapshot meets the stream, when tasks commit while the snapshot is taken', async () => {
    const client = await open([project(seed.projects.launch)]);
    await client.snapshot();
    await client.next('up_to_date');
    // A task of the held project and one of the added project commit while the subscription's snapshot
    // is taken (see commitWhileSnapshotIsTaken): the snapshot has neither, the stream brings both after
    // it (read again instead, a busy server could fail every snapshot).
    await commitWhileSnapshotIsTaken(
      db,
      () => client.send({ type: 'subscribe', subscription: project(second) }),
      async () => {
        await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'launch, during the snapshot')`, [seed.workspaces.shared, seed.projects.launch]);
        await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'second, during the snapshot')`, [seed.workspaces.shared, second]);
      },
    );
    const { rows, end } = await client.snapshot();
    expect(rows.task!.map((row) => row.title)).toContain('second 1');
    expect(rows.task!.map((row) => row.title)).not.toContain('second, during the snapshot');
    const titles: string[] = [];
    for (;;) {
      const batch = await client.next((message) => message.type === 'changes' && message.changes.length > 0);
      expect(comparePositions(batch.position, end.position)).toBeGreaterThan(0);
      titles.push(...batch.changes.map((change: { data?: { title: string } }) => change.data?.title ?? ''));
      if (titles.includes('second, during the snapshot')) break;
    }
    expect(titles).toEqual(['launch, during the snapshot', 'second, during the snapshot']);
  });

  it('adds a subscription whose rows a commit changed that the stream passed while Postgres still showed it running', async () => {
    // A commit waiting for a synchronous standby is in history, and the stream goes past it, while
    // snapshots do not see it yet. The subscription's snapshot then held the row as it was, and the
    // stream, already past the commit, never sent it: the client kept the old row for good. Now the
    // snapshot is read again once Postgres shows the commit.
    const [task] = await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'second, before the held commit') RETURNING id`, [
      seed.workspaces.shared,
      second,
    ]);
    const client = await open([project(seed.projects.launch)]);
    await client.snapshot();
    await client.next('up_to_date');
    const held = await commitAwaitingStandby(db, `UPDATE task SET title = 'held for the standby' WHERE id = $1`, [task!.id]);
    let snapshot: Awaited<ReturnType<BareClient['snapshot']>>;
    try {
      await waitFor('capture to store the held commit', async () => (await db.query(`SELECT 1 FROM change_history WHERE data->>'title' = 'held for the standby'`)).length > 0);
      // The stream goes past it: a later commit of the held project reaches the client.
      await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'launch, after the held commit')`, [seed.workspaces.shared, seed.projects.launch]);
      await client.next((message) => message.type === 'changes' && message.changes.some((change) => change.data?.title === 'launch, after the held commit'));
      client.send({ type: 'subscribe', subscription: project(second) });
      // Its snapshot waits while Postgres shows the commit running.
      await new Promise((resolve) => setTimeout(resolve, 500));
    } finally {
      await held.release();
      await held.restore();
    }
    snapshot = await client.snapshot();
    let title = snapshot.rows.task!.find((row) => row.id === task!.id)?.title;
    await waitFor('the held commit in the subscription', async () => {
      while (client.messages.some((message, i) => i >= (client as any).cursor && message.type === 'changes')) {
        const batch = await client.next('changes');
        for (const change of batch.changes) if (change.data?.id === task!.id) title = change.data.title;
      }
      return title === 'held for the standby';
    }, 5_000).catch((error) => {
      throw new Error(`the client holds '${title}' where the server has 'held for the standby'`, { cause: error });
    });
  });

  it('answers subscribe with a snapshot of its rows, unsubscribe with unsubscribed, and refuses what the user cannot hold', async () => {
    const client = await open([]);
    const initial = await client.snapshot();
    expect(initial.rows.task).toBeUndefined();
    client.send({ type: 'subscribe', subscription: project(second) });
    const { start, rows } = await client.snapshot();
    const expected = (await db.query<{ title: string }>(`SELECT title FROM task WHERE project_id = $1 ORDER BY title`, [second])).map((row) => row.title);
    expect(start).toMatchObject({ replace: false, workspaces: [], subscriptions: [project(second)], total: { task: expected.length, comment: 0 } });
    expect(rows.task!.map((row) => row.title).sort()).toEqual(expected);
    expect(expected).toContain('second 1');

    client.send({ type: 'subscribe', subscription: project(seed.projects.secret) });
    expect(await client.next('subscription_refused')).toMatchObject({ code: 'forbidden', subscription: project(seed.projects.secret) });
    client.send({ type: 'subscribe', subscription: { name: 'nope', params: {} } });
    expect(await client.next('subscription_refused')).toMatchObject({ code: 'unknown_subscription' });
    client.send({ type: 'subscribe', subscription: { name: 'project', params: { projectId: 'x' } } });
    expect(await client.next('subscription_refused')).toMatchObject({ code: 'invalid_params' });

    client.send({ type: 'unsubscribe', subscription: project(second) });
    expect(await client.next('unsubscribed')).toMatchObject({ subscription: project(second) });
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after unsubscribe')`, [seed.workspaces.shared, second]);
    await db.query(`UPDATE project SET name = 'Second, renamed' WHERE id = $1`, [second]);
    const batch = await client.next((message) => message.type === 'changes' && message.changes.length > 0);
    expect(batch.changes.map((change: { table: string }) => change.table)).toEqual(['project']);
  });

  it("sends a client the removal of a row its own write took out of its subscriptions, and none of its other writes", async () => {
    const [{ id: leaving }, { id: staying }] = await db.query<{ id: string }>(
      `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'moved out by its client'), ($1, $2, 'renamed by its client') RETURNING id`,
      [seed.workspaces.shared, seed.projects.launch],
    );
    const client = await open([project(seed.projects.launch)]);
    await client.snapshot();
    await client.next('up_to_date');
    const hlc = `${String(Date.now() + 1000).padStart(15, '0')}:000000:${clientId}`;
    client.send({
      type: 'write',
      requestId: 'move',
      changes: [
        { changeId: crypto.randomUUID(), table: 'task', op: 'update', pk: { id: leaving }, data: { project_id: second }, hlc },
        { changeId: crypto.randomUUID(), table: 'task', op: 'update', pk: { id: staying }, data: { title: 'renamed' }, hlc },
      ],
    });
    const answer = await client.next('write_result');
    expect(answer.results.map((result: { status: string }) => result.status)).toEqual(['applied', 'applied']);
    const batch = await client.next((message) => message.type === 'changes' && message.changes.length > 0);
    // The row as the client could see it, with the version it left at (the answer's).
    const left = (answer.results[0] as unknown as { row: { version: number } }).row;
    expect(batch.changes).toEqual([expect.objectContaining({ table: 'task', op: 'delete', old: expect.objectContaining({ id: leaving, project_id: seed.projects.launch, version: left.version }) })]);
  });

  it('refuses, after the welcome, a subscription named in hello that the user cannot hold; refuses subscribe from a whole-scope client', async () => {
    const partial = await open([project(seed.projects.secret), project(seed.projects.launch)]);
    expect(await partial.next('subscription_refused')).toMatchObject({ code: 'forbidden', subscription: project(seed.projects.secret) });
    const { start } = await partial.snapshot();
    expect(start.subscriptions).toEqual([project(seed.projects.launch)]);

    const whole = await open();
    await whole.snapshot();
    whole.send({ type: 'subscribe', subscription: project(second) });
    expect(await whole.next('error')).toMatchObject({ code: 'whole_scope' });
  });
  it('tells a client that gains a workspace of the rows of it deleted meanwhile (it may hold some: a snapshot of it cut short)', async () => {
    const [{ id: doomed }] = (await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'deleted while away') RETURNING id`, [seed.workspaces.shared, second])) as [{ id: string }];
    const first = await open();
    const { end } = await first.snapshot();
    first.close();
    await db.query(`DELETE FROM task WHERE id = $1`, [doomed]);
    // Back from its position, saying it holds no workspace: the server hydrates the shared one — and the
    // task's deletion reaches it (rows of the workspace it kept from a snapshot cut short would stay otherwise).
    const back = await BareClient.connect(server.url);
    clients.push(back);
    back.send({ type: 'hello', protocol: 1, token: await tokens.issue(seed.users.alice), clientId, schemaVersion: null, position: end.position, workspaces: [] });
    const { rows } = await back.snapshot();
    expect(rows.task!.map((row) => row.id)).not.toContain(doomed);
    await back.next('up_to_date');
    const removals = back.messages.flatMap((message) => (message.type === 'changes' ? message.changes : [])).filter((change) => change.op === 'delete');
    expect(removals.map((change) => (change.old as { id: string }).id)).toContain(doomed);
  });
});
