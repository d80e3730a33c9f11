import { type Server, type Socket, createServer, connect } from 'node:net';
import path from 'node:path';
import { LocalPostgres, type MigrationClass, describeSyncedTables, freePort, migrations, runServerMigrations } from '@walsync/db/server';
import pg from 'pg';
import { type PostgresTarget, type ServerProcess, scratchDir, startServerProcess } from '@walsync/test-support';

/**
 * A TCP relay between one client and its server that the test can cut: every open connection is
 * dropped and new ones are refused until it is restored — a network outage the client cannot tell
 * from a real one.
 */
export class Relay {
  private readonly sockets = new Set<Socket>();
  private refusing = false;
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly targetPort: number,
  ) {
    server.on('connection', (downstream) => {
      if (this.refusing) return downstream.destroy();
      const upstream = connect(this.targetPort, '127.0.0.1');
      for (const [from, to] of [[downstream, upstream], [upstream, downstream]] as const) {
        this.sockets.add(from);
        from.on('error', () => to.destroy());
        from.on('close', () => (this.sockets.delete(from), to.destroy()));
        from.pipe(to);
      }
    });
  }

  static async open(targetPort: number): Promise<Relay> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new Relay(server, (server.address() as { port: number }).port, targetPort);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  cut(): void {
    this.refusing = true;
    for (const socket of this.sockets) socket.destroy();
  }

  restore(): void {
    this.refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/**
 * Postgres and the walsync server processes of a chaos run, each of which can be killed and
 * brought back where its clients expect it (same data directory, same port).
 */
export class Cluster {
  readonly servers: Array<ServerProcess | undefined>;
  private readonly turns = new Map<number, Promise<void>>();
  private constructor(
    private postgres: LocalPostgres,
    readonly pool: pg.Pool,
    private readonly target: PostgresTarget,
    private readonly scratch: { dir: string; remove(): void },
    readonly serverPorts: number[],
    servers: ServerProcess[],
  ) {
    this.servers = servers;
  }

  static async start(target: PostgresTarget, serverCount: number): Promise<Cluster> {
    const scratch = scratchDir('chaos');
    const postgres = await LocalPostgres.start({ dataDir: path.join(scratch.dir, 'pg'), binDir: target.binDir });
    await runServerMigrations(postgres.url);
    const pool = new pg.Pool({ connectionString: postgres.url, max: 4 });
    pool.on('error', () => undefined);
    const ports = await Promise.all(Array.from({ length: serverCount }, () => freePort()));
    const servers: ServerProcess[] = [];
    for (const port of ports) servers.push(await startServerProcess(postgres.url, {}, port));
    return new Cluster(postgres, pool, target, scratch, ports, servers);
  }

  /** The seeds whose migrate fault ran, in order: each run must list all their migrations, as a build would. */
  private readonly migratedSeeds: number[] = [];

  /**
   * `yarn migration:run` of a newer build while everything runs: a nullable column on task. The
   * clients (of the older build) are offered it at once and must keep converging.
   */
  async migrate(seed: number): Promise<string> {
    if (!this.migratedSeeds.includes(seed)) this.migratedSeeds.push(seed);
    const added = this.migratedSeeds.map((each) => chaosNote(each));
    // As the newer build describes its tables: task with every chaos column so far.
    const columns = added.map(({ column }) => ({ name: column, type: 'text', nullable: true, hasDefault: false }));
    const tables = (await describeSyncedTables()).map((table) => (table.name === 'task' ? { ...table, columns: [...table.columns, ...columns] } : table));
    for (let attempt = 0; ; attempt++) {
      try {
        const applied = await runServerMigrations(this.postgres.url, [...migrations, ...added.map(({ migration }) => migration)], { capture: tables });
        return applied.join(', ') || `${chaosNote(seed).name} already applied`;
      } catch (error) {
        // A Postgres restart of another fault may cut the run; it is all or nothing, so run it again.
        if (attempt > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  get databaseUrl(): string {
    return this.postgres.url;
  }

  /** SQL from outside walsync (psql, another app), retried while Postgres restarts. */
  async query<T extends pg.QueryResultRow = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.pool.query<T>(sql, params)).rows;
      } catch (error) {
        const code = (error as { code?: string }).code;
        // A restart in progress, or (as for any app writing next to walsync) a deadlock's victim: go again.
        const transient = code === undefined || code === '57P01' || code === '57P03' || code === '40P01' || code === 'ECONNREFUSED' || code === 'ECONNRESET';
        if (!transient || attempt > 100) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /**
   * Kills server `index` with SIGKILL and starts it again on its port after `downMs`. Two faults on
   * one server take turns; Postgres may be restarting meanwhile, so the start retries.
   */
  crashServer(index: number, downMs: number): Promise<void> {
    const turn = (this.turns.get(index) ?? Promise.resolve()).then(async () => {
      await this.servers[index]?.kill();
      this.servers[index] = undefined;
      await new Promise((resolve) => setTimeout(resolve, downMs));
      await this.restartServer(index);
    });
    this.turns.set(index, turn.catch(() => undefined));
    return turn;
  }

  private async restartServer(index: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        this.servers[index] = await startServerProcess(this.databaseUrl, {}, this.serverPorts[index]);
        return;
      } catch (error) {
        if (attempt >= 5) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** The index of the server process that holds the replicator lock, once one does. */
  async leader(): Promise<number> {
    for (let attempt = 0; attempt < 200; attempt++) {
      for (const [index, server] of this.servers.entries()) {
        const health = await server?.health().catch(() => undefined);
        if (health?.role === 'leader') return index;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error('no server process became the replication leader within 10 s');
  }

  /** Stops Postgres (fast, or immediate as in a crash) and starts it again on the same port. */
  async restartPostgres(mode: 'fast' | 'immediate'): Promise<void> {
    const { dataDir, port } = this.postgres;
    await this.postgres.stop(mode);
    this.postgres = await LocalPostgres.start({ dataDir, port, binDir: this.target.binDir });
  }

  /** Every server process is still running (none died of a fault it should have survived). */
  assertServersAlive(): void {
    for (const [index, server] of this.servers.entries()) {
      if (server && server.child.exitCode !== null) throw new Error(`server ${index} exited on its own (code ${server.child.exitCode}):\n${server.output().slice(-3000)}`);
    }
  }

  async stop(): Promise<void> {
    for (const server of this.servers) await server?.stop().catch(() => undefined);
    await this.pool.end().catch(() => undefined);
    await this.postgres.stop();
    this.scratch.remove();
  }
}

/** The migration a seed's migrate fault applies: a nullable text column on task. */
function chaosNote(seed: number): { name: string; column: string; migration: MigrationClass } {
  const name = `ChaosNote${1_900_000_000_100 + seed}`;
  const column = `chaos_note_${seed}`;
  const migration = class {
    name = name;
    async up(queryRunner: { query(sql: string): Promise<unknown> }) {
      await queryRunner.query(`ALTER TABLE "task" ADD "${column}" text`);
    }
    async down(queryRunner: { query(sql: string): Promise<unknown> }) {
      await queryRunner.query(`ALTER TABLE "task" DROP COLUMN "${column}"`);
    }
  } as unknown as MigrationClass;
  return { name, column, migration };
}
