import type { MigrationInterface, QueryRunner } from 'typeorm';
import { checkMigrationsOnPGlite, extractMigration, extractMigrations, isWalsyncError, migrationChecksum, migrations, readExtractedMigrations, storeCatalog, writeExtractedMigrations } from '@walsync/db/server';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir, startPostgres } from '@walsync/test-support';

class AddThing1700000000001 implements MigrationInterface {
  async up(queryRunner: QueryRunner) {
    await queryRunner.query(`CREATE TABLE thing (id int)`);
    await queryRunner.query(`INSERT INTO thing VALUES ($1)`, [7]);
  }
  async down(queryRunner: QueryRunner) {
    await queryRunner.query(`DROP TABLE thing`);
  }
}

class UsesSchemaBuilder1700000000002 implements MigrationInterface {
  async up(queryRunner: QueryRunner) {
    await queryRunner.query(`SELECT 1`);
    await queryRunner.createTable({ name: 'other' } as never);
  }
  async down() {}
}

describe('SQL extraction', () => {
  it('records every query() of up() and down() with its parameters, and checksums name and up SQL', async () => {
    const extracted = await extractMigration(AddThing1700000000001);
    expect(extracted).toEqual({
      name: 'AddThing1700000000001',
      timestamp: 1700000000001,
      up: [
        { sql: 'CREATE TABLE thing (id int)', params: [] },
        { sql: 'INSERT INTO thing VALUES ($1)', params: [7] },
      ],
      down: [{ sql: 'DROP TABLE thing', params: [] }],
      checksum: migrationChecksum('AddThing1700000000001', extracted.up),
    });
    expect(extracted.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('checks every migration on PGlite at build time, naming the migration and the statement a client could not run', async () => {
    await expect(checkMigrationsOnPGlite(await extractMigrations(migrations))).resolves.toBeUndefined();
    const search = { name: 'AddSearch1900000000003', timestamp: 1900000000003, up: [{ sql: 'CREATE TABLE note (body text)', params: [] }, { sql: 'CREATE EXTENSION pg_trgm', params: [] }], down: [], checksum: '' };
    await expect(checkMigrationsOnPGlite([...(await extractMigrations(migrations)), search])).rejects.toMatchObject({
      code: 'MIGRATION_FAILED',
      message: expect.stringMatching(/^AddSearch1900000000003, statement 2 \(CREATE EXTENSION pg_trgm\), fails on PGlite/),
    });
  });

  it('refuses a migration that uses anything but queryRunner.query(), naming the migration and the call', async () => {
    const attempt = extractMigration(UsesSchemaBuilder1700000000002);
    await expect(attempt).rejects.toSatisfy((error: unknown) => isWalsyncError(error, 'MIGRATION_EXTRACTION'));
    await expect(attempt).rejects.toThrow(/Migration UsesSchemaBuilder1700000000002 uses queryRunner\.createTable/);
  });

  it('refuses a class whose name does not end in a timestamp, and migrations listed out of order', async () => {
    class NoTimestamp implements MigrationInterface {
      async up() {}
      async down() {}
    }
    await expect(extractMigration(NoTimestamp)).rejects.toThrow(/must end its name in a 13-digit timestamp/);
    await expect(extractMigrations([AddThing1700000000001, UsesSchemaBuilder1700000000002])).rejects.toThrow(/queryRunner\.createTable/);
    class Later1700000000005 extends AddThing1700000000001 {}
    class Earlier1700000000004 extends AddThing1700000000001 {}
    await expect(extractMigrations([Later1700000000005, Earlier1700000000004])).rejects.toThrow(/timestamp is not later/);
  });
});

describe('extracted migration files and the server catalog', () => {
  const scratch = scratchDir('extracted');
  let postgres: Awaited<ReturnType<typeof startPostgres>>;
  let client: pg.Client;
  beforeAll(async () => {
    postgres = await startPostgres();
    client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
  });
  afterAll(async () => {
    await client?.end();
    await postgres?.dispose();
    scratch.remove();
  });

  it('round-trips through dist/migrations files and refuses corrupt or hand-edited ones', async () => {
    const dir = path.join(scratch.dir, 'migrations');
    const extracted = await extractMigrations(migrations);
    const [file] = writeExtractedMigrations(dir, extracted);
    expect(readExtractedMigrations(dir)).toEqual(extracted);

    const full = path.join(dir, file!);
    const original = readFileSync(full, 'utf8');
    writeFileSync(full, original.replace('CREATE TABLE', 'CREATE UNLOGGED TABLE'));
    expect(() => readExtractedMigrations(dir)).toThrow(/was changed after extraction: its checksum .* does not match its SQL/);
    writeFileSync(full, original.slice(0, 100));
    expect(() => readExtractedMigrations(dir)).toThrow(/is not valid JSON/);
    writeFileSync(full, JSON.stringify({ ...JSON.parse(original), up: 'DROP TABLE x' }));
    expect(() => readExtractedMigrations(dir)).toThrow(/up: .*expected array/);
    writeFileSync(full, original);
    expect(readExtractedMigrations(dir)).toEqual(extracted);
  });

  it('stores the catalog idempotently and refuses, whole, a migration whose checksum changed', async () => {
    const extracted = await extractMigrations(migrations);
    expect(await storeCatalog(client, extracted)).toEqual({ inserted: extracted.map((m) => m.name), unchanged: [] });
    expect(await storeCatalog(client, extracted)).toEqual({ inserted: [], unchanged: extracted.map((m) => m.name) });

    const changedUp = [{ sql: 'SELECT 2', params: [] }];
    const changed = { ...extracted[0]!, up: changedUp, checksum: migrationChecksum(extracted[0]!.name, changedUp) };
    const added = { ...extracted[0]!, name: 'Later9999999999999', timestamp: 9999999999999 };
    const attempt = storeCatalog(client, [changed, added]);
    await expect(attempt).rejects.toSatisfy((error: unknown) => isWalsyncError(error, 'CATALOG_CHECKSUM'));
    const rows = await client.query(`SELECT "migrationName", checksum FROM client_migration ORDER BY "timestamp"`);
    expect(rows.rows).toEqual(extracted.map((m) => ({ migrationName: m.name, checksum: m.checksum })));
  });
});
