import type { PGlite, Transaction } from '@electric-sql/pglite';
import {
  type Change,
  type ChangeResult,
  type ExtractedMigration,
  type Row,
  type StreamChange,
  type SubscriptionDefinition,
  type SubscriptionRef,
  type SyncedTable,
  appliedMigrations,
  subscriptionDefinitions,
  subscriptionKey,
  appliedSchemaVersion,
  createMigrationAPI,
  isPosition,
  quoteIdent,
} from '@walsync/db/browser';
import { ensureLocalSchema, readState, setState, writtenColumns } from './local-schema';
import { type DroppedWrite, RemoteApply } from './remote-apply';
import { SyncClientError } from './types';
import { SUBSCRIPTION_TABLE_SQL, StoredSubscriptions } from './stored-subscriptions';
import { ReplicaUpkeep } from './replica-upkeep';
import { echoThrough, markEcho, recordAnswered } from './own-echo';

interface RunningSnapshot {
  replaces: boolean;
  tracksKeys: boolean;
  workspaces: string[];
  subscriptions: SubscriptionRef[];
  /** The tables its pages wrote to. */
  tables: Set<string>;
}

/** How often a store runs over the files again when a statement removed one while it was under way. */
const STORE_RUNS = 3;

/**
 * Stores the replica's files. PGlite's IndexedDB store (Emscripten's `syncfs`) lists the files, waits
 * for IndexedDB, then reads each one: a statement that ran meanwhile and removed a file (a
 * checkpoint recycling a WAL segment, a migration dropping a table) failed the whole store with
 * `ENOENT`. Run again, it lists the files as they are now. A failure is an Error with a message
 * (Emscripten's own has only an `errno`).
 */
async function storeFiles(fs: NonNullable<PGlite['fs']>): Promise<void> {
  for (let run = 1; ; run++) {
    try {
      return await fs.syncToFs(false);
    } catch (error) {
      if (run < STORE_RUNS) continue;
      if (error instanceof Error) throw error;
      throw new Error(`the file system failed with errno ${(error as { errno?: number }).errno ?? String(error)}`, { cause: error });
    }
  }
}

/** A local write waiting for the server's answer, as it is pushed. */
export type UnsentChange = Change;

/** What the store found when it opened the replica. */
export interface OpenedReplica {
  clientId: string;
  /** Synced tables of this build that the replica was never hydrated with (it was made by an older build): a re-snapshot brings them. */
  unhydrated: string[];
  /** The stored position, null for a replica that never finished its first sync. */
  position: string | null;
  /** Set when the stored position was damaged and was dropped (the replica re-snapshots, keeping its outbox). */
  repaired?: SyncClientError;
}

/**
 * The replica: the one owner of its SQL. The sync connection asks it for what to send and hands it
 * what arrived; it applies each message in one local transaction together with the position it
 * brings, keeps the outbox, and makes what it wrote durable (in the browser, PGlite's IndexedDB
 * files are stored in the background; see `durable`).
 *
 * @example
 *   const store = new ReplicaStore(db, syncedTables);
 *   const { clientId, position } = await store.open('laptop-1');
 *   await store.applyChanges(message.changes, message.position);
 */
export class ReplicaStore {
  private readonly apply: RemoteApply;
  /** Synced tables of this build the replica was never hydrated with (see OpenedReplica). */
  unhydrated: string[] = [];
  /** The running snapshot replaces what the replica has (and must remove what the server no longer has). */
  private snapshot: RunningSnapshot | undefined;
  /** The subscriptions the replica holds, and the rows they select. */
  readonly subscriptions: StoredSubscriptions;
  /** Vacuums and checkpoints the replica (PGlite runs no autovacuum and no checkpointer); told of every write. */
  readonly upkeep: ReplicaUpkeep;

  constructor(
    readonly db: PGlite,
    tables: SyncedTable[],
    definitions: readonly SubscriptionDefinition[] = subscriptionDefinitions,
  ) {
    this.apply = new RemoteApply(tables);
    this.subscriptions = new StoredSubscriptions(db, definitions, tables);
    this.upkeep = new ReplicaUpkeep(db, (error) =>
      this.onStoreFailed(new SyncClientError('upkeep_failed', `the replica's own VACUUM or CHECKPOINT failed (syncing goes on; the next write tries again): ${error.message}`, { cause: error })),
    );
  }

  get tables(): SyncedTable[] {
    return this.apply.syncedTables;
  }

