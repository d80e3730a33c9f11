/**
 * `yarn bench peers`: walsync and Rocicorp Zero on one Postgres, in one run, measured doing the same
 * work: the same `task` table and row shape (walsync's own, every column), rows made by the same SQL,
 * clients in Node (walsync's over PGlite in memory, Zero's over its in-memory store).
 *
 * Each system has its own workspace for the latency figures, so a commit wakes one system's clients
 * only; both servers still decode every commit (one Postgres, two slots). The 100,000-row workspace is
 * one, read by both. Every process started here is stopped in `finally`, and on exit; a SIGKILL of
 * the bench is left to reaper.mts.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalPostgres, freePort, runServerMigrations, runningLocalPostgres } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import { type SyncClient, createSyncClient } from '@walsync/web';
import pg from 'pg';
import { BENCH_PG_BIN_DIR, BENCH_SECRET, benchPostgres, startServerProcess } from '../harness.ts';
import { median, percentile } from '../report.ts';
import type { AwayOrder, Commit } from './away.mts';
import type { CrowdOrder } from './crowd.mts';
import { processTree, startTime } from './process-tree.mts';
import { mutators, watchTasks, zeroClient } from './zero-clients.mts';

export interface PeerFigure {
  name: string;
  unit: string;
  walsync: number;
  zero: number;
  /** 'time': lower is better (ratio zero/walsync); 'rate': higher is better (walsync/zero). */
  kind: 'time' | 'rate';
  note: string;
}

export const ratio = (figure: PeerFigure) => (figure.kind === 'time' ? figure.zero / figure.walsync : figure.walsync / figure.zero);

const HERE = path.dirname(new URL(import.meta.url).pathname);
const SAMPLES = 200;
const WARM_UP = 10;
const BULK_ROWS = 100_000;
const CROWD = 99;
const AWAY_COMMITS = 5000;
/** Returns of each system's away client; the catch-up figure is their median. */
const CATCH_UP_ROUNDS = 5;
/** What the doc says beside the table: what is not comparable, and where each side's time goes. */
const NOTES = readFileSync(path.join(HERE, 'notes.md'), 'utf8').trim();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every process this run started, stopped by `stopAll` (on success, failure, and exit). */
const started = new Set<ChildProcess>();
/**
 * What stops them when nothing here can: a SIGKILL of the bench skips every handler, and zero-cache,
 * Postgres and the clients' processes would outlive it. See reaper.mts.
 */
const lifeline = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'reaper.mts')], { cwd: HERE, detached: true, stdio: ['pipe', 'ignore', 'inherit'] });
lifeline.unref();
(lifeline.stdin as unknown as { unref(): void }).unref();
/** Tells the reaper of a process to stop, or a directory to remove, if the bench is killed. */
function register(what: { pid?: number; dir?: string }): void {
  if (what.pid !== undefined) lifeline.stdin!.write(`pid ${what.pid} ${startTime(what.pid)}\n`);
  if (what.dir !== undefined) lifeline.stdin!.write(`dir ${what.dir}\n`);
}
function track(child: ChildProcess): ChildProcess {
  started.add(child);
  register({ pid: child.pid! });
  return child;
}
/** walsync's server (the harness starts it): killed on exit if its own stop never ran. */
const serverPids = new Set<number>();
function stopAll(signal: NodeJS.Signals = 'SIGTERM'): void {
  const kill = (pid: number) => {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  };
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    // zero-cache's workers each lead a process group of their own, and outlive their parent: every
    // process below the child is found first, then each is stopped.
    for (const pid of processTree(child.pid!)) kill(pid);
  }
  for (const pid of serverPids) kill(pid);
}
process.once('exit', () => {
  stopAll('SIGKILL');
  // Everything is stopped: the reaper has nothing left to do.
  lifeline.stdin!.end('done\n');
});
// A bench stopped by a signal stops what it started too (a signal skips 'exit' handlers). `yarn bench`
// runs under `node --import tsx`: the `tsx` command's parent SIGKILLs a child that has not taken a
// signal within 60 ms, which a busy bench often has not, and this handler would never run.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    stopAll('SIGKILL');
    process.exit(130);
  });
}

/** Sums a number read from each live process of the tree under `root` (0 for one that exited meanwhile). */
function sumOverTree(root: number, read: (pid: number) => number): number {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      total += read(pid);
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** Resident memory of a process and its descendants, in MB. */
function treeRss(root: number): number {
  return (sumOverTree(root, (pid) => Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1])) * 4096) / 2 ** 20;
}

