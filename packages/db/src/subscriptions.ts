import { type ParamsOf, type SubscriptionDefinition, defineSubscription } from './schema/subscription';

/**
 * The demo schema's subscriptions (see schema/subscription.ts for what a definition may say).
 * `task` and `comment` are held only through subscriptions; `workspace`, `workspace_member` and
 * `project` (small, and the parents every task needs) are held whole, within the scope.
 *
 * - `project` (`projectId`): the project's tasks and their comments (a comment's `project_id`
 *   follows its task, kept by triggers); the project's own row is there with every project.
 * - `task` (`taskId`): one task and its comments, e.g. a task opened from a link without its project.
 */
export const project = defineSubscription({
  name: 'project',
  params: { projectId: 'uuid' },
  root: { table: 'project', column: 'id', param: 'projectId' },
  tables: {
    task: { column: 'project_id', param: 'projectId' },
    comment: { column: 'project_id', param: 'projectId' },
  },
});

export const task = defineSubscription({
  name: 'task',
  params: { taskId: 'uuid' },
  root: { table: 'task', column: 'id', param: 'taskId' },
  tables: {
    task: { column: 'id', param: 'taskId' },
    comment: { column: 'task_id', param: 'taskId' },
  },
});

/** Every subscription of the schema. */
export const subscriptionDefinitions: readonly SubscriptionDefinition[] = [project, task];

/** The parameters of each subscription, by name (what `client.subscribe(name, params)` takes). */
export interface SubscriptionParams {
  project: ParamsOf<typeof project>;
  task: ParamsOf<typeof task>;
}
