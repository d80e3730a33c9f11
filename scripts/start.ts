/**
 * `yarn start`: builds the packages, then runs the server with the demo (`--demo`). The browser
 * replica template (dist/replica.tar.gz) is made while the server starts, so the URL is printed
 * sooner; a browser that comes before it runs PGlite's initdb itself.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { buildPackages, buildReplicaTemplate } from '../build';

async function main(): Promise<void> {
  await buildPackages();
  const server = spawn(process.execPath, [path.resolve(__dirname, '../packages/server/dist/main.cjs'), '--demo', ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => server.kill(signal));
  server.once('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  await buildReplicaTemplate().catch((error) => console.error(`the browser replica template was not made (${(error as Error).message}); new replicas run initdb`));
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
