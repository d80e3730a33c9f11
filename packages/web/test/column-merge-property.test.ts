import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import { type SyncFixture, TEST_JWT_SECRET, random, startSyncFixture, waitFor } from '@walsync/test-support';
import { type SyncClient, createSyncClient } from '@walsync/web';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type Column = 'title' | 'status' | 'position';
const COLUMNS: Column[] = ['title', 'status', 'position'];
/** Every column's value, clock and the tombstone, as a replica or the server holds the row. */
const ROW_SQL = `SELECT title, status::text, position, deleted_at IS NOT NULL AS deleted, hlc, coalesce(column_hlcs, '{}') AS column_hlcs FROM task WHERE id = $1`;

/**
 * Random interleavings of per-column writes, deletes, offline periods and outside SQL, across three
 * replicas: every replica ends equal to the server, and the server holds, for every column, the
 * value of the write with the newest clock for it.
 */
describe('column-level merge across three replicas (property)', () => {
  let fixture: SyncFixture;
  let tokens: { alice: string; bob: string };
  let deadUrl: string;

  beforeAll(async () => {
    fixture = await startSyncFixture('column-merge-property');
    const issuer = new Tokens(TEST_JWT_SECRET);
    tokens = { alice: await issuer.issue(fixture.seed.users.alice), bob: await issuer.issue(fixture.seed.users.bob) };
    deadUrl = `http://127.0.0.1:${await freePort()}`;
  });
  afterAll(async () => {
    await fixture?.dispose();
  });

  it.each([1, 2, 3])('seed %i: converges to the newest value of every column', async (seed) => {
    const next = random(seed);
    const [{ id }] = (await fixture.db.query<{ id: string }>(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'start') RETURNING id`, [
      fixture.seed.workspaces.shared,
      fixture.seed.projects.launch,
    ])) as [{ id: string }];
    const replicas = (['alice', 'bob', 'alice'] as const).map((user, index) => ({ token: tokens[user], dataDir: path.join(fixture.scratch.dir, `seed-${seed}-replica-${index}`) }));
    const open = (replica: (typeof replicas)[number], online: boolean) => createSyncClient({ url: online ? fixture.url : deadUrl, token: replica.token, dataDir: replica.dataDir });
    // Every write's clock and values: the expected row is the newest write of each column.
    const writes: Array<{ hlc: string; data: Partial<Record<Column | 'deleted', unknown>> }> = [];
    /** Records the write the client just captured, if it captured one (a write that changes nothing is none). */
    const record = async (client: SyncClient, before: number, data: Partial<Record<Column | 'deleted', unknown>>) => {
      const captured = (await client.db.query<{ hlc: string; data: Record<string, unknown> }>(`SELECT hlc, data FROM walsync_outbox WHERE seq > $1`, [before])).rows[0];
      if (captured) writes.push({ hlc: captured.hlc, data: 'deleted' in data ? data : Object.fromEntries(Object.entries(data).filter(([column]) => column in captured.data)) });
    };

    for (const replica of replicas) {
      const client = await open(replica, true);
      await client.ready;
      await waitFor('the task to arrive', async () => (await client.db.query(`SELECT 1 FROM task WHERE id = $1`, [id])).rows.length === 1);
      await client.close();
    }
    for (let round = 0; round < 5; round++) {
      for (const [index, replica] of replicas.entries()) {
        const online = next() < 0.5;
        const client: SyncClient = await open(replica, online);
        await client.ready;
        const before = await lastSeq(client);
        if (next() < 0.1) {
          await client.db.query(`DELETE FROM task WHERE id = $1`, [id]);
          await record(client, before, { deleted: true });
        } else {
          const data: Partial<Record<Column, unknown>> = {};
          for (const column of COLUMNS) if (next() < 0.5) data[column] = column === 'status' ? ['todo', 'doing', 'done'][Math.floor(next() * 3)] : column === 'position' ? Math.floor(next() * 100) : `r${index}-${round}`;
          if (Object.keys(data).length === 0) data.title = `r${index}-${round}`;
          const sets = Object.keys(data).map((column, position) => `${column} = $${position + 2}`);
          await client.db.query(`UPDATE task SET ${sets.join(', ')} WHERE id = $1`, [id, ...Object.values(data)]);
          await record(client, before, data);
        }
        if (online) await client.flush();
        await client.close();
      }
      if (next() < 0.4) {
        const title = `sql-${round}`;
        const [stamped] = await fixture.db.query<{ hlc: string }>(`UPDATE task SET title = $2 WHERE id = $1 RETURNING hlc`, [id, title]);
        writes.push({ hlc: stamped!.hlc, data: { title } });
      }
    }

    // Everyone back online: every replica pushes what it wrote offline and ends equal to the server.
    const clients = await Promise.all(replicas.map((replica) => open(replica, true)));
    try {
      await Promise.all(clients.map((client) => client.flush()));
      const expected: Record<string, unknown> = { title: 'start', status: 'todo', position: 0, deleted: writes.some((write) => write.data.deleted) };
      for (const column of COLUMNS) {
        const newest = writes.filter((write) => column in write.data).sort((a, b) => (a.hlc < b.hlc ? 1 : -1))[0];
        if (newest) expected[column] = newest.data[column];
      }
      const [server] = await fixture.db.query(ROW_SQL, [id]);
      expect({ seed, row: { title: server!.title, status: server!.status, position: server!.position, deleted: server!.deleted } }).toEqual({ seed, row: expected });
      await waitFor(
        'every replica to equal the server',
        async () => {
          const held = await Promise.all(clients.map(async (client) => (await client.db.query(ROW_SQL, [id])).rows[0]));
          return held.every((row) => JSON.stringify(row) === JSON.stringify(server));
        },
        15_000,
      );
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  }, 120_000);
});

/** The newest outbox sequence number (0 when empty). */
async function lastSeq(client: SyncClient): Promise<number> {
  return Number((await client.db.query<{ seq: string | null }>(`SELECT max(seq) AS seq FROM walsync_outbox`)).rows[0]!.seq ?? 0);
}
