import pg from 'pg';
import { WalsyncError, messageOf } from '../errors';
import { LocalPostgres, runningLocalPostgres } from './local-postgres';

/** A Postgres to use: the one DATABASE_URL names, or a local one this process started. */
export interface Database {
  url: string;
  /** The URL without its password, for messages. */
  description: string;
  /** The local server, when walsync started one. */
  local?: LocalPostgres;
  /** Stops the local server (if any). */
  stop(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Data directory of the local Postgres, used when DATABASE_URL is not set. */
  dataDir: string;
  env?: NodeJS.ProcessEnv;
  onLog?: (line: string) => void;
}

/** A connection string with the password masked. */
export function describeUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparsable connection string)';
  }
}

/** Connects once, so a wrong DATABASE_URL fails with a message that names the host and port. */
export async function assertReachable(url: string, timeoutMs = 5000): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
    if (!/^postgres(ql)?:$/.test(parsed.protocol)) throw new Error(`unsupported scheme ${parsed.protocol}`);
  } catch (error) {
    throw new WalsyncError('DATABASE_UNREACHABLE', `DATABASE_URL is not a postgres:// connection string (${messageOf(error)}).`, {});
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    const where = `${parsed.hostname}:${parsed.port || 5432}`;
    throw new WalsyncError(
      'DATABASE_UNREACHABLE',
      `Cannot connect to the Postgres at ${where} (database "${parsed.pathname.slice(1) || parsed.username}", user "${parsed.username}") from DATABASE_URL: ${messageOf(error)}.`,
      { host: parsed.hostname, port: parsed.port },
      error,
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * DATABASE_URL when it is set (checked to be reachable), otherwise a local Postgres in `dataDir`
 * (`WALSYNC_PG_BIN_DIR` picks other binaries than the embedded Postgres 18).
 *
 * @example
 *   const database = await openDatabase({ dataDir: '.walsync/postgres' });
 *   try { ... database.url ... } finally { await database.stop(); }
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const env = options.env ?? process.env;
  const url = env.DATABASE_URL?.trim();
  if (url) {
    await assertReachable(url);
    return { url, description: describeUrl(url), stop: async () => undefined };
  }
  // A local Postgres already running there (`yarn start`, a server) is used as it is, and left running.
  const running = runningLocalPostgres(options.dataDir);
  if (running) {
    return { url: running.url, description: `the running local Postgres in ${options.dataDir} (pid ${running.pid}, port ${running.port})`, stop: async () => undefined };
  }
  const local = await LocalPostgres.start({ dataDir: options.dataDir, binDir: env.WALSYNC_PG_BIN_DIR || undefined, onLog: options.onLog });
  return { url: local.url, description: `a local Postgres in ${local.dataDir} (${describeUrl(local.url)})`, local, stop: () => local.stop() };
}
