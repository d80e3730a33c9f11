import { EventEmitter } from 'node:events';
import { type SyncedTable, formatPosition, parsePosition, readSchema } from '@walsync/db/server';
import pg from 'pg';
import { LogicalReplicationService, type Pgoutput } from 'pg-logical-replication';
import type { Logger } from 'pino';
import { type CapturedChange, type Operation, appendToHistory } from '../history/change-history';
import { CLIENT_MESSAGE_PREFIX, FENCE_MESSAGE_PREFIX, MIGRATIONS_TABLE, PUBLICATION, SCHEMA_TABLE, ensureSlot } from '../history/server-schema';
import { microsToIso } from './commit-time';
import { LosslessPgoutputPlugin } from './pgoutput';
import { connectionConfig } from '../connection';

export interface ReplicatorOptions {
  url: string;
  tables: SyncedTable[];
  slotName: string;
  log: Logger;
  /** Pause reading the slot while this many decoded changes wait to be written. */
  maxPendingChanges?: number;
}

export interface ReplicatorStatus {
  streaming: boolean;
  /** The LSN the slot was last acknowledged at: everything before it is in change_history. */
  confirmedLsn: string | null;
  /** Commit LSN of the last transaction written to change_history. */
  lastCapturedLsn: string | null;
  lastCapturedAt: Date | null;
  capturedChanges: number;
}

interface OpenTransaction {
  xid: number;
  commitTime: bigint;
  clientId: string | null;
  /** Complete but for what only the commit tells (LSN, position, time, schema version). */
  changes: CapturedChange[];
  migrations: Array<{ operation: Operation; name: string }>;
  /** The synced tables a migration run in this transaction recorded (walsync_schema). */
  tables?: SyncedTable[];
}

const decoder = new TextDecoder();

/** Each synced table's scope column, by table name. */
const scopeColumns = (tables: SyncedTable[]) => new Map(tables.map((table) => [table.name, table.scope]));

/** A change as decoded; its commit fills in the rest (one object per change, no copies on the hot path). */
function pendingChange(table: string, operation: Operation, data: Record<string, unknown> | null, oldData: Record<string, unknown> | null, scope: string | null): CapturedChange {
  return {
    lsn: '',
    commit_lsn: '',
    op_index: 0,
    table_name: table,
    operation,
    data,
    old_data: oldData,
    transaction_id: '',
    schema_version: '',
    timestamp: '',
    client_id: null,
    scope_id: scope,
    old_scope_id: null,
  };
}

/**
 * Streams the walsync publication from a pgoutput slot into change_history. Transactions are
 * buffered until their commit, written in batches in commit order, and the slot is acknowledged
 * only after the batch holding them has committed — so a crash can repeat a transaction (the
 * unique position drops the repeat) but never lose one.
 *
 * @example
 *   const replicator = new Replicator({ url, tables, slotName: 'walsync', log });
 *   await replicator.start();
 *   ...
 *   await replicator.stop();
 */
export class Replicator extends EventEmitter<{ captured: [ReplicatorStatus, number]; error: [Error] }> {
  private service: LogicalReplicationService | undefined;
  private writer: pg.Client | undefined;
  private open: OpenTransaction | undefined;
  private pending: CapturedChange[] = [];
  /** commitEndLsn of the last whole transaction in `pending` (or already written). */
  private pendingAck: string | undefined;
  private pendingCommitLsn: string | undefined;
  private flushing: Promise<void> | undefined;
  private paused = false;
  private stopped = true;
  private appliedMigrations: string[] = [];
  private scopeColumn: Map<string, string>;
  private readonly state: ReplicatorStatus = {
    streaming: false,
    confirmedLsn: null,
    lastCapturedLsn: null,
    lastCapturedAt: null,
    capturedChanges: 0,
  };

  constructor(private readonly options: ReplicatorOptions) {
    super();
    this.scopeColumn = scopeColumns(options.tables);
  }

  /** Captures the synced tables `tables` from now on. */
  private follow(tables: SyncedTable[]): void {
    this.scopeColumn = scopeColumns(tables);
  }

  get status(): ReplicatorStatus {
    return { ...this.state };
  }

