import { useLiveQuery, useOptimisticLiveQuery } from '@walsync/react';
import type { BrowserSyncClient } from '@walsync/web/browser';
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import { type BoardWrite, type ColumnPage, STATUSES, type Status, type Task, type Write, BOARD_QUERY, applyWrite, newId } from './board-writes';
import { type FirstTask, firstPages } from './first-view';
import type { Session } from './session';

/** The board of one project: its columns, their cards and a card's comments. */

const STATUS_NAMES: Record<Status, string> = { todo: 'To do', doing: 'Doing', done: 'Done' };

/**
 * Whether the replica holds the project on screen, and a promise of when it does: a first visit's
 * board is painted from the server before, and its writes and comment reads wait for it.
 */
const ProjectHeld = createContext<{ held: boolean; whenHeld(): Promise<void> }>({ held: true, whenHeld: () => Promise.resolve() });

/** Cards a column shows at first, and how many more each time its end scrolls into view. */
const PAGE = 40;

/**
 * The board of one project: one live query for every column's page (grown as the column's end
 * scrolls into view) and count, read through the task_board index, so a write costs the same with
 * 10 tasks or 10,000 and the DOM holds what can be seen. This tab's writes show in the frame they
 * are made (optimistic rows), until the live query has re-read them.
 */
export function Columns({
  client,
  session,
  project,
  held,
  notHeld,
  firstTasks,
}: {
  client: BrowserSyncClient;
  session: Session;
  project: { id: string; name: string; workspace_id: string };
  /** The replica holds the project's tasks. */
  held: boolean;
  /** The project's tasks are not on this device, and cannot load now (offline). */
  notHeld: boolean;
  /** The project's tasks read from the server, shown until the replica holds them (a first visit). */
  firstTasks: FirstTask[] | undefined;
}) {
  const [title, setTitle] = useState('');
  const [limits, setLimits] = useState<Record<Status, number>>({ todo: PAGE, doing: PAGE, done: PAGE });
  const [failure, setFailure] = useState<string>();
  const placeholder = useMemo(() => firstTasks && firstPages(firstTasks, limits), [firstTasks, limits]);
  const { rows: pages, write: optimistic } = useOptimisticLiveQuery<ColumnPage, BoardWrite>(
    BOARD_QUERY,
    [project.id, limits.todo, limits.doing, limits.done],
    applyWrite,
    { placeholder },
  );
  // A write waits until the replica holds the project (a first visit paints it before): an UPDATE of
  // a row not there yet would change nothing, an INSERT would miss its parent.
  const isHeld = useRef(held);
  isHeld.current = held;
  const whenHeld = useCallback(() => (isHeld.current ? Promise.resolve() : client.subscribe('project', { projectId: project.id }).ready), [client, project.id]);
  const projectHeld = useMemo(() => ({ held, whenHeld }), [held, whenHeld]);
  // For `yarn bench demo`: when the board is the replica's (a first visit paints it from the server before).
  useEffect(() => {
    if (held && performance.getEntriesByName('walsync:board-held').length === 0) performance.mark('walsync:board-held');
  }, [held]);
  const write: Write = (action, run) =>
    void optimistic(action, () => whenHeld().then(run)).then(
      () => setFailure(undefined),
      (error: Error) => setFailure(error.message),
    );
  const add = () => {
    const text = title.trim();
    if (!text) return;
    setTitle('');
    // New cards go on top of "To do", where the person who adds one is looking.
    const card: Task = { id: newId(), title: text, status: 'todo', position: 0, labels: [], comments: 0 };
    write({ kind: 'add', card }, () =>
      client.db.query(
        `INSERT INTO task (id, workspace_id, project_id, title, position)
         VALUES ($1, $2, $3, $4, (SELECT coalesce(min(position), 1) - 1 FROM task WHERE project_id = $3 AND status = 'todo' AND deleted_at IS NULL))`,
        [card.id, project.workspace_id, project.id, text],
      ),
    );
  };
  return (
    <ProjectHeld.Provider value={projectHeld}>
      <main className="board">
        {notHeld && (
          <p className="message" data-testid="project-not-held">
            This project's tasks are not on this device yet; they load when you are back online.
          </p>
        )}
        <form
          className="new-task"
          onSubmit={(event) => {
            event.preventDefault();
            add();
          }}
        >
          <h2>{project.name}</h2>
          <input data-testid="new-task-title" value={title} onChange={(event) => setTitle(event.target.value)} placeholder="What needs doing?" aria-label="New task title" />
          <button data-testid="add-task" type="submit">
            Add task
          </button>
        </form>
        {failure && (
          <div className="message error" data-testid="write-failed" onClick={() => setFailure(undefined)}>
            Your change could not be made: {failure} <small>(click to dismiss)</small>
          </div>
        )}
        <div className="columns">
          {STATUSES.map((status) => {
            const page = pages?.find((row) => row.status === status);
            return (
              <Column
                key={status}
                client={client}
                session={session}
                write={write}
                project={project}
                status={status}
                count={page?.n ?? 0}
                tasks={page?.cards ?? []}
                more={() => setLimits((current) => ({ ...current, [status]: current[status] + PAGE }))}
              />
            );
          })}
        </div>
      </main>
    </ProjectHeld.Provider>
  );
}