/** CPU time (clock ticks, user and system) the tree under `root` has used. */
function treeCpu(root: number): number {
  return sumOverTree(root, (pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  });
}

/**
 * Waits until every tree under `roots` is idle (under 10% of a core over 250 ms): a figure is taken
 * with neither server still busy with earlier work (both decode every commit). After 30 s it goes on
 * and says so through `log`, so a figure taken on a busy machine is not presented as a quiet one.
 */
async function quiet(roots: number[], log: (line: string) => void): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const before = roots.map(treeCpu);
    await sleep(250);
    if (roots.every((root, index) => treeCpu(root) - before[index]! <= 2)) return;
  }
  log('the servers were still busy after 30 s; measuring anyway');
}

async function seed(db: pg.Client) {
  const user = async (name: string) => (await db.query(`INSERT INTO app_user (email, name) VALUES ($1, $1) RETURNING id`, [`${name}@peers.test`])).rows[0].id as string;
  const workspace = async (name: string, members: string[], tasks: number) => {
    const id = (await db.query(`INSERT INTO workspace (name) VALUES ($1) RETURNING id`, [name])).rows[0].id as string;
    await db.query(`INSERT INTO workspace_member (workspace_id, user_id) SELECT $1, unnest($2::uuid[])`, [id, members]);
    const project = (await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, $2) RETURNING id`, [id, name])).rows[0].id as string;
    await db.query(`INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, 'seed ' || g, '["bench"]' FROM generate_series(1, $3::int) g`, [id, project, tasks]);
    return { id, project };
  };
  const users = { a: await user('a'), b: await user('b'), crowd: await user('crowd'), away: await user('away'), bulk: await user('bulk') };
  return {
    users,
    walsyncSpace: await workspace('walsync', [users.a, users.b, users.crowd, users.away], 500),
    zeroSpace: await workspace('zero', [], 500),
    bulk: await workspace('bulk', [users.bulk], BULK_ROWS),
  };
}

async function startZero(scratch: string, databaseUrl: string) {
  const apiPort = await freePort();
  const api = fork(path.join(HERE, 'zero-api.mts'), [String(apiPort), databaseUrl], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  track(api);
  await new Promise<void>((resolve, reject) => {
    api.once('message', () => resolve());
    api.once('exit', (code) => reject(new Error(`zero's query/mutate endpoint exited (${code})`)));
  });
  const port = await freePort();
  const cache = spawn(process.execPath, [path.join(HERE, 'node_modules/@rocicorp/zero/out/zero/src/cli.js')], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: {
      ...process.env,
      ZERO_UPSTREAM_DB: databaseUrl,
      ZERO_REPLICA_FILE: path.join(scratch, 'zero-replica.db'),
      ZERO_ADMIN_PASSWORD: 'walsync-bench',
      ZERO_APP_ID: 'peers',
      ZERO_APP_PUBLICATIONS: 'zero_bench',
      ZERO_PORT: String(port),
      ZERO_QUERY_URL: `http://127.0.0.1:${apiPort}/query`,
      ZERO_MUTATE_URL: `http://127.0.0.1:${apiPort}/mutate`,
      ZERO_LOG_LEVEL: 'error',
    },
  });
  track(cache);
  const url = `http://127.0.0.1:${port}`;
  // It answers HTTP once it has copied the upstream tables and listens.
  for (let attempt = 0; ; attempt++) {
    if (cache.exitCode !== null) throw new Error(`zero-cache exited (${cache.exitCode})`);
    try {
      if ((await fetch(url)).ok) break;
    } catch {
      if (attempt > 1200) throw new Error('zero-cache did not start within 60 s');
      await sleep(50);
    }
  }
  return { url, pid: cache.pid! };
}

function onceApplied(client: SyncClient): Promise<number> {
  return new Promise((resolve) => {
    const off = client.on('pull:applied', () => {
      off();
      resolve(performance.now());
    });
  });
}

async function samples(count: number, one: (i: number) => Promise<number>): Promise<number[]> {
  const taken: number[] = [];
  for (let i = 0; i < count + WARM_UP; i++) {
    const latency = await one(i);
    if (i >= WARM_UP) taken.push(latency);
    await sleep(5);
  }
  return taken;
}