  /** Creates the client's own state on first use and reads its client id and position. */
  async open(wantedClientId: string | undefined): Promise<OpenedReplica> {
    await this.db.exec(`CREATE TABLE IF NOT EXISTS walsync_state (key text PRIMARY KEY, value text);
      CREATE TABLE IF NOT EXISTS walsync_snapshot_seen (table_name text, pk jsonb, PRIMARY KEY (table_name, pk));
      ${SUBSCRIPTION_TABLE_SQL}`);
    const stored = await this.state('client_id');
    const clientId = stored ?? wantedClientId ?? crypto.randomUUID();
    if (!stored) await setState(this.db, 'client_id', clientId);
    const position = await this.state('position');
    const hydrated = await this.state('synced_tables');
    // A replica from before this was recorded had every table its build synced.
    if (hydrated === null && position !== null) await this.recordSyncedTables(this.db);
    const known = new Set(hydrated === null ? this.tables.map((table) => table.name) : (JSON.parse(hydrated) as string[]));
    const unhydrated = this.tables.map((table) => table.name).filter((name) => !known.has(name));
    this.unhydrated = unhydrated;
    if (position === null || isPosition(position)) return { clientId, position, unhydrated };
    // A damaged position cannot be resumed from; a fresh snapshot repairs the replica and keeps the outbox.
    await this.db.query(`DELETE FROM walsync_state WHERE key = 'position'`);
    const repaired = new SyncClientError('corrupt_database', `the stored position ${JSON.stringify(position)} is not a position; re-snapshotting (unsent writes are kept)`);
    return { clientId, position: null, unhydrated, repaired };
  }

  position(): Promise<string | null> {
    return this.state('position');
  }

  /** Where the client's own changes must come as data to a hello from `position` (see own-echo.ts), if anywhere. */
  echoThrough(position: string): Promise<string | undefined> {
    return echoThrough(this.db, position);
  }

  schemaVersion(): Promise<string | null> {
    return appliedSchemaVersion(this.db);
  }

  /** Calls `onWrite` after every transaction that captured a local write. */
  async onLocalWrite(onWrite: () => void): Promise<() => Promise<void>> {
    return this.db.listen('walsync_outbox', onWrite);
  }

  /**
   * Applies what the server says this replica lacks, then (re)installs capture. What the server
   * offers wins over what this replica recorded: one it already applied with the same checksum is
   * skipped, one with another checksum is refused as drift. Throws `migration_failed`.
   */
  async migrate(offered: ExtractedMigration[]): Promise<void> {
    // Nothing offered (a resume at the server's schema): every migration recorded here is applied.
    if (offered.length === 0) return ensureLocalSchema(this.db, this.tables);
    const known = new Map((await appliedMigrations(this.db)).map((migration) => [migration.name, migration]));
    for (const migration of offered) known.set(migration.name, migration);
    const result = await createMigrationAPI(this.db, { migrations: [...known.values()] }).migrateToLatest();
    if (result.error) {
      throw new SyncClientError('migration_failed', `a migration from the server failed, so syncing stopped: ${result.error.message}`, { cause: result.error });
    }
    await ensureLocalSchema(this.db, this.tables);
  }

  /**
   * Rolls back, newest first, the migrations of `names` this replica applied (the server reverted
   * them), with the down SQL recorded when they were applied; then reinstalls capture. Throws
   * `migration_failed`.
   */
  async revert(names: string[]): Promise<void> {
    const applied = await appliedMigrations(this.db);
    const api = createMigrationAPI(this.db, { migrations: applied });
    for (const migration of [...applied].reverse().filter((each) => names.includes(each.name))) {
      const result = await api.rollbackMigration(migration.name);
      if (result.error) {
        throw new SyncClientError('migration_failed', `rolling back ${migration.name}, which the server reverted, failed: ${result.error.message}`, { cause: result.error });
      }
    }
    await ensureLocalSchema(this.db, this.tables);
  }

  /** The workspaces the replica holds (null for a replica from before this was recorded). */
  async workspaces(): Promise<string[] | null> {
    const held = await this.state('workspaces');
    return held === null ? null : (JSON.parse(held) as string[]);
  }

  /** A snapshot begins: `replace` drops the position until it ends (a crash meanwhile starts it over); `subscriptions`: those it brings. */
  async beginSnapshot(replace: boolean, workspaces: string[] = [], subscriptions: SubscriptionRef[] = []): Promise<void> {
    let tracksKeys = false;
    await this.db.transaction(async (tx) => {
      await tx.exec(`DELETE FROM walsync_snapshot_seen`);
      if (replace) await tx.exec(`DELETE FROM walsync_state WHERE key = 'position'`);
      tracksKeys = replace && (await this.apply.hasRows(tx));
    });
    this.snapshot = { replaces: replace, tracksKeys, workspaces, subscriptions, tables: new Set() };
  }

