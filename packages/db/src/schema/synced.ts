/**
 * Marks an entity as synced to clients. `scope` is the column access control filters on:
 * a client receives and may write a row only when the row's scope is a workspace the user
 * belongs to. Foreign keys to other synced tables must point inside the row's own workspace.
 *
 * @example
 *   @Synced({ scope: 'workspace_id', members: ['assignee_id'] })
 *   @Entity('task')
 *   export class Task extends SyncedRecord { ... }
 */
export interface SyncOptions {
  scope: string;
  /**
   * Columns holding a user id (no foreign key: users are not synced) that must name a member of
   * the row's workspace; the write API refuses others with `forbidden_reference`.
   */
  members?: string[];
  /**
   * Columns the schema's own triggers maintain from other rows (on the server and in every replica
   * alike, e.g. a comment's `project_id` follows its task): clients never send them, the write API
   * ignores them, and subscriptions may select rows by them.
   */
  derived?: string[];
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
