// A chaos client process (so it can be killed -9). It serves one replica at a time: `open` starts a
// sync client on a data directory, `run` carries out the operations the parent sends at their times,
// `settle` flushes, `dump` answers the parent's queries (and its outbox), `close` closes the client
// and leaves the process ready for the next `open` (a warm process: no start-up, no module loading),
// `exit` ends it. What it did and what its sync loop does is reported over IPC.
import { createSyncClient } from '@walsync/web';

const send = (message) => process.send?.(message);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sync client of the replica open now, and the operations it runs (stopped on close). */
let client;
let running;

/**
 * WALSYNC_CHAOS_WIRE (the suite sets it; else WALSYNC_CHAOS_DEBUG): what went over the wire, in
 * brief, one file per data directory (`<seed>-<client>.wire.log`); a failing seed quotes it.
 */
const wireDir = process.env.WALSYNC_CHAOS_WIRE ?? process.env.WALSYNC_CHAOS_DEBUG;
let wireFile;
if (wireDir) {
  const { appendFileSync, mkdirSync } = await import('node:fs');
  const { WebSocket } = await import('ws');
  mkdirSync(wireDir, { recursive: true });
  const wire = (direction, raw) => {
    if (!wireFile) return;
    let message;
    try {
      message = JSON.parse(String(raw));
    } catch {
      return;
    }
    const brief = { ...message };
    if (brief.token) brief.token = '…';
    if (Array.isArray(message.changes)) {
      brief.changes = message.changes.map((change) =>
        change.table ? `${change.op} ${change.table} ${(change.data ?? change.old ?? change.pk)?.id ?? ''} v${(change.data ?? change.old)?.version ?? ''} ${(change.data ?? change.old)?.workspace_id ?? ''}` : change.changeId,
      );
    }
    if (Array.isArray(message.results)) brief.results = message.results.map((result) => `${result.changeId} ${result.status} ${result.code ?? result.reason ?? ''} v${result.row?.version ?? ''}`);
    if (Array.isArray(message.rows)) brief.rows = message.rows.map((row) => `${row.id} v${row.version}`);
    if (Array.isArray(message.migrations)) brief.migrations = message.migrations.length;
    appendFileSync(wireFile, `${Date.now()} ${direction} ${JSON.stringify(brief)}\n`);
  };
  const emit = WebSocket.prototype.emit;
  WebSocket.prototype.emit = function (event, ...args) {
    if (event === 'message') wire('<', args[0]);
    return emit.call(this, event, ...args);
  };
  const sendRaw = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data, ...rest) {
    wire('>', data);
    return sendRaw.call(this, data, ...rest);
  };
}

