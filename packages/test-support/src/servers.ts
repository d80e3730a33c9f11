import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { freePort } from '@walsync/db/server';
import { WalsyncServer, type WalsyncServerOptions } from '@walsync/server';
import pino from 'pino';

export const TEST_JWT_SECRET = 'walsync-test-secret-0123456789abcdef';
/** The server's process entry, as `yarn server` runs it. */
const MAIN = path.join(path.dirname(createRequire(__filename).resolve('@walsync/server/package.json')), 'dist/main.cjs');

/** A walsync server in this test process (for API-level tests). */
export function startServer(
  databaseUrl: string,
  options: { maxClockSkewMs?: number; port?: number } & Pick<WalsyncServerOptions, 'sync' | 'feed' | 'app' | 'snapshots'> = {},
): Promise<WalsyncServer> {
  return WalsyncServer.start({
    databaseUrl,
    port: options.port ?? 0,
    host: '127.0.0.1',
    jwtSecret: TEST_JWT_SECRET,
    slotName: 'walsync',
    maxClockSkewMs: options.maxClockSkewMs ?? 60_000,
    log: pino({ level: process.env.WALSYNC_TEST_LOG ?? 'silent' }),
    sync: options.sync,
    feed: options.feed,
    app: options.app,
    snapshots: options.snapshots,
  });
}

/** A walsync server as its own OS process (for crash and failover tests). */
export interface ServerProcess {
  url: string;
  pid: number;
  child: ChildProcess;
  output(): string;
  health(): Promise<{ role: string; replication: { lastCapturedLsn: string | null } }>;
  /** SIGKILL: a crash, with no chance to clean up. */
  kill(): Promise<void>;
  /** SIGTERM: a clean stop. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** `port` restarts a server where its clients expect it; by default a free one. */
export async function startServerProcess(databaseUrl: string, env: Record<string, string> = {}, port?: number): Promise<ServerProcess> {
  port ??= await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, DATABASE_URL: databaseUrl, PORT: String(port), LOG_LEVEL: 'warn', WALSYNC_JWT_SECRET: TEST_JWT_SECRET, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  child.stderr!.on('data', (chunk) => (output = (output + chunk).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  const url = `http://127.0.0.1:${port}`;
  const server: ServerProcess = {
    url,
    pid: child.pid!,
    child,
    output: () => output,
    health: async () => (await fetch(`${url}/health`)).json() as never,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server process exited while starting:\n${output}`);
    try {
      if ((await fetch(`${url}/health`)).ok) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await server.kill();
      throw new Error(`the server process did not become healthy:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
