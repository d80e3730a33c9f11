import type { PGlite } from '@electric-sql/pglite';
import {
  type ChangeResult,
  type ExtractedMigration,
  PROTOCOL_VERSION,
  type ServerMessage,
  ServerMessageSchema,
  type SyncedTable,
  createMigrationAPI,
  syncedTables,
} from '@walsync/db/browser';
import { SyncClientError, type SyncEvents, type SyncStatus } from './types';
import { ensureLocalSchema, schemaVersion, setState } from './local-schema';
import { RemoteApply } from './remote-apply';

export interface SyncClientOptions {
  /** The server's base URL (http(s)://…); the client connects to its /sync WebSocket. */
  url: string;
  token: string;
  /** Node: a directory or `memory://`. Browser: `idb://<name>`. */
  dataDir: string;
  /** Kept in the database after the first run; given here only to choose it. */
  clientId?: string;
}

/** The parts of a WHATWG WebSocket the client uses: the browser's own, or `ws` in Node. */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}
export type SocketFactory = (url: string) => SocketLike;
const OPEN = 1;

type Listener<K extends keyof SyncEvents> = (...args: SyncEvents[K]) => void;

interface OutboxRow {
  change_id: string;
  table_name: string;
  op: 'insert' | 'update' | 'delete';
  pk: Record<string, unknown>;
  data: Record<string, unknown>;
  hlc: string;
}

export class SyncClient {
  clientId = '';
  status: SyncStatus = 'connecting';
  /**
   * Resolves once migrations are applied and the first hydration is done: at once for a replica
   * that finished it before (it works offline), after the first snapshot for a new one.
   */
  readonly ready: Promise<void>;
  private resolveReady!: () => void;
  private rejectReady!: (error: Error) => void;
  private readonly listeners = new Map<keyof SyncEvents, Set<(...args: never[]) => void>>();
  private socket: SocketLike | undefined;
  private closed = false;
  private attempt = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly apply: RemoteApply;
  private pushing: Promise<void> | undefined;
  private pushAgain = false;
  private readonly pendingWrites = new Map<string, (results: ChangeResult[]) => void>();
  private live = false;
  private snapshotReplaces = false;
  /** Whether the running snapshot must track keys to remove what the server no longer has. */
  private snapshotTracksKeys = false;
  private unlisten: (() => Promise<void>) | undefined;
  /** Why the server refused this client, from its `error` message before the close. */
  private refusal: string | undefined;

  constructor(
    readonly db: PGlite,
    private readonly options: SyncClientOptions,
    private readonly openSocket: SocketFactory,
    private readonly release: (() => Promise<void>) | undefined,
    /** How long acks wait to be coalesced with later ones (see ackWhenStored): 0 in Node, where storing is free. */
    private readonly ackDelayMs = 0,
    tables: SyncedTable[] = syncedTables,
  ) {
    this.apply = new RemoteApply(tables);
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    this.ready.catch(() => undefined);
  }

