import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { WalsyncServer } from '@walsync/server';
import { TEST_JWT_SECRET, type TestDatabase, postgresTargets, seedWorkspaces, startDatabase, startServer, waitFor } from '@walsync/test-support';

/**
 * A client written from docs/protocol.md alone: a WebSocket, a hand-made JWT and a Map for a
 * replica. Nothing of walsync is imported on the client side; even the tables' keys are read from
 * the document's table reference. If this test needs something the document does not say, the
 * document is incomplete.
 */

type Row = Record<string, unknown>;
type Message = Record<string, any>;

const PROTOCOL_DOC = readFileSync(path.resolve(__dirname, '../../../docs/protocol.md'), 'utf8');
/** "Timestamps as ISO 8601 in UTC with up to six fractional digits and a +00:00 offset." */
const DOCUMENTED_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?\+00:00$/;

/** The tables section: `### \`name\`` then "Primary key `a`, `b`; scope `c`". */
function documentedTables(): Map<string, { primaryKey: string[]; scope: string }> {
  const tables = new Map<string, { primaryKey: string[]; scope: string }>();
  for (const match of PROTOCOL_DOC.matchAll(/^### `([a-z_]+)`\n\nPrimary key ((?:`[a-z_]+`(?:, )?)+); scope `([a-z_]+)`/gm)) {
    tables.set(match[1]!, { primaryKey: [...match[2]!.matchAll(/`([a-z_]+)`/g)].map((key) => key[1]!), scope: match[3]! });
  }
  return tables;
}

/** "HS256 JWT, `sub` = the user's `app_user.id`." */
function jwt(userId: string, secret: string): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: userId, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`;
}

/** Positions "order as 64-bit numbers (high << 32 | low)". */
const positionValue = (position: string) => {
  const [high, low] = position.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
};

class MinimalClient {
  readonly rows = new Map<string, Row>();
  position: string | null = null;
  workspaces: string[] = [];
  schemaVersion: string | null = null;
  /** Every row value of a timestamp column seen, to check the documented format. */
  readonly timestamps: string[] = [];
  private socket: WebSocket | undefined;
  private snapshotRows: Array<{ table: string; row: Row }> = [];
  private snapshotMeta: { replace: boolean; workspaces: string[] } | undefined;
  private last = { wall: 0, counter: 0 };
  private inbox: Message[] = [];
  /** Writes sent and not answered yet: changeId → table. */
  private readonly unanswered = new Map<string, string>();
  private wake: (() => void) | undefined;

  constructor(
    readonly tables: Map<string, { primaryKey: string[]; scope: string }>,
    readonly clientId: string,
    private readonly token: string,
  ) {}

  key(table: string, row: Row): string {
    return `${table}:${JSON.stringify(this.tables.get(table)!.primaryKey.map((column) => row[column]))}`;
  }

  async connect(url: string): Promise<void> {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/sync`);
    await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
    this.socket = socket;
    // What the last connection sent and was not handled is of no use now: this one starts from the position sent below.
    this.inbox = [];
    socket.on('message', (data) => {
      if (socket !== this.socket) return;
      this.inbox.push(JSON.parse(data.toString()));
      this.wake?.();
    });
    socket.send(
      JSON.stringify({
        type: 'hello',
        protocol: 1,
        token: this.token,
        clientId: this.clientId,
        schemaVersion: this.schemaVersion,
        position: this.position,
        ...(this.position ? { workspaces: this.workspaces } : {}),
      }),
    );
  }

  disconnect(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.socket!.once('close', () => resolve()));
    this.socket!.close();
    return closed;
  }

  /** Handles messages in order until `until` holds for one (which is returned). */
  async run(until: (message: Message) => boolean, timeoutMs = 15_000): Promise<Message> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = this.inbox.shift();
      if (message) {
        this.handle(message);
        if (until(message)) return message;
        continue;
      }
      if (Date.now() > deadline) throw new Error('the server sent nothing that was awaited');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  private handle(message: Message): void {
    switch (message.type) {
      case 'welcome':
        // A client with SQL tables applies `migrations` here; this one keeps rows in a Map.
        this.schemaVersion = message.schemaVersion;
        return;
      case 'snapshot_start':
        this.snapshotRows = [];
        this.snapshotMeta = { replace: message.replace, workspaces: message.workspaces };
        return;
      case 'snapshot_batch':
        for (const row of message.rows) this.snapshotRows.push({ table: message.table, row });
        return;
      case 'snapshot_end': {
        const { replace, workspaces } = this.snapshotMeta!;
        // replace: instead of everything from the server; replace: false: instead of those workspaces.
        for (const [key, row] of this.rows) {
          const table = key.slice(0, key.indexOf(':'));
          if (replace || workspaces.includes(row[this.tables.get(table)!.scope] as string)) this.rows.delete(key);
        }
        for (const { table, row } of this.snapshotRows) this.store(table, row);
        if (replace) {
          this.position = message.position;
          this.workspaces = [...workspaces];
          this.ack(message.position);
        } else {
          this.workspaces = [...new Set([...this.workspaces, ...workspaces])];
        }
        return;
      }
      case 'changes':
        for (const change of message.changes) {
          if (change.op === 'insert' || change.op === 'update') this.store(change.table, change.data);
          else if (change.op === 'delete') this.rows.delete(this.key(change.table, change.old));
          else for (const key of [...this.rows.keys()]) if (key.startsWith(`${change.table}:`)) this.rows.delete(key); // truncate
        }
        this.position = message.position;
        this.ack(message.position);
        return;
      case 'scope_removed':
        for (const [key, row] of this.rows) {
          const table = key.slice(0, key.indexOf(':'));
          if (row[this.tables.get(table)!.scope] === message.workspaceId) this.rows.delete(key);
        }
        this.workspaces = this.workspaces.filter((workspace) => workspace !== message.workspaceId);
        return;
      case 'up_to_date':
        this.position = message.position;
        return;
      case 'write_result':
        // applied / rejected: the server's row becomes ours; error: the change is dropped.
        for (const result of message.results) {
          const table = this.unanswered.get(result.changeId)!;
          this.unanswered.delete(result.changeId);
          if (result.row) this.store(table, result.row);
        }
        return;
      case 'error':
        throw new Error(`the server answered ${message.code}: ${message.message}`);
    }
  }

  private store(table: string, row: Row): void {
    for (const column of ['created_at', 'updated_at']) if (typeof row[column] === 'string') this.timestamps.push(row[column] as string);
    if (typeof row.hlc === 'string') this.observe(row.hlc);
    this.rows.set(this.key(table, row), row);
  }

  private ack(position: string): void {
    this.socket!.send(JSON.stringify({ type: 'sync_ack', position }));
  }

  /** HLC rules: a row's hlc newer than the last one makes it the last. */
  private observe(hlc: string): void {
    const [wall, counter] = hlc.split(':').map(Number) as [number, number];
    if (wall > this.last.wall || (wall === this.last.wall && counter > this.last.counter)) this.last = { wall, counter };
  }

  /** HLC rules: the wall clock if it moved on, else the same wall time and the next counter. */
  nextHlc(): string {
    const now = Date.now();
    this.last = now > this.last.wall ? { wall: now, counter: 0 } : { wall: this.last.wall, counter: this.last.counter + 1 };
    return `${String(this.last.wall).padStart(15, '0')}:${String(this.last.counter).padStart(6, '0')}:${this.clientId}`;
  }

  write(requestId: string, changes: Array<{ changeId: string; table: string } & Record<string, unknown>>): void {
    for (const change of changes) this.unanswered.set(change.changeId, change.table);
    this.socket!.send(JSON.stringify({ type: 'write', requestId, changes }));
  }
}