  /** One page of snapshot rows, in one transaction (none for a table this build does not sync). */
  async snapshotPage(table: string, rows: Row[] | string): Promise<void> {
    const snapshot = this.runningSnapshot();
    if (!this.apply.syncs(table)) return;
    // The rows as JSON text (a page read without parsing them, see parseServerMessage) or as objects.
    const json = typeof rows === 'string' ? rows : JSON.stringify(rows);
    if (!/^\[\s*\]$/.test(json)) snapshot.tables.add(table);
    await this.db.transaction(async (tx) => {
      // Snapshot rows come from one consistent server snapshot, parents first: no trigger (capture
      // would skip them anyway) and no foreign key needs to run for them.
      await tx.exec(`SET LOCAL walsync.applying = 'on'; SET LOCAL session_replication_role = replica`);
      // A snapshot of an added workspace runs beside the live stream and the answers to this client's
      // writes: a row an answer already brought further is newer than the snapshot's, and stays.
      await this.apply.upsertRows(tx, table, json, { newerOnly: !snapshot.replaces });
      if (snapshot.tracksKeys) await this.apply.markSeen(tx, table, json);
    });
  }

  /** The snapshot is whole: a replacing one removes what the server no longer has and stores its position. Returns whether it replaced. */
  async endSnapshot(position: string): Promise<boolean> {
    const snapshot = this.runningSnapshot();
    this.snapshot = undefined;
    await this.db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      if (snapshot.replaces) {
        if (snapshot.tracksKeys) {
          await markEcho(tx, '$1', [position]);
          await this.apply.removeUnseen(tx);
        }
        await setState(tx, 'position', position);
        await this.recordSyncedTables(tx);
      }
      await tx.exec(`DELETE FROM walsync_snapshot_seen`);
      // What the replica holds now: the snapshot's workspaces, or those added to the ones it had.
      const held = snapshot.replaces ? [] : (JSON.parse((await this.state('workspaces', tx)) ?? '[]') as string[]);
      const workspaces = new Set([...held, ...snapshot.workspaces]);
      await setState(tx, 'workspaces', JSON.stringify([...workspaces]));
      // The subscriptions it brought are whole now (one the client left meanwhile stays leaving).
      const keys = snapshot.subscriptions.map(subscriptionKey);
      if (keys.length > 0) await tx.query(`UPDATE walsync_subscription SET state = 'ready' WHERE key = ANY($1::text[]) AND state = 'pending'`, [keys]);
      // The pages ran without triggers, and so without the statement triggers by which PGlite's live
      // queries learn of a change: one empty statement per table they wrote tells them, now that the rows are whole.
      for (const table of snapshot.tables) await tx.exec(`DELETE FROM ${quoteIdent(table)} WHERE false`);
    });
    this.upkeep.written();
    if (snapshot.replaces) this.unhydrated = [];
    return snapshot.replaces;
  }

  private runningSnapshot(): RunningSnapshot {
    if (!this.snapshot) throw new SyncClientError('bad_server_message', 'the server sent snapshot rows outside a snapshot');
    return this.snapshot;
  }

  /** A changes batch and its position, in one statement (so one transaction). */
  async applyChanges(changes: StreamChange[], position: string): Promise<void> {
    if (changes.some((change) => change.op === 'delete' || change.op === 'truncate')) await markEcho(this.db, `(SELECT value FROM walsync_state WHERE key = 'position')`);
    await this.apply.applyChanges(this.db, changes, position);
    this.upkeep.written(changes.length);
  }

  /** How many workspace removals were asked for: an `unsent` read that one overtook reads again. */
  private scopeRemovals = 0;

  /** The user left a workspace: its rows go, and the unsent writes to them (returned, to be reported). */
  async removeScope(workspaceId: string): Promise<DroppedWrite[]> {
    this.scopeRemovals++;
    this.upkeep.written();
    return this.db.transaction(async (tx) => {
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      const dropped = await this.apply.removeScope(tx, workspaceId);
      await tx.query(
        `UPDATE walsync_state SET value = (SELECT coalesce(jsonb_agg(w), '[]')::text FROM jsonb_array_elements_text(value::jsonb) w WHERE w <> $1) WHERE key = 'workspaces'`,
        [workspaceId],
      );
      return dropped;
    });
  }

  /**
   * The oldest local writes not yet answered (those the server refused as errors stay out). Never
   * writes a workspace removal dropped while they were read: sent anyway, the server could apply
   * them once the user is back in the workspace, after its snapshot for them was read, and the
   * replica would never hear of them again (the stream skips a client's own changes).
   */
  async unsent(limit: number): Promise<UnsentChange[]> {
    const removals = this.scopeRemovals;
    const result = await this.db.query<{ change_id: string; table_name: string; op: Change['op']; pk: Row; data: Row; hlc: string }>(
      `SELECT change_id, table_name, op, pk, data, hlc FROM walsync_outbox WHERE last_error IS NULL ORDER BY seq LIMIT $1`,
      [limit],
    );
    if (removals !== this.scopeRemovals) return this.unsent(limit);
    // An insert is captured whole (cheaper in the trigger): only the columns this build writes are sent.
    const written = new Map(this.tables.map((table) => [table.name, new Set(writtenColumns(table))]));
    const keepWritten = (table: string, row: Row): Row => {
      const columns = written.get(table);
      return columns ? Object.fromEntries(Object.entries(row).filter(([name]) => columns.has(name))) : row;
    };
    return result.rows.map((row) => ({
      changeId: row.change_id,
      table: row.table_name,
      op: row.op,
      pk: row.pk,
      data: row.op === 'insert' ? keepWritten(row.table_name, row.data) : row.data,
      hlc: row.hlc,
    }));
  }

  /** How many local writes wait for an answer. */
  async pendingCount(): Promise<number> {
    return (await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM walsync_outbox WHERE last_error IS NULL`)).rows[0]!.n;
  }

  /**
   * The server's answers to `sent`, in one statement: each entry leaves the outbox and its row
   * becomes the server's. A replica that holds subscriptions then lets go of the answered rows none
   * of them selects (writes outside the subscriptions stay local only until answered).
   */
  async settle(sent: UnsentChange[], results: ChangeResult[]): Promise<void> {
    const answers = results.map((result, index) => ({ changeId: sent[index]!.changeId, table: sent[index]!.table, pk: sent[index]!.pk, result }));
    await recordAnswered(this.db, results);
    this.upkeep.written(answers.length);
    if (!this.subscriptions.partial) return this.apply.settle(this.db, answers);
    await this.db.transaction(async (tx) => {
      await this.apply.settle(tx, answers);
      await tx.exec(`SET LOCAL walsync.applying = 'on'`);
      const held = (await this.subscriptions.list(tx)).map((each) => each.ref);
      const rows = answers.map(({ table, pk, result }) => ({ table, pk, row: result.status === 'error' ? null : result.row }));
      await this.subscriptions.rows.dropUnselected(tx, rows, held);
    });
  }

  private storing: Promise<void> = Promise.resolve();
  private storeQueued: Promise<void> | undefined;
  private storeTimer: ReturnType<typeof setTimeout> | undefined;
  private storeAt = Number.POSITIVE_INFINITY;
  /** Called with a background store that failed (nothing waited for it). */
  onStoreFailed: (error: Error) => void = () => undefined;

  /**
   * Resolves when everything committed so far is in storage. In the browser the worker stores in the
   * background (PGlite would otherwise copy its files to IndexedDB after every statement a tab sends,
   * hundreds of milliseconds each); this waits for a store that starts after the call. Calls made
   * while a store is queued share it. In Node every commit is on disk already.
   */
  durable(): Promise<void> {
    const fs = this.db.fs;
    if (!fs) return Promise.resolve();
    if (this.storeQueued) return this.storeQueued;
    const queued = this.storing
      .catch(() => undefined)
      .then(() => {
        this.storeQueued = undefined;
        return storeFiles(fs);
      });
    this.storeQueued = queued;
    this.storing = queued;
    return queued;
  }

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
      this.durable().catch((error: Error) => this.onStoreFailed(error));
    }, ms);
  }

  /** Stores what was applied, then closes the database (the next start resumes from it). */
  async close(): Promise<void> {
    await this.upkeep.close();
    clearTimeout(this.storeTimer);
    await this.durable().catch(() => undefined);
    await this.db.close();
  }

  /** The tables a whole snapshot just brought: this build's. */
  private async recordSyncedTables(db: PGlite | Transaction): Promise<void> {
    await setState(db, 'synced_tables', JSON.stringify(this.tables.map((table) => table.name)));
  }

  private state(key: string, db: PGlite | Transaction = this.db): Promise<string | null> {
    return readState(db, key);
  }
}
