import type { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI, isWalsyncError, migrations as schemaMigrations } from '@walsync/db';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { counted, migration } from './support/migrations';
import { freshPGlite } from './support/pglite';

describe('client MigrationAPI on PGlite', () => {
  let db: PGlite;
  beforeEach(async () => {
    db = await freshPGlite();
  });
  afterEach(async () => {
    await db.close();
  });

  const counterRows = async () => (await db.query<{ migration: string }>('SELECT migration FROM counter ORDER BY 1')).rows.map((row) => row.migration);

  it('applies each migration exactly once under 10 concurrent migrateToLatest() calls', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => createMigrationAPI(db, { migrations: counted }).migrateToLatest()));
    expect(results.every((result) => result.error === undefined)).toBe(true);
    for (const each of counted) {
      const successes = results.flatMap((result) => result.results).filter((item) => item.migrationName === each.name && item.status === 'Success');
      expect(successes).toHaveLength(1);
    }
    expect(await counterRows()).toEqual(['second', 'third']);
    const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM client_migration WHERE "clientApplied" AND "retryCount" = 0`);
    expect(rows.rows[0]!.n).toBe(3);
  });

  it('rolls a failing migration back whole, records error and retryCount, and runs nothing after it', async () => {
    const failing = migration('Broken', 1700000000002, ['CREATE TABLE half_done (id int)', 'SELECT no_such_function()']);
    const api = createMigrationAPI(db, { migrations: [counted[0]!, failing, counted[2]!] });

    const first = await api.migrateToLatest();
    expect(first.error?.code).toBe('MIGRATION_FAILED');
    expect(first.error?.message).toContain('Broken1700000000002');
    expect(first.results.map((result) => result.status)).toEqual(['Success', 'Error', 'NotExecuted']);
    expect((await db.query(`SELECT to_regclass('half_done') AS t`)).rows[0]).toEqual({ t: null });
    expect(await counterRows()).toEqual([]);

    await api.migrateToLatest();
    const status = await api.getMigrationStatus();
    expect(status.map((each) => each.state)).toEqual(['applied', 'failed', 'pending']);
    expect(status[1]).toMatchObject({ retryCount: 2, error: expect.stringContaining('no_such_function') });
    expect((await api.getPendingMigrations()).map((each) => each.name)).toEqual([failing.name, counted[2]!.name]);
  });

  it('reports a changed checksum as drift and never re-applies it', async () => {
    await createMigrationAPI(db, { migrations: counted.slice(0, 2) }).migrateToLatest();
    const edited = migration('CountSecond', 1700000000002, [`INSERT INTO counter VALUES ('edited')`]);
    const api = createMigrationAPI(db, { migrations: [counted[0]!, edited, counted[2]!] });

    const status = await api.getMigrationStatus();
    expect(status[1]).toMatchObject({ state: 'drift', appliedChecksum: counted[1]!.checksum });
    const result = await api.migrateToLatest();
    expect(result.error?.code).toBe('MIGRATION_DRIFT');
    expect(result.error?.message).toContain('CountSecond1700000000002');
    expect(await counterRows()).toEqual(['second']);
  });

  it('applies one migration only in order, and rolls back only the latest', async () => {
    const api = createMigrationAPI(db, { migrations: counted });
    const outOfOrder = await api.applyMigration(counted[1]!.name);
    expect(outOfOrder.error?.code).toBe('MIGRATION_ORDER');
    expect((await api.applyMigration(counted[0]!.name)).results[0]!.status).toBe('Success');
    expect((await api.applyMigration(counted[1]!.name)).results[0]!.status).toBe('Success');

    expect((await api.rollbackMigration(counted[0]!.name)).error?.code).toBe('MIGRATION_ORDER');
    expect((await api.rollbackMigration(counted[2]!.name)).error?.message).toContain('not applied');
    expect((await api.rollbackMigration(counted[1]!.name)).results[0]!.status).toBe('Success');
    expect(await counterRows()).toEqual([]);
    expect((await api.getMigrationStatus()).map((each) => each.state)).toEqual(['applied', 'pending', 'pending']);
    expect((await api.applyMigration('Nope1700000000009')).error?.code).toBe('MIGRATION_UNKNOWN');
  });

  it('refuses migrations whose SQL does not match their checksum, before touching the database', async () => {
    const tampered = { ...counted[1]!, up: [{ sql: 'DROP TABLE counter', params: [] }] };
    let thrown: unknown;
    try {
      createMigrationAPI(db, { migrations: [counted[0]!, tampered] });
    } catch (error) {
      thrown = error;
    }
    expect(isWalsyncError(thrown, 'MIGRATION_FILE')).toBe(true);
    expect((thrown as Error).message).toMatch(/checksum .* does not match its SQL/);
    expect(() => createMigrationAPI(db, { migrations: [counted[1]!, counted[0]!] })).toThrow(/must come after/);
    expect(() => createMigrationAPI(db, { migrations: [{ name: 'x' }] as never })).toThrow(/not a valid extracted migration/);
  });

  it('reports a migration this database applied that the list does not know as unknown (a client newer than its server)', async () => {
    await createMigrationAPI(db, { migrations: counted }).migrateToLatest();
    const status = await createMigrationAPI(db, { migrations: counted.slice(0, 2) }).getMigrationStatus();
    expect(status.map((each) => [each.name, each.state])).toEqual([
      [counted[0]!.name, 'applied'],
      [counted[1]!.name, 'applied'],
      [counted[2]!.name, 'unknown'],
    ]);
  });

  it('checks an up-to-date database with a single query', async () => {
    const api = createMigrationAPI(db);
    expect((await api.migrateToLatest()).results.map((result) => result.status)).toEqual(schemaMigrations.map(() => 'Success'));
    const calls: string[] = [];
    const spied = new Proxy(db, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver);
        if (property === 'query' || property === 'exec' || property === 'transaction') {
          return (...args: unknown[]) => {
            calls.push(String(property));
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    expect(await createMigrationAPI(spied).migrateToLatest()).toEqual({ results: [] });
    expect(calls).toEqual(['query']);
  });
});
