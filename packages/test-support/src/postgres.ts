import { existsSync, mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalPostgres } from '@walsync/db/server';

/** A real Postgres the suites run against. */
export interface PostgresTarget {
  name: string;
  /** undefined = the embedded Postgres 18 from the npm registry. */
  binDir?: string;
}

const MACHINE_POSTGRES_15 = '/usr/lib/postgresql/15/bin';

/**
 * Every Postgres on this machine to test against: always the embedded Postgres 18, and the
 * machine's PostgreSQL 15 when it is installed (WALSYNC_TEST_PG15=0 leaves it out).
 */
export function postgresTargets(): PostgresTarget[] {
  const targets: PostgresTarget[] = [{ name: 'embedded Postgres 18' }];
  if (process.env.WALSYNC_TEST_PG15 !== '0' && existsSync(path.join(MACHINE_POSTGRES_15, 'postgres'))) {
    targets.push({ name: 'PostgreSQL 15', binDir: MACHINE_POSTGRES_15 });
  }
  return targets;
}

/** A scratch directory the `postgres` system user can reach (mkdtemp makes it 0700). */
export function scratchDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), `walsync-${prefix}-`));
  chmodSync(dir, 0o755);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts a fresh server of `target` in a scratch directory; `stop()` stops it and removes the directory. */
export async function startPostgres(target: PostgresTarget = postgresTargets()[0]!): Promise<LocalPostgres & { dispose(): Promise<void> }> {
  const scratch = scratchDir('pg');
  try {
    const postgres = await LocalPostgres.start({ dataDir: path.join(scratch.dir, 'data'), binDir: target.binDir });
    return Object.assign(postgres, {
      async dispose() {
        await postgres.stop();
        scratch.remove();
      },
    });
  } catch (error) {
    scratch.remove();
    throw error;
  }
}
