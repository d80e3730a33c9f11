import { runServerMigrations } from '@walsync/db/server';
import pg from 'pg';
import { type PostgresTarget, startPostgres } from './postgres';

export { postgresTargets, type PostgresTarget } from './postgres';

/** A fresh, migrated Postgres of `target`, with a pool for the test's own SQL. */
export async function startDatabase(target: PostgresTarget) {
  const postgres = await startPostgres(target);
  await runServerMigrations(postgres.url);
  const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
  // An idle connection that Postgres' shutdown terminates is reported on the pool; here that is expected.
  pool.on('error', () => undefined);
  return {
    url: postgres.url,
    postgres,
    pool,
    async query<T extends pg.QueryResultRow = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
      return (await pool.query<T>(sql, params)).rows;
    },
    async dispose() {
      await pool.end();
      await postgres.dispose();
    },
  };
}

export type TestDatabase = Awaited<ReturnType<typeof startDatabase>>;

/** alice and bob share a workspace, carol is alone in another. */
export async function seedWorkspaces(db: TestDatabase) {
  const [alice, bob, carol] = await db.query<{ id: string }>(
    `INSERT INTO app_user (email, name) VALUES ('alice@demo.test', 'Alice'), ('bob@demo.test', 'Bob'), ('carol@demo.test', 'Carol') RETURNING id`,
  );
  const [shared, other] = await db.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('Shared'), ('Carol''s') RETURNING id`);
  await db.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member'), ($4, $5, 'owner')`, [
    shared!.id,
    alice!.id,
    bob!.id,
    other!.id,
    carol!.id,
  ]);
  const [project] = await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Launch') RETURNING id`, [shared!.id]);
  const [carolsProject] = await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'Secret') RETURNING id`, [other!.id]);
  return {
    users: { alice: alice!.id, bob: bob!.id, carol: carol!.id },
    workspaces: { shared: shared!.id, other: other!.id },
    projects: { launch: project!.id, secret: carolsProject!.id },
  };
}

/** Polls until `check` returns a value other than undefined/false, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
