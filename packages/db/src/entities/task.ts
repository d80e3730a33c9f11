import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';
import { Project } from './project';
import { Workspace } from './workspace';

export const TASK_STATUSES = ['todo', 'doing', 'done'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

@Synced({ scope: 'workspace_id', members: ['assignee_id'] })
@Entity('task')
@Index('IDX_task_workspace', ['workspaceId'])
@Index('IDX_task_project', ['projectId'])
// A board column's page (a project's tasks of one status, in order) and its count read only what they show.
@Index('IDX_task_board', ['projectId', 'status', 'position', 'createdAt'], { where: '"deleted_at" IS NULL' })
export class Task extends SyncedRecord {
  @Column({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @Column({ name: 'project_id', type: 'uuid' })
  projectId!: string;

  @Column({ type: 'text' })
  title!: string;

  @Column({ type: 'enum', enum: TASK_STATUSES, enumName: 'task_status', default: 'todo' })
  status!: TaskStatus;

  @Column({ type: 'double precision', default: 0 })
  position!: number;

  @Column({ type: 'jsonb', default: () => "'[]'" })
  labels!: string[];

  /** A user id; no foreign key, because users are not synced to clients (a member of the row's workspace: see `members`). */
  @Column({ name: 'assignee_id', type: 'uuid', nullable: true })
  assigneeId!: string | null;

  @ManyToOne(() => Workspace, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'workspace_id' })
  workspace!: Relation<Workspace>;

  @ManyToOne(() => Project, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'project_id' })
  project!: Relation<Project>;
}
