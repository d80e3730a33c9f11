import { describeSyncedTables } from '@walsync/db/server';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { Logger } from 'pino';
import { Tokens } from './auth/tokens';
import { ensureServerSchema, ensureSlot } from './history/server-schema';
import { buildHttpApp } from './http/app';
import { createMetrics } from './metrics';
import { Capture } from './replication/capture';
import { WriteService } from './writes/write-service';

export interface WalsyncServerOptions {
  databaseUrl: string;
  port: number;
  host: string;
  jwtSecret: string;
  slotName: string;
  maxClockSkewMs: number;
  log: Logger;
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
    private readonly app: FastifyInstance,
    private readonly pool: pg.Pool,
  ) {}

  static async start(options: WalsyncServerOptions): Promise<WalsyncServer> {
    const tables = await describeSyncedTables();
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10, application_name: 'walsync-server' });
    pool.on('error', (error) => options.log.warn({ err: error }, 'idle database connection failed'));
    const metrics = createMetrics();
    try {
      const client = await pool.connect();
      try {
        await ensureServerSchema(client, tables);
        await ensureSlot(client, options.slotName);
      } finally {
        client.release();
      }
      const capture = new Capture({ url: options.databaseUrl, tables, slotName: options.slotName, log: options.log, metrics });
      const writes = new WriteService(options.databaseUrl, tables, { maxClockSkewMs: options.maxClockSkewMs }, (error) =>
        options.log.warn({ err: error }, 'idle write connection failed'),
      );
      const tokens = new Tokens(options.jwtSecret);
      const app = buildHttpApp({ pool, capture, writes, tokens, metrics, slotName: options.slotName, log: options.log, clients: () => 0 });
      await capture.start();
      const address = await app.listen({ port: options.port, host: options.host });
      return new WalsyncServer(address, capture, writes, tokens, app, pool);
    } catch (error) {
      await pool.end().catch(() => undefined);
      throw error;
    }
  }

  /** Stops accepting requests, finishes capture (the slot is released), closes connections. */
  async stop(): Promise<void> {
    await this.app.close();
    await this.capture.stop();
    await this.writes.close();
    await this.pool.end();
  }
}
