import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PostgresTarget, postgresTargets, scratchDir } from '@walsync/test-support';
import { ClientProcesses } from './chaos-clients';
import { Cluster } from './cluster';
import { type SeedReport, runSeed } from './run-seed';
import { FAULT_KINDS, describePlan, makePlan } from './schedule';

/**
 * The chaos suite (`yarn test:chaos`): for each seed, client processes write to shared rows while
 * external SQL writes, network cuts, kill -9 of clients, servers and the replicator leader, and a
 * Postgres restart happen at the plan's times; then everyone comes back and the invariants are
 * checked. CI runs 20 seeds × 5 clients × 300 operations (and three on PostgreSQL 15); WALSYNC_CHAOS_SOAK=1 runs 200 seeds × 1000.
 *
 *   WALSYNC_CHAOS_SEED=<n>       replay one seed (the failure message prints it)
 *   WALSYNC_CHAOS_SEEDS=<n>      how many seeds (from WALSYNC_CHAOS_FIRST_SEED, default 1)
 *   WALSYNC_CHAOS_CLIENTS, WALSYNC_CHAOS_OPS, WALSYNC_CHAOS_DURATION_MS
 *   WALSYNC_CHAOS_DEBUG=<dir>    each client's events (snapshots, pushes, subscriptions, errors) to a file per client,
 *                                and what went over its wire (always logged, to the scratch directory otherwise:
 *                                a failing seed quotes the lines about the rows that diverged)
 *   WALSYNC_CHAOS_PG=15 | 18     only the machine's PostgreSQL 15, or only the embedded 18 (by default:
 *                                the seeds on 18, then seeds 101–103 on 15 where it is installed)
 *   WALSYNC_CHAOS_VERBOSE=1      print each seed's trace
 */
const env = process.env;
const soak = env.WALSYNC_CHAOS_SOAK === '1';
const number = (name: string, fallback: number) => {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if (!/^\d+$/.test(value)) throw new Error(`${name} must be a whole number, not ${JSON.stringify(value)}`);
  return Number(value);
};
const settings = {
  clients: number('WALSYNC_CHAOS_CLIENTS', 5),
  opsPerClient: number('WALSYNC_CHAOS_OPS', soak ? 1000 : 300),
  durationMs: number('WALSYNC_CHAOS_DURATION_MS', soak ? 12_000 : 4_000),
};
const seeds = env.WALSYNC_CHAOS_SEED
  ? [number('WALSYNC_CHAOS_SEED', 1)]
  : Array.from({ length: number('WALSYNC_CHAOS_SEEDS', soak ? 200 : 20) }, (_, i) => number('WALSYNC_CHAOS_FIRST_SEED', 1) + i);
const [embedded, machine15] = [postgresTargets().find((each) => !each.binDir)!, postgresTargets().find((each) => each.binDir)];
// The default run: the seeds on the embedded Postgres 18, then three others on the machine's
// PostgreSQL 15 (the second target) where it is installed. WALSYNC_CHAOS_PG picks one target.
const runs: Array<{ target: PostgresTarget | undefined; seeds: number[] }> =
  env.WALSYNC_CHAOS_PG === '15'
    ? [{ target: machine15, seeds }]
    : env.WALSYNC_CHAOS_PG === '18' || env.WALSYNC_CHAOS_SEED || env.WALSYNC_CHAOS_SEEDS || soak
      ? [{ target: embedded, seeds }]
      : [
          { target: embedded, seeds },
          { target: machine15, seeds: [101, 102, 103] },
        ];

describe('the chaos plan', () => {
  it('any three consecutive seeds plan every kind of fault', () => {
    for (let first = 0; first < 12; first++) {
      const kinds = new Set([first, first + 1, first + 2].flatMap((seed) => makePlan(seed, settings).faults.map((fault) => fault.kind)));
      expect([...kinds].sort()).toEqual([...FAULT_KINDS].sort());
    }
  });
});

describe.each(runs)('convergence under faults', ({ target, seeds }) => {
  describe.skipIf(!target)(`on ${target?.name}: ${seeds.length} seeds × ${settings.clients} clients × ${settings.opsPerClient} ops`, () => {
    let cluster: Cluster;
    const scratch = scratchDir('chaos-clients');
    const reports: SeedReport[] = [];
    const blankReplica = path.join(scratch.dir, 'blank');
    const processes = new ClientProcesses();
    beforeAll(async () => {
      // Every client process logs the wire in brief, so that a failing seed can quote what its client was sent.
      env.WALSYNC_CHAOS_WIRE = env.WALSYNC_CHAOS_DEBUG ?? path.join(scratch.dir, 'wire');
      cluster = await Cluster.start(target!, 2);
      // A replica as a new client starts it, from the template `yarn build:template` makes (the
      // client processes run the built package too): copied per client, which is quicker than unpacking.
      const template = path.join(__dirname, '../../dist/replica.tar.gz');
      if (!existsSync(template)) throw new Error(`${template} is missing: run \`yarn build:template\` first`);
      const replica = await PGlite.create(blankReplica, { loadDataDir: new Blob([readFileSync(template)]) });
      await replica.close();
    });
    afterAll(async () => {
      await processes.close();
      await cluster?.stop();
      scratch.remove();
    });

    it.each(seeds)('seed %i: every client equals the server, no acknowledged write is lost', async (seed) => {
      const plan = makePlan(seed, settings);
      try {
        const report = await runSeed(cluster, plan, { scratchDir: scratch.dir, blankReplica, processes });
        reports.push(report);
        if (env.WALSYNC_CHAOS_VERBOSE === '1') console.log(report.trace.join('\n'));
        expect(report.rows).toBeGreaterThan(0);
      } catch (error) {
        console.error(`${(error as Error).message}\n\nplan:\n${describePlan(plan)}`);
        throw error;
      }
    }, soak ? 600_000 : 180_000);

    it.runIf(seeds.length >= 3)('the seeds covered every kind of fault, each of them really carried out', () => {
      const kinds = new Set(reports.flatMap((report) => report.faults.map((fault) => fault.kind)));
      expect([...kinds].sort()).toEqual([...FAULT_KINDS].sort());
      // Most client kills landed as a batch arrived or a write was captured (one with nothing in flight is still a crash).
      const kills = reports.flatMap((report) => report.faults).filter((fault) => fault.kind.startsWith('kill-client'));
      expect(kills.filter((fault) => fault.note?.startsWith('killed as')).length).toBeGreaterThanOrEqual(kills.length / 2);
    });
  });
});
