/**
 * The chaos run's plan, made from a seed alone: each client's operations, the external SQL writes
 * and the faults with their times. The same seed gives the same plan, so a failure is replayed with
 * `WALSYNC_CHAOS_SEED=<seed> yarn test:chaos`.
 */
import { random } from '@walsync/test-support';

export interface ChaosSettings {
  clients: number;
  opsPerClient: number;
  /** How long the fault window lasts, in ms; client operations are paced to fill it. */
  durationMs: number;
}

/** The shape of the data a seed runs on (ids are made by the plan, so they replay too). */
export interface Fixture {
  users: { alice: string; bob: string; carol: string };
  /** Two workspaces: clients 0..n-2 write in `shared`, the last client in `own` (and is checked never to see `shared`). */
  workspaces: { shared: string; own: string };
  /** `second`: another project of `shared`, so that subscriptions to one project leave rows out (drawn last, by planPartial). */
  projects: { shared: string; own: string; second: string };
  /** Tasks that exist before the clients start; comments only go to the first few (external deletes never touch those). */
  tasks: { shared: string[]; own: string[] };
  /** Tasks that only move between the workspaces (by SQL, and by alice, a member of both, through the write API); seeded in `shared`. */
  movable: string[];
}

export type ClientOp =
  | { kind: 'insert'; id: string; title: string; status: Status; position: number; workspace: string; project: string }
  | { kind: 'update'; id: string; title?: string; status?: Status; position?: number }
  | { kind: 'delete'; id: string }
  | { kind: 'comment'; id: string; taskId: string; body: string; workspace: string; author: string }
  /** Moves a task to another workspace (its project along): a removal for one scope, an insert for the other. */
  | { kind: 'move'; id: string; workspace: string; project: string }
  /** Moves a task to another project of its workspace (into or out of a subscription), through the write API. */
  | { kind: 'reproject'; id: string; project: string }
  /** A partial client adds or drops a named subscription. */
  | { kind: 'subscribe' | 'unsubscribe'; subscription: SubscriptionRef };

/** A named subscription, as `client.subscribe(name, params)` takes it. */
export type SubscriptionRef = { name: 'project'; params: { projectId: string } } | { name: 'task'; params: { taskId: string } };

export type Status = 'todo' | 'doing' | 'done';
const STATUSES: Status[] = ['todo', 'doing', 'done'];

export type Fault =
  | { kind: 'disconnect'; client: number; forMs: number }
  | { kind: 'kill-client-mid-apply'; client: number }
  | { kind: 'kill-client-mid-push'; client: number }
  | { kind: 'kill-server'; server: number; downMs: number }
  | { kind: 'kill-leader'; downMs: number }
  | { kind: 'restart-postgres'; immediate: boolean }
  /** `migration:run` of a migration that adds a column to task, while the clients write (every third seed). */
  | { kind: 'migrate' }
  /** bob is removed from `shared` while his client is cut off, reconnects without it, and is added back while connected. */
  | { kind: 'lose-membership'; client: number; forMs: number };

export type ExternalWrite =
  | { kind: 'insert'; ids: string[]; workspace: 'shared' | 'own' }
  | { kind: 'update'; id: string; title: string }
  | { kind: 'delete'; id: string }
  | { kind: 'move'; id: string; to: 'shared' | 'own' }
  /** A task of `shared` moved to one of its projects by SQL (its comments follow: triggers keep comment.project_id). */
  | { kind: 'reproject'; id: string; to: 'shared' | 'second' };

export interface Plan {
  seed: number;
  settings: ChaosSettings;
  fixture: Fixture;
  /** `subscriptions`: a partial client's at its first start (it holds only their rows); none: the whole scope. */
  clients: Array<{ user: 'alice' | 'bob' | 'carol'; ops: Array<ClientOp & { atMs: number }>; subscriptions?: SubscriptionRef[] }>;
  faults: Array<Fault & { atMs: number }>;
  external: Array<ExternalWrite & { atMs: number }>;
}

export const FAULT_KINDS: Fault['kind'][] = ['disconnect', 'kill-client-mid-apply', 'kill-client-mid-push', 'kill-server', 'kill-leader', 'restart-postgres', 'migrate', 'lose-membership'];

