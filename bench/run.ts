/**
 * `yarn bench`: runs every benchmark, prints a table, and rewrites docs/benchmarks.md.
 * Figures come from real engines on this machine; nothing is simulated.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { type Figure, machine, table } from './report';
import { dbFigures } from './suites/db';
import { serverFigures } from './suites/server';

async function main(): Promise<void> {
  const only = process.argv[2];
  const figures: Figure[] = [];
  if (!only || only === 'db') figures.push(...(await dbFigures()));
  if (!only || only === 'server') figures.push(...(await serverFigures()));
  const report = table(figures);
  console.log(report);
  const date = new Date().toISOString().slice(0, 10);
  writeFileSync(
    path.resolve(__dirname, '../docs/benchmarks.md'),
    `# Benchmarks

Measured by \`yarn bench\` on ${date}, on ${machine()}. Every figure comes from real engines
(embedded Postgres 18, PGlite) on this machine; rerun the command to refresh this page.

${report}
`,
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
