import { schemaVersion } from '@walsync/db/server';
import { type CapturedChange, type WalsyncServer, appendToHistory } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';
import { setSystem } from './support/synchronous-standby';

interface HistoryRow {
  table_name: string;
  operation: string;
  name: string | null;
  old_name: string | null;
  client_id: string | null;
  schema_version: string;
  commit_lsn: string;
  op_index: number;
  lsn: string;
}

describe.each(postgresTargets())('capture of external writes ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let workspace: string;
  const history = () =>
    db.query<HistoryRow>(
      `SELECT table_name, operation, coalesce(data->>'name', data->>'title') AS name, coalesce(old_data->>'name', old_data->>'title') AS old_name,
              client_id, schema_version, commit_lsn, op_index, lsn
         FROM change_history ORDER BY commit_lsn, op_index`,
    );

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    ({
      workspaces: { shared: workspace },
    } = await seedWorkspaces(db));
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('records inserts, updates, deletes and multi-row transactions exactly once, in commit order; a rolled-back transaction never appears', async () => {
    await waitFor('the seed to be captured', async () => (await history()).length === 7).catch(async (error) => {
      throw new Error(`${error.message}: ${JSON.stringify(await history())}`);
    });
    const writer = await db.pool.connect();
    try {
      await writer.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p1')`, [workspace]);
      await writer.query('BEGIN');
      await writer.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p2'), ($1, 'p3')`, [workspace]);
      await writer.query(`UPDATE project SET name = 'p1-renamed' WHERE name = 'p1'`);
      await writer.query('COMMIT');
      await writer.query('BEGIN');
      await writer.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'never')`, [workspace]);
      await writer.query(`DELETE FROM project WHERE name = 'p2'`);
      await writer.query('ROLLBACK');
      await writer.query(`DELETE FROM project WHERE name = 'p3'`);
      await writer.query(`UPDATE project SET name = name || '!' WHERE workspace_id = $1`, [workspace]);
    } finally {
      writer.release();
    }

    const rows = await waitFor('every change to be captured', async () => {
      const rows = await history();
      return rows.length === 7 + 8 ? rows : undefined;
    });
    expect(rows.slice(7).map((row) => [row.table_name, row.operation, row.name, row.old_name])).toEqual([
      ['project', 'insert', 'p1', null],
      ['project', 'insert', 'p2', null],
      ['project', 'insert', 'p3', null],
      ['project', 'update', 'p1-renamed', 'p1'],
      ['project', 'delete', null, 'p3'],
      ['project', 'update', expect.stringMatching(/!$/), expect.any(String)],
      ['project', 'update', expect.stringMatching(/!$/), expect.any(String)],
      ['project', 'update', expect.stringMatching(/!$/), expect.any(String)],
    ]);
    expect(rows.slice(12).map((row) => row.name).sort()).toEqual(['Launch!', 'p1-renamed!', 'p2!']);
    // Positions are unique and strictly increasing; a transaction's changes share its commit LSN.
    const positions = rows.map((row) => BigInt(row.commit_lsn) * 1000n + BigInt(row.op_index));
    expect([...positions].sort((a, b) => (a < b ? -1 : 1))).toEqual(positions);
    expect(new Set(positions).size).toBe(positions.length);
    expect(rows[8]!.commit_lsn).toBe(rows[9]!.commit_lsn);
    expect(rows.slice(8, 11).map((row) => row.op_index)).toEqual([0, 1, 2]);
    expect(rows.every((row) => row.client_id === null)).toBe(true);
    // Each change records the schema version it was written under: this build's latest migration.
    expect(rows.every((row) => row.schema_version === schemaVersion)).toBe(true);
    expect(rows.every((row) => /^[0-9A-F]+\/[0-9A-F]+$/.test(row.lsn))).toBe(true);
  });

  it('keeps values exactly as the server stores them (microsecond timestamps, jsonb, enums, doubles)', async () => {
    const [project] = await db.query(`SELECT id FROM project WHERE workspace_id = $1 LIMIT 1`, [workspace]);
    await db.query(`INSERT INTO task (workspace_id, project_id, title, status, position, labels) VALUES ($1, $2, 'exact', 'doing', 0.1, '["a", {"b": 2}]')`, [
      workspace,
      project!.id,
    ]);
    const captured = await waitFor('the task to be captured', async () => {
      const [row] = await db.query(`SELECT data FROM change_history WHERE table_name = 'task' AND data->>'title' = 'exact'`);
      return row?.data;
    });
    const [stored] = await db.query(`SELECT to_jsonb(t.*) AS row, created_at::text AS created FROM task t WHERE title = 'exact'`);
    expect(captured).toMatchObject({ status: 'doing', position: 0.1, labels: ['a', { b: 2 }], version: 1 });
    expect(new Date(captured.created_at).getTime()).toBe(new Date(stored!.row.created_at).getTime());
    const [same] = await db.query(`SELECT $1::timestamptz = created_at AS equal FROM task WHERE title = 'exact'`, [captured.created_at]);
    expect(same!.equal).toBe(true);
    expect(captured.hlc).toMatch(/^\d{15}:\d{6}:server$/);
  });

  // A commit of one row is stored by one statement, one of many rows by COPY (its text format escapes them).
  it.each([1, 150])("keeps text and jsonb that carry COPY's special characters (backslashes, tabs, newlines, \\N) unchanged, %i rows in a commit", async (rows) => {
    const [project] = await db.query(`SELECT id FROM project WHERE workspace_id = $1 LIMIT 1`, [workspace]);
    const title = `tab\there\nnew line\r\\N back\\slash "quoted" é ✓ ${rows}`;
    const labels = ['C:\\path\\to', 'line\nbreak', '\\N', 'tab\t', { 'key\\': 'va"l\\ue' }];
    await db.query(`INSERT INTO task (workspace_id, project_id, title, labels) SELECT $1, $2, $3, $4 FROM generate_series(1, $5)`, [
      workspace,
      project!.id,
      title,
      JSON.stringify(labels),
      rows,
    ]);
    const captured = await waitFor('the tasks to be captured', async () => {
      const found = await db.query(`SELECT h.data, h.data = to_jsonb(t.*) AS same FROM change_history h JOIN task t ON t.id = (h.data->>'id')::uuid WHERE t.title = $1`, [title]);
      return found.length === rows ? found : undefined;
    });
    for (const row of captured) {
      expect(row.data).toMatchObject({ title, labels });
      expect(row.same).toBe(true);
    }
  });

  it('stamps external writes: version and updated_at move, the HLC orders after the row it overwrote', async () => {
    const [before] = await db.query(`SELECT version, updated_at, hlc FROM task WHERE title = 'exact'`);
    await db.query(`UPDATE task SET title = 'exact' WHERE title = 'exact'`);
    const [after] = await db.query(`SELECT version, updated_at, hlc, origin_client_id FROM task WHERE title = 'exact'`);
    expect(after!.version).toBe(before!.version + 1);
    expect(after!.updated_at.getTime()).toBeGreaterThanOrEqual(before!.updated_at.getTime());
    expect(after!.hlc > before!.hlc).toBe(true);
    expect(after!.origin_client_id).toBeNull();
  });

  it('confirms the slot exactly at the end of what it stored, never a byte further', async () => {
    // A commit record can start exactly where the previous one ended (two commits back to back);
    // after a restart, decoding skips every commit that starts before the confirmed position, so a
    // confirmation one byte too far loses that transaction. WAL records start on 8-byte boundaries:
    // every position walsync confirms is one, and one byte beyond never is.
    await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'confirmed exactly')`, [workspace]);
    const stored = await waitFor('capture', async () => (await db.query<{ commit_lsn: string }>(`SELECT commit_lsn::text FROM change_history WHERE data->>'name' = 'confirmed exactly'`))[0]);
    const confirmed = await waitFor('the slot to confirm it', async () => {
      const [slot] = await db.query<{ at: string }>(`SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::text AS at FROM pg_replication_slots WHERE slot_name = 'walsync'`);
      return BigInt(slot!.at) >= BigInt(stored!.commit_lsn) ? BigInt(slot!.at) : undefined;
    });
    expect(confirmed % 8n).toBe(0n);
  });

  it('keeps the slot advancing while no synced table changes', async () => {
    const [start] = await db.query(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'walsync'`);
    // Writes to a table outside the publication generate WAL the slot must move past.
    await db.query(`INSERT INTO app_user (email, name) SELECT 'idle' || g || '@demo.test', 'idle' FROM generate_series(1, 50) g`);
    const [{ current }] = await db.query(`SELECT pg_current_wal_lsn()::text AS current`);
    await waitFor(
      'the slot to confirm past idle WAL',
      async () => (await db.query(`SELECT confirmed_flush_lsn >= $1::pg_lsn AS ok FROM pg_replication_slots WHERE slot_name = 'walsync'`, [current]))[0]!.ok,
      10_000,
    );
    const [end] = await db.query(`SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = 'walsync'`);
    expect(end!.lsn).not.toBe(start!.lsn);
  });

  it('goes on capturing when its own replication connection is the synchronous standby', async () => {
    // With walsync's replication connection as the synchronous standby (as `'*'` makes it when no other
    // standby is there), a commit waits until capture confirms it. Capture's own commit of history
    // waited the same way, for a confirmation only that commit could bring: capture stopped, and every
    // commit of the database with it.
    await setSystem(db, 'synchronous_standby_names', '"walsync-replicator"');
    try {
      await waitFor('the replication connection to be the synchronous standby', async () => (await db.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = 'walsync-replicator' AND sync_state = 'sync'`)).length > 0);
      for (const name of ['sync 1', 'sync 2', 'sync 3']) {
        const committed = db.query(`INSERT INTO workspace (name) VALUES ($1)`, [name]);
        const waited = await Promise.race([committed.then(() => false), new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 10_000))]);
        expect(waited, `the commit of ${name} waited 10 s for capture`).toBe(false);
      }
      await waitFor('capture to store all three', async () => (await history()).filter((row) => row.name?.startsWith('sync ')).length === 3);
    } finally {
      // Frees whatever still waits, so that the rest of the file and the cluster's shutdown do not.
      await setSystem(db, 'synchronous_standby_names', null);
    }
  });
});

