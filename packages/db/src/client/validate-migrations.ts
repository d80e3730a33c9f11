import { WalsyncError } from '../errors';
import { formatIssues } from '../rules/validation';
import { type ExtractedMigration, ExtractedMigrationSchema, migrationChecksum } from '../schema/migration';

/**
 * Checks one migration that arrived as data (a file, a server message): its shape, and that its
 * checksum matches its SQL, so a hand-edited or corrupt copy is refused before anything runs.
 * `source` names where it came from, for the message.
 */
export function validateMigration(value: unknown, source: string): ExtractedMigration {
  const parsed = ExtractedMigrationSchema.safeParse(value);
  if (!parsed.success) {
    throw new WalsyncError(
      'MIGRATION_FILE',
      `${source} is not a valid extracted migration: ${formatIssues(parsed.error, 'the value')}. Run "yarn build" to extract it again.`,
      { source },
    );
  }
  const migration = parsed.data;
  const expected = migrationChecksum(migration.name, migration.up);
  if (expected !== migration.checksum) {
    throw new WalsyncError(
      'MIGRATION_FILE',
      `${source} was changed after extraction: its checksum ${migration.checksum} does not match its SQL (${expected}). ` +
        `Edit the migration's TypeScript source, never the extracted file, and run "yarn build".`,
      { source, migration: migration.name },
    );
  }
  if (Number(migration.name.slice(-13)) !== migration.timestamp) {
    throw new WalsyncError('MIGRATION_FILE', `${source}: timestamp ${migration.timestamp} does not match the name ${migration.name}.`, {
      source,
      migration: migration.name,
    });
  }
  return migration;
}

/** Validates a whole ordered list: each migration, unique names, strictly increasing timestamps. */
export function validateMigrationList(values: unknown, source = 'the migration list'): ExtractedMigration[] {
  if (!Array.isArray(values)) {
    throw new WalsyncError('MIGRATION_FILE', `${source} must be an array of extracted migrations.`, { source });
  }
  const migrations = values.map((value, index) => validateMigration(value, `${source}[${index}]`));
  migrations.forEach((migration, index) => {
    const previous = migrations[index - 1];
    if (previous && previous.timestamp >= migration.timestamp) {
      throw new WalsyncError(
        'MIGRATION_ORDER',
        `${source}: ${migration.name} must come after ${previous.name} by timestamp, and each migration may appear once.`,
        { source, migration: migration.name },
      );
    }
  });
  return migrations;
}