describe.each(postgresTargets())('a client written from docs/protocol.md alone ($name)', (target) => {
  let db: TestDatabase;
  let server: WalsyncServer;
  let seed: Awaited<ReturnType<typeof seedWorkspaces>>;

  /** What the server holds in alice's scope, as rows keyed like the client's replica. */
  const serverScope = async (client: MinimalClient, workspaces: string[]) => {
    const expected = new Map<string, Row>();
    for (const [table, { scope }] of client.tables) {
      const rows = await db.query<{ row: Row }>(`SELECT row_to_json(t.*) AS row FROM ${table} t WHERE ${scope}::text = ANY($1::text[])`, [workspaces]);
      for (const { row } of rows) expected.set(client.key(table, row), row);
    }
    return expected;
  };
  /** Rows compared as values (a timestamp's text depends on the reading session's time zone). */
  const normalised = (rows: Map<string, Row>) =>
    Object.fromEntries(
      [...rows].map(([key, row]) => [
        key,
        Object.fromEntries(Object.entries(row).map(([column, value]) => [column, typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value) ? new Date(value).getTime() : value])),
      ]),
    );

  beforeAll(async () => {
    db = await startDatabase(target);
    server = await startServer(db.url);
    seed = await seedWorkspaces(db);
    await db.query(`INSERT INTO task (workspace_id, project_id, title) SELECT $1, $2, 'seeded ' || g FROM generate_series(1, 50) g`, [seed.workspaces.shared, seed.projects.launch]);
  });
  afterAll(async () => {
    await server?.stop();
    await db?.dispose();
  });

  it('hydrates, writes, follows, resumes and ends equal to the server', async () => {
    const tables = documentedTables();
    expect([...tables.keys()]).toEqual(['workspace', 'workspace_member', 'project', 'task', 'comment']);
    const client = new MinimalClient(tables, `mini-${target.name.replace(/\W/g, '')}`, jwt(seed.users.alice, TEST_JWT_SECRET));
    const aliceScope = [seed.workspaces.shared];

    // Hydrate: welcome, a snapshot, then up_to_date.
    await client.connect(server.url);
    await client.run((message) => message.type === 'up_to_date');
    expect(client.workspaces).toEqual(aliceScope);
    expect(normalised(client.rows)).toEqual(normalised(await serverScope(client, aliceScope)));

    // Write, and know from positions when the write has passed.
    const id = randomUUID();
    client.write('w1', [
      { changeId: randomUUID(), table: 'task', op: 'insert', pk: { id }, data: { workspace_id: seed.workspaces.shared, project_id: seed.projects.launch, title: 'from the minimal client' }, hlc: client.nextHlc() },
    ]);
    const answer = await client.run((message) => message.type === 'write_result');
    expect(answer.results).toMatchObject([{ status: 'applied', lsn: expect.any(String), row: { id, title: 'from the minimal client' } }]);
    const lsn = positionValue(answer.results[0].lsn);
    await client.run((message) => (message.type === 'changes' || message.type === 'up_to_date') && positionValue(message.position) >= lsn);

    // Others' writes, by SQL: an insert, an update and a hard delete.
    const [{ id: doomed }] = (await db.query<{ id: string }>(`SELECT id FROM task WHERE title = 'seeded 1'`)) as [{ id: string }];
    await db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, 'by sql')`, [seed.workspaces.shared, seed.projects.launch]);
    await db.query(`UPDATE task SET status = 'done' WHERE title = 'seeded 2'`);
    await db.query(`DELETE FROM task WHERE id = $1`, [doomed]);
    await client.run((message) => message.type === 'changes' && message.changes.some((change: Message) => change.op === 'delete'));
    expect(normalised(client.rows)).toEqual(normalised(await serverScope(client, aliceScope)));

    // Away: the server moves on; back with the stored position and workspaces.
    await client.disconnect();
    await db.query(`UPDATE task SET title = 'renamed while away' WHERE title = 'seeded 3'`);
    await db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'while away')`, [seed.workspaces.shared, id, seed.users.bob]);
    // (up_to_date covers what the server has captured; give capture its moment, as time away would.)
    await waitFor('capture', async () => (await db.query(`SELECT 1 FROM change_history WHERE table_name = 'comment'`)).length === 1);
    await client.connect(server.url);
    await client.run((message) => message.type === 'up_to_date');
    expect(normalised(client.rows)).toEqual(normalised(await serverScope(client, aliceScope)));
    expect([...client.rows.values()].some((row) => row.title === 'renamed while away')).toBe(true);

    // The values are as documented.
    expect(client.timestamps.length).toBeGreaterThan(50);
    expect(client.timestamps.filter((value) => !DOCUMENTED_TIMESTAMP.test(value))).toEqual([]);
    await client.disconnect();
  });
});
