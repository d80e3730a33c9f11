/**
 * A first visit's board, read once from the server (`readRows`) while the new replica starts and
 * hydrates: the board paints from these rows within a round trip or two of signing in, and the
 * replica's live queries take over once it holds them (see `placeholder` in @walsync/react).
 * A reload needs none of it: the provider's last results paint at once.
 */
import { readRows } from '@walsync/web/browser';
import { type ColumnPage, STATUSES, type Task } from './board-writes';
import type { Session } from './session';

export interface Project {
  id: string;
  name: string;
  workspace_id: string;
  created_at: string;
}

/** A row of the board's navigation query: a workspace with its projects. */
export interface WorkspaceRow {
  id: string;
  name: string;
  projects: Project[];
}

export interface FirstView {
  workspaces: WorkspaceRow[];
  /** The project the board opens, and its tasks (not deleted), as the board's query would find them. */
  board?: { projectId: string; tasks: FirstTask[] };
}

export type FirstTask = Task & { created_at: string };

type Rows = Record<string, unknown>[];
const live = (rows: Rows | undefined) => (rows ?? []).filter((row) => row.deleted_at === null);

/** Text in code-point order (as the timestamps and the board's queries compare). */
const compareText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Projects in the board's order: oldest first, then by name. */
export const byCreation = (a: Project, b: Project) => compareText(a.created_at, b.created_at) || a.name.localeCompare(b.name);

/** The project the board shows: `chosen` (the one last chosen on this device) if it is there, else the first. */
export function openedProject(projects: Project[], chosen: string | null | undefined): Project | undefined {
  return projects.find((project) => project.id === chosen) ?? [...projects].sort(byCreation)[0];
}

export const lastProjectKey = (session: Session) => `walsync-demo:project:${session.user.id}`;

/** The navigation and the opened project's tasks, read from the server: two small reads. */
export async function readFirstView(session: Session): Promise<FirstView> {
  const url = location.origin;
  const whole = await readRows({ url, token: session.token, subscriptions: [] });
  const projects = live(whole.project) as unknown as Project[];
  const workspaces = (live(whole.workspace) as unknown as WorkspaceRow[])
    .map((workspace) => ({
      id: workspace.id,
      name: workspace.name,
      projects: projects
        .filter((project) => project.workspace_id === workspace.id)
        .sort(byCreation)
        .map(({ id, name, workspace_id, created_at }) => ({ id, name, workspace_id, created_at })),
    }))
    .sort((a, b) => compareText(a.name, b.name));
  const opened = openedProject(projects, localStorage.getItem(lastProjectKey(session)));
  if (!opened) return { workspaces };
  const held = await readRows({ url, token: session.token, subscriptions: [{ name: 'project', params: { projectId: opened.id } }] });
  const comments = new Map<string, number>();
  for (const comment of live(held.comment)) comments.set(comment.task_id as string, (comments.get(comment.task_id as string) ?? 0) + 1);
  const tasks = live(held.task).map((task) => ({
    id: task.id as string,
    title: task.title as string,
    status: task.status as Task['status'],
    position: task.position as number,
    created_at: task.created_at as string,
    labels: task.labels as string[],
    comments: comments.get(task.id as string) ?? 0,
  }));
  return { workspaces, board: { projectId: opened.id, tasks } };
}

/** The board's columns from the first view's tasks, `shown` cards each, as BOARD_QUERY orders them. */
export function firstPages(tasks: FirstTask[], shown: Record<Task['status'], number>): ColumnPage[] {
  return STATUSES.map((status) => {
    const column = tasks.filter((task) => task.status === status).sort((a, b) => a.position - b.position || compareText(a.created_at, b.created_at));
    return { status, n: column.length, cards: column.slice(0, shown[status]) };
  });
}