  /** Creates the slot if needed and starts streaming from its confirmed position. */
  async start(): Promise<void> {
    this.stopped = false;
    // Its commits wait for the local disk only: were walsync's own replication connection a synchronous
    // standby (`synchronous_standby_names = '*'`), a commit of history would wait for capture to
    // confirm it, and capture for that commit, for ever.
    this.writer = new pg.Client(connectionConfig(this.options.url, 'walsync-replicator-writer', { synchronous_commit: 'local' }));
    this.writer.on('error', (error) => this.fail(error));
    await this.writer.connect();
    await ensureSlot(this.writer, this.options.slotName);
    const migrations = await this.writer.query<{ name: string }>(`SELECT name FROM ${MIGRATIONS_TABLE} ORDER BY id`);
    this.appliedMigrations = migrations.rows.map((row) => row.name);
    // The schema a migration run recorded is newer than this process's build when a newer build migrated.
    const stored = await readSchema(this.writer);
    if (stored) this.follow(stored.tables);
    const slot = await this.writer.query<{ confirmed: string | null }>(
      `SELECT confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1`,
      [this.options.slotName],
    );
    this.state.confirmedLsn = slot.rows[0]?.confirmed ?? null;

    const service = new LogicalReplicationService(
      connectionConfig(this.options.url, 'walsync-replicator'),
      // No automatic acknowledgement, and no timer: the library's timer would acknowledge the last
      // *received* LSN, moving the slot past changes not yet stored.
      { acknowledge: { auto: false, timeoutSeconds: 0 } },
    );
    this.service = service;
    service.on('data', (lsn: string, message: Pgoutput.Message) => this.onMessage(lsn, message));
    service.on('heartbeat', (lsn: string, _timestamp: number, shouldRespond: boolean) => this.onHeartbeat(lsn, shouldRespond));
    service.on('error', (error: Error) => this.fail(error));
    const plugin = new LosslessPgoutputPlugin({ protoVersion: 1, publicationNames: [PUBLICATION], messages: true });
    const subscribed = service.subscribe(plugin, this.options.slotName, '0/0');
    subscribed.catch((error: Error) => this.fail(error));
    await new Promise<void>((resolve, reject) => {
      service.once('start', () => resolve());
      subscribed.then(() => reject(new Error('replication ended before it started')), reject);
    });
    this.state.streaming = true;
    this.options.log.info({ slot: this.options.slotName }, 'replication streaming');
  }

  /** Stops streaming after writing what was fully received; releases the slot. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.state.streaming = false;
    await this.flushing;
    await this.service?.destroy().catch(() => undefined);
    await this.writer?.end().catch(() => undefined);
    this.service = undefined;
    this.writer = undefined;
  }

  private fail(error: Error): void {
    if (this.stopped) return;
    this.options.log.error({ err: error }, 'replication failed');
    void this.stop().finally(() => this.emit('error', error));
  }

  private onMessage(lsn: string, message: Pgoutput.Message): void {
    switch (message.tag) {
      case 'begin':
        this.open = { xid: message.xid, commitTime: message.commitTime as bigint, clientId: null, changes: [], migrations: [] };
        return;
      case 'message':
        if (this.open && message.transactional && message.prefix === CLIENT_MESSAGE_PREFIX) this.open.clientId = decoder.decode(message.content);
        // A snapshot's fence: confirmed once everything before it is stored, without waiting for the next keepalive.
        else if (!this.open && !message.transactional && message.prefix === FENCE_MESSAGE_PREFIX) this.confirmThrough(message.messageLsn ?? lsn);
        return;
      case 'insert':
      case 'update':
      case 'delete':
        this.onRowChange(message);
        return;
      case 'truncate':
        for (const relation of message.relations) {
          if (relation.schema === 'public') this.open?.changes.push(pendingChange(relation.name, 'truncate', null, null, null));
        }
        return;
      case 'commit':
        this.onCommit(message, lsn);
        return;
      default:
        return;
    }
  }

  private onRowChange(message: Pgoutput.MessageInsert | Pgoutput.MessageUpdate | Pgoutput.MessageDelete): void {
    const open = this.open;
    if (!open) return;
    const table = message.relation.name;
    const data = message.tag === 'delete' ? null : (message.new as Record<string, unknown>);
    const oldData = message.tag === 'insert' ? null : ((message.old ?? message.key) as Record<string, unknown> | null);
    if (message.relation.schema !== 'public') return;
    if (table === MIGRATIONS_TABLE) {
      const name = String((data ?? oldData)?.name);
      open.migrations.push({ operation: message.tag, name });
      return;
    }
    if (table === SCHEMA_TABLE) {
      // A migration run recorded the synced tables: they apply from this transaction on, in WAL order.
      if (data?.tables) open.tables = (typeof data.tables === 'string' ? JSON.parse(data.tables) : data.tables) as SyncedTable[];
      return;
    }
    // The scope is read at commit: a table this transaction's migration made synced is known only then.
    open.changes.push(pendingChange(table, message.tag, data, oldData, null));
  }

  private onCommit(message: Pgoutput.MessageCommit, lsn: string): void {
    const open = this.open;
    this.open = undefined;
    if (!open) return;
    for (const migration of open.migrations) {
      if (migration.operation === 'insert') this.appliedMigrations.push(migration.name);
      else if (migration.operation === 'delete') this.appliedMigrations = this.appliedMigrations.filter((name) => name !== migration.name);
    }
    if (open.tables) this.follow(open.tables);
    // Only synced tables are history; each change gets its row's scope.
    open.changes = open.changes.filter((change) => {
      const scope = this.scopeColumn.get(change.table_name);
      if (scope === undefined) return false;
      const value = (change.data ?? change.old_data)?.[scope];
      change.scope_id = typeof value === 'string' ? value : null;
      // An update that moved the row: the old scope's sessions must drop it.
      const before = change.operation === 'update' ? change.old_data?.[scope] : undefined;
      if (typeof before === 'string' && before !== change.scope_id) change.old_scope_id = before;
      return true;
    });
    // A transaction's position is the end of its commit record: what pg_current_wal_insert_lsn() reads
    // right after COMMIT, so a write's answer (its lsn) and the stream's positions compare.
    const commitLsn = formatPosition(parsePosition(message.commitEndLsn ?? message.commitLsn ?? lsn));
    const commitNumber = parsePosition(commitLsn).toString();
    const schemaVersion = this.appliedMigrations.at(-1) ?? '';
    const timestamp = microsToIso(open.commitTime);
    const transactionId = String(open.xid);
    open.changes.forEach((change, index) => {
      change.lsn = commitLsn;
      change.commit_lsn = commitNumber;
      change.op_index = index;
      change.transaction_id = transactionId;
      change.schema_version = schemaVersion;
      change.timestamp = timestamp;
      // A client's own change is a row its write made (its origin); what triggers wrote in the same transaction is not.
      change.client_id = open.clientId !== null && (change.data ?? change.old_data)?.origin_client_id === open.clientId ? open.clientId : null;
      this.pending.push(change);
    });
    this.pendingAck = message.commitEndLsn ?? commitLsn;
    if (open.changes.length > 0) this.pendingCommitLsn = commitLsn;
    this.scheduleFlush();
  }

  /** Confirms `lsn` after what waits to be stored (no transaction is open: everything before it has been decoded). */
  private confirmThrough(lsn: string): void {
    if (this.pendingAck === undefined || parsePosition(lsn) > parsePosition(this.pendingAck)) this.pendingAck = lsn;
    this.scheduleFlush();
  }

