/**
 * `yarn start`: builds the packages, runs the server with the demo (`--demo`), and once it is ready
 * makes the browser replica template (dist/replica.tar.gz) if the migrations changed since the last
 * one: new browser replicas start from it instead of running PGlite's initdb (a browser that comes
 * before it does that itself). Made after the server is up, so that the two initdbs do not share the
 * two cores while the URL waits.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { buildPackages, buildReplicaTemplate } from '../build';

async function main(): Promise<void> {
  await buildPackages();
  const server = spawn(process.execPath, [path.resolve(__dirname, '../packages/server/dist/main.cjs'), '--demo', ...process.argv.slice(2)], {
    stdio: ['inherit', 'pipe', 'inherit'],
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => server.kill(signal));
  server.once('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  let template: Promise<void> | undefined;
  server.stdout!.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    if (!template && chunk.toString().includes('walsync demo:')) {
      template = buildReplicaTemplate().catch((error) => console.error(`the browser replica template was not made (${(error as Error).message}); new replicas run initdb`));
    }
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