/** The two extra faults of a seed, by seed: every three consecutive pairs hold all four kinds. */
const PAIRS = [
  ['kill-server', 'kill-leader'],
  ['restart-postgres', 'other-kill'],
  ['kill-server', 'restart-postgres'],
  ['kill-leader', 'other-kill'],
  ['kill-server', 'other-kill'],
  ['kill-leader', 'restart-postgres'],
] as const;

/** A uuid from the generator (v4-shaped), so inserted ids are part of the plan. */
function uuid(next: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16));
  hex[12] = '4';
  hex[16] = '8';
  const s = hex.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

export function makePlan(seed: number, settings: ChaosSettings): Plan {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const fixture: Fixture = {
    users: { alice: uuid(next), bob: uuid(next), carol: uuid(next) },
    workspaces: { shared: uuid(next), own: uuid(next) },
    projects: { shared: uuid(next), own: uuid(next), second: '' },
    tasks: { shared: Array.from({ length: 24 }, () => uuid(next)), own: Array.from({ length: 8 }, () => uuid(next)) },
    movable: [],
  };
  const commentable = { shared: fixture.tasks.shared.slice(0, 4), own: fixture.tasks.own.slice(0, 2) };
  // Ids any client may touch: the seeded tasks and every task a client of the same workspace will insert.
  const known = { shared: [...fixture.tasks.shared], own: [...fixture.tasks.own] };
  const users = ['alice', 'bob', 'carol'] as const;
  const clients: Plan['clients'] = [];
  const meanDelay = settings.durationMs / settings.opsPerClient;
  for (let c = 0; c < settings.clients; c++) {
    const space = c === settings.clients - 1 ? 'own' : 'shared';
    const user = space === 'own' ? 'carol' : users[c % 2]!;
    const ops: Plan['clients'][number]['ops'] = [];
    let atMs = 0;
    for (let i = 0; i < settings.opsPerClient; i++) {
      const roll = next();
      atMs += Math.round(next() * 2 * meanDelay);
      const title = `c${c}-${i}`;
      if (roll < 0.3 || known[space].length === 0) {
        const id = uuid(next);
        known[space].push(id);
        ops.push({ kind: 'insert', id, title, status: pick(STATUSES), position: Math.round(next() * 1000) / 10, workspace: fixture.workspaces[space], project: fixture.projects[space], atMs });
      } else if (roll < 0.8) {
        const field = next();
        ops.push({
          kind: 'update',
          id: pick(known[space]),
          ...(field < 0.5 ? { title } : field < 0.8 ? { status: pick(STATUSES) } : { title, position: Math.round(next() * 1000) / 10 }),
          atMs,
        });
      } else if (roll < 0.9) {
        ops.push({ kind: 'delete', id: pick(known[space].slice(commentable[space].length)), atMs });
      } else {
        ops.push({ kind: 'comment', id: uuid(next), taskId: pick(commentable[space]), body: title, workspace: fixture.workspaces[space], author: fixture.users[user], atMs });
      }
    }
    clients.push({ user, ops });
  }

  // Four faults a seed, at random times in the first three quarters of the window: a network cut, a
  // client killed (mid-apply on even seeds, mid-push on odd ones), and two of the rest, a pair that
  // turns with the seed (PAIRS), so that any three consecutive seeds carry out every kind.
  const faults: Plan['faults'] = [];
  const clientIndex = () => Math.floor(next() * settings.clients);
  const firstKill = seed % 2 === 0 ? 'kill-client-mid-apply' : 'kill-client-mid-push';
  const otherKill = firstKill === 'kill-client-mid-apply' ? 'kill-client-mid-push' : 'kill-client-mid-apply';
  const rest = PAIRS[seed % PAIRS.length]!.map((kind) => (kind === 'other-kill' ? otherKill : kind));
  for (const kind of ['disconnect', firstKill, ...rest] as const) {
    const atMs = Math.round(next() * settings.durationMs * 0.75);
    if (kind === 'disconnect') faults.push({ kind, client: clientIndex(), forMs: 300 + Math.round(next() * 1500), atMs });
    else if (kind === 'kill-client-mid-apply' || kind === 'kill-client-mid-push') faults.push({ kind, client: clientIndex(), atMs });
    else if (kind === 'kill-server') faults.push({ kind, server: Math.floor(next() * 2), downMs: 200 + Math.round(next() * 800), atMs });
    else if (kind === 'kill-leader') faults.push({ kind, downMs: 200 + Math.round(next() * 800), atMs });
    else faults.push({ kind, immediate: next() < 0.5, atMs });
  }
  // Every third seed, a migration lands on the running system mid-seed.
  if (seed % 3 === 0) faults.push({ kind: 'migrate', atMs: Math.round(next() * settings.durationMs * 0.75) });
  faults.sort((a, b) => a.atMs - b.atMs);

  const external: Plan['external'] = [];
  const deletable = { shared: fixture.tasks.shared.slice(commentable.shared.length), own: fixture.tasks.own.slice(commentable.own.length) };
  for (let i = 0; i < 12; i++) {
    const atMs = Math.round(next() * settings.durationMs);
    const space = next() < 0.75 ? 'shared' : 'own';
    const roll = next();
    if (roll < 0.3) external.push({ kind: 'insert', ids: Array.from({ length: 1 + Math.floor(next() * 150) }, () => uuid(next)), workspace: space, atMs });
    else if (roll < 0.9) external.push({ kind: 'update', id: pick(known[space]), title: `sql-${i}`, atMs });
    else if (deletable[space].length > 0) {
      const id = deletable[space].splice(Math.floor(next() * deletable[space].length), 1)[0]!;
      external.push({ kind: 'delete', id, atMs });
    }
  }
  planMovement(next, settings, fixture, clients, faults, external);
  planPartial(next, settings, fixture, clients, external);
  external.sort((a, b) => a.atMs - b.atMs);
  return { seed, settings, fixture, clients, faults, external };
}

