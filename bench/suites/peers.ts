import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { machine } from '../report';
import { renderRatioChart } from '../plot';

const PEERS_DIR = path.resolve(__dirname, '../peers');
const DOC = path.resolve(__dirname, '../../docs/benchmarks.md');
const CHART = path.resolve(__dirname, '../../docs/peers-ratios.png');
export const PEERS_START = '<!-- yarn bench peers: start -->';
export const PEERS_END = '<!-- yarn bench peers: end -->';

/** The peers section of docs/benchmarks.md as it stands, so a full `yarn bench` keeps it. */
export function currentPeersSection(): string {
  const doc = readFileSync(DOC, 'utf8');
  const start = doc.indexOf(PEERS_START);
  const end = doc.indexOf(PEERS_END);
  return start >= 0 && end > start ? doc.slice(start, end + PEERS_END.length) : `${PEERS_START}\n## Beside a peer\n\nNot measured yet: run \`yarn bench peers\`.\n${PEERS_END}`;
}

interface PeerFigure {
  name: string;
  unit: string;
  walsync: number;
  zero: number;
  kind: 'time' | 'rate';
  note: string;
}

/** What bench/peers/peers.mts exports. */
interface PeersModule {
  peerFigures(log: (line: string) => void): Promise<{ figures: PeerFigure[]; postgres: string; notes: string }>;
  ratio(figure: PeerFigure): number;
}

const version = (file: string) => (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
const fixed = (value: number) => (value >= 100 ? Math.round(value).toString() : value.toFixed(2));

/**
 * `yarn bench peers` (issue #18): installs the peers' own project (bench/peers, pinned by its yarn.lock),
 * runs walsync and Zero side by side, prints one line per figure, and rewrites the peers section of
 * docs/benchmarks.md with its chart.
 */
export async function runPeers(): Promise<void> {
  const install = spawnSync('yarn', ['install', '--immutable'], { cwd: PEERS_DIR, stdio: 'inherit' });
  if (install.status !== 0) throw new Error(`installing the peers (yarn install in ${PEERS_DIR}) failed`);
  // A specifier the root type-check does not follow: bench/peers needs its own install (and tsconfig).
  const entry = '../peers/peers.mts';
  const { peerFigures, ratio } = (await import(entry)) as PeersModule;
  const began = performance.now();
  const run = await peerFigures((line) => console.log(`peers: [${((performance.now() - began) / 1000).toFixed(0)} s] ${line}`));
  for (const figure of run.figures) {
    console.log(`peer: ${figure.name}: walsync ${fixed(figure.walsync)} ${figure.unit}, zero ${fixed(figure.zero)} ${figure.unit}, ratio ${ratio(figure).toFixed(2)}`);
  }
  const zero = version(path.join(PEERS_DIR, 'node_modules/@rocicorp/zero/package.json'));
  const rows = run.figures.map((figure) => `| ${figure.name} | ${fixed(figure.walsync)} ${figure.unit} | ${fixed(figure.zero)} ${figure.unit} | ${ratio(figure).toFixed(2)} | ${figure.note} |`);
  const section = `${PEERS_START}
## Beside a peer: Rocicorp Zero (\`yarn bench peers\`)

Measured on ${new Date().toISOString().slice(0, 10)} in one run of \`yarn bench peers\` (${((performance.now() - began) / 1000).toFixed(0)} s), on ${machine()}:
walsync ${version(path.resolve(__dirname, '../../packages/web/package.json'))} (PGlite ${version(path.resolve(__dirname, '../../node_modules/@electric-sql/pglite/package.json'))}) and
\`@rocicorp/zero\` ${zero} (zero-cache and its SQLite replica, its Node client on the in-memory store), both servers on the
same ${run.postgres}, each with its own slot and publication. Ratio > 1: walsync ahead (zero ÷ walsync for
times and memory, walsync ÷ zero for rates).

| figure | walsync | zero | ratio | how |
|---|---|---|---|---|
${rows.join('\n')}

![walsync ÷ Zero ratios, same run](peers-ratios.png)

${run.notes}
${PEERS_END}`;
  const doc = readFileSync(DOC, 'utf8');
  writeFileSync(DOC, doc.includes(PEERS_START) ? doc.replace(currentPeersSection(), section) : `${doc.trimEnd()}\n\n${section}\n`);
  // Drawn last: nine minutes of figures reach the doc even when the chart cannot be drawn.
  await renderRatioChart(
    run.figures.map((figure) => ({ label: figure.name.replace('a Node client has the row', 'client'), ratio: ratio(figure) })),
    CHART,
    'walsync beside Zero, same run: ratio > 1 means walsync is ahead',
  );
}
