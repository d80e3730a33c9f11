import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';

/** Debian's Chromium (installed by scripts/ensure-chromium.sh); playwright-core only drives it. */
export const CHROMIUM = process.env.WALSYNC_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.resolve(__dirname, '../../../test-results');

// Without the background-networking flags Chromium keeps dialling Google's hosts, which this network refuses.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--remote-debugging-address=127.0.0.1',
  '--remote-debugging-port=0',
];

export interface RunningBrowser {
  browser: Browser;
  context: BrowserContext;
  pid: number;
  /** Opens a page and forwards its console errors to the test output. */
  page(url: string): Promise<Page>;
  /** SIGKILL to the whole Chromium process group: a crash, nothing flushed on the way out. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) killGroup(child, 'SIGKILL');
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** Chromium as a process of its own (so a test can kill it), with a profile that outlives it. */
export async function launchBrowser(userDataDir: string): Promise<RunningBrowser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not at ${CHROMIUM}: run bash scripts/ensure-chromium.sh (or set WALSYNC_CHROMIUM to a Chromium binary)`);
  mkdirSync(userDataDir, { recursive: true });
  const child = spawn(CHROMIUM, [...FLAGS, `--user-data-dir=${userDataDir}`, 'about:blank'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => (running.delete(child), resolve())));
  let output = '';
  const endpoint = await new Promise<string>((resolve, reject) => {
    const fail = (error: Error) => (clearTimeout(timer), reject(error));
    const timer = setTimeout(() => fail(new Error(`Chromium did not start:\n${output}`)), 30_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      output = (output + chunk).slice(-10_000);
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once('exit', (code) => fail(new Error(`Chromium exited (${code}) while starting:\n${output}`)));
    child.once('error', (error) => fail(new Error(`Chromium (${CHROMIUM}) could not start: ${error.message}`)));
  });
  const browser = await chromium.connectOverCDP(endpoint);
  const context = browser.contexts()[0]!;
  return {
    browser,
    context,
    pid: child.pid!,
    async page(url) {
      const page = await context.newPage();
      page.on('console', (message) => {
        if (message.type() === 'error') console.error(`[browser] ${message.text()}`);
      });
      page.on('pageerror', (error) => console.error(`[browser] ${error.message}`));
      await page.goto(url);
      return page;
    },
    async kill() {
      killGroup(child, 'SIGKILL');
      await exited;
    },
    async close() {
      await browser.close().catch(() => undefined);
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Serves packages/web (the built client in dist/, the test pages in test/browser/) on one fixed origin.
 * `refuse(pattern)` makes paths matching it fail (the connection dropped), as a server away would.
 */
export async function serveWebPackage(port = 0): Promise<{
  url: string;
  close(): Promise<void>;
  app: FastifyInstance;
  refuse(pattern: RegExp | undefined): void;
  refused: number;
  /** Keeps requests whose URL matches `pattern` waiting until the returned function is called. */
  hold(pattern: RegExp): () => void;
  /** The URL of every request, in the order they came. */
  requests: string[];
}> {
  const app = Fastify();
  let refusing: RegExp | undefined;
  const holds = new Set<{ pattern: RegExp; released: Promise<void> }>();
  const served = {
    url: '',
    app,
    refused: 0,
    requests: [] as string[],
    refuse: (pattern: RegExp | undefined) => void (refusing = pattern),
    hold: (pattern: RegExp) => {
      let release!: () => void;
      const held = { pattern, released: new Promise<void>((resolve) => (release = resolve)) };
      holds.add(held);
      return () => {
        holds.delete(held);
        release();
      };
    },
    close: () => app.close(),
  };
  app.addHook('onRequest', async (request) => {
    served.requests.push(request.url);
    for (const held of holds) if (held.pattern.test(request.url)) await held.released;
  });
  app.addHook('onRequest', async (request, reply) => {
    if (!refusing?.test(request.url)) return;
    served.refused++;
    request.raw.socket.destroy();
    return reply.hijack();
  });
  await app.register(fastifyStatic, { root: path.dirname(createRequire(__filename).resolve('@walsync/web/package.json')) });
  served.url = await app.listen({ port, host: '127.0.0.1' });
  return served;
}
