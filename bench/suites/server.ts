import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CHANGES_CHANNEL, Tokens, WalsyncServer } from '@walsync/server';
import pg from 'pg';
import { LogicalReplicationService, PgoutputPlugin } from 'pg-logical-replication';
import pino from 'pino';
import { WebSocket } from 'ws';
import { BENCH_SECRET, startServerProcess, taskInserts, withPostgres } from '../harness';
import { type Figure, median, percentile } from '../report';

const CAPTURE_CHANGES = 200_000;
const ROWS_PER_TRANSACTION = 1_000;

const startServer = (url: string) =>
  WalsyncServer.start({ databaseUrl: url, port: 0, host: '127.0.0.1', jwtSecret: BENCH_SECRET, slotName: 'walsync', maxClockSkewMs: 60_000, log: pino({ level: 'silent' }) });

async function seed(client: pg.Client): Promise<{ user: string; workspace: string; project: string }> {
  const user = (await client.query(`INSERT INTO app_user (email, name) VALUES ('bench@demo.test', 'Bench') RETURNING id`)).rows[0].id;
  const workspace = (await client.query(`INSERT INTO workspace (name) VALUES ('Bench') RETURNING id`)).rows[0].id;
  await client.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2)`, [workspace, user]);
  const project = (await client.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Bench') RETURNING id`, [workspace])).rows[0].id;
  return { user, workspace, project };
}

/** Reads a slot with the library's own decoder and nothing else: the ceiling capture is measured against. */
async function rawDecodeSeconds(url: string, slot: string, expected: number): Promise<number> {
  const service = new LogicalReplicationService({ connectionString: url }, { acknowledge: { auto: false, timeoutSeconds: 0 } });
  let seen = 0;
  const started = performance.now();
  const done = new Promise<void>((resolve) =>
    service.on('data', (_lsn: string, message: { tag: string }) => {
      if (message.tag === 'insert' && ++seen === expected) resolve();
    }),
  );
  void service.subscribe(new PgoutputPlugin({ protoVersion: 1, publicationNames: ['walsync'] }), slot, '0/0').catch(() => undefined);
  await done;
  const seconds = (performance.now() - started) / 1000;
  await service.destroy();
  return seconds;
}

/**
 * Seconds Postgres alone takes to COPY the captured task changes into a table like change_history
 * (its indexes too), from a file on the server: no client, no decoding.
 */
