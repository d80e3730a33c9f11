import path from 'node:path';
import pg from 'pg';
import { WalsyncError } from '../errors';
import { extractMigrations, type MigrationClass } from '../extraction/extract';
import { migrations as listedMigrations } from '../migrations';
import { removeFromCatalog, storeCatalog } from '../server/catalog';
import { readExtractedMigrations, writeExtractedMigrations } from '../server/extracted-files';
import { appliedServerMigrations, revertLastServerMigration, runServerMigrations, serverMigrationStatus } from '../server/migration-runner';
import { diffEntitiesAgainstMigrations } from '../server/schema-diff';
import {
  addMigrationSource,
  assertMigrationName,
  findMigrationSource,
  nextTimestamp,
  removeMigrationSource,
} from './migration-files';
import { migrationTemplate } from './migration-template';
import { extractedMigrationsDir, packageRoot } from './paths';

type Print = (line: string) => void;
export interface CommandContext {
  databaseUrl(): Promise<string>;
  print: Print;
}

const relative = (file: string) => path.relative(packageRoot, file);

/** Extracts the given migrations into dist/migrations and says so. */
async function extractTo(migrationClasses: MigrationClass[], print: Print): Promise<void> {
  const extracted = await extractMigrations(migrationClasses);
  writeExtractedMigrations(extractedMigrationsDir, extracted);
  print(`Extracted ${extracted.length} migration(s) to ${relative(extractedMigrationsDir)}/`);
}

/** migration:generate <Name> [--check]: a migration with the SQL that brings the schema up to the entities. */
export async function generate(context: CommandContext, rawName: string | undefined, options: { check?: boolean }): Promise<number> {
  const name = options.check ? 'Check' : assertMigrationName(rawName);
  const diff = await diffEntitiesAgainstMigrations(await context.databaseUrl(), listedMigrations);
  if (options.check) {
    if (diff.up.length === 0) {
      context.print('No changes: the migrations match the entities.');
      return 0;
    }
    context.print(`The entities differ from the migrations; "yarn migration:generate <Name>" would add:\n${diff.up.map((query) => `  ${query.sql};`).join('\n')}`);
    return 1;
  }
  if (diff.up.length === 0) {
    context.print('No changes: the migrations already match the entities, so there is nothing to generate. Use "yarn migration:create <Name>" for an empty migration.');
    return 1;
  }
  const timestamp = nextTimestamp();
  const source = addMigrationSource(name, timestamp, migrationTemplate(`${name}${timestamp}`, diff.up, diff.down));
  context.print(`Generated ${relative(source.file)} (${diff.up.length} statement(s) up, ${diff.down.length} down) and listed it in src/migrations/index.ts`);
  await extractTo([...listedMigrations, requireMigration(source.file, source.className)], context.print);
  return 0;
}

/** migration:create <Name>: an empty migration to fill in by hand. */
export async function create(context: CommandContext, rawName: string | undefined): Promise<number> {
  const name = assertMigrationName(rawName);
  const timestamp = nextTimestamp();
  const source = addMigrationSource(name, timestamp, migrationTemplate(`${name}${timestamp}`, [], []));
  context.print(`Created ${relative(source.file)} and listed it in src/migrations/index.ts; write its SQL with queryRunner.query() only.`);
  await extractTo([...listedMigrations, requireMigration(source.file, source.className)], context.print);
  return 0;
}

function requireMigration(file: string, className: string): MigrationClass {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require(file) as Record<string, MigrationClass>)[className]!;
}

/** migration:run: applies pending migrations to the server and refreshes the client_migration catalog. */
export async function runPending(context: CommandContext): Promise<number> {
  const applied = await runServerMigrations(await context.databaseUrl());
  context.print(applied.length ? `Applied ${applied.join(', ')}` : 'No pending migrations: the database is up to date.');
  context.print('Stored the migrations in client_migration.');
  return 0;
}

/** migration:revert: reverts the server's latest migration. */
export async function revert(context: CommandContext): Promise<number> {
  const reverted = await revertLastServerMigration(await context.databaseUrl());
  context.print(reverted ? `Reverted ${reverted}` : 'No migration is applied, so there is nothing to revert.');
  return 0;
}

/** migration:show: every migration, [X] when the server has applied it. */
export async function show(context: CommandContext): Promise<number> {
  const statuses = await serverMigrationStatus(await context.databaseUrl());
  for (const status of statuses) context.print(`${status.applied ? '[X]' : '[ ]'} ${status.name}`);
  const pending = statuses.filter((status) => !status.applied).length;
  context.print(`${statuses.length} migration(s), ${pending} pending`);
  return 0;
}

/** migration:cleanup <Name>: removes a migration the server has not applied, with its extracted SQL and catalog row. */
export async function cleanup(context: CommandContext, rawName: string | undefined): Promise<number> {
  if (!rawName) throw new WalsyncError('CLI_USAGE', 'migration:cleanup needs the name of the migration to remove.', {});
  const source = findMigrationSource(rawName);
  const url = await context.databaseUrl();
  if ((await appliedServerMigrations(url)).includes(source.className)) {
    throw new WalsyncError(
      'CLI_USAGE',
      `${source.className} is applied to the database, so it cannot be cleaned up. Revert it first ("yarn migration:revert") or keep it.`,
      { migration: source.className },
    );
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await removeFromCatalog(client, source.className);
  } finally {
    await client.end();
  }
  removeMigrationSource(source);
  context.print(`Removed ${relative(source.file)}, its entry in src/migrations/index.ts and its catalog row`);
  await extractTo(listedMigrations.filter((migration) => migration.name !== source.className), context.print);
  return 0;
}

/** migration:store-sql: stores dist/migrations in the server's client_migration catalog. */
export async function storeSql(context: CommandContext): Promise<number> {
  const migrations = readExtractedMigrations(extractedMigrationsDir);
  const client = new pg.Client({ connectionString: await context.databaseUrl() });
  await client.connect();
  try {
    const result = await storeCatalog(client, migrations);
    context.print(
      `client_migration: ${result.inserted.length} added${result.inserted.length ? ` (${result.inserted.join(', ')})` : ''}, ${result.unchanged.length} unchanged`,
    );
  } finally {
    await client.end();
  }
  return 0;
}
