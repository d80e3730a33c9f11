import { describeSyncedTables, migrationIdentity, migrations, runServerMigrations } from '@walsync/db/server';
import { Tokens } from '@walsync/server';
import pg from 'pg';
import type { QueryRunner } from 'typeorm';
import { WebSocket } from 'ws';
import { BENCH_SECRET, startServerProcess, withPostgres } from '../harness';
import { type Figure, median } from '../report';

/** The migration the benchmark applies to the running system: a nullable column on task. */
class BenchNote1900000000009 {
  name = 'BenchNote1900000000009';
  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "task" ADD "bench_note" text`);
  }
  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE "task" DROP COLUMN "bench_note"`);
  }
}

const CLIENTS = 100;
const ROWS_AFTER = 50;

interface Watched {
  socket: WebSocket;
  /** When the first welcome arrived. */
  welcomedAt: Promise<number>;
  /** When a welcome offering the benchmark's migration arrived. */
  offeredAt?: number;
  /** Titles of the rows written after the migration that arrived. */
  after: Set<string>;
}

/** A bare protocol client, live after its snapshot, that notes the welcome offering a migration and the rows after it. */
async function watch(serverUrl: string, token: string, clientId: string, schemaVersion: string | null): Promise<Watched> {
  const socket = new WebSocket(`${serverUrl.replace('http', 'ws')}/sync`);
  await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
  let live!: () => void;
  let welcomed!: (at: number) => void;
  const isLive = new Promise<void>((resolve) => (live = resolve));
  const watched: Watched = { socket, welcomedAt: new Promise<number>((resolve) => (welcomed = resolve)), after: new Set() };
  socket.on('message', (data) => {
    const message = JSON.parse(data.toString());
    if (message.type === 'welcome') {
      welcomed(performance.now());
      if (message.migrations.some((migration: { name: string }) => migration.name === 'BenchNote1900000000009')) watched.offeredAt ??= performance.now();
    }
    if (message.type === 'snapshot_end') live();
    if (message.type === 'changes') for (const change of message.changes) if (String(change.data?.title).startsWith('after ')) watched.after.add(change.data.title);
  });
  socket.send(JSON.stringify({ type: 'hello', protocol: 1, token, clientId, schemaVersion, position: null }));
  await isLive;
  return watched;
}

/**
 * `yarn bench schema`: a migration applied to a running system with 100 connected sessions. Timed
 * from `runServerMigrations` returning to the last session offered the migration (the second
 * `welcome`), and the rows written right after it counted at every session; then `hello` → `welcome`
 * for a client one migration behind.
 */
export async function schemaFigures(): Promise<Figure[]> {
  return withPostgres(async (url) => {
    const server = await startServerProcess(url);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const [workspace] = (await db.query(`INSERT INTO workspace (name) VALUES ('bench') RETURNING id`)).rows;
      const [project] = (await db.query(`INSERT INTO project (workspace_id, name) VALUES ($1, 'bench') RETURNING id`, [workspace.id])).rows;
      const [user] = (await db.query(`INSERT INTO app_user (email, name) VALUES ('schema@bench.test', 'bench') RETURNING id`)).rows;
      await db.query(`INSERT INTO workspace_member (workspace_id, user_id) VALUES ($1, $2)`, [workspace.id, user.id]);
      const token = await new Tokens(BENCH_SECRET).issue(user.id);
      const baseName = migrationIdentity(migrations.at(-1)!).name;
      const clients: Watched[] = [];
      for (let start = 0; start < CLIENTS; start += 50) {
        clients.push(...(await Promise.all(Array.from({ length: Math.min(50, CLIENTS - start) }, (_, index) => watch(server.url, token, `schema-${start + index}`, null)))));
      }

      const tables = await describeSyncedTables();
      await runServerMigrations(url, [...migrations, BenchNote1900000000009] as never, { capture: tables });
      const returned = performance.now();
      await db.query(`INSERT INTO task (workspace_id, project_id, title, bench_note) SELECT $1, $2, 'after ' || i, 'n' FROM generate_series(1, $3) i`, [workspace.id, project.id, ROWS_AFTER]);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && clients.some((client) => client.offeredAt === undefined || client.after.size < ROWS_AFTER)) await new Promise((resolve) => setTimeout(resolve, 5));
      const offered = clients.map((client) => client.offeredAt).filter((at): at is number => at !== undefined);
      const lost = clients.reduce((sum, client) => sum + (ROWS_AFTER - client.after.size), 0);
      for (const client of clients) client.socket.close();

      // A client one migration behind: hello → welcome (with the migration), twenty times.
      const welcomes: number[] = [];
      for (let i = 0; i < 20; i++) {
        const sent = performance.now();
        const behind = await watch(server.url, token, `behind-${i}`, baseName);
        welcomes.push((await behind.welcomedAt) - sent);
        behind.socket.close();
      }
      return [
        {
          issue: 14,
          name: `migration:run returning → all ${CLIENTS} connected sessions offered the migration`,
          value: offered.length === CLIENTS ? (Math.max(...offered) - returned) / 1000 : Number.NaN,
          unit: 's',
          goal: '<= 2',
          note: `${offered.length} of ${CLIENTS} offered; bare protocol sessions (the offer is a second welcome; applying it is the client's)`,
        },
        { issue: 14, name: `rows written right after the migration, lost across ${CLIENTS} sessions`, value: lost, unit: 'rows', goal: '<= 0', note: `${ROWS_AFTER} rows × ${CLIENTS} sessions` },
        { issue: 14, name: 'hello → welcome for a client one migration behind, p50', value: median(welcomes), unit: 'ms', goal: '<= 200', note: 'median of 20, socket open included' },
      ];
    } finally {
      await db.end();
      await server.stop();
    }
  });
}
