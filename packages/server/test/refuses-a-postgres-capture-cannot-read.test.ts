import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { LocalPostgres, runServerMigrations } from '@walsync/db/server';
import { WalsyncServer } from '@walsync/server';
import { TEST_JWT_SECRET, postgresTargets, scratchDir } from '@walsync/test-support';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const MAIN = path.resolve(__dirname, '../dist/main.cjs');

/**
 * A stock Postgres runs with `wal_level = replica`: the first thing a new user points DATABASE_URL
 * at. The server refuses it at once, naming each setting and its fix, and changes nothing in it
 * (before, it ran the migrations and then stopped at its replication slot with Postgres' words).
 */
describe.each(postgresTargets())('a Postgres capture cannot read ($name)', (target) => {
  const scratch = scratchDir('no-logical');
  let postgres: LocalPostgres;
  const query = async (sql: string) => {
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  };
  beforeAll(async () => {
    postgres = await LocalPostgres.start({ dataDir: path.join(scratch.dir, 'data'), binDir: target.binDir, settings: { wal_level: 'replica', max_replication_slots: 0 } });
  });
  afterAll(async () => {
    await postgres?.stop();
    scratch.remove();
  });

  it('the server process exits at once, naming wal_level and max_replication_slots with their fixes, and writes nothing', async () => {
    const result = spawnSync(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH, DATABASE_URL: postgres.url, PORT: '0', LOG_LEVEL: 'silent', WALSYNC_JWT_SECRET: TEST_JWT_SECRET },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.status).toBe(1);
    const output = `${result.stdout}${result.stderr}`;
    expect(output).toContain("walsync server failed to start: this Postgres cannot feed walsync's capture, and nothing was changed in it");
    expect(output).toContain('wal_level is replica');
    expect(output).toContain('ALTER SYSTEM SET wal_level = logical and restart Postgres');
    expect(output).toContain('max_replication_slots is 0');
    expect(await query(`SELECT to_regclass('migrations') AS migrations, to_regclass('change_history') AS history`)).toEqual([{ migrations: null, history: null }]);
  });

  it('WalsyncServer.start refuses it with CAPTURE_NOT_READY before creating its tables, also over a migrated schema', async () => {
    await runServerMigrations(postgres.url);
    const start = WalsyncServer.start({ databaseUrl: postgres.url, port: 0, host: '127.0.0.1', jwtSecret: TEST_JWT_SECRET, slotName: 'walsync', maxClockSkewMs: 60_000, log: pino({ level: 'silent' }) });
    await expect(start).rejects.toMatchObject({ code: 'CAPTURE_NOT_READY', message: expect.stringContaining('wal_level is replica') });
    expect(await query(`SELECT to_regclass('change_history') AS history`)).toEqual([{ history: null }]);
  });
});
