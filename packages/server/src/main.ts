import path from 'node:path';
import { defaultLocalDataDir, openDatabase, runServerMigrations } from '@walsync/db/server';
import { Command, CommanderError } from 'commander';
import pg from 'pg';
import pino from 'pino';
import { loadConfig } from './config';
import { connectionConfig } from './connection';
import { DEMO_USERS, seedDemo } from './demo/seed';
import { assertCaptureReady } from './history/server-schema';
import { WalsyncServer } from './walsync-server';

interface Flags {
  demo: boolean;
  seed: boolean;
}

function parseFlags(argv: string[]): Flags {
  const program = new Command('walsync-server')
    .description('The walsync server: capture, the write API and sync sessions over one Postgres.')
    .option('--demo', 'also serve the demo task board at / with the development login (yarn start)', false)
    .option('--seed', 'seed the demo users, workspaces and tasks (done anyway for the embedded Postgres with --demo)', false)
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  try {
    program.parse(argv, { from: 'node' });
  } catch (error) {
    if (error instanceof CommanderError && error.exitCode === 0) process.exit(0);
    throw new Error(`bad arguments: ${(error as Error).message.replace(/^error: /, '')}`);
  }
  return program.opts<Flags>();
}

/** Runs `work` over a connection of its own (named `name` in pg_stat_activity), closed afterwards. */
async function onOwnConnection<T>(url: string, name: string, work: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ ...connectionConfig(url, name), max: 1 });
  try {
    return await work(pool);
  } finally {
    await pool.end();
  }
}

/**
 * The walsync server process: DATABASE_URL (or a local Postgres in WALSYNC_DATA_DIR), migrated on
 * start, then capture, the write API and HTTP on PORT. SIGTERM/SIGINT stop it cleanly.
 */
async function main(): Promise<void> {
  const flags = parseFlags(process.argv);
  const config = loadConfig();
  const log = pino({ level: config.logLevel, base: { pid: process.pid } });
  if (config.usingDevSecret) log.warn('WALSYNC_JWT_SECRET is not set: using the development secret (refused when NODE_ENV=production)');

  const database = await openDatabase({
    dataDir: config.dataDir ?? defaultLocalDataDir(path.resolve(__dirname, '../../../.walsync/postgres')),
    env: config.databaseUrl ? { DATABASE_URL: config.databaseUrl } : { WALSYNC_PG_BIN_DIR: process.env.WALSYNC_PG_BIN_DIR },
  });
  let server: WalsyncServer | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    stopping ??= (async () => {
      log.info({ signal }, 'stopping');
      await server?.stop();
      await database.stop();
    })()
      .catch((error) => log.error({ err: error }, 'stopping failed'))
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    // A Postgres capture cannot read is refused before the migrations change it.
    await onOwnConnection(database.url, 'walsync-check', assertCaptureReady);
    const applied = await runServerMigrations(database.url);
    if (applied.length > 0) log.info({ applied }, 'applied migrations');
    if (flags.seed || (flags.demo && !config.databaseUrl)) log.info({ demo: await onOwnConnection(database.url, 'walsync-seed', seedDemo) }, 'demo data');
    server = await WalsyncServer.start({
      databaseUrl: database.url,
      port: config.port,
      host: config.host,
      jwtSecret: config.jwtSecret,
      slotName: config.slotName,
      maxClockSkewMs: config.maxClockSkewMs,
      snapshots: config.snapshots,
      log,
      app: flags.demo ? { staticDirs: [path.resolve(__dirname, '../../demo/dist'), path.resolve(__dirname, '../../web/dist')], devLogin: config.nodeEnv !== 'production' } : undefined,
    });
    log.info({ url: server.url, database: database.description, role: server.capture.role }, 'walsync server ready');
    if (flags.demo) {
      const shown = `http://localhost:${new URL(server.url).port}/`;
      const lines = [``, `walsync demo: ${shown}`];
      if (config.nodeEnv === 'production') lines.push('  (the development login is off: NODE_ENV=production)');
      else for (const user of DEMO_USERS) lines.push(`  sign in as ${user.name.padEnd(5)}: ${shown}?user=${user.email}`);
      lines.push(`  alice and bob share the Acme workspace; carol has her own. Ctrl+C stops.`, ``);
      console.log(lines.join('\n'));
    }
  } catch (error) {
    await database.stop();
    throw error;
  }
}

main().catch((error) => {
  console.error(`walsync server failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
