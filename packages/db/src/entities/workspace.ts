import { Column, Entity } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';

/** The unit of sharing: a user sees the workspaces they are a member of. */
@Synced({ scope: 'id' })
@Entity('workspace')
export class Workspace extends SyncedRecord {
  @Column({ type: 'text' })
  name!: string;
}
