import { sha256Hex } from '../rules/digest';
import { z } from 'zod';

/** One statement of a migration, as the migration's `up()` or `down()` issued it. */
export const MigrationQuerySchema = z.object({
  sql: z.string().min(1),
  params: z.array(z.unknown()),
});
export type MigrationQuery = z.infer<typeof MigrationQuerySchema>;

/**
 * A migration as data: what `dist/migrations/<timestamp>-<Name>.json` holds, what the server's
 * `client_migration` catalog stores and what clients apply. `name` is the TypeORM migration
 * name (class name ending in its 13-digit timestamp).
 */
export const ExtractedMigrationSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\d{13}$/, 'a TypeORM migration name ends in a 13-digit timestamp'),
  timestamp: z.number().int().positive(),
  up: z.array(MigrationQuerySchema),
  down: z.array(MigrationQuerySchema),
  checksum: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest'),
});
export type ExtractedMigration = z.infer<typeof ExtractedMigrationSchema>;

/** sha256 over the migration's name and its up statements (SQL and parameters). */
export function migrationChecksum(name: string, up: MigrationQuery[]): string {
  return sha256Hex(JSON.stringify([name, up]));
}

/** The file name a migration is extracted to, inside `dist/migrations/`. */
export function migrationFileName(migration: Pick<ExtractedMigration, 'name' | 'timestamp'>): string {
  return `${migration.timestamp}-${migration.name.slice(0, -13)}.json`;
}