async function crowd(order: CrowdOrder): Promise<ChildProcess> {
  const child = fork(path.join(HERE, 'crowd.mts'), [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  track(child);
  child.send(order);
  await new Promise<void>((resolve, reject) => {
    child.once('message', (answer: { ready?: true; error?: string }) => (answer.ready ? resolve() : reject(new Error(`the ${order.system} crowd failed: ${answer.error}`))));
    child.once('exit', (code) => reject(new Error(`the ${order.system} crowd exited (${code})`)));
  });
  return child;
}

async function stopCrowd(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.send('stop');
  await exited;
}

/** A returning client in its own process (away.mts): holds its workspace and closes; `back` reopens it and times the catch-up. */
async function awayProcess(order: AwayOrder) {
  const child = fork(path.join(HERE, 'away.mts'), [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
  track(child);
  const ask = <T,>(message: AwayOrder | { back: Commit }) =>
    new Promise<T>((resolve, reject) => {
      const exited = (code: number | null) => reject(new Error(`the ${order.system} away client exited (${code})`));
      child.once('exit', exited);
      child.once('message', (answer: T & { error?: string }) => {
        child.off('exit', exited);
        if (answer.error) reject(new Error(`the ${order.system} away client failed: ${answer.error}`));
        else resolve(answer);
      });
      child.send(message);
    });
  await ask<{ away: true }>(order);
  return {
    back: (last: Commit) => ask<{ seconds: number; steps: Record<string, number> }>({ back: last }),
    async close() {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.send('stop');
      await exited;
    },
  };
}

export async function peerFigures(log: (line: string) => void): Promise<{ figures: PeerFigure[]; postgres: string; notes: string }> {
  const figures: PeerFigure[] = [];
  const scratch = mkdtempSync(path.join(tmpdir(), 'walsync-peers-'));
  chmodSync(scratch, 0o755);
  register({ dir: scratch });
  const postgres = await LocalPostgres.start({ dataDir: path.join(scratch, 'data'), binDir: BENCH_PG_BIN_DIR, settings: { max_connections: 300 } });
  register({ pid: runningLocalPostgres(path.join(scratch, 'data'))?.pid });
  const db = new pg.Client({ connectionString: postgres.url });
  const open: Array<{ close(): Promise<void> }> = [];
  try {
    await runServerMigrations(postgres.url);
    await db.connect();
    const { users, walsyncSpace, zeroSpace, bulk } = await seed(db);
    await db.query(`CREATE PUBLICATION zero_bench FOR TABLE task`);
    log(`seeded: ${BULK_ROWS + 1000} tasks`);

    const tokens = new Tokens(BENCH_SECRET);
    const server = await startServerProcess(postgres.url);
    serverPids.add(server.pid);
    register({ pid: server.pid });
    open.push({ close: () => server.stop() });
    const zero = await startZero(scratch, postgres.url);
    const insert = (space: { id: string; project: string }, id: string, title: string) =>
      db.query(`INSERT INTO task (id, workspace_id, project_id, title, labels) VALUES ($1, $2, $3, $4, '["bench"]')`, [id, space.id, space.project, title]);

    // The measured clients: one of each, each holding its workspace's 500 tasks.
    const w = await createSyncClient({ url: server.url, token: await tokens.issue(users.a), dataDir: 'memory://' });
    open.push(w);
    await w.ready;
    const z = zeroClient(zero.url, 'zero-a');
    open.push(z);
    const zTasks = watchTasks(z, zeroSpace.id);
    await zTasks.until((_, complete) => complete);
    log('both systems up, one client each');

    const walsyncExternal = (label: string) =>
      samples(SAMPLES, async (i) => {
        const applied = onceApplied(w);
        const sent = performance.now();
        await insert(walsyncSpace, randomUUID(), `external ${label} ${i}`);
        return (await applied) - sent;
      });
    const zeroExternal = (label: string) =>
      samples(SAMPLES, async (i) => {
        const id = randomUUID();
        const arrived = zTasks.until((rows) => rows.some((row) => row.id === id));
        const sent = performance.now();
        await insert(zeroSpace, id, `external ${label} ${i}`);
        return (await arrived) - sent;
      });
    const external = (clients: number, walsyncLatency: number[], zeroLatency: number[]) => {
      const name = `external commit → a Node client has the row, ${clients} client${clients > 1 ? 's' : ''} connected`;
      const note = `${SAMPLES} single-row INSERTs by SQL, one at a time, from the statement's send to the row in the client (walsync: committed to its PGlite; Zero: in its materialized view)`;
      figures.push({ name: `${name}, p50`, unit: 'ms', walsync: median(walsyncLatency), zero: median(zeroLatency), kind: 'time', note });
      figures.push({ name: `${name}, p99`, unit: 'ms', walsync: percentile(walsyncLatency, 99), zero: percentile(zeroLatency, 99), kind: 'time', note });
    };
    external(1, await walsyncExternal('1'), await zeroExternal('1'));
    log('external commit, 1 client');

    // Client A writes, client B has it.
    const wb = await createSyncClient({ url: server.url, token: await tokens.issue(users.b), dataDir: 'memory://' });
    open.push(wb);
    await wb.ready;
    const zb = zeroClient(zero.url, 'zero-b');
    open.push(zb);
    const zbTasks = watchTasks(zb, zeroSpace.id);
    await zbTasks.until((_, complete) => complete);
    const walsyncAtoB = await samples(150, async (i) => {
      const applied = onceApplied(wb);
      const sent = performance.now();
      await w.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [walsyncSpace.id, walsyncSpace.project, `a-to-b ${i}`]);
      return (await applied) - sent;
    });
    const zeroAtoB = await samples(150, async (i) => {
      const id = randomUUID();
      const arrived = zbTasks.until((rows) => rows.some((row) => row.id === id));
      const sent = performance.now();
      z.mutate(mutators.createTask({ id, workspace_id: zeroSpace.id, project_id: zeroSpace.project, title: `a-to-b ${i}` }));
      return (await arrived) - sent;
    });
    const abNote = "150 task inserts by client A (walsync: SQL on its replica; Zero: a mutator), to the row in client B (another user's client)";
    figures.push({ name: 'client A write → client B has it, p50', unit: 'ms', walsync: median(walsyncAtoB), zero: median(zeroAtoB), kind: 'time', note: abNote });
    figures.push({ name: 'client A write → client B has it, p99', unit: 'ms', walsync: percentile(walsyncAtoB, 99), zero: percentile(zeroAtoB, 99), kind: 'time', note: abNote });
    log('client A → client B');

    // Initial sync of a new client: the 100,000-row workspace, from the client's construction.
    const walsyncStart = performance.now();
    const fresh = await createSyncClient({ url: server.url, token: await tokens.issue(users.bulk), dataDir: 'memory://' });
    const bootstrapped = new Promise<number>((resolve) => fresh.on('bootstrap:complete', () => resolve(performance.now())));
    await fresh.ready;
    const walsyncSeconds = ((await bootstrapped) - walsyncStart) / 1000;
    const walsyncRows = (await fresh.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM task`)).rows[0]!.n;
    await fresh.close();
    const zeroStart = performance.now();
    const zFresh = zeroClient(zero.url, 'zero-bulk');
    const zFreshTasks = watchTasks(zFresh, bulk.id);
    const zeroDone = await zFreshTasks.until((rows, complete) => complete && rows.length >= BULK_ROWS);
    const zeroSeconds = (zeroDone - zeroStart) / 1000;
    zFreshTasks.destroy();
    await zFresh.close();
    if (walsyncRows !== BULK_ROWS) throw new Error(`walsync's new client holds ${walsyncRows} tasks, not ${BULK_ROWS}`);
    figures.push({
      name: `initial sync of a new client, ${BULK_ROWS.toLocaleString('en')} task rows of one workspace`,
      unit: 'rows/s',
      walsync: BULK_ROWS / walsyncSeconds,
      zero: BULK_ROWS / zeroSeconds,
      kind: 'rate',
      note: `from the client's construction to every row in it (walsync: its PGlite started, the snapshot applied, ${walsyncSeconds.toFixed(2)} s; Zero: its query's result complete, ${zeroSeconds.toFixed(2)} s)`,
    });
    log('initial sync');

    // 100 clients connected: the measured one and 99 others of the same system on its workspace.
    const walsyncCrowd = await crowd({ system: 'walsync', url: server.url, tokens: await Promise.all(Array.from({ length: CROWD }, () => tokens.issue(users.crowd))) });
    const walsyncRss = treeRss(server.pid);
    const walsyncCrowded = await walsyncExternal('100');
    await stopCrowd(walsyncCrowd);
    log('walsync, 100 clients');
    const zeroCrowd = await crowd({ system: 'zero', url: zero.url, users: Array.from({ length: CROWD }, (_, i) => `zero-crowd-${i}`), workspaceId: zeroSpace.id });
    const zeroRss = treeRss(zero.pid);
    const zeroCrowded = await zeroExternal('100');
    await stopCrowd(zeroCrowd);
    log('zero, 100 clients');
    external(100, walsyncCrowded, zeroCrowded);
    figures.push({ name: 'server RSS after 100 clients synced', unit: 'MB', walsync: walsyncRss, zero: zeroRss, kind: 'time', note: "the server's process and its children (zero-cache runs six processes), not Postgres; each client holds a 500-task workspace" });

    // Catch-up: a client on disk goes away, 5,000 commits change its workspace's rows, it comes back.
    const ids = async (space: { id: string }) => (await db.query(`SELECT id FROM task WHERE workspace_id = $1 AND title LIKE 'seed %' ORDER BY id`, [space.id])).rows.map((row) => row.id as string);
    const awayCommits = async (rows: string[], round: number): Promise<Commit> => {
      for (let i = 0; i < AWAY_COMMITS; i++) await db.query(`UPDATE task SET title = $2 WHERE id = $1`, [rows[i % rows.length], `away ${round}.${i}`]);
      return { id: rows[(AWAY_COMMITS - 1) % rows.length]!, title: `away ${round}.${AWAY_COMMITS - 1}` };
    };
    // Each returning client in a process of its own (see away.mts): its reopen is its own work only.
    const walsyncAway = await awayProcess({ system: 'walsync', url: server.url, token: await tokens.issue(users.away), dataDir: path.join(scratch, 'walsync-away') });
    open.push(walsyncAway);
    const zeroDir = path.join(scratch, 'zero-away');
    mkdirSync(zeroDir);
    const zeroAway = await awayProcess({ system: 'zero', url: zero.url, user: 'zero-away', storeDirectory: zeroDir, workspaceId: zeroSpace.id });
    open.push(zeroAway);
    // The connected clients have the last commit: the server has sent them all before the away one
    // returns, and neither still applies them in this process while it catches up.
    const walsyncHolds = async (last: Commit) => {
      const holds = async (client: SyncClient) => (await client.db.query<{ title: string }>(`SELECT title FROM task WHERE id = $1`, [last.id])).rows[0]?.title === last.title;
      for (const client of [w, wb]) while (!(await holds(client))) await sleep(20);
    };
    const zeroHolds = async (last: Commit) => {
      for (const tasks of [zTasks, zbTasks]) await tasks.until((rows) => rows.some((row) => row.id === last.id && row.title === last.title));
    };
    // One reopen is one sample of a half-second on a shared machine: the systems take turns, and each figure is the median.
    const catchUps: Record<'walsync' | 'zero', number[]> = { walsync: [], zero: [] };
    const walsyncSteps: Array<Record<string, number>> = [];
    const [walsyncSeeded, zeroSeeded] = [await ids(walsyncSpace), await ids(zeroSpace)];
    for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
      for (const [system, away, rows, holds] of [['walsync', walsyncAway, walsyncSeeded, walsyncHolds], ['zero', zeroAway, zeroSeeded, zeroHolds]] as const) {
        const last = await awayCommits(rows, round);
        await holds(last);
        await quiet([server.pid, zero.pid], log);
        const { seconds, steps } = await away.back(last);
        catchUps[system].push(seconds);
        if (system === 'walsync') walsyncSteps.push(steps);
      }
    }
    const [walsyncCatchUp, zeroCatchUp] = [median(catchUps.walsync), median(catchUps.zero)];
    const listed = (values: number[]) => values.map((value) => value.toFixed(2)).join(', ');
    const stepped = (step: string) => walsyncSteps.map((steps) => steps[step] ?? '?').join(', ');
    figures.push({
      name: `catch-up of a client away for ${AWAY_COMMITS.toLocaleString('en')} commits`,
      unit: 'commits/s',
      walsync: AWAY_COMMITS / walsyncCatchUp,
      zero: AWAY_COMMITS / zeroCatchUp,
      kind: 'rate',
      note: `single-row UPDATEs of its workspace's 500 rows by SQL while the client was closed; from reopening (a replica on disk: walsync's PGlite, Zero's SQLite store; each system's client in a process of its own), once both servers are idle, to the last commit's value in it; the median of ${CATCH_UP_ROUNDS} returns each, the systems taking turns (walsync ${listed(catchUps.walsync)} s, Zero ${listed(catchUps.zero)} s). walsync's returns, step by step (ms from the reopen): its replica open (PGlite's start and walsync's) at ${stepped('open')}, the batch received at ${stepped('received')}, applied at ${stepped('applied')}`,
    });
    log('catch-up');
    return { figures, postgres: benchPostgres(), notes: NOTES };
  } finally {
    for (const client of open.reverse()) await client.close().catch(() => undefined);
    stopAll();
    await db.end().catch(() => undefined);
    await sleep(500);
    await postgres.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
