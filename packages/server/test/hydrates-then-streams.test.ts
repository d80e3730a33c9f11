import { comparePositions, migrationIdentity, migrations, parsePosition } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BareClient } from './support/bare-client';
import { commitWhileSnapshotIsTaken } from './support/snapshot-lock';
import { commitAwaitingStandby } from './support/synchronous-standby';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

describe.each(postgresTargets())('hydration, then live changes ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  const clients: BareClient[] = [];

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'before ' || g FROM generate_series(1, 6000) g`, [
      seed.workspaces.shared,
      seed.projects.launch,
    ]);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await server?.stop();
    await db?.dispose();
  });

  it('sends a consistent snapshot with exact progress, then every later change with no gap, while writes go on', async () => {
    let writing = true;
    let written = 0;
    const writer = (async () => {
      while (writing) {
        await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [seed.workspaces.shared, seed.projects.launch, `during ${written}`]);
        written += 1;
        if (written % 10 === 0) await db.query(`UPDATE task SET title = title || '!' WHERE title = $1`, [`during ${written - 5}`]);
      }
    })();
    // The writer stops however the test ends (a failed one left it writing into a closed pool).
    const stopWriting = async () => {
      writing = false;
      await writer;
    };
    try {
      await waitFor('writes under way', () => written > 20);
      await hydrateWhileWriting();
    } finally {
      await stopWriting();
    }

    async function hydrateWhileWriting() {
      const client = await BareClient.connect(server.url);
      clients.push(client);
      client.hello({ token, clientId: 'bare-1' });
      const welcome = await client.next('welcome');
      expect(welcome).toMatchObject({ userId: seed.users.alice, clientId: 'bare-1', workspaces: [seed.workspaces.shared] });
      expect(welcome.migrations.map((migration: { name: string }) => migration.name)).toEqual(migrations.map((migration) => migrationIdentity(migration).name));

      const { start, rows, end } = await client.snapshot();
      expect(start.replace).toBe(true);
      expect(end.position).toBe(start.position);
      const batches = client.messages.filter((message) => message.type === 'snapshot_batch' && message.table === 'task');
      expect(batches.at(-1)).toMatchObject({ sent: start.total.task, total: start.total.task });
      expect(batches.map((batch) => batch.sent)).toEqual([...batches.map((batch) => batch.sent)].sort((a, b) => a - b));
      expect(rows.task).toHaveLength(start.total.task);
      expect(rows.workspace).toEqual([expect.objectContaining({ id: seed.workspaces.shared })]);
      expect(rows.workspace_member).toHaveLength(2);

      await waitFor('more writes after the snapshot', () => written > 300);
      await stopWriting();

      // Apply snapshot, then changes in order, as a client would; the result must equal the server.
      const replica = new Map<string, any>(rows.task!.map((row) => [row.id, row]));
      const serverRows = await db.query(`SELECT to_jsonb(t.*) AS row FROM task t`);
      const canonical = (row: Record<string, unknown> | undefined) => row && JSON.stringify(Object.fromEntries(Object.entries(row).sort(([a], [b]) => a.localeCompare(b))));
      const matches = () => replica.size === serverRows.length && serverRows.every(({ row }) => canonical(replica.get(row.id)) === canonical(row));
      let position = end.position;
      await waitFor(
        'the stream to reach every task',
        async () => {
          for (;;) {
            const index = client.messages.findIndex((message, i) => i >= (client as any).cursor && message.type === 'changes');
            if (index < 0) break;
            const batch = await client.next('changes');
            expect(comparePositions(batch.position, position)).toBeGreaterThanOrEqual(0);
            position = batch.position;
            for (const change of batch.changes) {
              if (change.table !== 'task') continue;
              if (change.op === 'delete') replica.delete(change.old!.id as string);
              else replica.set(change.data!.id as string, change.data);
            }
          }
          return matches();
        },
        20_000,
      ).catch((error) => {
        // Which rows are missing or stale, and what the stream sent: a gap and a stalled stream differ here.
        const wrong = serverRows.filter(({ row }) => canonical(replica.get(row.id)) !== canonical(row)).map(({ row }) => `${row.title}${replica.has(row.id) ? ' (stale)' : ''}`);
        const sent = client.messages.filter((message) => message.type === 'changes');
        throw new Error(
          `${wrong.length} of ${serverRows.length} tasks differ (${wrong.slice(0, 5).join(', ')}…); snapshot at ${end.position}, ${sent.length} changes batches, the last at ${sent.at(-1)?.position ?? 'none'}; messages: ${[...new Set(client.messages.map((message) => message.type))].join(', ')}; the socket ${client.describeSocket()}`,
          { cause: error },
        );
      });
    }
  });

  it('meets the stream just before a transaction that committed while the snapshot was taken, instead of reading a new snapshot', async () => {
    // A task commits while the snapshot is taken (see commitWhileSnapshotIsTaken). Read again, the
    // snapshot would hold the task: under a steady stream of commits on a loaded machine, ten snapshots
    // in a row had such a commit, and the session gave up (1011) before the client had its data.
    const client = await BareClient.connect(server.url);
    clients.push(client);
    const hello = async () => {
      client.hello({ token, clientId: 'bare-meet' });
      await client.next('welcome');
    };
    const [task] = await commitWhileSnapshotIsTaken(db, hello, () =>
      db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'committed while the snapshot was taken') RETURNING id`, [
        seed.workspaces.shared,
        seed.projects.launch,
      ]),
    );

    const { rows, end } = await client.snapshot();
    expect(rows.task!.map((row) => row.id)).not.toContain(task!.id);
    const [captured] = await db.query<{ commit_lsn: string }>(`SELECT commit_lsn::text FROM change_history WHERE table_name = 'task' AND data->>'id' = $1`, [task!.id]);
    expect(parsePosition(end.position)).toBeLessThan(BigInt(captured!.commit_lsn));
    // The stream brings it, right after the snapshot's position.
    const batch = await client.next((message) => message.type === 'changes' && message.changes.some((change: { data?: { id?: string } }) => change.data?.id === task!.id));
    expect(batch.changes.find((change: { data?: { id?: string } }) => change.data?.id === task!.id)).toMatchObject({ table: 'task', op: 'insert' });
  });

  it('holds a transaction that capture stored while Postgres still showed it running (a commit waiting for a synchronous standby)', async () => {
    // Capture reads a commit from the WAL; Postgres shows it to other transactions only once the
    // committing backend is done, which a synchronous standby's wait (or a backend paused by the
    // machine) puts off. A snapshot taken in between saw the change in history but not the row: it
    // met the stream after the change, and the client kept the old row for good. Now the snapshot
    // meets the stream before it, and the stream sends it.
    const [task] = await db.query<{ id: string }>(`SELECT id FROM task WHERE title = 'before 1'`);
    const held = await commitAwaitingStandby(db, `UPDATE task SET title = 'held for the standby' WHERE id = $1`, [task!.id]);
    try {
      await waitFor('capture to store the held commit', async () => (await db.query(`SELECT 1 FROM change_history WHERE data->>'title' = 'held for the standby'`)).length > 0);
      expect(await db.query(`SELECT title FROM task WHERE id = $1`, [task!.id])).toEqual([{ title: 'before 1' }]);
      const client = await BareClient.connect(server.url);
      clients.push(client);
      client.hello({ token, clientId: 'bare-held' });
      await client.next('welcome');
      // The whole snapshot, while Postgres still shows the commit running: it holds the row as it was.
      const { rows, end } = await client.snapshot();
      expect(rows.task!.find((row) => row.id === task!.id)?.title).toBe('before 1');
      const [captured] = await db.query<{ commit_lsn: string }>(`SELECT commit_lsn::text FROM change_history WHERE data->>'title' = 'held for the standby'`);
      expect(parsePosition(end.position)).toBeLessThan(BigInt(captured!.commit_lsn));
      const batch = await client
        .next((message) => message.type === 'changes' && message.changes.some((change: { data?: { id?: string } }) => change.data?.id === task!.id))
        .catch((error) => {
          throw new Error(`the stream did not send the held commit: the client keeps 'before 1' (snapshot at ${end.position}, the commit at ${captured!.commit_lsn})`, { cause: error });
        });
      expect(batch.changes.find((change: { data?: { id?: string } }) => change.data?.id === task!.id)?.data).toMatchObject({ title: 'held for the standby' });
    } finally {
      await held.release();
      await held.restore();
    }
  });

  it('hydrates the workspaces the user has when the snapshot is taken, not those of the hello', async () => {
    // The snapshot waits its turn: the process's four snapshot connections are taken by reads (POST
    // /rows) that wait for a lock on task. Meanwhile alice joins Carol's workspace. Read at the hello
    // only, her scope left it out; the snapshot, which sees the membership, was placed after it, so
    // the stream never sent it either: alice did not get the workspace until she reconnected.
    const locker = await db.pool.connect();
    const reads: Array<Promise<Response>> = [];
    let client!: BareClient;
    try {
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE task IN ACCESS EXCLUSIVE MODE');
      for (const user of [seed.users.bob, seed.users.bob, seed.users.carol, seed.users.carol]) {
        const token = await new Tokens(TEST_JWT_SECRET).issue(user);
        reads.push(fetch(`${server.url}/rows`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: '{}' }));
      }
      await waitFor('four reads to wait for the lock', async () => (await db.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = 'walsync-snapshots' AND wait_event_type = 'Lock'`)).length === 4);
      client = await BareClient.connect(server.url);
      clients.push(client);
      client.hello({ token, clientId: 'bare-joins' });
      const welcome = await client.next('welcome');
      expect(welcome.workspaces).toEqual([seed.workspaces.shared]);
      await db.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'member')`, [seed.workspaces.other, seed.users.alice]);
    } finally {
      await locker.query('COMMIT');
      locker.release();
      await Promise.all(reads);
    }
    try {
      const { start, rows } = await client.snapshot();
      expect([...start.workspaces].sort()).toEqual([seed.workspaces.shared, seed.workspaces.other].sort());
      expect(rows.workspace!.map((row) => row.id).sort()).toEqual([seed.workspaces.shared, seed.workspaces.other].sort());
    } finally {
      await db.query(`UPDATE workspace_member SET deleted_at = now() WHERE workspace_id = $1 AND user_id = $2`, [seed.workspaces.other, seed.users.alice]);
    }
  });

  // The feed's code is the same on both targets: once, on the default one (20 s of capture and streaming).
  it.runIf(!target.binDir)('streams a transaction of 150,000 rows whole to a live client, and what follows it', async () => {
    const client = await BareClient.connect(server.url);
    clients.push(client);
    client.hello({ token, clientId: 'bare-big' });
    await client.snapshot();
    // More rows than a JavaScript call takes as arguments: the feed once spread them into one call and stalled, for every session.
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'bulk ' || g FROM generate_series(1, 150000) g`, [seed.workspaces.shared, seed.projects.launch]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'after the bulk')`, [seed.workspaces.shared, seed.projects.launch]);
    const titles: string[] = [];
    await waitFor(
      'the bulk transaction and the row after it',
      async () => {
        while (client.messages.some((message, i) => i >= (client as any).cursor && message.type === 'changes')) {
          const batch = await client.next('changes');
          for (const change of batch.changes) if (change.table === 'task' && change.op === 'insert') titles.push(change.data!.title as string);
        }
        return titles.includes('after the bulk');
      },
      60_000,
    );
    expect(titles.filter((title) => title.startsWith('bulk '))).toHaveLength(150_000);
    expect(titles.at(-1)).toBe('after the bulk');
  });
});
