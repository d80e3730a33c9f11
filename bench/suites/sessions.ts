import path from 'node:path';
import { Tokens } from '@walsync/server';
import pg from 'pg';
import { WebSocket } from 'ws';
import { BENCH_SECRET, rssMb, withServer } from '../harness';
import { type Figure, machine, median, percentile } from '../report';
import { type LatencyPoint, renderLatencyPlot } from '../plot';

/** Users, each a member of one of `workspaces` workspaces; one project per workspace. */
async function seed(db: pg.Client, users: number, workspaces: number) {
  const workspaceRows = (await db.query(`INSERT INTO workspace (name) SELECT 'bench ' || g FROM generate_series(1, $1) g RETURNING id`, [workspaces])).rows;
  const userRows = (await db.query(`INSERT INTO app_user (email, name) SELECT 'u' || g || '@bench.test', 'u' || g FROM generate_series(1, $1) g RETURNING id`, [users])).rows;
  await db.query(`INSERT INTO workspace_member (workspace_id, user_id) SELECT w[1 + (i - 1) % $3], u[i] FROM generate_series(1, $4) i, (SELECT $1::uuid[] AS w, $2::uuid[] AS u) arrays`, [
    workspaceRows.map((row) => row.id),
    userRows.map((row) => row.id),
    workspaces,
    users,
  ]);
  const projects = (
    await db.query(`INSERT INTO project (workspace_id, name) SELECT id, 'bench' FROM unnest($1::uuid[]) id RETURNING id, workspace_id`, [workspaceRows.map((row) => row.id)])
  ).rows;
  return { users: userRows.map((row) => row.id as string), workspaces: workspaceRows.map((row) => row.id as string), projects };
}

/** A bare protocol client that hydrates and then reports every change it receives. */
async function session(serverUrl: string, token: string, clientId: string, onChange: (title: string) => void): Promise<WebSocket> {
  const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  const live = new Promise<void>((resolve) =>
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString());
      if (message.type === 'snapshot_end') resolve();
      if (message.type === 'changes') for (const change of message.changes) if (change.data?.title) onChange(change.data.title);
    }),
  );
  socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId, schemaVersion: null, position: null }));
  await live;
  return socket;
}

/** A session per user (client ids `<prefix>-<index>`), opened fifty at a time so the server is not flooded with hellos. */
async function sessions(serverUrl: string, tokens: Tokens, users: string[], prefix: string, onChange: (index: number, title: string) => void): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let start = 0; start < users.length; start += 50) {
    sockets.push(
      ...(await Promise.all(
        users.slice(start, start + 50).map(async (user, offset) =>
          session(serverUrl, await tokens.issue(user), `${prefix}-${start + offset}`, (title) => onChange(start + offset, title)),
        ),
      )),
    );
  }
  return sockets;
}

const LATENCY_CLIENTS = [1, 10, 100, 300, 1000];

/**
 * Single-row commits from outside walsync, each timed from the commit's return to its arrival at a
 * session, while `clients` sessions are connected (ten to a workspace, so each commit reaches ten).
 */
async function commitToClientLatency(tokens: Tokens, clients: number): Promise<number[]> {
  return withServer(async ({ db, server: { url: serverUrl } }) => {
    const { users, workspaces, projects } = await seed(db, clients, Math.max(1, Math.ceil(clients / 10)));
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    const sockets = await sessions(serverUrl, tokens, users, 'lat', (index, title) => {
      if (index === 0 && sent.has(title)) latencies.push(performance.now() - sent.get(title)!);
    });
    const project = projects.find((each: { workspace_id: string }) => each.workspace_id === workspaces[0])!;
    for (let i = 0; i < 220; i++) {
      const title = `latency ${i}`;
      const arrived = latencies.length;
      await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [workspaces[0], project.id, title]);
      sent.set(title, performance.now());
      while (latencies.length === arrived) await new Promise((resolve) => setTimeout(resolve, 0.2));
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    sockets.forEach((socket) => socket.close());
    return latencies.slice(20);
  });
}

