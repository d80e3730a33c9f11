import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tokens } from '@walsync/server';
import { createSyncClient } from '@walsync/web';
import pg from 'pg';
import { WebSocket } from 'ws';
import { BENCH_SECRET, rssMb, withServer } from '../harness';
import { type Figure, median, percentile } from '../report';

/** One workspace, its members `users`, and `projects` projects in it. */
async function seedWorkspace(db: pg.Client, users: number, projects: number) {
  const workspace = (await db.query(`INSERT INTO workspace (name) VALUES ('partial bench') RETURNING id`)).rows[0].id as string;
  const userIds = (await db.query(`INSERT INTO app_user (email, name) SELECT 'p' || g || '@bench.test', 'p' || g FROM generate_series(1, $1) g RETURNING id`, [users])).rows.map((row) => row.id as string);
  await db.query(`INSERT INTO workspace_member (workspace_id, user_id) SELECT $1, unnest($2::uuid[])`, [workspace, userIds]);
  const projectIds = (await db.query(`INSERT INTO project (workspace_id, name) SELECT $1, 'project ' || g FROM generate_series(1, $2) g RETURNING id`, [workspace, projects])).rows.map(
    (row) => row.id as string,
  );
  return { workspace, users: userIds, projects: projectIds };
}

/** Waits until capture has written `count` rows of `table` into change_history (so what follows runs on a quiet stream). */
async function captured(db: pg.Client, table: string, count: number): Promise<void> {
  while ((await db.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = $1`, [table])).rows[0].n < count) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** User + system CPU time of a process so far, in milliseconds (Linux clock ticks are 1/100 s). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Waits until the process used under 5% of a core for a whole second (the server has digested a bulk load). */
async function quiet(pid: number): Promise<void> {
  for (let last = cpuMs(pid); ; ) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const now = cpuMs(pid);
    if (now - last < 50) return;
    last = now;
  }
}

const project = (projectId: string) => ({ name: 'project', params: { projectId } });

/** A bare protocol session holding `subscriptions`; reports the title of every task change it receives. */
async function partialSession(serverUrl: string, token: string, clientId: string, subscriptions: unknown[], onTitle: (title: string) => void): Promise<WebSocket> {
  const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const live = new Promise<void>((resolve, reject) =>
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === 'snapshot_end') resolve();
      if (message.type === 'error' || message.type === 'subscription_refused') reject(new Error(`session ${clientId}: ${data.toString()}`));
      if (message.type === 'changes') for (const change of message.changes) if (change.data?.title) onTitle(change.data.title);
    }),
  );
  socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId, schemaVersion: null, position: null, subscriptions }));
  await live;
  return socket;
}

/**
 * `sessions` sessions, session i subscribed to project i % `receiving` (the projects the load writes
 * to) and to `quiet` more projects nothing is written to; then 200 task inserts a second for 10 s,
 * round-robin over the receiving projects. Delivery latency (commit issued → received), the server's
 * RSS, and its CPU time per change.
 */
async function routedLoad(tokens: Tokens, options: { sessions: number; receiving: number; quiet: number }) {
  return withServer(async ({ db, server }) => {
    const sockets: WebSocket[] = [];
    try {
      const { workspace, users, projects } = await seedWorkspace(db, 10, options.receiving + options.quiet * options.sessions);
      const receivingProjects = projects.slice(0, options.receiving);
      const quietProjects = projects.slice(options.receiving);
      const tokenList = await Promise.all(users.map((user) => tokens.issue(user)));
      const sent = new Map<string, number>();
      const latencies: number[] = [];
      const onTitle = (title: string) => {
        const at = sent.get(title);
        if (at !== undefined) latencies.push(performance.now() - at);
      };
      for (let start = 0; start < options.sessions; start += 50) {
        const batch = [];
        for (let i = start; i < Math.min(options.sessions, start + 50); i++) {
          const subscriptions = [project(receivingProjects[i % options.receiving]!), ...quietProjects.slice(i * options.quiet, (i + 1) * options.quiet).map(project)];
          batch.push(partialSession(server.url, tokenList[i % tokenList.length]!, `partial-${i}`, subscriptions, onTitle));
        }
        sockets.push(...(await Promise.all(batch)));
      }
      const rssBefore = rssMb(server.pid);
      let peakRss = rssBefore;
      const cpuBefore = cpuMs(server.pid);
      const CHANGES = 2000;
      const started = performance.now();
      for (let i = 0; i < CHANGES; i++) {
        const wait = started + i * 5 - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const title = `routed ${i}`;
        sent.set(title, performance.now());
        void db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [workspace, receivingProjects[i % options.receiving], title]);
        if (i % 200 === 0) peakRss = Math.max(peakRss, rssMb(server.pid));
      }
      const expected = CHANGES * (options.sessions / options.receiving);
      const deadline = performance.now() + 30_000;
      while (latencies.length < expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const cpu = cpuMs(server.pid) - cpuBefore;
      peakRss = Math.max(peakRss, rssMb(server.pid));
      return { latencies, expected, peakRss, rssBefore, cpuPerChange: cpu / CHANGES, subscriptions: options.sessions * (1 + options.quiet) };
    } finally {
      for (const socket of sockets) socket.close();
    }
  });
}

/** Issue #19: partial sync — subscribe → ready on a large workspace, routing by lookup under load. */
export async function partialFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const tokens = new Tokens(BENCH_SECRET);

  // A workspace of 1,000,000 tasks in 100 projects; a Node client subscribes to one project (10,000
  // tasks, each with a comment) and waits for `ready`.
  await withServer(async ({ db, server }) => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'walsync-bench-partial-'));
    try {
      const { workspace, users, projects } = await seedWorkspace(db, 1, 100);
      await db.query(
        `INSERT INTO task (workspace_id, project_id, title, position) SELECT $1, p[1 + (g % 100)], 'task ' || g, g FROM generate_series(0, 999999) g, (SELECT $2::uuid[] AS p) projects`,
        [workspace, projects],
      );
      const measured = projects[7]!;
      await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) SELECT $1, id, $2, 'comment on ' || title FROM task WHERE project_id = $3`, [workspace, users[0], measured]);
      await db.query('ANALYZE');
      await captured(db, 'task', 1_000_000);
      await captured(db, 'comment', 10_000);
      const client = await createSyncClient({ url: server.url, token: await tokens.issue(users[0]!), dataDir, subscriptions: [] });
      try {
        await client.ready;
        // The million rows came in one transaction: the server's feed routes them for a few seconds after capture stored them.
        await quiet(server.pid);
        const times: number[] = [];
        let rows = 0;
        // Three rounds: subscribe, ready, unsubscribe (its rows go), so each round starts from nothing.
        for (let round = 0; round < 3; round++) {
          const started = performance.now();
          const subscription = client.subscribe('project', { projectId: measured });
          await subscription.ready;
          times.push(performance.now() - started);
          rows = Number((await client.db.query<{ n: number }>(`SELECT (SELECT count(*) FROM task) + (SELECT count(*) FROM comment) AS n`)).rows[0]!.n);
          await subscription.unsubscribe();
        }
        figures.push({
          issue: 19,
          name: 'subscribe to one project of 1,000,000 tasks → ready (Node client), median of 3',
          value: median(times) / 1000,
          unit: 's',
          goal: '<= 1',
          note: `${rows} rows (10,000 tasks, 10,000 comments) into a file-system replica; runs ${times.map((time) => (time / 1000).toFixed(2)).join(', ')} s`,
        });
      } finally {
        await client.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  // 1,000 sessions, each subscribed to one of 100 projects of one workspace (each change reaches 10).
  const load = await routedLoad(tokens, { sessions: 1000, receiving: 100, quiet: 0 });
  figures.push({
    issue: 19,
    name: '1,000 sessions on 100 projects, 200 changes/s: delivery p99',
    value: percentile(load.latencies, 99),
    unit: 'ms',
    goal: '<= 100',
    note: `p50 ${median(load.latencies).toFixed(1)} ms; ${load.latencies.length} of ${load.expected} deliveries; one workspace, so routing is by project`,
  });
  figures.push({ issue: 19, name: '1,000 sessions on 100 projects: server RSS, peak', value: load.peakRss, unit: 'MB', goal: '<= 300', note: `${Math.round(load.rssBefore)} MB before the load` });
  // The same load and receivers, with 9 more subscriptions per session to projects nothing is written to.
  const crowded = await routedLoad(tokens, { sessions: 1000, receiving: 100, quiet: 9 });
  figures.push({ issue: 19, name: 'server CPU per change, 1,000 subscriptions', value: load.cpuPerChange, unit: 'ms', note: 'each change reaches 10 sessions; server process user + system time over the load ÷ changes' });
  figures.push({ issue: 19, name: 'server CPU per change, 10,000 subscriptions', value: crowded.cpuPerChange, unit: 'ms', note: `same receivers; 9,000 more subscriptions that receive nothing; delivery p99 ${percentile(crowded.latencies, 99).toFixed(1)} ms` });
  figures.push({ issue: 19, name: 'CPU per change, 10,000 ÷ 1,000 subscriptions', value: crowded.cpuPerChange / load.cpuPerChange, unit: '×', goal: '<= 1.5', note: 'grows with the sessions a change reaches, not with all subscriptions (10× more would be 10×)' });
  return figures;
}
