import { Column, Entity } from 'typeorm';
import { BaseRecord } from './columns';

/** A person who signs in. Not synced: clients know users only through their ids. */
@Entity('app_user')
export class AppUser extends BaseRecord {
  @Column({ type: 'text', unique: true })
  email!: string;

  @Column({ type: 'text' })
  name!: string;
}
