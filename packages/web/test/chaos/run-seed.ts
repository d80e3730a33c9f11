import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Tokens } from '@walsync/server';
import { TEST_JWT_SECRET } from '@walsync/test-support';
import { ChaosClient, type ClientProcesses } from './chaos-clients';
import { type Cluster, Relay } from './cluster';
import { checkInvariants } from './invariants';
import type { ExternalWrite, Fault, Plan } from './schedule';

const execFileAsync = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What one seed's run did: the faults that really happened, for the suite's coverage check. */
export interface SeedReport {
  faults: Array<{ kind: Fault['kind']; atMs: number; tookMs: number; note?: string }>;
  rows: number;
  trace: string[];
}

/** Thrown when an invariant fails: carries the plan and what happened, so the run can be replayed. */
export class ChaosFailure extends Error {}

/**
 * Runs one seed's plan against the cluster: its own workspaces and users, five client processes,
 * the faults and external writes at their times, then everyone online and quiet, then the checks.
 */
export async function runSeed(cluster: Cluster, plan: Plan, options: { scratchDir: string; blankReplica: string; processes: ClientProcesses }): Promise<SeedReport> {
  await createFixture(cluster, plan);
  const tokens = new Tokens(TEST_JWT_SECRET);
  const relays = await Promise.all(plan.clients.map((_, index) => Relay.open(cluster.serverPorts[index % cluster.serverPorts.length]!)));
  const dataDirs = plan.clients.map((_, index) => path.join(options.scratchDir, `seed-${plan.seed}-client-${index}`));
  const clients = await Promise.all(
    plan.clients.map(async (client, index) => {
      // A migrated replica that never synced, as the template makes it (copied with cp(1): quicker than unpacking five times, or than Node's recursive copy).
      await execFileAsync('cp', ['-R', options.blankReplica, dataDirs[index]!]);
      const token = await tokens.issue(plan.fixture.users[client.user]);
      return new ChaosClient(index, options.processes, { url: relays[index]!.url, token, dataDir: dataDirs[index]!, subscriptions: client.subscriptions }, client.ops);
    }),
  );
  const trace: string[] = [];
  let t0 = Date.now();
  const at = () => Date.now() - t0;
  const report: SeedReport = { faults: [], rows: 0, trace };
  try {
    await Promise.all(clients.map((client) => client.start()));
    trace.push(`clients ready after ${at()} ms; the plan's clock starts`);
    t0 = Date.now();
    const wait = (atMs: number) => sleep(Math.max(0, atMs - (Date.now() - t0)));
    const faults = plan.faults.map(async (fault) => {
      await wait(fault.atMs);
      const begin = Date.now();
      const run = () => applyFault(fault, cluster, clients, relays, plan).then((note) => {
        report.faults.push({ kind: fault.kind, atMs: fault.atMs, tookMs: Date.now() - begin, note });
        trace.push(`@${at()} ms ${fault.kind} done${note ? ` (${note})` : ''}`);
      });
      trace.push(`@${at()} ms ${JSON.stringify(fault)}`);
      await run();
    });
    const external = plan.external.map(async (write) => {
      await wait(write.atMs);
      await applyExternal(cluster, plan, write);
      trace.push(`@${at()} ms external ${write.kind}`);
    });
    const progress = setInterval(() => trace.push(`@${at()} ms progress ${clients.map((c) => `${c.done + 1}${c.running ? '' : '(down)'}`).join(' ')}`), 1000);
    await Promise.all([...faults, ...external]);
    for (const client of clients) {
      for (let waited = 0; !client.finished; waited += 100) {
        if (waited > 120_000) throw new Error(`client ${client.index} did not finish its operations (done ${client.done + 1} of ${plan.settings.opsPerClient})`);
        if (!client.running) await client.exclusive(async () => client.running || (await client.start()));
        await sleep(100);
      }
    }
    clearInterval(progress);
    trace.push(`@${at()} ms all operations done; settling`);
    cluster.assertServersAlive();
    await Promise.all(clients.map((client) => client.request({ type: 'settle' }, 'settled', 90_000)));
    trace.push(`@${at()} ms every outbox flushed`);
    report.rows = await checkInvariants(cluster, plan, clients);
    trace.push(`@${at()} ms checked ${report.rows} rows`);
    return report;
  } catch (error) {
    const logs = clients.flatMap((client) => client.log.slice(-8));
    throw new ChaosFailure(
      [`chaos seed ${plan.seed} failed: ${(error as Error).message}`, '', 'trace:', ...trace.map((line) => `  ${line}`), '', 'client logs:', ...logs.map((line) => `  ${line}`)].join('\n'),
      { cause: error },
    );
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(relays.map((relay) => relay.close()));
    for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
  }
}