/** Issue #4: delivery latency, many sessions, hydration throughput; #7: latency against connected clients. */
export async function sessionFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const tokens = new Tokens(BENCH_SECRET);

  // End-to-end latency against connected clients: the 100-session figures of #4, and the plot.
  const curve: LatencyPoint[] = [];
  for (const clients of LATENCY_CLIENTS) {
    const measured = await commitToClientLatency(tokens, clients);
    curve.push({ clients, p50: median(measured), p99: percentile(measured, 99) });
    if (clients === 100) {
      figures.push({ issue: 4, name: 'external commit → bare WebSocket client, p50 (100 sessions connected)', value: median(measured), unit: 'ms', goal: '<= 5', note: `${measured.length} single-row commits` });
      figures.push({ issue: 4, name: 'external commit → bare WebSocket client, p99 (100 sessions connected)', value: percentile(measured, 99), unit: 'ms', goal: '<= 25' });
    }
  }
  for (const point of curve) {
    figures.push({ issue: 7, name: `external commit → client with ${point.clients} connected, p50 / p99`, value: point.p50, unit: 'ms', note: `p99 ${point.p99.toFixed(1)} ms; plotted in latency-vs-clients.png` });
  }
  await renderLatencyPlot(curve, path.resolve(__dirname, '../../docs/latency-vs-clients.png'), `${machine()}, ${new Date().toISOString().slice(0, 10)}`);

  await withServer(async ({ db, server: { url: serverUrl, pid: serverPid } }) => {
    const SESSIONS = 1000;
    const WORKSPACES = 100;
    const { users, projects } = await seed(db, SESSIONS, WORKSPACES);
    const sent = new Map<string, number>();
    const latencies: number[] = [];
    const sockets = await sessions(serverUrl, tokens, users, 'many', (_index, title) => {
      const at = sent.get(title);
      if (at !== undefined) latencies.push(performance.now() - at);
    });
    const rssBefore = rssMb(serverPid);
    // 200 changes a second for 10 seconds, spread over the workspaces (each reaches its 10 sessions).
    const started = performance.now();
    let peakRss = rssBefore;
    for (let i = 0; i < 2000; i++) {
      const due = started + i * 5;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const project = projects[i % projects.length];
      const title = `load ${i}`;
      sent.set(title, performance.now());
      void db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [project.workspace_id, project.id, title]);
      if (i % 200 === 0) peakRss = Math.max(peakRss, rssMb(serverPid));
    }
    const expected = 2000 * (SESSIONS / WORKSPACES);
    const deadline = performance.now() + 30_000;
    while (latencies.length < expected && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    peakRss = Math.max(peakRss, rssMb(serverPid));
    sockets.forEach((socket) => socket.close());
    figures.push({
      issue: 4,
      name: `${SESSIONS} sessions, 200 changes/s: delivery p99`,
      value: percentile(latencies, 99),
      unit: 'ms',
      goal: '<= 100',
      note: `${WORKSPACES} workspaces × ${SESSIONS / WORKSPACES} sessions; ${latencies.length} of ${expected} deliveries; commit issued → received`,
    });
    figures.push({ issue: 4, name: `${SESSIONS} sessions, 200 changes/s: delivery p50`, value: median(latencies), unit: 'ms' });
    figures.push({ issue: 4, name: `${SESSIONS} sessions: server RSS, peak`, value: peakRss, unit: 'MB', goal: '<= 300', note: `${Math.round(rssBefore)} MB once all had hydrated` });
  });

  await withServer(async ({ db, server: { url: serverUrl } }) => {
    const { users, workspaces, projects } = await seed(db, 1, 1);
    await db.query(`INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, 'hydrate ' || g, '["bench"]' FROM generate_series(1, 100000) g`, [
      workspaces[0],
      projects[0].id,
    ]);
    // Hydration alone: wait until capture has the 100,000 inserts, so the stream after the snapshot is quiet.
    while ((await db.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = 'task'`)).rows[0].n < 100_000) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const started = performance.now();
    let rows = 0;
    const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
    await new Promise((resolve) => socket.once('open', resolve));
    await new Promise<void>((resolve) => {
      socket.on('message', (data) => {
        const message = JSON.parse(data.toString());
        if (message.type === 'snapshot_batch') rows += message.rows.length;
        if (message.type === 'snapshot_end') resolve();
      });
      void tokens.issue(users[0]!).then((token) => socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId: 'hydrate', schemaVersion: null, position: null })));
    });
    const seconds = (performance.now() - started) / 1000;
    socket.close();
    figures.push({ issue: 4, name: 'hydration of 100,000 rows to one bare client', value: rows / seconds, unit: 'rows/s', goal: '>= 50000', note: `${rows} rows (tasks and the rest of the workspace), parsed by the client` });
  });
  figures.push(...(await fairShareFigures(tokens)));
  return figures;
}

/**
 * Issue #15: while 12 sockets of one user hold unread snapshots of ~21 MB each (360 tasks with
 * 60 KB titles, a comment on each), what another user waits for: hello → welcome → their whole
 * snapshot, GET /health and a one-change POST /changes (20 of each, in turn).
 */
async function fairShareFigures(tokens: Tokens): Promise<Figure[]> {
  return withServer(async ({ db, server: { url: serverUrl } }) => {
    const { users, workspaces, projects } = await seed(db, 2, 2);
    const [hostileUser, normalUser] = users as [string, string];
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, repeat(md5(g::text), 1875) FROM generate_series(1, 360) g`, [workspaces[0], projects[0].id]);
    await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) SELECT workspace_id, id, $2, 'seen' FROM task WHERE workspace_id = $1`, [workspaces[0], hostileUser]);
    const hostileToken = await tokens.issue(hostileUser);
    const silent: WebSocket[] = [];
    for (let i = 0; i < 12; i++) {
      const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      socket.send(JSON.stringify({ type: 'hello', protocol: 1, token: hostileToken, clientId: `hostile-${i}`, schemaVersion: null, position: null }));
      // Stop reading: the kernel's buffers fill, then the server's.
      (socket as unknown as { _socket: { pause(): void } })._socket.pause();
      silent.push(socket);
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const token = await tokens.issue(normalUser);
    const timings = { hello: [] as number[], health: [] as number[], write: [] as number[] };
    const writeOne = (() => {
      let wall = Date.now();
      return () => ({
        changeId: crypto.randomUUID(),
        table: 'task',
        op: 'insert',
        pk: { id: crypto.randomUUID() },
        data: { workspace_id: workspaces[1], project_id: projects[1].id, title: 'fair' },
        hlc: `${String(++wall).padStart(15, '0')}:000000:normal`,
      });
    })();
    for (let i = 0; i < 20; i++) {
      let started = performance.now();
      const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.on('message', (data) => JSON.parse(data.toString()).type === 'snapshot_end' && resolve());
        socket.once('open', () => socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId: `normal-${i}`, schemaVersion: null, position: null })));
      });
      timings.hello.push(performance.now() - started);
      socket.close();
      started = performance.now();
      await (await fetch(`${serverUrl}/health`)).json();
      timings.health.push(performance.now() - started);
      started = performance.now();
      const response = await fetch(`${serverUrl}/changes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ clientId: 'normal', changes: [writeOne()] }),
      });
      await response.json();
      timings.write.push(performance.now() - started);
    }
    for (const socket of silent) socket.terminate();
    const note = (values: number[]) => `max ${Math.max(...values).toFixed(1)} ms of 20, while 12 sockets of another user hold unread ~21 MB snapshots`;
    return [
      { issue: 15, name: "another user's hello → welcome → whole snapshot, p50, under a snapshot flood", value: median(timings.hello), unit: 'ms', goal: '<= 1000', note: note(timings.hello) },
      { issue: 15, name: 'GET /health, p50, under a snapshot flood', value: median(timings.health), unit: 'ms', goal: '<= 1000', note: note(timings.health) },
      { issue: 15, name: 'POST /changes (one change), p50, under a snapshot flood', value: median(timings.write), unit: 'ms', goal: '<= 1000', note: note(timings.write) },
    ];
  });
}
