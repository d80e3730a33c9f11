import type { ClientConfig, Pool, PoolClient } from 'pg';

/**
 * Settings for every connection the server opens, with `settings` of its own. TimeZone is UTC so
 * that timestamps in snapshots, write results and decoded changes (the WAL sender formats with its
 * own session's settings) all read alike, whatever the database's default.
 */
export function connectionConfig(url: string, applicationName: string, settings: Record<string, string> = {}): ClientConfig {
  const options = Object.entries({ TimeZone: 'UTC', ...settings }).map(([name, value]) => `-c ${name}=${value}`);
  return { connectionString: url, application_name: applicationName, options: options.join(' ') };
}

/**
 * A connection from `pool` for one unit of work; `release()` it as usual. pg leaves a checked-out
 * client without an 'error' listener, so a connection Postgres drops between two queries (a
 * restart, a failover) would end the whole process; here the next query fails instead, and the
 * broken connection is dropped from the pool on release.
 */
export async function checkout(pool: Pool): Promise<PoolClient> {
  const client = await pool.connect();
  const reportedByTheNextQuery = () => undefined;
  client.on('error', reportedByTheNextQuery);
  const release = client.release;
  client.release = (destroy?: Error | boolean) => {
    client.off('error', reportedByTheNextQuery);
    release.call(client, destroy);
  };
  return client;
}

/** The Postgres error codes (SQLSTATE) the server acts on. */
export const PG_ERROR = {
  uniqueViolation: '23505',
  deadlock: '40P01',
  serializationFailure: '40001',
  /** lock_timeout ran out. */
  lockNotAvailable: '55P03',
} as const;
