/**
 * Marks an entity as synced to clients. `scope` is the column access control filters on:
 * a client receives and may write a row only when the row's scope is a workspace the user
 * belongs to.
 *
 * @example
 *   @Synced({ scope: 'workspace_id' })
 *   @Entity('task')
 *   export class Task extends SyncedRecord { ... }
 */
export interface SyncOptions {
  scope: string;
}

const syncedEntities = new Map<Function, SyncOptions>();

export function Synced(options: SyncOptions): ClassDecorator {
  return (target) => {
    syncedEntities.set(target, options);
  };
}

export function syncOptionsOf(entity: Function): SyncOptions | undefined {
  return syncedEntities.get(entity);
}