async function createFixture(cluster: Cluster, plan: Plan): Promise<void> {
  const { users, workspaces, projects, tasks } = plan.fixture;
  await cluster.query(`INSERT INTO app_user (id, email, name) SELECT id, name || '-' || $3 || '@chaos.test', name FROM unnest($1::uuid[], $2::text[]) AS u(id, name)`, [
    [users.alice, users.bob, users.carol],
    ['alice', 'bob', 'carol'],
    String(plan.seed),
  ]);
  await cluster.query(`INSERT INTO workspace (id, name) VALUES ($1, 'shared'), ($2, 'own')`, [workspaces.shared, workspaces.own]);
  // alice is also a member of carol's workspace: she may move tasks between the two.
  await cluster.query(
    `INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member'), ($4, $5, 'owner'), ($4, $2, 'member')`,
    [workspaces.shared, users.alice, users.bob, workspaces.own, users.carol],
  );
  await cluster.query(`INSERT INTO project (id, workspace_id, name) VALUES ($1, $2, 'shared'), ($3, $4, 'own'), ($5, $2, 'second')`, [
    projects.shared,
    workspaces.shared,
    projects.own,
    workspaces.own,
    projects.second,
  ]);
  for (const space of ['shared', 'own'] as const) {
    await cluster.query(`INSERT INTO task (id, workspace_id, project_id, title) SELECT id, $2, $3, 'seeded ' || n FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`, [
      tasks[space],
      workspaces[space],
      projects[space],
    ]);
  }
  await cluster.query(`INSERT INTO task (id, workspace_id, project_id, title) SELECT id, $2, $3, 'movable ' || n FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`, [
    plan.fixture.movable,
    workspaces.shared,
    projects.shared,
  ]);
  const authors = { shared: users.alice, own: users.carol };
  for (const space of ['shared', 'own'] as const) {
    await cluster.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'seeded comment')`, [workspaces[space], tasks[space][0], authors[space]]);
  }
}

async function applyExternal(cluster: Cluster, plan: Plan, write: ExternalWrite): Promise<void> {
  if (write.kind === 'insert') {
    const workspace = plan.fixture.workspaces[write.workspace];
    const project = plan.fixture.projects[write.workspace];
    // Idempotent: a retry after Postgres restarted may follow a commit whose answer was lost.
    await cluster.query(
      `INSERT INTO task (id, workspace_id, project_id, title) SELECT id, $2, $3, 'sql ' || n FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n) ON CONFLICT (id) DO NOTHING`,
      [write.ids, workspace, project],
    );
  } else if (write.kind === 'update') {
    await cluster.query(`UPDATE task SET title = $2 WHERE id = $1`, [write.id, write.title]);
  } else if (write.kind === 'reproject') {
    await cluster.query(`UPDATE task SET project_id = $2 WHERE id = $1`, [write.id, plan.fixture.projects[write.to]]);
  } else if (write.kind === 'move') {
    await cluster.query(`UPDATE task SET workspace_id = $2, project_id = $3 WHERE id = $1`, [write.id, plan.fixture.workspaces[write.to], plan.fixture.projects[write.to]]);
  } else {
    await cluster.query(`DELETE FROM task WHERE id = $1`, [write.id]);
  }
}

/** Carries out one fault; resolves when whatever it broke is back. */
async function applyFault(fault: Fault, cluster: Cluster, clients: ChaosClient[], relays: Relay[], plan: Plan): Promise<string | undefined> {
  switch (fault.kind) {
    case 'disconnect': {
      relays[fault.client]!.cut();
      await sleep(fault.forMs);
      relays[fault.client]!.restore();
      return undefined;
    }
    case 'kill-client-mid-apply':
    case 'kill-client-mid-push': {
      const client = clients[fault.client]!;
      return client.exclusive(() => killClient(fault.kind, client, cluster, plan));
    }
    case 'kill-server': {
      await cluster.crashServer(fault.server, fault.downMs);
      return undefined;
    }
    case 'kill-leader': {
      const leader = await cluster.leader();
      await cluster.crashServer(leader, fault.downMs);
      return `server ${leader} led`;
    }
    case 'restart-postgres': {
      await cluster.restartPostgres(fault.immediate ? 'immediate' : 'fast');
      return fault.immediate ? 'immediate' : 'fast';
    }
    case 'migrate':
      return cluster.migrate(plan.seed);
    case 'lose-membership':
      return loseMembership(fault, cluster, clients[fault.client]!, relays[fault.client]!, plan);
  }
}

/** Kills a client as a batch from the server arrives (mid-apply) or as a local write is captured (mid-push), then starts it again. */
async function killClient(kind: 'kill-client-mid-apply' | 'kill-client-mid-push', client: ChaosClient, cluster: Cluster, plan: Plan): Promise<string> {
  if (!client.running) await client.start();
  let note: string;
  if (kind === 'kill-client-mid-apply') {
    // Settled at once: if the burst's INSERT fails (Postgres restarting under another fault), nothing waits on it.
    const arriving = client.next((message) => message.type === 'event' && message.event === 'pull', 3_000).then(
      () => 'killed as a batch arrived',
      () => 'killed (no batch seen)',
    );
    const space = plan.clients[client.index]!.user === 'carol' ? 'own' : 'shared';
    await cluster.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'burst ' || g FROM generate_series(1, 300) g`, [
      plan.fixture.workspaces[space],
      plan.fixture.projects[space],
    ]);
    note = await arriving;
  } else {
    const captured = client.finished ? Promise.reject(new Error('finished')) : client.next((message) => message.type === 'event' && message.event === 'captured', 5_000);
    note = await captured.then(() => 'killed as a write was captured', () => 'killed (no write seen)');
  }
  await client.kill();
  await client.start();
  return note;
}