/**
 * Scope movement, drawn after everything else (so the rest of a seed's plan stays as it was): three
 * tasks that move between the workspaces, by SQL and by alice's clients (the write API), and bob
 * losing and regaining the shared workspace around a network cut.
 */
function planMovement(next: () => number, settings: ChaosSettings, fixture: Fixture, clients: Plan['clients'], faults: Plan['faults'], external: Plan['external']): void {
  fixture.movable = Array.from({ length: 3 }, () => uuid(next));
  const alices = clients.flatMap((client, index) => (client.user === 'alice' ? [index] : []));
  for (let i = 0; i < 8; i++) {
    const atMs = Math.round(next() * settings.durationMs * 0.9);
    const id = fixture.movable[Math.floor(next() * fixture.movable.length)]!;
    const to = next() < 0.5 ? 'shared' : 'own';
    if (i % 2 === 0 || alices.length === 0) {
      external.push({ kind: 'move', id, to, atMs });
      continue;
    }
    insertOp(clients[alices[Math.floor(next() * alices.length)]!]!.ops, { kind: 'move', id, workspace: fixture.workspaces[to], project: fixture.projects[to], atMs });
  }
  const bob = clients.findIndex((client) => client.user === 'bob');
  if (bob >= 0) {
    faults.push({ kind: 'lose-membership', client: bob, forMs: 300 + Math.round(next() * 700), atMs: Math.round(next() * settings.durationMs * 0.75) });
    faults.sort((a, b) => a.atMs - b.atMs);
  }
}

/** Puts `op` among `ops` at its time. */
function insertOp(ops: Array<ClientOp & { atMs: number }>, op: ClientOp & { atMs: number }): void {
  const at = ops.findIndex((each) => each.atMs > op.atMs);
  ops.splice(at < 0 ? ops.length : at, 0, op);
}

/** A client's subscriptions after its operations: the first ones, then each subscribe and unsubscribe in order. */
export function finalSubscriptions(client: Plan['clients'][number]): SubscriptionRef[] | undefined {
  if (!client.subscriptions) return undefined;
  const held = new Map(client.subscriptions.map((ref) => [JSON.stringify(ref), ref]));
  for (const op of client.ops) {
    if (op.kind === 'subscribe') held.set(JSON.stringify(op.subscription), op.subscription);
    else if (op.kind === 'unsubscribe') held.delete(JSON.stringify(op.subscription));
  }
  return [...held.values()];
}

/**
 * Partial sync, drawn last (the rest of a seed's plan stays as it was): a second project in
 * `shared` that a share of the inserts go to; tasks moved between the two projects by SQL and
 * through the write API; and two clients (alice's 3rd, carol's last) that hold subscriptions instead of their
 * whole scope — different ones that overlap (a project and a task in it) — and add and drop them
 * during the seed.
 */
