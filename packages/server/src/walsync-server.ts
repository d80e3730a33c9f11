import { describeSyncedTables, readSchema, subscriptionDefinitions } from '@walsync/db/server';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { Logger } from 'pino';
import { Tokens } from './auth/tokens';
import { assertCaptureReady, ensureServerSchema, ensureSlot } from './history/server-schema';
import { buildHttpApp } from './http/app';
import { RowsReader } from './sessions/rows-read';
import { createMetrics } from './metrics';
import { Capture } from './replication/capture';
import { ChangeFeed, type FeedOptions } from './sessions/change-feed';
import { SyncEndpoint, type SyncEndpointOptions } from './sessions/sync-endpoint';
import { DEFAULT_SNAPSHOT_LIMITS, type SnapshotLimits, Snapshots } from './sessions/snapshot';
import { SnapshotGate } from './sessions/snapshot-gate';
import { WriteService } from './writes/write-service';
import { checkout, connectionConfig } from './connection';
import { type DemoAppOptions, registerDemoApp } from './demo/demo-app';

export interface WalsyncServerOptions {
  databaseUrl: string;
  port: number;
  host: string;
  jwtSecret: string;
  slotName: string;
  maxClockSkewMs: number;
  log: Logger;
  sync?: SyncEndpointOptions;
  /** How many snapshots run at once, per user and per process, and when a stalled one ends (defaults: DEFAULT_SNAPSHOT_LIMITS). */
  snapshots?: Partial<SnapshotLimits>;
  feed?: Pick<FeedOptions, 'windowSize'>;
  /** Serve the demo web app at `/` (and the development login when allowed). */
  app?: DemoAppOptions;
}

/**
 * One walsync server process over a migrated database: change capture (when elected leader),
 * the write API and the HTTP endpoints. Several may serve one database.
 *
 * @example
 *   const server = await WalsyncServer.start({ databaseUrl, port: 3000, host: '127.0.0.1', jwtSecret, slotName: 'walsync', maxClockSkewMs: 60_000, log });
 *   console.log(server.url);
 *   await server.stop();
 */
export class WalsyncServer {
  private constructor(
    readonly url: string,
    readonly capture: Capture,
    readonly writes: WriteService,
    readonly tokens: Tokens,
    readonly sync: SyncEndpoint,
    private readonly feed: ChangeFeed,
    private readonly app: FastifyInstance,
    private readonly pool: pg.Pool,
    private readonly snapshotPool: pg.Pool,
  ) {}

  static async start(options: WalsyncServerOptions): Promise<WalsyncServer> {
    const pool = new pg.Pool({ ...connectionConfig(options.databaseUrl, 'walsync-server'), max: 10 });
    pool.on('error', (error) => options.log.warn({ err: error }, 'idle database connection failed'));
    const limits = { ...DEFAULT_SNAPSHOT_LIMITS, ...options.snapshots };
    // Snapshots have connections of their own: however many run, hello, acks and /health never wait behind them.
    const snapshotPool = new pg.Pool({ ...connectionConfig(options.databaseUrl, 'walsync-snapshots'), max: limits.perProcess });
    snapshotPool.on('error', (error) => options.log.warn({ err: error }, 'idle snapshot connection failed'));
    const snapshots = new Snapshots(snapshotPool, new SnapshotGate(limits), limits.stallMs);
    const metrics = createMetrics();
    try {
      await assertCaptureReady(pool);
      // The schema the last migration run recorded (a newer build's, when a newer build migrated), else this build's.
      let tables = (await readSchema(pool))?.tables ?? (await describeSyncedTables());
      const client = await checkout(pool);
      try {
        await ensureServerSchema(client, tables);
        await ensureSlot(client, options.slotName);
      } finally {
        client.release();
      }
      const capture = new Capture({ url: options.databaseUrl, tables, slotName: options.slotName, log: options.log, metrics });
      const writes = new WriteService({
        databaseUrl: options.databaseUrl,
        tables,
        maxClockSkewMs: options.maxClockSkewMs,
        metrics,
        onConnectionError: (error) => options.log.warn({ err: error }, 'idle write connection failed'),
      });
      const tokens = new Tokens(options.jwtSecret);
      const feed = new ChangeFeed({ url: options.databaseUrl, log: options.log, slotName: options.slotName, ...options.feed });
      await feed.start();
      const sync = new SyncEndpoint({ pool, snapshots, feed, tables: () => tables, subscriptions: subscriptionDefinitions, writes, tokens, log: options.log }, options.sync);
      feed.watched = () => sync.clients > 0;
      // A migration ran while this process serves: validate, snapshot and offer by the new schema, without a restart.
      feed.on('schema', () => {
        const reloaded = readSchema(pool).then((schema) => {
          if (!schema) return;
          tables = schema.tables;
          writes.setTables(schema.tables);
        });
        reloaded.catch((error) => options.log.warn({ err: error }, 'reloading the schema after a migration failed'));
        sync.schemaMoved(reloaded);
      });
      const rows = new RowsReader(snapshots, () => tables, subscriptionDefinitions);
      const app = buildHttpApp({ pool, capture, writes, rows, tokens, metrics, slotName: options.slotName, log: options.log, clients: () => sync.clients });
      if (options.app) await registerDemoApp(app, { pool, tokens }, options.app);
      sync.attach(app.server);
      await capture.start();
      const address = await app.listen({ port: options.port, host: options.host });
      return new WalsyncServer(address, capture, writes, tokens, sync, feed, app, pool, snapshotPool);
    } catch (error) {
      await pool.end().catch(() => undefined);
      await snapshotPool.end().catch(() => undefined);
      throw error;
    }
  }

  /** Stops accepting requests, finishes capture (the slot is released), closes connections. */
  async stop(): Promise<void> {
    await this.sync.close();
    await this.app.close();
    await this.feed.stop();
    await this.capture.stop();
    await this.writes.close();
    await this.pool.end();
    await this.snapshotPool.end();
  }
}