describe('appending to change_history', () => {
  it('skips positions already stored (a replay after a crash) and keeps the rest of the batch', async () => {
    const [target] = postgresTargets();
    const db = await startDatabase(target!);
    const client = await db.pool.connect();
    try {
      const { ensureServerSchema } = await import('@walsync/server');
      const { describeSyncedTables } = await import('@walsync/db/server');
      await ensureServerSchema(client, await describeSyncedTables());
      const change = (commit: number, op: number): CapturedChange => ({
        lsn: `0/${commit.toString(16)}`,
        commit_lsn: String(commit),
        op_index: op,
        table_name: 'task',
        operation: 'insert',
        data: { title: `tab\there, back\\slash, line\nbreak ${commit}.${op}` },
        old_data: null,
        transaction_id: '7',
        schema_version: 'v',
        timestamp: '2026-11-23T01:00:00.123456Z',
        client_id: null,
        scope_id: null,
        old_scope_id: null,
      });
      await appendToHistory(client, [change(100, 0), change(100, 1)], '0/64');
      await appendToHistory(client, [change(100, 0), change(100, 1), change(200, 0)], '0/C8');
      const rows = await db.query(`SELECT commit_lsn, op_index, data->>'title' AS title, "timestamp" FROM change_history ORDER BY 1, 2`);
      expect(rows.map((row) => [row.commit_lsn, row.op_index])).toEqual([
        ['100', 0],
        ['100', 1],
        ['200', 0],
      ]);
      expect(rows[2]!.title).toBe('tab\there, back\\slash, line\nbreak 200.0');
      const [ids] = await db.query(`SELECT bool_and(id::text ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7') AS v7 FROM change_history`);
      expect(ids!.v7).toBe(true);
    } finally {
      client.release();
      await db.dispose();
    }
  });
});