/**
 * bob leaves `shared` while his client is cut off; it reconnects without it (the workspace must go,
 * with his unsent writes to it), then he is added back while connected (it must come back whole).
 */
async function loseMembership(fault: Extract<Fault, { kind: 'lose-membership' }>, cluster: Cluster, client: ChaosClient, relay: Relay, plan: Plan): Promise<string> {
  const { workspaces, users } = plan.fixture;
  relay.cut();
  await cluster.query(`DELETE FROM workspace_member WHERE workspace_id = $1 AND user_id = $2`, [workspaces.shared, users.bob]);
  await sleep(fault.forMs);
  relay.restore();
  // Whether the client dropped the workspace is what the final check sees of it; give it a moment to.
  const dropped = await client.exclusive(async () => {
    for (let waited = 0; waited < 10_000; waited += 200) {
      if (!client.running) return false;
      const dump = await client.request({ type: 'dump', queries: { held: `SELECT count(*)::int AS n FROM task WHERE workspace_id = '${workspaces.shared}'` } }, 'dump', 10_000).catch(() => undefined);
      if (dump && (dump.rows.held![0] as { n: number }).n === 0) return true;
      await sleep(200);
    }
    return false;
  });
  await cluster.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'member') ON CONFLICT DO NOTHING`, [workspaces.shared, users.bob]);
  return dropped ? 'the workspace went while bob was out of it, and came back' : 'the client was down or slow while bob was out of it';
}
