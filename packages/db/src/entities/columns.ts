import { Column, CreateDateColumn, PrimaryGeneratedColumn, UpdateDateColumn, VersionColumn } from 'typeorm';

/** `created_at`, `updated_at` and `version`: every table has them. */
export abstract class Timestamped {
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;

  @VersionColumn({ type: 'integer', default: 1 })
  version!: number;
}

/**
 * The sync columns: the hybrid logical clock of the last write, the clocks of the columns last
 * written earlier, the client that made the last write (NULL for writes from outside walsync) and
 * the tombstone.
 */
export abstract class SyncColumns extends Timestamped {
  @Column({ type: 'text', nullable: true })
  hlc!: string | null;

  /**
   * The HLC of the last write of each column, where it differs from `hlc` (see rules/column-clocks.ts).
   * NULL reads as `{}` (every column at `hlc`): rows from before the column, e.g. in older history.
   */
  @Column({ name: 'column_hlcs', type: 'jsonb', nullable: true, default: () => "'{}'" })
  columnHlcs!: Record<string, string> | null;

  @Column({ name: 'origin_client_id', type: 'text', nullable: true })
  originClientId!: string | null;

  @Column({ name: 'deleted_at', type: 'timestamptz', nullable: true })
  deletedAt!: Date | null;
}

/** A plain table keyed by a uuid (gen_random_uuid(): the data source is set to pgcrypto naming, see data-source.ts). */
export abstract class BaseRecord extends Timestamped {
  @PrimaryGeneratedColumn('uuid')
  id!: string;
}

/** A synced table keyed by a uuid (clients generate theirs). */
export abstract class SyncedRecord extends SyncColumns {
  @PrimaryGeneratedColumn('uuid')
  id!: string;
}