async function open({ url, token, dataDir, subscriptions }) {
  if (wireDir) wireFile = `${wireDir}/${dataDir.split('/').pop()}.wire.log`;
  // A killed predecessor's lock is taken over at once; retry anyway, as a restarted app would.
  for (let attempt = 0; ; attempt++) {
    try {
      client = await createSyncClient({ url, token, dataDir, subscriptions });
      break;
    } catch (error) {
      if (error.code !== 'locked' || attempt > 100) throw error;
      await sleep(100);
    }
  }
  client.on('pull:received', (event) => send({ type: 'event', event: 'pull', changes: event.changes }));
  client.on('captured', () => send({ type: 'event', event: 'captured' }));
  client.on('error', (error) => send({ type: 'event', event: 'error', message: error.message }));
  // WALSYNC_CHAOS_DEBUG=<dir>: each client's events, one file per client id, to find where a seed went wrong.
  if (process.env.WALSYNC_CHAOS_DEBUG) {
    const { appendFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(process.env.WALSYNC_CHAOS_DEBUG, { recursive: true });
    const log = (what, detail) => appendFileSync(`${process.env.WALSYNC_CHAOS_DEBUG}/${client.clientId}.log`, `${Date.now()} ${what} ${JSON.stringify(detail)}\n`);
    for (const event of ['bootstrap:start', 'bootstrap:complete', 'conflict', 'push', 'status', 'captured']) client.on(event, (detail) => log(event, detail));
    client.on('error', (error) => log('error', { message: error.message }));
    globalThis.chaosLog = log;
    client.on('pull:applied', (detail) => log('pull:applied', { position: detail?.position, n: detail?.changes }));
    log('open', { dataDir });
  }
  await client.ready;
  send({ type: 'ready', clientId: client.clientId });
}

const statements = {
  insert: (op) => [
    `INSERT INTO task (id, workspace_id, project_id, title, status, position) VALUES ($1, $2, $3, $4, $5, $6)`,
    [op.id, op.workspace, op.project, op.title, op.status, op.position],
  ],
  update: (op) => {
    const fields = ['title', 'status', 'position'].filter((field) => op[field] !== undefined);
    return [`UPDATE task SET ${fields.map((field, i) => `${field} = $${i + 2}`).join(', ')} WHERE id = $1`, [op.id, ...fields.map((field) => op[field])]];
  },
  delete: (op) => [`DELETE FROM task WHERE id = $1`, [op.id]],
  comment: (op) => [`INSERT INTO comment (id, workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, $4, $5)`, [op.id, op.workspace, op.taskId, op.author, op.body]],
  move: (op) => [`UPDATE task SET workspace_id = $2, project_id = $3 WHERE id = $1`, [op.id, op.workspace, op.project]],
  reproject: (op) => [`UPDATE task SET project_id = $2 WHERE id = $1`, [op.id, op.project]],
};

/**
 * Adds or drops a subscription, reported done once the replica has stored it (PGlite runs queries in
 * the order they are made: a query after the call runs after its store write), not when the server
 * has answered — a client offline or killed later carries it on from its replica.
 */
async function changeSubscription(mine, op) {
  const { name, params } = op.subscription;
  globalThis.chaosLog?.(op.kind, op.subscription);
  if (op.kind === 'subscribe') mine.subscribe(name, params).ready.catch(() => undefined);
  else mine.unsubscribe(name, params).catch(() => undefined);
  await mine.db.query('SELECT 1');
}

// Each operation at its time from the run's start; after a restart the missed ones catch up at once.
async function run(mine, ops, from, startedAt) {
  for (let index = from; index < ops.length && client === mine; index++) {
    const op = ops[index];
    await sleep(startedAt + op.atMs - Date.now());
    try {
      if (op.kind === 'subscribe' || op.kind === 'unsubscribe') await changeSubscription(mine, op);
      else await mine.db.query(...statements[op.kind](op));
    } catch (error) {
      // A replayed insert after a kill (it committed, the report did not) is the one expected failure.
      send({ type: 'event', event: 'op_failed', index, message: error.message });
    }
    send({ type: 'done', index });
  }
  if (client === mine) send({ type: 'finished' });
}

// Messages are handled one after another: a `close` that arrives while `open` is still starting the
// client (the parent gave up on a failed seed) closes that client, not nothing.
let handled = Promise.resolve();
process.on('message', (message) => {
  handled = handled.then(() => handle(message));
});

async function handle(message) {
  try {
    if (message.type === 'open') await open(message);
    else if (message.type === 'run') running = run(client, message.ops, message.from, message.startedAt);
    else if (message.type === 'settle') {
      await client.flush();
      send({ type: 'settled' });
    } else if (message.type === 'dump') {
      const rows = {};
      for (const [table, sql] of Object.entries(message.queries)) rows[table] = (await client.db.query(sql)).rows;
      const outbox = (await client.db.query(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0].n;
      send({ type: 'dump', rows, outbox, status: client.status });
    } else if (message.type === 'close') {
      const closing = client;
      client = undefined;
      await running?.catch(() => undefined);
      await closing?.close();
      send({ type: 'closed' });
    } else if (message.type === 'exit') process.exit(0);
  } catch (error) {
    // The parent sees the message and the stack on stderr, and the exit.
    console.error(error);
    process.exit(1);
  }
}
