/**
 * The Zero side of `yarn bench peers`: walsync's own `task` table (every column) as a Zero schema, one
 * named query (a workspace's tasks) and one mutator (a task insert), as Zero's docs describe them.
 * Shared by the bench's Zero clients and by the query/mutate endpoint (zero-api.mts).
 */
import { createBuilder, createSchema, defineMutator, defineMutators, defineQueries, defineQuery, json, number, string, table } from '@rocicorp/zero';
import { z } from 'zod';

const task = table('task')
  .columns({
    id: string(),
    created_at: number().optional(),
    updated_at: number().optional(),
    version: number().optional(),
    hlc: string().optional(),
    column_hlcs: json().optional(),
    origin_client_id: string().optional(),
    deleted_at: number().optional(),
    workspace_id: string(),
    project_id: string(),
    title: string(),
    status: string().optional(),
    position: number().optional(),
    labels: json().optional(),
    assignee_id: string().optional(),
  })
  .primaryKey('id');

export const schema = createSchema({ tables: [task] });
export const zql = createBuilder(schema);

declare module '@rocicorp/zero' {
  interface DefaultTypes {
    schema: typeof schema;
  }
}

export const queries = defineQueries({
  workspaceTasks: defineQuery(z.object({ workspaceId: z.string() }), ({ args }) => zql.task.where('workspace_id', args.workspaceId)),
});

const newTask = z.object({ id: z.string(), workspace_id: z.string(), project_id: z.string(), title: z.string() });

export const mutators = defineMutators({
  createTask: defineMutator(newTask, async ({ tx, args }) => {
    await tx.mutate.task.insert(args);
  }),
});
