import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI } from '@walsync/db/browser';
import { Tokens } from '@walsync/server';
import { createSyncClient } from '@walsync/web';
import pg from 'pg';
import { BENCH_SECRET, withServer } from '../harness';
import { type Figure, median, percentile } from '../report';

async function seed(db: pg.Client) {
  const users = (await db.query(`INSERT INTO app_user (email, name) VALUES ('a@bench.test', 'A'), ('b@bench.test', 'B') RETURNING id`)).rows.map((row) => row.id as string);
  const workspace = (await db.query(`INSERT INTO workspace (name) VALUES ('bench') RETURNING id`)).rows[0].id as string;
  await db.query(`INSERT INTO workspace_member (workspace_id, user_id) SELECT $1, unnest($2::uuid[])`, [workspace, users]);
  const project = (await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'bench') RETURNING id`, [workspace])).rows[0].id as string;
  return { users, workspace, project };
}

/** Issue #5: local writes, client-to-client latency, hydration into a Node client. */
export async function clientFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const tokens = new Tokens(BENCH_SECRET);
  await withServer(async ({ db, server }) => {
    const { users, workspace, project } = await seed(db);
    const a = await createSyncClient({ url: server.url, token: await tokens.issue(users[0]!), dataDir: 'memory://' });
    await a.ready;

    // A local write with capture, against a plain PGlite insert into the same table shape. The two
    // alternate, one of each per step, so both see the same machine state (JIT, GC, the CPU's clock):
    // measured one loop after the other, the ratio moved between 1.7× and 3.0× from run to run.
    const plain = await PGlite.create();
    await createMigrationAPI(plain).migrateToLatest();
    const plainWorkspace = (await plain.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('w') RETURNING id`)).rows[0]!.id;
    const plainProject = (await plain.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p') RETURNING id`, [plainWorkspace])).rows[0]!.id;
    const captured: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < 400; i++) {
      let started = performance.now();
      await a.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [workspace, project, `local ${i}`]);
      if (i >= 50) captured.push(performance.now() - started);
      started = performance.now();
      await plain.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [plainWorkspace, plainProject, `plain ${i}`]);
      if (i >= 50) bare.push(performance.now() - started);
    }
    await a.flush();
    figures.push({ issue: 5, name: 'local write through client.db with capture (Node), p50', value: median(captured), unit: 'ms', goal: '<= 0.6', note: '350 single-row inserts' });
    figures.push({ issue: 5, name: 'plain PGlite insert (no capture), p50', value: median(bare), unit: 'ms', note: 'same run, same schema, alternating with the captured inserts' });
    figures.push({ issue: 16, name: 'local write with capture ÷ plain insert', value: median(captured) / median(bare), unit: '×', goal: '<= 2' });

    // Client A writes, client B has applied it. B joins only now: applying A's writes in this same
    // process while they were measured would time B's work as A's capture.
    const b = await createSyncClient({ url: server.url, token: await tokens.issue(users[1]!), dataDir: 'memory://' });
    await b.ready;
    const latencies: number[] = [];
    const waiting = new Map<string, number>();
    b.on('pull:applied', () => undefined);
    for (let i = 0; i < 150; i++) {
      const title = `a-to-b ${i}`;
      const started = performance.now();
      waiting.set(title, started);
      await a.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [workspace, project, title]);
      for (;;) {
        const { rows } = await b.db.query(`SELECT 1 FROM task WHERE title = $1`, [title]);
        if (rows.length) break;
        await new Promise((resolve) => setTimeout(resolve, 0.5));
      }
      if (i >= 10) latencies.push(performance.now() - started);
    }
    figures.push({ issue: 5, name: 'client A write → client B applied, p50', value: median(latencies), unit: 'ms', goal: '<= 20', note: 'loopback, server in its own process; B polled every 0.5 ms' });
    figures.push({ issue: 5, name: 'client A write → client B applied, p99', value: percentile(latencies, 99), unit: 'ms', goal: '<= 80' });

    // A long-lived replica: every task of the workspace updated 100 times by SQL on the server, as
    // fast as the server commits them; once B has the last and has been quiet, how big is its task
    // table, and how long does a scan of it take? (PGlite runs no autovacuum; see ReplicaUpkeep.)
    const tasks = (await db.query(`SELECT count(*)::int AS n FROM task WHERE workspace_id = $1`, [workspace])).rows[0].n as number;
    const unchurned = (await b.db.query<{ heap: number }>(`SELECT pg_relation_size('task')::float8 AS heap`)).rows[0]!.heap;
    for (let i = 0; i < 100; i++) await db.query(`UPDATE task SET title = $2 || ' ' || id WHERE workspace_id = $1`, [workspace, `churn ${i}`]);
    const churned = async () => (await b.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task WHERE title LIKE 'churn 99 %'`)).rows[0]!.n === tasks;
    while (!(await churned())) await new Promise((resolve) => setTimeout(resolve, 20));
    const stats = async () =>
      (await b.db.query<{ heap: number; dead: number }>(`SELECT pg_relation_size(relid)::float8 AS heap, n_dead_tup::int AS dead FROM pg_stat_user_tables WHERE relname = 'task'`)).rows[0]!;
    const quietBy = Date.now() + 10_000;
    while ((await stats()).dead > 50 + 0.2 * tasks && Date.now() < quietBy) await new Promise((resolve) => setTimeout(resolve, 100));
    const scans: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      await b.db.query(`SELECT count(*) FROM task WHERE title LIKE 'none%'`);
      scans.push(performance.now() - started);
    }
    const heapMb = (await stats()).heap / 1e6;
    const walMb = (await b.db.query<{ bytes: number }>(`SELECT sum(size)::float8 AS bytes FROM pg_ls_waldir()`)).rows[0]!.bytes / 1e6;
    figures.push({
      issue: 5,
      name: `a replica's task table after ${(tasks * 100).toLocaleString('en')} streamed updates of its ${tasks} rows, once quiet`,
      value: heapMb,
      unit: 'MB',
      goal: '<= 5',
      note: `${(unchurned / 1e6).toFixed(2)} MB before; a scan of it ${median(scans).toFixed(2)} ms (median of 20); pg_wal ${walMb.toFixed(0)} MB; the client's own vacuum and checkpoints (PGlite runs no autovacuum; see ReplicaUpkeep)`,
    });
    await a.close();
    await b.close();
    await plain.close();

    // Catch-up after offline: a replica on disk is closed while 5,000 single-row transactions commit
    // on the server (another app's writes), then reopened; timed from the first batch received to
    // the last change applied.
    const catchUpDir = mkdtempSync(path.join(tmpdir(), 'walsync-bench-catchup-'));
    try {
      const token = await tokens.issue(users[1]!);
      const offline = await createSyncClient({ url: server.url, token, dataDir: catchUpDir });
      await offline.ready;
      await offline.close();
      const ids = (await db.query(`SELECT id FROM task WHERE workspace_id = $1 ORDER BY id LIMIT 500`, [workspace])).rows.map((row) => row.id as string);
      const before = (await db.query(`SELECT count(*)::int AS n FROM change_history`)).rows[0].n as number;
      const transactions = 5000;
      for (let i = 0; i < transactions; i++) await db.query(`UPDATE task SET title = $2 WHERE id = $1`, [ids[i % ids.length], `catch-up ${i}`]);
      while ((await db.query(`SELECT count(*)::int AS n FROM change_history`)).rows[0].n < before + transactions) await new Promise((resolve) => setTimeout(resolve, 50));
      const reopened = await createSyncClient({ url: server.url, token, dataDir: catchUpDir });
      let firstBatch = 0;
      reopened.on('pull:received', () => (firstBatch ||= performance.now()));
      const last = ids[(transactions - 1) % ids.length];
      for (;;) {
        const { rows } = await reopened.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [last]);
        if (rows[0]?.title === `catch-up ${transactions - 1}`) break;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      const catchUpRate = transactions / ((performance.now() - firstBatch) / 1000);
      await reopened.close();
      figures.push({ issue: 7, name: 'catch-up after offline: streamed changes applied by a Node client', value: catchUpRate, unit: 'changes/s', note: `${transactions} single-row transactions, first batch received to last applied, replica on disk` });
    } finally {
      rmSync(catchUpDir, { recursive: true, force: true });
    }

    // Hydration of 100,000 rows into a fresh Node client, and PGlite's own bulk insert of the same rows.
    await db.query(`INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, 'hydrate ' || g, '["bench"]' FROM generate_series(1, 100000) g`, [workspace, project]);
    while ((await db.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = 'task'`)).rows[0].n < 100_000 + 550) await new Promise((resolve) => setTimeout(resolve, 100));
    const total = (await db.query(`SELECT count(*)::int AS n FROM task`)).rows[0].n as number;
    const fresh = await createSyncClient({ url: server.url, token: await tokens.issue(users[1]!), dataDir: 'memory://' });
    let bootstrapStarted = 0;
    fresh.on('bootstrap:start', () => (bootstrapStarted = performance.now()));
    const completed = new Promise<number>((resolve) => fresh.on('bootstrap:complete', () => resolve(performance.now())));
    await fresh.ready;
    const hydrationSeconds = ((await completed) - bootstrapStarted) / 1000;
    const rows = (await fresh.db.query<{ row: object }>(`SELECT to_jsonb(t.*) AS row FROM task t`)).rows.map((row) => row.row);
    await fresh.close();
    const target = await PGlite.create();
    await createMigrationAPI(target).migrateToLatest();
    await target.query(`INSERT INTO workspace (id, name) VALUES ($1, 'w')`, [workspace]);
    await target.query(`INSERT INTO project (id, workspace_id, name) VALUES ($1, $2, 'p')`, [project, workspace]);
    const started = performance.now();
    for (let i = 0; i < rows.length; i += 10_000) {
      await target.query(`INSERT INTO task SELECT * FROM jsonb_populate_recordset(NULL::task, $1::jsonb)`, [JSON.stringify(rows.slice(i, i + 10_000))]);
    }
    const bulkRate = rows.length / ((performance.now() - started) / 1000);
    await target.close();
    const rate = total / hydrationSeconds;
    figures.push({ issue: 5, name: 'hydration of 100,000 rows into a Node client', value: rate, unit: 'rows/s', goal: '>= 15000', note: `${total} rows, bootstrap:start to bootstrap:complete, memory://` });
    figures.push({ issue: 5, name: "PGlite's own bulk insert of the same rows", value: bulkRate, unit: 'rows/s', note: 'jsonb_populate_recordset, 10,000 a statement' });
    figures.push({ issue: 5, name: 'hydration ÷ PGlite bulk insert', value: rate / bulkRate, unit: '×' });
    const catchUp = figures.find((figure) => figure.name.startsWith('catch-up after offline'));
    if (catchUp) figures.push({ issue: 7, name: 'catch-up ÷ PGlite bulk insert', value: catchUp.value / bulkRate, unit: '×', note: 'the bulk insert measured above' });
  });
  return figures;
}