  on<K extends keyof SyncEvents>(event: K, listener: Listener<K>): () => void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener as never);
    this.listeners.set(event, set);
    return () => set.delete(listener as never);
  }

  private emit<K extends keyof SyncEvents>(event: K, ...args: SyncEvents[K]): void {
    for (const listener of this.listeners.get(event) ?? []) (listener as Listener<K>)(...args);
  }

  private setStatus(status: SyncStatus): void {
    if (this.status === status) return;
    this.status = status;
    this.emit('status', status);
  }

  /** Opens the local state and starts syncing in the background. */
  async start(): Promise<void> {
    await this.db.exec(`CREATE TABLE IF NOT EXISTS walsync_state (key text PRIMARY KEY, value text);
      CREATE TABLE IF NOT EXISTS walsync_snapshot_seen (table_name text, pk jsonb, PRIMARY KEY (table_name, pk))`);
    const stored = (await this.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = 'client_id'`)).rows[0]?.value;
    this.clientId = stored ?? this.options.clientId ?? crypto.randomUUID();
    if (!stored) await this.db.query(`INSERT INTO walsync_state VALUES ('client_id', $1)`, [this.clientId]);
    const position = await this.state('position');
    if (position !== null && !/^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(position)) {
      // A damaged position cannot be resumed from; a fresh snapshot repairs the replica and keeps the outbox.
      await this.db.query(`DELETE FROM walsync_state WHERE key = 'position'`);
      // Reported once the caller has had a chance to subscribe (createSyncClient has returned).
      const error = new SyncClientError('corrupt_database', `the stored position ${JSON.stringify(position)} is not a position; re-snapshotting (unsent writes are kept)`);
      setTimeout(() => this.emit('error', error), 0);
    } else if (position !== null) {
      // A replica that finished its first sync is usable at once, offline too; the session catches up when it connects.
      this.resolveReady();
    }
    this.unlisten = await this.db.listen('walsync_outbox', () => {
      this.emit('captured');
      // A local write is stored right away (the outbox entry with it), not only with the next ack; in
      // the browser 100 ms later, so that the tabs' live queries re-run before the store takes the thread.
      this.storeSoon(this.ackDelayMs > 0 ? 100 : 0);
      this.schedulePush();
    });
    await this.durable();
    this.connect();
  }

  private pendingAck: string | undefined;
  private ackTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Acks a position once everything committed up to it is in storage (invariant 3). Where storing is
   * costly (IndexedDB: whole files copied), acks are coalesced: one store and one ack, for the newest
   * position, `ackDelayMs` after the first; a late ack only means the server learns it later (a client
   * resumes from the position in its own database). The next batch is applied meanwhile.
   */
  private ackWhenStored(position: string): void {
    this.pendingAck = position;
    if (this.ackTimer) return;
    const socket = this.socket;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      const acked = this.pendingAck!;
      this.pendingAck = undefined;
      this.durable().then(
        () => socket === this.socket && this.send({ type: 'sync_ack', position: acked }),
        (error: Error) => this.emit('error', new SyncClientError('apply_failed', `storing the replica failed, so ${acked} was not acked: ${error.message}`, { cause: error })),
      );
    }, this.ackDelayMs);
  }

  private storing: Promise<void> = Promise.resolve();
  private storeQueued: Promise<void> | undefined;

  /**
   * Resolves when everything committed so far is in storage. In the browser the worker stores in the
   * background (PGlite would otherwise copy its files to IndexedDB after every statement a tab sends,
   * hundreds of milliseconds each); this waits for a store that starts after the call. Calls made
   * while a store is queued share it.
   */
  durable(): Promise<void> {
    const fs = this.db.fs;
    if (!fs) return Promise.resolve();
    if (this.storeQueued) return this.storeQueued;
    const queued = this.storing
      .catch(() => undefined)
      .then(() => {
        this.storeQueued = undefined;
        return fs.syncToFs(false);
      });
    this.storeQueued = queued;
    this.storing = queued;
    return queued;
  }

  private storeTimer: ReturnType<typeof setTimeout> | undefined;
  private storeAt = Number.POSITIVE_INFINITY;

  /**
   * Plans a store `ms` from now, or keeps one already planned sooner: how writes that nothing waits
   * for reach storage (a captured local write; in the browser, every statement a tab sends).
   */
  storeSoon(ms: number): void {
    const at = Date.now() + ms;
    if (this.storeTimer && this.storeAt <= at) return;
    clearTimeout(this.storeTimer);
    this.storeAt = at;
    this.storeTimer = setTimeout(() => {
      this.storeTimer = undefined;
      this.durable().catch((error: Error) => this.emit('error', error));
    }, ms);
  }

  private async state(key: string): Promise<string | null> {
    return (await this.db.query<{ value: string }>(`SELECT value FROM walsync_state WHERE key = $1`, [key])).rows[0]?.value ?? null;
  }

  private connect(): void {
    if (this.closed) return;
    this.setStatus(this.attempt === 0 ? 'connecting' : 'offline');
    const socket = this.openSocket(`${this.options.url.replace(/^http/, 'ws')}/sync`);
    this.socket = socket;
    socket.onopen = () => void this.hello(socket).catch((error) => this.emit('error', error));
    socket.onmessage = ({ data }) => {
      let message: ServerMessage;
      try {
        const parsed = ServerMessageSchema.safeParse(JSON.parse(String(data)));
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw new Error(`${issue.path.join('.') || 'message'}: ${issue.message}`);
        }
        message = parsed.data;
      } catch (error) {
        // Nothing of it is applied; the session starts over from the stored position.
        this.emit('error', new SyncClientError('bad_server_message', `the server sent a message this client cannot use (${(error as Error).message})`));
        socket.close();
        return;
      }
      this.queue = this.queue.then(() => this.handle(message)).catch((error: Error) => {
        // The transaction rolled back: no partial apply, no position moved; start over from the stored one.
        this.emit('error', new SyncClientError('apply_failed', `applying a ${message.type} message failed and was rolled back: ${error.message}`, { cause: error }));
        socket.close();
      });
    };
    socket.onerror = () => undefined;
    socket.onclose = ({ code, reason }) => {
      if (socket !== this.socket) return;
      this.live = false;
      for (const settle of this.pendingWrites.values()) settle([]);
      this.pendingWrites.clear();
      if (this.closed) return;
      this.setStatus('offline');
      if (code === 4401 || code === 4403 || code === 4409) {
        // Retrying with the same token or schema cannot succeed.
        const error = new SyncClientError('refused', `the server refused this client: ${this.refusal ?? (reason || code)}`);
        this.rejectReady(error);
        this.emit('error', error);
        return;
      }
      // Exponential backoff with jitter, at most 10 s.
      const delay = Math.min(10_000, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
      setTimeout(() => this.connect(), delay);
    };
  }

  private send(message: unknown): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }

  private async hello(socket: SocketLike): Promise<void> {
    const version = await schemaVersion(this.db);
    if (socket !== this.socket) return;
    this.send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      token: this.options.token,
      clientId: this.clientId,
      schemaVersion: version,
      position: await this.state('position'),
    });
  }

  private async handle(message: ServerMessage): Promise<void> {
    switch (message.type) {
      case 'welcome':
        return this.welcome(message.migrations);
      case 'snapshot_start':
        this.snapshotReplaces = message.replace;
        this.setStatus('syncing');
        if (message.replace) this.emit('bootstrap:start', { total: message.total });
        await this.db.transaction(async (tx) => {
          await tx.exec(`DELETE FROM walsync_snapshot_seen`);
          if (message.replace) await tx.exec(`DELETE FROM walsync_state WHERE key = 'position'`);
          this.snapshotTracksKeys = message.replace && (await this.apply.hasRows(tx));
        });
        return;
      case 'snapshot_batch':
        await this.db.transaction(async (tx) => {
          // Snapshot rows come from one consistent server snapshot, parents first: no trigger (capture
          // would skip them anyway) and no foreign key needs to run for them.
          await tx.exec(`SET LOCAL walsync.applying = 'on'; SET LOCAL session_replication_role = replica`);
          await this.apply.upsertRows(tx, message.table, message.rows);
          if (this.snapshotTracksKeys) await this.apply.markSeen(tx, message.table, message.rows);
        });
        this.emit('bootstrap:progress', { table: message.table, sent: message.sent, total: message.total });
        return;
      case 'snapshot_end':
        await this.db.transaction(async (tx) => {
          await tx.exec(`SET LOCAL walsync.applying = 'on'`);
          if (this.snapshotReplaces) {
            if (this.snapshotTracksKeys) await this.apply.removeUnseen(tx);
            await setState(tx, 'position', message.position);
          }
          await tx.exec(`DELETE FROM walsync_snapshot_seen`);
        });
        if (this.snapshotReplaces) {
          this.ackWhenStored(message.position);
          this.emit('bootstrap:complete', { position: message.position });
        }
        return this.becomeLive();
      case 'changes': {
        this.emit('pull:received', { changes: message.changes.length, position: message.position });
        await this.apply.applyChanges(this.db, message.changes, message.position);
        this.emit('pull:applied', { changes: message.changes.length, position: message.position });
        this.ackWhenStored(message.position);
        return;
      }
      case 'scope_removed':
        await this.db.transaction(async (tx) => {
          await tx.exec(`SET LOCAL walsync.applying = 'on'`);
          await this.apply.removeScope(tx, message.workspaceId);
        });
        return;
      case 'up_to_date':
        return this.becomeLive();
      case 'resnapshot':
        this.live = false;
        return;
      case 'write_result':
        this.pendingWrites.get(message.requestId)?.(message.results);
        this.pendingWrites.delete(message.requestId);
        return;
      case 'error':
        // A refusal is followed by its close code, which reports it once (as `refused`).
        if (message.code === 'unauthenticated' || message.code === 'client_id_taken' || message.code === 'schema_ahead') this.refusal = message.message;
        else this.emit('error', new SyncClientError('server_error', `the server answered ${message.code}: ${message.message}`));
        return;
    }
  }

  /** Applies what the server says this database lacks, then (re)installs capture. */
  private async welcome(missing: ExtractedMigration[]): Promise<void> {
    const applied = await this.db
      .query<{ name: string; timestamp: string; up: ExtractedMigration['up']; down: ExtractedMigration['down']; checksum: string }>(
        `SELECT "migrationName" AS name, "timestamp", "upQueries" AS up, "downQueries" AS down, checksum FROM client_migration WHERE "clientApplied" ORDER BY "timestamp"`,
      )
      .then((result) => result.rows.map((row) => ({ ...row, timestamp: Number(row.timestamp) })))
      .catch(() => []);
    // What the server offers wins over what this replica recorded: one it already applied with the
    // same checksum is skipped, one with another checksum is refused as drift.
    const known = new Map(applied.map((migration) => [migration.name, migration]));
    for (const migration of missing) known.set(migration.name, migration);
    const result = await createMigrationAPI(this.db, { migrations: [...known.values()] }).migrateToLatest();
    if (result.error) {
      const error = new SyncClientError('migration_failed', `a migration from the server failed, so syncing stopped: ${result.error.message}`, { cause: result.error });
      this.rejectReady(error);
      this.emit('error', error);
      this.closed = true;
      this.socket?.close();
      return;
    }
    await ensureLocalSchema(this.db, this.apply.syncedTables);
    if ((await this.state('position')) !== null) await this.becomeLive();
  }

  private async becomeLive(): Promise<void> {
    this.live = true;
    this.attempt = 0;
    this.resolveReady();
    this.setStatus('up-to-date');
    this.schedulePush();
  }

  private schedulePush(): void {
    if (!this.live) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    this.pushing = this.pushOutbox()
      .catch((error: Error) => this.emit('error', error))
      .finally(() => {
        this.pushing = undefined;
        if (this.pushAgain) {
          this.pushAgain = false;
          this.schedulePush();
        }
      });
  }

  /** Sends the outbox in batches; each answer settles its entries in one transaction. */
  private async pushOutbox(): Promise<void> {
    while (this.live) {
      const rows = (
        await this.db.query<OutboxRow>(`SELECT change_id, table_name, op, pk, data, hlc FROM walsync_outbox WHERE last_error IS NULL ORDER BY seq LIMIT 500`)
      ).rows;
      if (rows.length === 0) {
        this.setStatus('up-to-date');
        return;
      }
      this.setStatus('syncing');
      const requestId = crypto.randomUUID();
      const answered = new Promise<ChangeResult[]>((resolve) => this.pendingWrites.set(requestId, resolve));
      this.send({
        type: 'write',
        requestId,
        changes: rows.map((row) => ({ changeId: row.change_id, table: row.table_name, op: row.op, pk: row.pk, data: row.data, hlc: row.hlc })),
      });
      const results = await answered;
      if (results.length === 0) return; // the connection dropped; the outbox is pushed again after reconnecting
      const counts = { sent: rows.length, applied: 0, rejected: 0, errors: 0 };
      const conflicts: Array<{ table: string; pk: Record<string, unknown>; result: ChangeResult }> = [];
      for (const [index, result] of results.entries()) {
        const row = rows[index]!;
        if (result.status === 'error') counts.errors += 1;
        else if (result.status === 'applied') counts.applied += 1;
        else {
          counts.rejected += 1;
          conflicts.push({ table: row.table_name, pk: row.pk, result });
        }
      }
      await this.apply.settle(
        this.db,
        results.map((result, index) => ({ changeId: rows[index]!.change_id, table: rows[index]!.table_name, pk: rows[index]!.pk, result })),
      );
      this.emit('push', counts);
      for (const conflict of conflicts) this.emit('conflict', conflict);
      for (const [index, result] of results.entries()) {
        if (result.status === 'error') this.emit('error', new Error(`change ${rows[index]!.change_id} was refused: ${result.code}: ${result.message}`));
      }
    }
  }

  /** Resolves when the server has answered every pending local change (errors stay in the outbox) and the replica is stored. */
  async flush(): Promise<void> {
    for (;;) {
      await this.ready;
      await this.pushing;
      const pending = (await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox WHERE last_error IS NULL`)).rows[0]!.n;
      if (pending === 0) return this.durable();
      this.schedulePush();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The lock on the data directory was lost (its file removed or taken over): stop writing to it. */
  lostLock(error: Error): void {
    this.emit('error', new SyncClientError('locked', `the lock on ${this.options.dataDir} was lost; closing so two clients never share it`, { cause: error }));
    void this.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed && !this.live && this.db.closed) return;
    this.closed = true;
    this.live = false;
    this.socket?.close();
    await this.queue.catch(() => undefined);
    await this.pushing;
    clearTimeout(this.ackTimer);
    clearTimeout(this.storeTimer);
    await this.unlisten?.();
    // What was applied is stored before the database closes (the next start resumes from it).
    await this.durable().catch(() => undefined);
    await this.db.close();
    await this.release?.();
  }
}

export { SyncClientError, type SyncEvents, type SyncStatus } from './types';