async function copyAloneSeconds(client: pg.Client): Promise<number> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'walsync-bench-copy-'));
  chmodSync(scratch, 0o777);
  const file = path.join(scratch, 'history.copy');
  try {
    await client.query(`COPY (SELECT * FROM change_history WHERE table_name = 'task' ORDER BY commit_lsn, op_index) TO '${file}'`);
    await client.query(`CREATE TABLE copy_probe (LIKE change_history INCLUDING ALL)`);
    const started = performance.now();
    await client.query(`COPY copy_probe FROM '${file}'`);
    const seconds = (performance.now() - started) / 1000;
    await client.query(`DROP TABLE copy_probe`);
    return seconds;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** Issue #3: capture throughput against the raw decode rate, commit-to-history latency, write API latency. */
export async function serverFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];

  await withPostgres(async (url) => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // Both slots exist before the backlog is written; the capture slot is created by the server.
    const server = await startServer(url);
    await server.stop();
    await client.query(`SELECT pg_create_logical_replication_slot('bench_raw', 'pgoutput')`);
    const { workspace, project } = await seed(client);
    for (let written = 0; written < CAPTURE_CHANGES; written += ROWS_PER_TRANSACTION) {
      await client.query(
        `INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, 'backlog ' || g, '["bench"]' FROM generate_series(1, ${ROWS_PER_TRANSACTION}) g`,
        [workspace, project],
      );
    }
    const raw = await rawDecodeSeconds(url, 'bench_raw', CAPTURE_CHANGES);
    await client.query(`SELECT pg_drop_replication_slot('bench_raw')`);

    // Counted at each batch's NOTIFY (or every 250 ms), not polled: a count every few milliseconds
    // would take a core's share from the capture it measures.
    await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    let batchWritten = () => {};
    client.on('notification', () => batchWritten());
    const started = performance.now();
    const capturing = await startServer(url);
    for (;;) {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM change_history WHERE table_name = 'task'`);
      if (rows[0].n >= CAPTURE_CHANGES) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        batchWritten = () => (clearTimeout(timer), resolve());
      });
    }
    const captureSeconds = (performance.now() - started) / 1000;
    await client.query(`UNLISTEN ${CHANGES_CHANNEL}`);
    await capturing.stop();
    const copySeconds = await copyAloneSeconds(client);
    await client.end();
    const rawRate = CAPTURE_CHANGES / raw;
    const captureRate = CAPTURE_CHANGES / captureSeconds;
    const copyRate = CAPTURE_CHANGES / copySeconds;
    figures.push({ issue: 3, name: 'raw pgoutput decode rate (pg-logical-replication, no writes)', value: rawRate, unit: 'changes/s', note: `${CAPTURE_CHANGES} inserts in ${ROWS_PER_TRANSACTION}-row transactions` });
    figures.push({ issue: 3, name: 'capture throughput into change_history', value: captureRate, unit: 'changes/s', goal: '>= 50000', note: 'same backlog, server start included' });
    figures.push({ issue: 3, name: 'capture throughput ÷ raw decode rate', value: captureRate / rawRate, unit: '×', goal: '>= 0.3', note: 'same run' });
    figures.push({ issue: 18, name: "Postgres' own COPY of the captured rows into a copy of change_history", value: copyRate, unit: 'changes/s', note: 'the same rows, from a file on the server, one COPY, the same indexes: the write capture cannot avoid' });
    figures.push({ issue: 18, name: 'capture throughput ÷ that COPY alone', value: captureRate / copyRate, unit: '×', note: 'same run: decoding, building the COPY and the COPY itself share the two cores' });
  });

  await withPostgres(async (url) => {
    const server = await startServerProcess(url);
    const client = new pg.Client({ connectionString: url });
    const listener = new pg.Client({ connectionString: url });
    await client.connect();
    await listener.connect();
    try {
      const { user, workspace, project } = await seed(client);
      await listener.query(`LISTEN ${CHANGES_CHANNEL}`);
      let notified: (() => void) | undefined;
      listener.on('notification', () => notified?.());
      const latencies: number[] = [];
      for (let i = 0; i < 400; i++) {
        const captured = new Promise<void>((resolve) => (notified = resolve));
        await client.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'latency')`, [workspace, project]);
        const committed = performance.now();
        await captured;
        if (i >= 20) latencies.push(performance.now() - committed);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      figures.push({ issue: 3, name: 'external commit → row in change_history, p50', value: median(latencies), unit: 'ms', goal: '<= 3', note: '380 single-row commits, timed by the capture NOTIFY' });
      figures.push({ issue: 3, name: 'external commit → row in change_history, p99', value: percentile(latencies, 99), unit: 'ms', goal: '<= 15' });

      const token = await new Tokens(BENCH_SECRET).issue(user);
      const clientId = 'bench-client';
      const change = taskInserts(clientId, workspace, project);
      const timeBatches = async (size: number, rounds: number) => {
        const times: number[] = [];
        for (let round = 0; round < rounds; round++) {
          const body = JSON.stringify({ clientId, changes: Array.from({ length: size }, change) });
          const started = performance.now();
          const response = await fetch(`${server.url}/changes`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
          const result = (await response.json()) as { results: Array<{ status: string }> };
          if (result.results.some((each) => each.status !== 'applied')) throw new Error('a bench write was not applied');
          if (round >= 10) times.push(performance.now() - started);
        }
        return times;
      };
      figures.push({ issue: 3, name: 'write API: one change, p50', value: median(await timeBatches(1, 300)), unit: 'ms', goal: '<= 3', note: 'POST /changes over loopback, 290 requests' });
      figures.push({ issue: 3, name: 'write API: 100-change batch, p50', value: median(await timeBatches(100, 110)), unit: 'ms', goal: '<= 20', note: 'POST /changes over loopback, 100 requests' });

      // The same write over a live session's socket (`write` → `write_result`), as the client sends it.
      const socketId = 'bench-socket';
      const socketChange = taskInserts(socketId, workspace, project);
      const socket = new WebSocket(`${server.url.replace('http', 'ws')}/sync`);
      await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
      const waiting = new Map<string, (message: { results: Array<{ status: string }> }) => void>();
      // A socket the server closes (a refused hello, a flood) ends the bench instead of leaving it waiting.
      const closed = new Promise<never>((_, reject) => socket.once('close', (code, reason) => reject(new Error(`the server closed the bench's socket: ${code} ${reason}`))));
      closed.catch(() => undefined);
      const live = new Promise<void>((resolve) =>
        socket.on('message', (data) => {
          const message = JSON.parse(data.toString());
          if (message.type === 'up_to_date' || message.type === 'snapshot_end') resolve();
          if (message.type === 'write_result') waiting.get(message.requestId)?.(message);
        }),
      );
      socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId: socketId, schemaVersion: null, position: null }));
      await Promise.race([live, closed]);
      const overSocket: number[] = [];
      for (let round = 0; round < 300; round++) {
        const requestId = `w${round}`;
        const answered = new Promise<{ results: Array<{ status: string }> }>((resolve) => waiting.set(requestId, resolve));
        const started = performance.now();
        socket.send(JSON.stringify({ type: 'write', requestId, changes: [socketChange()] }));
        const answer = await Promise.race([answered, closed]);
        if (answer.results.some((each) => each.status !== 'applied')) throw new Error('a bench write over the socket was not applied');
        if (round >= 10) overSocket.push(performance.now() - started);
        // Within a session's budget of 100 messages a second: a client sending more is cut off as a flood.
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      socket.close();
      figures.push({ issue: 18, name: 'write over the WebSocket: one change, p50', value: median(overSocket), unit: 'ms', goal: '<= 2', note: `write → write_result on a live session, 290 writes 10 ms apart (p99 ${percentile(overSocket, 99).toFixed(1)} ms)` });
    } finally {
      await listener.end();
      await client.end();
      await server.stop();
    }
  });
  await withPostgres(async (url) => {
    const server = await startServer(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { user, workspace, project } = await seed(client);
      const clientId = 'bench-service';
      const change = taskInserts(clientId, workspace, project);
      const time = async (size: number, rounds: number) => {
        const times: number[] = [];
        for (let round = 0; round < rounds; round++) {
          const changes = Array.from({ length: size }, change);
          const started = performance.now();
          await server.writes.applyBatch(user, { clientId, changes });
          if (round >= 10) times.push(performance.now() - started);
        }
        return median(times);
      };
      figures.push({ issue: 3, name: 'write service (no HTTP): one change, p50', value: await time(1, 300), unit: 'ms', goal: '<= 3', note: 'applyBatch in the server process, capture running' });
      figures.push({ issue: 3, name: 'write service (no HTTP): 100-change batch, p50', value: await time(100, 110), unit: 'ms', goal: '<= 20', note: 'applyBatch in the server process, capture running' });
    } finally {
      await client.end();
      await server.stop();
    }
  });
  return figures;
}
