import { Column, Entity, Index, JoinColumn, ManyToOne, type Relation } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';
import { Workspace } from './workspace';

@Synced({ scope: 'workspace_id' })
@Entity('project')
@Index('IDX_project_workspace', ['workspaceId'])
export class Project extends SyncedRecord {
  @Column({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @Column({ type: 'text' })
  name!: string;

  @ManyToOne(() => Workspace, { onDelete: 'CASCADE', deferrable: 'INITIALLY DEFERRED' })
  @JoinColumn({ name: 'workspace_id' })
  workspace!: Relation<Workspace>;
}
