import { PGlite } from '@electric-sql/pglite';
import { WalsyncError, messageOf } from '../errors';
import type { ExtractedMigration } from '../schema/migration';

/**
 * Runs every migration's up SQL, statement by statement, on a scratch in-memory PGlite (the engine
 * every client runs), so a migration that a client could never apply (an extension PGlite lacks, a
 * server-only feature) fails the build, naming the migration and the statement, instead of failing
 * first on a user's device. `yarn build` runs it.
 *
 * @example
 *   await checkMigrationsOnPGlite(extracted); // throws MIGRATION_FAILED naming "AddSearch…, statement 2"
 */
export async function checkMigrationsOnPGlite(migrations: ExtractedMigration[]): Promise<void> {
  const db = await PGlite.create();
  try {
    for (const migration of migrations) {
      for (const [index, query] of migration.up.entries()) {
        try {
          if (query.params.length === 0) await db.exec(query.sql);
          else await db.query(query.sql, query.params);
        } catch (error) {
          const sql = query.sql.length > 200 ? `${query.sql.slice(0, 200)}…` : query.sql;
          throw new WalsyncError(
            'MIGRATION_FAILED',
            `${migration.name}, statement ${index + 1} (${sql}), fails on PGlite, the engine every client runs: ${messageOf(error)}. ` +
              `Clients could never apply it; change the migration (for server-only objects, keep them out of the synced schema).`,
            { migration: migration.name, statement: index + 1 },
            error,
          );
        }
      }
    }
  } finally {
    await db.close();
  }
}
