import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalPostgres, formatHlc, freePort, runServerMigrations } from '@walsync/db/server';
import pg from 'pg';

export const BENCH_SECRET = 'walsync-bench-secret-0123456789';

/** A setting the bench cannot run with: printed as it is, without a stack. */
export class BenchSetupError extends Error {}

/** The Postgres binaries the benches start: WALSYNC_PG_BIN_DIR, as for `yarn start`, or the embedded Postgres 18. */
export const BENCH_PG_BIN_DIR = process.env.WALSYNC_PG_BIN_DIR || undefined;

let benchPostgresName: string | undefined;

/** How the page names the Postgres the benches ran on, e.g. `embedded Postgres 18` or `PostgreSQL 15.14 (/usr/lib/postgresql/15/bin)`; asked of the binary once. */
export function benchPostgres(): string {
  benchPostgresName ??= namePostgres();
  return benchPostgresName;
}

function namePostgres(): string {
  if (!BENCH_PG_BIN_DIR) return 'embedded Postgres 18';
  let reported: string;
  try {
    reported = execFileSync(path.join(BENCH_PG_BIN_DIR, 'postgres'), ['--version'], { encoding: 'utf8' });
  } catch (error) {
    throw new BenchSetupError(`WALSYNC_PG_BIN_DIR=${BENCH_PG_BIN_DIR} holds no postgres the bench can run (${(error as Error).message}): give the bin directory of a Postgres installation, e.g. /usr/lib/postgresql/15/bin`);
  }
  const version = /PostgreSQL\)\s+(\S+)/.exec(reported)?.[1] ?? reported.trim();
  return `PostgreSQL ${version} (${BENCH_PG_BIN_DIR})`;
}

/** A fresh, migrated Postgres for one benchmark, removed afterwards. */
export async function withPostgres<T>(work: (url: string) => Promise<T>): Promise<T> {
  const scratch = mkdtempSync(path.join(tmpdir(), 'walsync-bench-'));
  chmodSync(scratch, 0o755);
  const postgres = await LocalPostgres.start({ dataDir: path.join(scratch, 'data'), binDir: BENCH_PG_BIN_DIR });
  try {
    await runServerMigrations(postgres.url);
    return await work(postgres.url);
  } finally {
    await postgres.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The server as users run it: its own process, so the benchmark's client does not share its event loop. */
export async function startServerProcess(databaseUrl: string): Promise<{ url: string; pid: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.resolve(__dirname, '../packages/server/dist/main.cjs')], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), LOG_LEVEL: 'warn', WALSYNC_JWT_SECRET: BENCH_SECRET },
    stdio: 'inherit',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch {
      if (attempt > 600) throw new Error('the benchmark server did not start');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    url,
    pid: child.pid!,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Task inserts for the write API, each with a fresh id and an HLC one millisecond after the last. */
export function taskInserts(clientId: string, workspace: string, project: string) {
  let wall = Date.now();
  return () => ({
    changeId: randomUUID(),
    table: 'task',
    op: 'insert',
    pk: { id: randomUUID() },
    data: { workspace_id: workspace, project_id: project, title: 'benchmark write', labels: ['bench'] },
    hlc: formatHlc({ wallMs: ++wall, counter: 0, node: clientId }),
  });
}

/** What `withServer` gives a benchmark: a connection for its own SQL, and the server process. */
export interface ServerHarness {
  db: pg.Client;
  server: { url: string; pid: number };
}

/** A fresh database, a server process over it, and a connection for the benchmark's own SQL; all stopped afterwards. */
export function withServer<T>(work: (harness: ServerHarness) => Promise<T>): Promise<T> {
  return withPostgres(async (url) => {
    const server = await startServerProcess(url);
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      return await work({ db, server });
    } finally {
      await db.end();
      await server.stop();
    }
  });
}

/** A process's resident memory, in MB. */
export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}
