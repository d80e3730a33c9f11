import { randomUUID } from 'node:crypto';
import { type ChangeResult, formatHlc } from '@walsync/db/server';
import { Tokens, type WalsyncServer } from '@walsync/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, random, seedWorkspaces, startDatabase, startServer } from '@walsync/test-support';

type Column = 'title' | 'status' | 'position';
interface Write {
  client: string;
  hlc: string;
  op: 'update' | 'delete';
  data: Partial<Record<Column, unknown>>;
}

describe.each(postgresTargets())('column-level merge in the write API ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;
  let token: string;
  const base = Date.now() - 30_000;

  const post = async (clientId: string, changes: unknown[]) => {
    const response = await fetch(`${server.url}/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ clientId, changes }),
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { results: ChangeResult[] }).results;
  };
  const hlcAt = (offsetMs: number, client: string) => formatHlc({ wallMs: base + offsetMs, counter: 0, node: client });
  const newTask = async () => {
    const id = randomUUID();
    const [created] = await post('maker', [
      { changeId: randomUUID(), table: 'task', op: 'insert', pk: { id }, data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'start' }, hlc: hlcAt(0, 'maker') },
    ]);
    expect(created!.status).toBe('applied');
    return id;
  };
  const apply = (id: string, write: Write) => post(write.client, [{ changeId: randomUUID(), table: 'task', op: write.op, pk: { id }, data: write.data, hlc: write.hlc }]);
  const row = async (id: string) =>
    (await db.query<{ title: string; status: string; position: number; deleted: boolean }>(`SELECT title, status::text, position, deleted_at IS NOT NULL AS deleted FROM task WHERE id = $1`, [id]))[0]!;

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    token = await new Tokens(TEST_JWT_SECRET).issue(seed.users.alice);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('keeps an older write of one column next to a newer write of another, and says so per column', async () => {
    const id = await newTask();
    // Bob renames at t=2s; alice's status change made at t=1s (offline) arrives after it.
    const [renamed] = await apply(id, { client: 'bob', hlc: hlcAt(2_000, 'bob'), op: 'update', data: { title: 'renamed' } });
    const [moved] = await apply(id, { client: 'alice', hlc: hlcAt(1_000, 'alice'), op: 'update', data: { status: 'done', title: 'alice title' } });
    expect(renamed).toMatchObject({ status: 'applied', columns: { applied: ['title'], lost: [] } });
    expect(moved).toMatchObject({ status: 'applied', columns: { applied: ['status'], lost: ['title'] }, row: { title: 'renamed', status: 'done', hlc: hlcAt(2_000, 'bob') } });
    expect(await row(id)).toEqual({ title: 'renamed', status: 'done', position: 0, deleted: false });
    // Every written column older than the server's: rejected as stale, naming them.
    const [stale] = await apply(id, { client: 'alice', hlc: hlcAt(1_500, 'alice'), op: 'update', data: { title: 'too late' } });
    expect(stale).toMatchObject({ status: 'rejected', reason: 'stale', columns: { applied: [], lost: ['title'] } });
  });

  it('stamps the columns an outside SQL write changed with the server clock, and only those', async () => {
    const id = await newTask();
    await db.query(`UPDATE task SET position = 7 WHERE id = $1`, [id]);
    const [clocks] = await db.query<{ hlc: string; column_hlcs: Record<string, string> }>(`SELECT hlc, column_hlcs FROM task WHERE id = $1`, [id]);
    expect(clocks!.hlc).toMatch(/:server$/);
    // position has the row's (new) clock; every other column keeps the insert's.
    expect(clocks!.column_hlcs.position).toBeUndefined();
    expect(clocks!.column_hlcs.title).toBe(hlcAt(0, 'maker'));
    // A client's write from before the SQL write still takes the columns SQL did not touch.
    const [result] = await apply(id, { client: 'alice', hlc: hlcAt(5_000, 'alice'), op: 'update', data: { title: 'mine', position: 1 } });
    expect(result).toMatchObject({ status: 'applied', columns: { applied: ['title'], lost: ['position'] } });
    expect(await row(id)).toMatchObject({ title: 'mine', position: 7 });
  });

  it('lets a delete win over older writes; a newer update leaves the row deleted', async () => {
    const id = await newTask();
    await apply(id, { client: 'bob', hlc: hlcAt(3_000, 'bob'), op: 'update', data: { title: 'after the delete' } });
    const [deleted] = await apply(id, { client: 'alice', hlc: hlcAt(2_000, 'alice'), op: 'delete', data: {} });
    expect(deleted).toMatchObject({ status: 'applied', columns: { applied: ['deleted_at'] } });
    expect(await row(id)).toMatchObject({ title: 'after the delete', deleted: true });
    const [older] = await apply(id, { client: 'bob', hlc: hlcAt(1_000, 'bob'), op: 'delete', data: {} });
    expect(older).toMatchObject({ status: 'rejected', reason: 'stale' });
  });

  it('converges to the newest value of every column, in whatever order the writes arrive (property, 40 runs)', async () => {
    const clients = ['c1', 'c2', 'c3'];
    const columns: Column[] = ['title', 'status', 'position'];
    for (let run = 1; run <= 40; run++) {
      const next = random(run);
      const writes: Write[] = Array.from({ length: 8 }, (_, index) => {
        const client = clients[Math.floor(next() * clients.length)]!;
        const hlc = formatHlc({ wallMs: base + 1_000 + Math.floor(next() * 50) * 10, counter: index, node: client });
        if (next() < 0.12) return { client, hlc, op: 'delete', data: {} };
        const data: Write['data'] = {};
        for (const column of columns) if (next() < 0.5) data[column] = column === 'status' ? ['todo', 'doing', 'done'][Math.floor(next() * 3)] : column === 'position' ? Math.floor(next() * 100) : `${client}-${index}`;
        if (Object.keys(data).length === 0) data.title = `${client}-${index}`;
        return { client, hlc, op: 'update', data };
      });
      const shuffled = [...writes].sort(() => next() - 0.5);
      const [first, second] = [await newTask(), await newTask()];
      for (const write of writes) await apply(first, write);
      for (const write of shuffled) await apply(second, write);
      // The expected row: for each column the value of its newest write; deleted if any delete was made (nothing here resurrects).
      const expected: Record<string, unknown> = { title: 'start', status: 'todo', position: 0, deleted: writes.some((write) => write.op === 'delete') };
      for (const column of columns) {
        const newest = writes.filter((write) => column in write.data).sort((a, b) => (a.hlc < b.hlc ? 1 : -1))[0];
        if (newest) expected[column] = newest.data[column];
      }
      expect({ run, row: await row(first) }).toEqual({ run, row: expected });
      expect({ run, row: await row(second) }).toEqual({ run, row: expected });
    }
  });
});