/** One status column: its page of cards, and a "more" row that grows the page when it scrolls into view. */
function Column({
  client,
  session,
  write,
  project,
  status,
  count,
  tasks,
  more,
}: {
  client: BrowserSyncClient;
  session: Session;
  write: Write;
  project: { id: string; workspace_id: string };
  status: Status;
  count: number;
  tasks: Task[];
  more: () => void;
}) {
  const hasMore = tasks.length < count;
  const end = useRef<HTMLDivElement>(null);
  const grow = useRef(more);
  grow.current = more;
  useEffect(() => {
    if (!hasMore || !end.current) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) grow.current();
    });
    observer.observe(end.current);
    return () => observer.disconnect();
  }, [hasMore, tasks.length]);
  return (
    <section className="column" data-column={status}>
      <h3>
        {STATUS_NAMES[status]} <span className="count">{count}</span>
      </h3>
      {tasks.map((task) => (
        <Card key={task.id} client={client} session={session} write={write} task={task} workspaceId={project.workspace_id} />
      ))}
      {hasMore && (
        <div ref={end} className="more">
          <button onClick={() => grow.current()} data-testid="show-more">
            {count - tasks.length} more
          </button>
        </div>
      )}
    </section>
  );
}

function Card({
  client,
  session,
  write,
  task,
  workspaceId,
}: {
  client: BrowserSyncClient;
  session: Session;
  write: Write;
  task: Task;
  workspaceId: string;
}) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(task.title);
  const [open, setOpen] = useState(false);
  const index = STATUSES.indexOf(task.status);
  // A moved card goes on top of its new column, where it can be seen however long the column is.
  const move = (to: Status) =>
    write({ kind: 'move', id: task.id, to }, () =>
      client.db.query(
        `UPDATE task SET status = $2, position = (SELECT coalesce(min(p.position), 1) - 1 FROM task p WHERE p.project_id = task.project_id AND p.status = $2 AND p.deleted_at IS NULL) WHERE id = $1`,
        [task.id, to],
      ),
    );
  const save = () => {
    setEditing(false);
    const text = draft.trim();
    if (text && text !== task.title) write({ kind: 'title', id: task.id, title: text }, () => client.db.query(`UPDATE task SET title = $2 WHERE id = $1`, [task.id, text]));
  };
  return (
    <article className={`card${task.pending ? ' pending' : ''}`} data-testid="task-card" data-task-id={task.id} data-status={task.status} data-pending={task.pending ? '' : undefined}>
      {editing ? (
        <input
          autoFocus
          className="edit"
          data-testid="edit-title"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
          onBlur={save}
          onKeyDown={(event) => {
            if (event.key === 'Enter') save();
            if (event.key === 'Escape') setEditing(false);
          }}
        />
      ) : (
        <p
          className="title"
          data-testid="task-title"
          onDoubleClick={() => {
            setDraft(task.title);
            setEditing(true);
          }}
          title="double-click to edit"
        >
          {task.title}
        </p>
      )}
      {task.labels.length > 0 && (
        <p className="labels">
          {task.labels.map((label) => (
            <span key={label} className="label">
              {label}
            </span>
          ))}
        </p>
      )}
      <footer>
        <button disabled={index === 0} onClick={() => move(STATUSES[index - 1]!)} aria-label="move left" data-testid="move-left">
          ←
        </button>
        <button disabled={index === STATUSES.length - 1} onClick={() => move(STATUSES[index + 1]!)} aria-label="move right" data-testid="move-right">
          →
        </button>
        <button onClick={() => setOpen(!open)} data-testid="toggle-comments">
          {task.comments} {task.comments === 1 ? 'comment' : 'comments'}
        </button>
        <button className="delete" onClick={() => write({ kind: 'delete', id: task.id }, () => client.db.query(`DELETE FROM task WHERE id = $1`, [task.id]))} aria-label="delete" data-testid="delete-task">
          ✕
        </button>
      </footer>
      {open && <Comments client={client} session={session} taskId={task.id} workspaceId={workspaceId} />}
    </article>
  );
}

function Comments({ client, session, taskId, workspaceId }: { client: BrowserSyncClient; session: Session; taskId: string; workspaceId: string }) {
  const project = useContext(ProjectHeld);
  const comments = useLiveQuery<{ id: string; body: string; mine: boolean }>(
    `SELECT id, body, author_id = $2 AS mine FROM comment WHERE task_id = $1 AND deleted_at IS NULL ORDER BY created_at`,
    [taskId, session.user.id],
    // A first visit's card, before the replica holds its project: no comments read yet.
    { placeholder: project.held ? undefined : [] },
  );
  const [body, setBody] = useState('');
  return (
    <div className="comments">
      {comments?.map((comment) => (
        <p key={comment.id} className={comment.mine ? 'mine' : ''} data-testid="comment">
          {comment.body}
        </p>
      ))}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          const text = body.trim();
          if (!text) return;
          setBody('');
          void project.whenHeld().then(() => client.db.query(`INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, $4)`, [workspaceId, taskId, session.user.id, text]));
        }}
      >
        <input value={body} onChange={(event) => setBody(event.target.value)} placeholder="Add a comment" data-testid="new-comment" aria-label="New comment" />
      </form>
    </div>
  );
}
