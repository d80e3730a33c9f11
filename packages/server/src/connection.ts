import type { ClientConfig } from 'pg';

/**
 * Settings for every connection the server opens. TimeZone is UTC so that timestamps in
 * snapshots, write results and decoded changes (the WAL sender formats with its own session's
 * settings) all read alike, whatever the database's default.
 */
export function connectionConfig(url: string, applicationName: string): ClientConfig {
  return { connectionString: url, application_name: applicationName, options: '-c TimeZone=UTC' };
}
