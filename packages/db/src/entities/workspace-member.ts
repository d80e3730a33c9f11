import { Column, Entity, Index, JoinColumn, ManyToOne, PrimaryColumn, type Relation } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncColumns } from './columns';
import { Workspace } from './workspace';

/** Membership of a user in a workspace; the source of every access decision. */
@Synced({ scope: 'workspace_id' })
@Entity('workspace_member')
@Index('IDX_workspace_member_user', ['userId'])
export class WorkspaceMember extends SyncColumns {
  @PrimaryColumn({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @PrimaryColumn({ name: 'user_id', type: 'uuid' })
  userId!: string;

  @Column({ type: 'text', default: 'member' })
  role!: string;

  @ManyToOne(() => Workspace, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'workspace_id' })
  workspace!: Relation<Workspace>;
}