function planPartial(next: () => number, settings: ChaosSettings, fixture: Fixture, clients: Plan['clients'], external: Plan['external']): void {
  fixture.projects.second = uuid(next);
  const shared = fixture.workspaces.shared;
  for (const client of clients) {
    for (const op of client.ops) if (op.kind === 'insert' && op.workspace === shared && next() < 0.4) op.project = fixture.projects.second;
  }
  const project = (projectId: string): SubscriptionRef => ({ name: 'project', params: { projectId } });
  const task = (taskId: string): SubscriptionRef => ({ name: 'task', params: { taskId } });
  const [first, second] = [fixture.projects.shared, fixture.projects.second];
  const held = fixture.tasks.shared[0]!; // has comments (commentable)
  const reprojectable = fixture.tasks.shared.slice(0, 12);
  for (let i = 0; i < 8; i++) {
    const atMs = Math.round(next() * settings.durationMs * 0.9);
    const id = reprojectable[Math.floor(next() * reprojectable.length)]!;
    const to = next() < 0.5 ? 'shared' : 'second';
    const writers = clients.flatMap((client, index) => (client.user !== 'carol' ? [index] : []));
    if (i % 2 === 0 || writers.length === 0) external.push({ kind: 'reproject', id, to, atMs });
    else insertOp(clients[writers[Math.floor(next() * writers.length)]!]!.ops, { kind: 'reproject', id, project: fixture.projects[to], atMs });
  }
  if (settings.clients < 4) return; // carol's is the last client, alice's the third
  // alice (a member of both workspaces) starts with the first project and a task of it; carol (never
  // out of her workspace, so no subscription of hers is refused) with a task of `own` — alice may hold
  // all of `own` too. (bob's clients stay whole: he leaves `shared` for a while, and a subscription
  // asked for then is refused, as it should be.)
  const own = fixture.tasks.own;
  const partial = [
    { index: 2, start: [project(first), task(held)], choices: [project(first), project(second), task(held), task(fixture.tasks.shared[1]!), project(fixture.projects.own)] },
    { index: settings.clients - 1, start: [task(own[0]!)], choices: [project(fixture.projects.own), task(own[0]!), task(own[1]!)] },
  ];
  for (const { index, start, choices } of partial) {
    const client = clients[index]!;
    client.subscriptions = start;
    const now = new Set(start.map((ref) => JSON.stringify(ref)));
    const times = Array.from({ length: 4 }, () => Math.round(next() * settings.durationMs * 0.8)).sort((a, b) => a - b);
    for (const atMs of times) {
      const ref = choices[Math.floor(next() * choices.length)]!;
      const key = JSON.stringify(ref);
      const kind = now.has(key) ? 'unsubscribe' : 'subscribe';
      if (kind === 'subscribe') now.add(key);
      else now.delete(key);
      insertOp(client.ops, { kind, subscription: ref, atMs });
    }
  }
}

/** The plan in a few lines: what a failure report prints, so the run can be read and replayed. */
export function describePlan(plan: Plan): string {
  const counts = (ops: ClientOp[]) => {
    const by: Record<string, number> = {};
    for (const op of ops) by[op.kind] = (by[op.kind] ?? 0) + 1;
    return Object.entries(by).map(([kind, n]) => `${n} ${kind}`).join(', ');
  };
  return [
    `seed ${plan.seed}: ${plan.settings.clients} clients × ${plan.settings.opsPerClient} ops over ${plan.settings.durationMs} ms`,
    ...plan.clients.map((client, index) => `  client ${index} (${client.user}${client.subscriptions ? `, holding ${JSON.stringify(client.subscriptions)}` : ''}): ${counts(client.ops)}`),
    ...plan.faults.map((fault) => `  @${fault.atMs} ms ${JSON.stringify(fault)}`),
    `  external SQL: ${plan.external.map((write) => `@${write.atMs} ${write.kind}${write.kind === 'insert' ? `×${write.ids.length}` : ''}`).join(', ')}`,
    `  replay: WALSYNC_CHAOS_SEED=${plan.seed} WALSYNC_CHAOS_OPS=${plan.settings.opsPerClient} WALSYNC_CHAOS_CLIENTS=${plan.settings.clients} yarn test:chaos`,
  ].join('\n');
}
