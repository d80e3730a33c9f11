import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateMigration, validateMigrationList } from '../client/validate-migrations';
import { WalsyncError, messageOf } from '../errors';
import { type ExtractedMigration, migrationFileName } from '../schema/migration';

/** Writes `<timestamp>-<Name>.json` per migration and removes files of migrations that no longer exist. */
export function writeExtractedMigrations(dir: string, migrations: ExtractedMigration[]): string[] {
  mkdirSync(dir, { recursive: true });
  const written = migrations.map((migration) => {
    const file = migrationFileName(migration);
    writeFileSync(path.join(dir, file), `${JSON.stringify(migration, null, 2)}\n`);
    return file;
  });
  for (const file of readdirSync(dir)) {
    if (file.endsWith('.json') && !written.includes(file)) rmSync(path.join(dir, file));
  }
  return written;
}

/**
 * Reads and validates every extracted migration in `dir`: shape, checksum against the SQL (a
 * hand-edited file is refused), file name, order.
 */
export function readExtractedMigrations(dir: string): ExtractedMigration[] {
  let files: string[];
  try {
    files = readdirSync(dir).filter((file) => file.endsWith('.json')).sort();
  } catch (error) {
    throw new WalsyncError('MIGRATION_FILE', `Cannot read extracted migrations in ${dir} (${messageOf(error)}); run "yarn build" first.`, { dir });
  }
  const migrations = files.map((file) => {
    const source = path.join(dir, file);
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(source, 'utf8'));
    } catch (error) {
      throw new WalsyncError('MIGRATION_FILE', `${source} is not valid JSON (${messageOf(error)}); run "yarn build" to extract it again.`, { source });
    }
    const migration = validateMigration(value, source);
    if (migrationFileName(migration) !== file) {
      throw new WalsyncError('MIGRATION_FILE', `${source} holds migration ${migration.name}, which belongs in ${migrationFileName(migration)}.`, {
        source,
        migration: migration.name,
      });
    }
    return migration;
  });
  return validateMigrationList(migrations, dir);
}
