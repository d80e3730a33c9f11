import type { MigrationClass } from '../extraction/extract';
import { Initial1795396052850 } from './1795396052850-Initial';
import { ReplicaIdentityFull1795396924095 } from './1795396924095-ReplicaIdentityFull';
import { ColumnClocks1796195495455 } from './1796195495455-ColumnClocks';
import { TaskBoardIndex1796244348110 } from './1796244348110-TaskBoardIndex';
import { CommentProject1796357073937 } from './1796357073937-CommentProject';
import { CommentProjectSerialized1796454351763 } from './1796454351763-CommentProjectSerialized';

/**
 * Every migration of the schema, in timestamp order. `yarn migration:generate` and
 * `yarn migration:create` add to this list; `yarn migration:cleanup` removes from it.
 */
export const migrations: MigrationClass[] = [
  Initial1795396052850,
  ReplicaIdentityFull1795396924095,
  ColumnClocks1796195495455,
  TaskBoardIndex1796244348110,
  CommentProject1796357073937,
  CommentProjectSerialized1796454351763,
];