  /** While idle (nothing open, nothing waiting), the slot may advance to the server's WAL end. */
  private onHeartbeat(lsn: string, shouldRespond: boolean): void {
    if (!this.open && this.pending.length === 0 && !this.flushing && this.pendingAck === undefined) {
      void this.acknowledge(lsn);
    } else if (shouldRespond && this.state.confirmedLsn) {
      void this.acknowledge(this.state.confirmedLsn);
    }
  }

  /**
   * Asks the server for a keepalive now. Postgres sends them on its own only every
   * wal_sender_timeout / 2; asking each second lets an idle slot advance promptly.
   */
  ping(): void {
    if (this.service && !this.stopped && this.state.confirmedLsn) void this.service.acknowledge(lastByteBefore(this.state.confirmedLsn), true);
  }

  /** Confirms everything before `lsn` (a commit's end, or the end of WAL read while idle). */
  private async acknowledge(lsn: string): Promise<void> {
    if (!this.service || this.stopped) return;
    await this.service.acknowledge(lastByteBefore(lsn));
    this.state.confirmedLsn = formatPosition(parsePosition(lsn));
  }

  private scheduleFlush(): void {
    this.flushing ??= this.flushLoop().finally(() => {
      this.flushing = undefined;
      if (this.pendingAck !== undefined && !this.stopped) this.scheduleFlush();
    });
    this.applyBackpressure();
  }

  private async flushLoop(): Promise<void> {
    while (this.pendingAck !== undefined && this.writer) {
      const changes = this.pending;
      const ack = this.pendingAck;
      const capturedLsn = this.pendingCommitLsn;
      this.pending = [];
      this.pendingAck = undefined;
      this.pendingCommitLsn = undefined;
      this.applyBackpressure();
      const started = performance.now();
      try {
        if (changes.length > 0) await appendToHistory(this.writer, changes, capturedLsn ?? ack);
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      await this.acknowledge(ack);
      if (capturedLsn) {
        this.state.lastCapturedLsn = capturedLsn;
        this.state.lastCapturedAt = new Date();
      }
      this.state.capturedChanges += changes.length;
      this.emit('captured', this.status, (performance.now() - started) / 1000);
    }
  }

  /** Reading pauses while too much waits to be written, so memory stays bounded. */
  private applyBackpressure(): void {
    const limit = this.options.maxPendingChanges ?? 50_000;
    // pg-logical-replication offers no pause of its own; its flow-control mode pauses this same stream.
    const stream = (this.service as unknown as { _connection?: { stream?: { pause(): void; resume(): void } } })?._connection?.stream;
    if (!stream) return;
    if (!this.paused && this.pending.length >= limit) {
      this.paused = true;
      stream.pause();
    } else if (this.paused && this.pending.length < limit / 2) {
      this.paused = false;
      stream.resume();
    }
  }
}

/**
 * pg-logical-replication's acknowledge(lsn) reports `lsn + 1` ("the last byte received, plus one"),
 * but the positions walsync confirms are already ends (a commit record's end, a keepalive's end of
 * WAL). Confirming one byte too far loses a transaction whose commit record starts exactly there
 * (two commits back to back): after a restart, decoding skips commits that start before the
 * confirmed position. So the library is given the last byte before the position.
 */
function lastByteBefore(lsn: string): string {
  const position = parsePosition(lsn);
  return formatPosition(position > 0n ? position - 1n : 0n);
}
