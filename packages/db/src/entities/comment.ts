import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';
import { Project } from './project';
import { Task } from './task';
import { Workspace } from './workspace';

// project_id follows the comment's task (triggers in the CommentProject migration), so a project's
// subscription selects its comments by a column of their own.
@Synced({ scope: 'workspace_id', members: ['author_id'], derived: ['project_id'] })
@Entity('comment')
@Index('IDX_comment_workspace', ['workspaceId'])
@Index('IDX_comment_task', ['taskId'])
@Index('IDX_comment_project', ['projectId'])
export class Comment extends SyncedRecord {
  @Column({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @Column({ name: 'task_id', type: 'uuid' })
  taskId!: string;

  /** The task's project, kept by triggers (never written by clients); NULL only while no trigger has run. */
  @Column({ name: 'project_id', type: 'uuid', nullable: true })
  projectId!: string | null;

  /** A user id; no foreign key, because users are not synced to clients (a member of the row's workspace: see `members`). */
  @Column({ name: 'author_id', type: 'uuid' })
  authorId!: string;

  @Column({ type: 'text' })
  body!: string;

  @ManyToOne(() => Workspace, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'workspace_id' })
  workspace!: Relation<Workspace>;

  @ManyToOne(() => Project, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'project_id' })
  project!: Relation<Project> | null;

  @ManyToOne(() => Task, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'task_id' })
  task!: Relation<Task>;
}
