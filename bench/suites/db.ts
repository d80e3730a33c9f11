import { execFileSync } from 'node:child_process';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI, migrations } from '@walsync/db/browser';
import { LocalPostgres } from '@walsync/db/server';
import { BENCH_PG_BIN_DIR, benchPostgres } from '../harness';
import { type Figure, median } from '../report';

const root = path.resolve(__dirname, '../..');

/** Issue #2: migrations on PGlite, the up-to-date check, the build, and the embedded Postgres start. */
export async function dbFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];

  const template = await PGlite.create();
  const dump = await template.dumpDataDir('none');
  await template.close();
  const applyTimes: number[] = [];
  const upToDate: number[] = [];
  for (let run = 0; run < 5; run++) {
    const db = await PGlite.create({ loadDataDir: dump });
    let started = performance.now();
    const result = await createMigrationAPI(db).migrateToLatest();
    applyTimes.push(performance.now() - started);
    if (result.error) throw result.error;
    for (let check = 0; check < 20; check++) {
      const api = createMigrationAPI(db);
      started = performance.now();
      await api.migrateToLatest();
      upToDate.push(performance.now() - started);
    }
    await db.close();
  }
  figures.push({ issue: 2, name: `all ${migrations.length} migration(s) on a fresh PGlite`, value: median(applyTimes), unit: 'ms', note: 'median of 5 fresh in-memory databases' });
  figures.push({ issue: 2, name: 'migrateToLatest() on an up-to-date client', value: median(upToDate), unit: 'ms', goal: '<= 5', note: 'median of 100 calls, one query each' });

  const buildTimes = [0, 1].map((run) => {
    if (run === 0) rmSync(path.join(root, 'packages/db/dist'), { recursive: true, force: true });
    const started = performance.now();
    execFileSync('yarn', ['build'], { cwd: root, stdio: 'ignore' });
    return performance.now() - started;
  });
  figures.push({ issue: 2, name: '`yarn build` wall time, from nothing', value: buildTimes[0]! / 1000, unit: 's', goal: '<= 5', note: 'dist/ removed first' });
  figures.push({ issue: 2, name: '`yarn build` wall time, again', value: buildTimes[1]! / 1000, unit: 's', goal: '<= 5', note: 'incremental declarations' });

  const scratch = mkdtempSync(path.join(tmpdir(), 'walsync-bench-pg-'));
  chmodSync(scratch, 0o755);
  try {
    const dataDir = path.join(scratch, 'data');
    let started = performance.now();
    await (await LocalPostgres.start({ dataDir, binDir: BENCH_PG_BIN_DIR })).stop();
    const initialise = performance.now() - started;
    const starts: number[] = [];
    for (let run = 0; run < 5; run++) {
      started = performance.now();
      const postgres = await LocalPostgres.start({ dataDir, binDir: BENCH_PG_BIN_DIR });
      starts.push(performance.now() - started);
      await postgres.stop();
    }
    figures.push({ issue: 2, name: `${benchPostgres()} cold start to accepting connections`, value: median(starts) / 1000, unit: 's', goal: '<= 2', note: 'median of 5 starts of a stopped data directory' });
    figures.push({ issue: 2, name: `${benchPostgres()} first start (initdb included)`, value: initialise / 1000, unit: 's', note: 'once per data directory' });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return figures;
}
