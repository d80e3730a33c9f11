import type { SubscriptionRef } from '@walsync/db/browser';
import type { SyncEmitter } from './emitter';
import type { ReplicaStore } from './replica-store';
import type { ClientServerMessage } from './server-answers';

type Message<T extends ClientServerMessage['type']> = Extract<ClientServerMessage, { type: T }>;

/**
 * A snapshot as it arrives: stored page by page through the ReplicaStore, its progress told as
 * `bootstrap:start`, `bootstrap:progress` and `bootstrap:complete` events. Those are a replacing
 * snapshot's (the first sync, a resnapshot) and a subscription's own snapshot (its events name it);
 * the snapshot of workspaces the user gained arrives without events.
 */
export class SnapshotArrival {
  private running: Message<'snapshot_start'> | undefined;

  constructor(
    private readonly store: ReplicaStore,
    private readonly events: SyncEmitter,
    /** A replacing snapshot was stored: its position is acknowledged (before its completion is told). */
    private readonly replaced: (position: string) => void,
  ) {}

  begin(message: Message<'snapshot_start'>): Promise<void> {
    this.running = message;
    const subscription = this.subscription();
    if (message.replace || subscription) this.events.emit('bootstrap:start', { total: message.total, ...(subscription ? { subscription } : {}) });
    return this.store.beginSnapshot(message.replace, message.workspaces, message.subscriptions);
  }

  async page(message: Message<'snapshot_batch'>): Promise<void> {
    await this.store.snapshotPage(message.table, message.rows);
    const subscription = this.subscription();
    this.events.emit('bootstrap:progress', { table: message.table, sent: message.sent, total: message.total, ...(subscription ? { subscription } : {}) });
  }

  /** The snapshot is whole: stored, and told. Returns the subscriptions it brought. */
  async end(message: Message<'snapshot_end'>): Promise<SubscriptionRef[]> {
    const subscription = this.subscription();
    const brought = this.running?.subscriptions ?? [];
    this.running = undefined;
    if (await this.store.endSnapshot(message.position)) {
      this.replaced(message.position);
      this.events.emit('bootstrap:complete', { position: message.position });
    } else if (subscription) this.events.emit('bootstrap:complete', { position: message.position, subscription });
    return brought;
  }

  /** The subscription the running snapshot brings alone (its events name it). */
  private subscription(): SubscriptionRef | undefined {
    const start = this.running;
    return start && !start.replace && start.subscriptions?.length === 1 ? start.subscriptions[0] : undefined;
  }
}
