import path from 'node:path';
import { openDatabase, runServerMigrations } from '@walsync/db/server';
import pino from 'pino';
import { loadConfig } from './config';
import { WalsyncServer } from './walsync-server';

/**
 * The walsync server process: DATABASE_URL (or a local Postgres in WALSYNC_DATA_DIR), migrated on
 * start, then capture, the write API and HTTP on PORT. SIGTERM/SIGINT stop it cleanly.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const log = pino({ level: config.logLevel, base: { pid: process.pid } });
  if (config.usingDevSecret) log.warn('WALSYNC_JWT_SECRET is not set: using the development secret (refused when NODE_ENV=production)');

  const database = await openDatabase({
    dataDir: config.dataDir ?? path.resolve(__dirname, '../../../.walsync/postgres'),
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
    const applied = await runServerMigrations(database.url);
    if (applied.length > 0) log.info({ applied }, 'applied migrations');
    server = await WalsyncServer.start({
      databaseUrl: database.url,
      port: config.port,
      host: config.host,
      jwtSecret: config.jwtSecret,
      slotName: config.slotName,
      maxClockSkewMs: config.maxClockSkewMs,
      log,
    });
    log.info({ url: server.url, database: database.description, role: server.capture.role }, 'walsync server ready');
  } catch (error) {
    await database.stop();
    throw error;
  }
}

main().catch((error) => {
  console.error(`walsync server failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
