import type { MigrationInterface } from 'typeorm';
import { WalsyncError, isWalsyncError, messageOf } from '../errors';
import { type ExtractedMigration, type MigrationQuery, migrationChecksum } from '../schema/migration';
import { recordingQueryRunner } from './recording-query-runner';

export type MigrationClass = new () => MigrationInterface;

/** The TypeORM name of a migration class and the timestamp its name ends in. */
export function migrationIdentity(migrationClass: MigrationClass): { name: string; timestamp: number } {
  const instance = new migrationClass();
  const name = instance.name ?? migrationClass.name;
  const timestamp = Number(name.slice(-13));
  if (!/\d{13}$/.test(name) || !Number.isSafeInteger(timestamp)) {
    throw new WalsyncError(
      'MIGRATION_EXTRACTION',
      `Migration class ${name} must end its name in a 13-digit timestamp (as "yarn migration:create" names it).`,
      { migration: name },
    );
  }
  return { name, timestamp };
}

/**
 * Runs a migration's `up()` and `down()` against a recording query runner and returns the
 * SQL as data, with its checksum. No database is involved.
 */
export async function extractMigration(migrationClass: MigrationClass): Promise<ExtractedMigration> {
  const { name, timestamp } = migrationIdentity(migrationClass);
  const record = async (direction: 'up' | 'down'): Promise<MigrationQuery[]> => {
    const recorded: MigrationQuery[] = [];
    try {
      await new migrationClass()[direction](recordingQueryRunner(name, recorded));
    } catch (error) {
      if (isWalsyncError(error)) throw error;
      throw new WalsyncError(
        'MIGRATION_EXTRACTION',
        `Migration ${name} failed in ${direction}() while its SQL was extracted: ${messageOf(error)}`,
        { migration: name, direction },
        error,
      );
    }
    return recorded;
  };
  const up = await record('up');
  const down = await record('down');
  return { name, timestamp, up, down, checksum: migrationChecksum(name, up) };
}

/** Extracts every migration, checking they are listed in timestamp order with unique names. */
export async function extractMigrations(migrationClasses: MigrationClass[]): Promise<ExtractedMigration[]> {
  const extracted: ExtractedMigration[] = [];
  for (const migrationClass of migrationClasses) {
    const migration = await extractMigration(migrationClass);
    const previous = extracted.at(-1);
    if (previous && previous.timestamp >= migration.timestamp) {
      throw new WalsyncError(
        'MIGRATION_ORDER',
        `Migration ${migration.name} is listed after ${previous.name} but its timestamp is not later; ` +
          `keep src/migrations/index.ts in timestamp order with one entry per migration.`,
        { migration: migration.name, previous: previous.name },
      );
    }
    extracted.push(migration);
  }
  return extracted;
}
