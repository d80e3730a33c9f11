// One chaos client in a process of its own (so it can be killed -9): it opens its replica, runs the
// operations the parent sends, reports what it did and what its sync loop does over IPC, and answers
// `settle` (flush) and `dump` (the parent's queries, and its outbox) for the final checks.
import { createSyncClient } from '@walsync/web';

const { URL: url, TOKEN: token, DATA_DIR: dataDir } = process.env;
const send = (message) => process.send?.(message);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A killed predecessor's lock goes stale after a few seconds: wait for it, as a restarted app would.
let client;
for (let attempt = 0; ; attempt++) {
  try {
    client = await createSyncClient({ url, token, dataDir });
    break;
  } catch (error) {
    if (error.code !== 'locked' || attempt > 100) throw error;
    await sleep(100);
  }
}
client.on('pull:received', (event) => send({ type: 'event', event: 'pull', changes: event.changes }));
client.on('captured', () => send({ type: 'event', event: 'captured' }));
client.on('error', (error) => send({ type: 'event', event: 'error', message: error.message }));
await client.ready;
send({ type: 'ready', clientId: client.clientId });

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
};

// Each operation at its time from the run's start; after a restart the missed ones catch up at once.
async function run(ops, from, startedAt) {
  for (let index = from; index < ops.length; index++) {
    const op = ops[index];
    await sleep(startedAt + op.atMs - Date.now());
    const [sql, params] = statements[op.kind](op);
    try {
      await client.db.query(sql, params);
    } catch (error) {
      // A replayed insert after a kill (it committed, the report did not) is the one expected failure.
      send({ type: 'event', event: 'op_failed', index, message: error.message });
    }
    send({ type: 'done', index });
  }
  send({ type: 'finished' });
}

process.on('message', async (message) => {
  if (message.type === 'run') void run(message.ops, message.from, message.startedAt);
  else if (message.type === 'settle') {
    await client.flush();
    send({ type: 'settled' });
  } else if (message.type === 'dump') {
    const rows = {};
    for (const [table, sql] of Object.entries(message.queries)) rows[table] = (await client.db.query(sql)).rows;
    const outbox = (await client.db.query(`SELECT count(*)::int AS n FROM walsync_outbox`)).rows[0].n;
    send({ type: 'dump', rows, outbox, status: client.status });
  } else if (message.type === 'close') {
    await client.close();
    process.exit(0);
  }
});
