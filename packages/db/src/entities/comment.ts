import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';
import { Task } from './task';
import { Workspace } from './workspace';

@Synced({ scope: 'workspace_id', members: ['author_id'] })
@Entity('comment')
@Index('IDX_comment_workspace', ['workspaceId'])
@Index('IDX_comment_task', ['taskId'])
export class Comment extends SyncedRecord {
  @Column({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @Column({ name: 'task_id', type: 'uuid' })
  taskId!: string;

  /** A user id; no foreign key, because users are not synced to clients (a member of the row's workspace: see `members`). */
  @Column({ name: 'author_id', type: 'uuid' })
  authorId!: string;

  @Column({ type: 'text' })
  body!: string;

  @ManyToOne(() => Workspace, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'workspace_id' })
  workspace!: Relation<Workspace>;

  @ManyToOne(() => Task, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'task_id' })
  task!: Relation<Task>;
}
