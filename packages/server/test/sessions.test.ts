import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { formatHlc } from '@walsync/db/server';
import { formatPosition, parsePosition } from '@walsync/db/server';
import { Tokens, type WalsyncServer, pruneHistory } from '@walsync/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

describe('sync sessions', () => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  const tokens = new Tokens(TEST_JWT_SECRET);
  let clients: BareClient[] = [];
  let wall = Date.now();

  const connect = async (user: 'alice' | 'bob' | 'carol', clientId: string, position: string | null = null, echoThrough?: string) => {
    const client = await BareClient.connect(server.url);
    clients.push(client);
    client.hello({ token: await tokens.issue(seed.users[user]), clientId, position, ...(echoThrough ? { echoThrough } : {}) });
    await client.next('welcome');
    if (position === null) await client.snapshot();
    return client;
  };
  const insertTask = (client: BareClient, clientId: string, title: string, workspace = seed.workspaces.shared, project = seed.projects.launch) => {
    const requestId = randomUUID();
    client.send({
      type: 'write',
      requestId,
      changes: [
        {
          changeId: randomUUID(),
          table: 'task',
          op: 'insert',
          pk: { id: randomUUID() },
          data: { workspace_id: workspace, project_id: project, title },
          hlc: formatHlc({ wallMs: ++wall, counter: 0, node: clientId }),
        },
      ],
    });
    return client.next((message) => message.type === 'write_result' && message.requestId === requestId);
  };
  /** A changes batch holding a row whose title (task) or name (project) is `text`. */
  /** A position the client has: its stream's, once it brought a commit made now (everything before it is captured). */
  const streamedNow = async (client: BareClient, marker: string) => {
    await db.query(`UPDATE project SET name = $2 WHERE id = $1`, [seed.projects.launch, marker]);
    return (await client.next(changesWith(marker))).position as string;
  };
  const changesWith = (text: string) => (message: any) =>
    message.type === 'changes' && message.changes.some((change: any) => change.data?.title === text || change.data?.name === text);

  beforeAll(async () => {
    db = await startDatabase(postgresTargets()[0]!);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
  });
  afterEach(() => {
    for (const client of clients) client.close();
    clients = [];
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('never sends a client its own changes as data, but moves its position past them', async () => {
    const alice = await connect('alice', 'alice-1');
    const bob = await connect('bob', 'bob-1');
    const result = await insertTask(alice, 'alice-1', 'from alice');
    expect(result.results[0]).toMatchObject({ status: 'applied', row: { title: 'from alice', origin_client_id: 'alice-1' } });
    const applied = result.results[0] as { lsn: string };

    const toBob = await bob.next(changesWith('from alice'));
    expect(toBob.changes).toEqual([{ table: 'task', op: 'insert', data: expect.objectContaining({ title: 'from alice' }) }]);
    // The write's lsn is read right after its COMMIT: the end of its commit record, or later when other
    // WAL came between (Postgres' own running-transactions record, another test's writes). The stream
    // carries the write at the end of its commit record, so at or before that lsn.
    expect(parsePosition(toBob.position)).toBeLessThanOrEqual(parsePosition(applied.lsn));
    // The writer's own stream moves past its write without carrying it, to a position at or after its lsn.
    const moved = await alice.next((message) => (message.type === 'changes' || message.type === 'up_to_date') && parsePosition(message.position) >= parsePosition(applied.lsn));
    expect(moved.type === 'up_to_date' || moved.changes.every((change: { data?: { title?: string } }) => change.data?.title !== 'from alice')).toBe(true);
    expect(alice.messages.some(changesWith('from alice'))).toBe(false);
  });

  it("tells a writer a position at or after its write's lsn, also when other WAL follows the commit", async () => {
    const alice = await connect('alice', 'alice-busy');
    const written = parsePosition(((await insertTask(alice, 'alice-busy', 'then other work')).results[0] as { lsn: string }).lsn);
    // Other work writes WAL right after (app_user is not synced), as it may between a write's COMMIT
    // and the reading of its lsn: an lsn read now lies past the write's own position.
    for (let i = 0; i < 3; i++) await db.query(`INSERT INTO app_user (email, name) VALUES ($1, 'noise')`, [`noise-${randomUUID()}@demo.test`]);
    const [{ lsn }] = (await db.query<{ lsn: string }>(`SELECT pg_current_wal_insert_lsn()::text AS lsn`)) as [{ lsn: string }];
    const later = parsePosition(lsn);
    expect(later).toBeGreaterThan(written);
    // No synced commit follows, yet the writer's position reaches it.
    const reached = await alice.next((message) => (message.type === 'changes' || message.type === 'up_to_date') && parsePosition(message.position) >= later, 10_000);
    expect(parsePosition(reached.position)).toBeGreaterThanOrEqual(later);
  });

  it('keeps workspaces apart: carol never sees the shared workspace, in the snapshot, live, on verify or on resume', async () => {
    const carol = await connect('carol', 'carol-1');
    const snapshotRows = carol.messages.filter((message) => message.type === 'snapshot_batch').flatMap((message) => message.rows);
    expect(snapshotRows.every((row: any) => (row.workspace_id ?? row.id) === seed.workspaces.other)).toBe(true);
    const alice = await connect('alice', 'alice-2');
    await insertTask(alice, 'alice-2', 'secret to carol');
    await db.query(`UPDATE project SET name = 'carol sees this' WHERE id = $1`, [seed.projects.secret]);
    await carol.next((message) => message.type === 'changes' && message.changes.some((change: any) => change.data?.name === 'carol sees this'));
    expect(JSON.stringify(carol.messages)).not.toContain(seed.workspaces.shared);

    // Carol cannot write there either, over the socket.
    const refused = await insertTask(carol, 'carol-1', 'intrusion');
    expect(refused.results[0]).toMatchObject({ status: 'error', code: 'forbidden_scope' });

    // Asking for a replay from the very start (verify), or resuming from it, replays only her workspace.
    const first = (await db.query(`SELECT min(commit_lsn)::bigint AS lsn FROM change_history`))[0]!.lsn as string;
    const start = formatPosition(BigInt(first) - 1n);
    carol.send({ type: 'sync_verify', position: start });
    await carol.next((message) => message.type === 'changes' || message.type === 'up_to_date' || message.type === 'resnapshot');
    const resumed = await connect('carol', 'carol-1b', start);
    await db.query(`UPDATE project SET name = 'after the replay' WHERE id = $1`, [seed.projects.secret]);
    for (const session of [carol, resumed]) {
      await session.next((message) => message.type === 'changes' && message.changes.some((change: any) => change.data?.name === 'after the replay'));
      expect(JSON.stringify(session.messages)).not.toContain(seed.workspaces.shared);
      expect(JSON.stringify(session.messages)).not.toContain('secret to carol');
    }
  });

  it('follows membership: an added workspace is hydrated, a removed one is announced and stops streaming', async () => {
    const carol = await connect('carol', 'carol-2');
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2)`, [seed.workspaces.shared, seed.users.carol]);
    const added = await carol.next('snapshot_start');
    expect(added).toMatchObject({ replace: false, workspaces: [seed.workspaces.shared] });
    const { rows } = await (async () => {
      const collected: Record<string, any[]> = {};
      for (;;) {
        const message = await carol.next((each) => each.type === 'snapshot_batch' || each.type === 'snapshot_end');
        if (message.type === 'snapshot_end') return { rows: collected };
        (collected[message.table] ??= []).push(...message.rows);
      }
    })();
    expect(rows.workspace).toEqual([expect.objectContaining({ id: seed.workspaces.shared })]);

    await db.query(`UPDATE task SET title = 'carol can see now' WHERE id = (SELECT id FROM task WHERE workspace_id = $1 LIMIT 1)`, [seed.workspaces.shared]);
    await carol.next(changesWith('carol can see now'));

    await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [seed.workspaces.shared, seed.users.carol]);
    expect(await carol.next('scope_removed')).toMatchObject({ workspaceId: seed.workspaces.shared });
    const before = carol.messages.length;
    await db.query(`UPDATE task SET title = 'carol cannot see' WHERE id = (SELECT id FROM task WHERE workspace_id = $1 LIMIT 1)`, [seed.workspaces.shared]);
    await db.query(`UPDATE project SET name = 'carol marker' WHERE id = $1`, [seed.projects.secret]);
    await carol.next((message) => message.type === 'changes' && message.changes.some((change: any) => change.data?.name === 'carol marker'));
    expect(JSON.stringify(carol.messages.slice(before))).not.toContain('carol cannot see');
  });

  it('tells a client of a workspace it lost before it refuses a write there, even before the stream brings the removal', async () => {
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [seed.workspaces.shared, seed.users.carol]);
    const carol = await connect('carol', 'carol-3');
    // Capture held back (the history locked against its inserts): the session cannot learn of the removal from the stream.
    const hold = new pg.Client({ connectionString: db.url });
    await hold.connect();
    try {
      await hold.query('BEGIN');
      await hold.query('LOCK TABLE change_history IN SHARE MODE');
      await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [seed.workspaces.shared, seed.users.carol]);
      const answer = await insertTask(carol, 'carol-3', 'carol is out');
      expect(answer.results[0]).toMatchObject({ status: 'error', code: 'forbidden_scope' });
      const order = carol.messages.filter((message) => message.type === 'scope_removed' || message.type === 'write_result').map((message) => message.type);
      expect(order).toEqual(['scope_removed', 'write_result']);
    } finally {
      await hold.query('ROLLBACK').catch(() => undefined);
      await hold.end();
    }
  });

  it('streams a write back to a client that was told it lost the workspace, so it has the rows even if it stops before the answer', async () => {
    // Carol's replica holds the shared workspace at `held`, then she is removed from it while away.
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [seed.workspaces.shared, seed.users.carol]);
    const first = await connect('carol', 'carol-5');
    const held = (await first.next((message) => message.type === 'snapshot_end' || message.type === 'up_to_date')).position;
    first.close();
    await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [seed.workspaces.shared, seed.users.carol]);
    const token = await tokens.issue(seed.users.carol);
    try {
      const back = await BareClient.connect(server.url);
      clients.push(back);
      const workspaces = [seed.workspaces.shared, seed.workspaces.other];
      back.hello({ token, clientId: 'carol-5', position: held, workspaces });
      expect(await back.next('scope_removed')).toMatchObject({ workspaceId: seed.workspaces.shared });
      // She is added back (the session snapshots the workspace for her), and only then does the write she
      // sent before she heard of the removal arrive. Her client dropped it on `scope_removed`, and the server applies it.
      await db.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2)`, [seed.workspaces.shared, seed.users.carol]);
      expect((await back.snapshot()).start).toMatchObject({ replace: false, workspaces: [seed.workspaces.shared] });
      const answer = await insertTask(back, 'carol-5', 'written while out');
      expect(answer.results[0]).toMatchObject({ status: 'applied' });
      // The stream brings it too, as data: the answer alone would be lost to a client that stops before storing it.
      await back.next(changesWith('written while out'));
      back.close();
      // Stopped before the answer was stored, the client comes back from the position it had stored.
      const again = await BareClient.connect(server.url);
      clients.push(again);
      again.hello({ token, clientId: 'carol-5', position: held, workspaces });
      const replayed = await again.next(changesWith('written while out'));
      expect(replayed.changes.find((change: any) => change.data?.title === 'written while out')).toMatchObject({ table: 'task', data: { origin_client_id: 'carol-5' } });
    } finally {
      await db.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [seed.workspaces.shared, seed.users.carol]);
    }
  });

  it('still skips the own writes of a client that was never told it lost a workspace', async () => {
    const alice = await connect('alice', 'alice-6');
    // Resumed from before the write (with no removal on the way: one would have the stream send it, see the next test).
    const held = await streamedNow(alice, 'before alice-6');
    const answer = await insertTask(alice, 'alice-6', 'not streamed back');
    expect(answer.results[0]).toMatchObject({ status: 'applied' });
    alice.close();
    await db.query(`UPDATE project SET name = 'after alice-6' WHERE id = $1`, [seed.projects.launch]);
    const again = await connect('alice', 'alice-6', held);
    await again.next(changesWith('after alice-6'));
    expect(again.messages.some(changesWith('not streamed back'))).toBe(false);
  });

  it("streams a resuming client its own writes as data up to its hello's echoThrough (a removal took their rows), and skips the later ones", async () => {
    const alice = await connect('alice', 'alice-7');
    const held = await streamedNow(alice, 'before alice-7');
    const lost = await insertTask(alice, 'alice-7', 'its row was lost');
    await insertTask(alice, 'alice-7', 'its row is still there');
    alice.close();
    await db.query(`UPDATE project SET name = 'after alice-7' WHERE id = $1`, [seed.projects.launch]);
    const again = await connect('alice', 'alice-7', held, lost.results[0].lsn);
    await again.next(changesWith('after alice-7'));
    expect(again.messages.some(changesWith('its row was lost'))).toBe(true);
    expect(again.messages.some(changesWith('its row is still there'))).toBe(false);
  });

  it('records acknowledgements, refuses acks of positions never sent, and resumes after a disconnect with what was missed', async () => {
    const bob = await connect('bob', 'bob-2');
    await db.query(`UPDATE project SET name = 'ack me' WHERE id = $1`, [seed.projects.launch]);
    const batch = await bob.next((message) => message.type === 'changes' && message.changes.some((change: any) => change.data?.name === 'ack me'));
    bob.send({ type: 'sync_ack', position: batch.position });
    await waitFor('the ack to be recorded', async () => (await db.query(`SELECT acked_position FROM sync_client WHERE client_id = 'bob-2'`))[0]?.acked_position === batch.position);

    bob.send({ type: 'sync_ack', position: 'FF/0' });
    expect(await bob.next('error')).toMatchObject({ code: 'ack_unsent' });

    bob.close();
    await db.query(`UPDATE project SET name = 'missed while away' WHERE id = $1`, [seed.projects.launch]);
    const back = await connect('bob', 'bob-2', batch.position);
    const missed = await back.next(changesWith('missed while away'));

    // verify from an older position replays what lies after it; from the tail it answers up to date.
    back.send({ type: 'sync_verify', position: batch.position });
    expect(await back.next(changesWith('missed while away'))).toMatchObject({ position: missed.position });
    back.send({ type: 'sync_verify', position: missed.position });
    expect(await back.next('up_to_date')).toEqual({ type: 'up_to_date', position: missed.position });
  });

  it('says up_to_date after a resume only once capture has what was committed before the hello, also when a verify comes meanwhile', async () => {
    const bob = await connect('bob', 'bob-held');
    await db.query(`UPDATE project SET name = 'before the hold' WHERE id = $1`, [seed.projects.launch]);
    const seen = await bob.next(changesWith('before the hold'));
    bob.close();
    // Capture cannot store anything while the lock is held: the commits below are in WAL only.
    const holder = await db.pool.connect();
    try {
      await holder.query(`BEGIN; LOCK TABLE change_history IN SHARE MODE`);
      await db.query(`UPDATE project SET name = 'secret, while held' WHERE id = $1`, [seed.projects.secret]);
      const back = await connect('bob', 'bob-held', seen.position);
      await new Promise((resolve) => setTimeout(resolve, 300));
      back.send({ type: 'sync_verify', position: seen.position });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(back.messages.some((message) => message.type === 'up_to_date')).toBe(false);
      await holder.query('COMMIT');
      // Carol's project is not bob's: nothing to send, but the position that hello and verify stood at is reached.
      expect(await back.next('up_to_date')).toMatchObject({ type: 'up_to_date' });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
  });

  it('sends a row changed many times while its client was away once, at its latest version', async () => {
    // Another user stays connected, so the server follows its change history as it grows.
    const alice = await connect('alice', 'alice-watching');
    const carol = await connect('carol', 'carol-away');
    const [{ id: task }] = (await db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'away 0') RETURNING id`, [seed.workspaces.other, seed.projects.secret])) as [{ id: string }];
    const seen = await carol.next(changesWith('away 0'));
    carol.close();
    for (let i = 1; i <= 30; i++) await db.query(`UPDATE task SET title = $2 WHERE id = $1`, [task, `away ${i}`]);
    await db.query(`UPDATE project SET name = 'Secret, renamed' WHERE id = $1`, [seed.projects.secret]);
    await db.query(`UPDATE project SET name = 'after carol''s' WHERE id = $1`, [seed.projects.launch]);
    // Every commit read by the server before the client is back: its catch-up reads them all at once.
    await alice.next(changesWith("after carol's"));
    const back = await connect('carol', 'carol-away', seen.position);
    const batch = await back.next(changesWith('Secret, renamed'));
    const ofTask = batch.changes.filter((change: any) => change.data?.id === task);
    expect(ofTask).toHaveLength(1);
    expect(ofTask[0].data).toMatchObject({ title: 'away 30', version: 31 });
    expect(batch.changes.map((change: any) => change.table)).toEqual(['task', 'project']);
  });

  it('tells a client to re-snapshot when its position is older than retained history or ahead of the server', async () => {
    const alice = await connect('alice', 'alice-3');
    await db.query(`UPDATE project SET name = 'before pruning' WHERE id = $1`, [seed.projects.launch]);
    const old = await alice.next(changesWith('before pruning'));
    alice.close();
    await db.query(`UPDATE project SET name = 'after pruning' WHERE id = $1`, [seed.projects.launch]);
    await waitFor('capture', async () => (await db.query(`SELECT 1 FROM change_history WHERE data->>'name' = 'after pruning'`)).length === 1);
    const client = await db.pool.connect();
    try {
      await pruneHistory(client, parsePosition(old.position));
    } finally {
      client.release();
    }
    const stale = await BareClient.connect(server.url);
    clients.push(stale);
    stale.hello({ token: await tokens.issue(seed.users.alice), clientId: 'alice-3', position: '0/1' });
    expect(await stale.next('resnapshot')).toMatchObject({ reason: 'history_pruned' });
    const { start, rows } = await stale.snapshot();
    expect(start.replace).toBe(true);
    expect(rows.project!.find((row) => row.id === seed.projects.launch)!.name).toBe('after pruning');

    const ahead = await BareClient.connect(server.url);
    clients.push(ahead);
    ahead.hello({ token: await tokens.issue(seed.users.alice), clientId: 'alice-4', position: 'FFFF/0' });
    expect(await ahead.next('resnapshot')).toMatchObject({ reason: 'position_ahead' });
    await ahead.snapshot();
  });
});
