import { type ExtractedMigration, type MigrationQuery, migrationChecksum } from '@walsync/db';

/** A migration as data, with a correct checksum, for tests that need migrations of their own. */
export function migration(name: string, timestamp: number, up: string[], down: string[] = []): ExtractedMigration {
  const fullName = `${name}${timestamp}`;
  const asQueries = (statements: string[]): MigrationQuery[] => statements.map((sql) => ({ sql, params: [] }));
  return { name: fullName, timestamp, up: asQueries(up), down: asQueries(down), checksum: migrationChecksum(fullName, asQueries(up)) };
}

/** Three migrations whose every application leaves a trace: a counter row per up(). */
export const counted = [
  migration('CreateCounter', 1700000000001, ['CREATE TABLE counter (migration text NOT NULL)'], ['DROP TABLE counter']),
  migration('CountSecond', 1700000000002, [`INSERT INTO counter VALUES ('second')`], [`DELETE FROM counter WHERE migration = 'second'`]),
  migration('CountThird', 1700000000003, [`INSERT INTO counter VALUES ('third')`], [`DELETE FROM counter WHERE migration = 'third'`]),
];
