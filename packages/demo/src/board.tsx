import { useHasLastResults, useLiveQuery, useOptimisticLiveQuery, usePendingCount, useSubscription, useSyncEvent, useSyncStatus } from '@walsync/react';
import type { BrowserSyncClient, SyncStatus } from '@walsync/web/browser';
import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import { type ColumnPage, type BoardWrite, STATUSES, type Status, type Task, type Write, BOARD_QUERY, applyWrite, newId } from './board-writes';
import { type FirstTask, type FirstView, type Project, byCreation, firstPages, lastProjectKey } from './first-view';
import type { Session } from './session';

const STATUS_NAMES: Record<Status, string> = { todo: 'To do', doing: 'Doing', done: 'Done' };
const SHOWN_STATUS: Record<SyncStatus, string> = { connecting: 'connecting', syncing: 'syncing', 'up-to-date': 'online', offline: 'offline', error: 'stopped', closed: 'closed' };

interface Notice {
  kind: 'conflict' | 'error';
  text: string;
}

/** The client's status, first-sync progress and the last conflict or error, as React state. */
function useSync(client: BrowserSyncClient) {
  const status = useSyncStatus();
  const [ready, setReady] = useState(false);
  const [progress, setProgress] = useState<{ sent: number; total: number; what: string } | undefined>();
  const [notice, setNotice] = useState<Notice | undefined>();
  const [totals] = useState<Record<string, number>>({});
  const [sent] = useState<Record<string, number>>({});
  const sum = (values: Record<string, number>) => Object.values(values).reduce((a, b) => a + b, 0);
  // The first sync, or a project's rows when the board switches to a project this device does not hold yet.
  useSyncEvent('bootstrap:start', ({ total, subscription }) => {
    for (const table of Object.keys(sent)) delete sent[table];
    for (const table of Object.keys(totals)) delete totals[table];
    Object.assign(totals, total);
    setProgress({ sent: 0, total: sum(totals), what: subscription ? 'Loading the project' : 'First sync' });
  });
  useSyncEvent('bootstrap:progress', ({ table, sent: count, subscription }) => {
    sent[table] = count;
    setProgress({ sent: sum(sent), total: sum(totals), what: subscription ? 'Loading the project' : 'First sync' });
  });
  useSyncEvent('bootstrap:complete', () => setProgress(undefined));
  useSyncEvent('conflict', ({ table }) => setNotice({ kind: 'conflict', text: `A newer change from someone else replaced yours on a ${table}.` }));
  useSyncEvent('error', (error) => setNotice({ kind: 'error', text: error.message }));
  useEffect(() => {
    client.ready.then(
      () => setReady(true),
      (error: Error) => setNotice({ kind: 'error', text: error.message }),
    );
  }, [client]);
  return { status, ready, progress, notice, dismiss: () => setNotice(undefined) };
}

/** The first view once read (undefined before, or when it could not be). */
function useFirstView(read: Promise<FirstView> | undefined): FirstView | undefined {
  const [view, setView] = useState<FirstView>();
  useEffect(() => {
    let cancelled = false;
    read?.then(
      (first) => !cancelled && setView(first),
      (error: Error) => console.warn(`the board's first view could not be read (it waits for the replica): ${error.message}`),
    );
    return () => {
      cancelled = true;
    };
  }, [read]);
  return view;
}

/**
 * The board. `firstView` (a first visit: no last view kept) paints it from rows read once from the
 * server while the new replica starts and hydrates; each query's own rows take over once the replica holds them.
 */
export function Board({ client, session, firstView }: { client: BrowserSyncClient; session: Session; firstView?: Promise<FirstView> }) {
  const sync = useSync(client);
  // A reload paints the board's last view at once (kept by the provider) while the replica opens.
  const resumed = useHasLastResults();
  const first = useFirstView(firstView);
  return (
    <div className="app">
      <header>
        <h1>walsync</h1>
        <span className="who">{session.user.name} · {session.user.email}</span>
        <span className="sync">
          <span className={`status status-${sync.status}`} data-testid="sync-status" data-status={sync.status}>
            {SHOWN_STATUS[sync.status]}
          </span>
          {sync.ready && <Pending />}
        </span>
        <a className="switch" href="/" onClick={() => localStorage.removeItem('walsync-demo:last-user')}>
          switch user
        </a>
      </header>
      {sync.progress && (
        <div className="progress" data-testid="hydration-progress">
          <div className="bar" style={{ width: `${sync.progress.total ? (100 * sync.progress.sent) / sync.progress.total : 0}%` }} />
          <span>
            {sync.progress.what}: {sync.progress.sent} of {sync.progress.total} rows
          </span>
        </div>
      )}
      {sync.notice && (
        <div className={`message ${sync.notice.kind}`} data-testid="sync-message" onClick={sync.dismiss}>
          {sync.notice.text} <small>(click to dismiss)</small>
        </div>
      )}
      {sync.ready || resumed || first ? (
        <Workspaces client={client} session={session} first={first} replicaReady={sync.ready} />
      ) : (
        !sync.progress && <p className="loading">Opening your workspace…</p>
      )}
    </div>
  );
}

function Pending() {
  const pending = usePendingCount();
  return (
    <span className={`pending${pending ? ' has-pending' : ''}`} title="local changes not yet on the server">
      <span data-testid="pending-count">{pending}</span> pending
    </span>
  );
}

function Workspaces({ client, session, first, replicaReady }: { client: BrowserSyncClient; session: Session; first: FirstView | undefined; replicaReady: boolean }) {
  // One live query for the navigation: each workspace with its projects.
  const workspaces = useLiveQuery<{ id: string; name: string; projects: Project[] }>(
    `SELECT w.id, w.name,
            coalesce(json_agg(json_build_object('id', p.id, 'name', p.name, 'workspace_id', p.workspace_id, 'created_at', p.created_at) ORDER BY p.created_at, p.name)
                       FILTER (WHERE p.id IS NOT NULL), '[]') AS projects
       FROM workspace w LEFT JOIN project p ON p.workspace_id = w.id AND p.deleted_at IS NULL
      WHERE w.deleted_at IS NULL GROUP BY w.id, w.name ORDER BY w.name`,
    [],
    // Until the replica has synced, the navigation read from the server (a first visit).
    { placeholder: replicaReady ? undefined : first?.workspaces },
  );
  const projects = (workspaces ?? []).flatMap((workspace) => workspace.projects).sort(byCreation);
  const lastProject = lastProjectKey(session);
  const [selected, setSelected] = useState<string | undefined>(() => localStorage.getItem(lastProject) ?? undefined);
  const [newProject, setNewProject] = useState('');
  const project = projects.find((candidate) => candidate.id === selected) ?? projects[0];
  const held = useHeldProject(client, session, project?.id);
  if (!workspaces) return null;
  const choose = (id: string) => {
    setSelected(id);
    localStorage.setItem(lastProject, id);
  };
  const addProject = async () => {
    const name = newProject.trim();
    if (!name || !workspaces[0]) return;
    const created = await client.db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, $2) RETURNING id`, [
      project?.workspace_id ?? workspaces[0].id,
      name,
    ]);
    setNewProject('');
    choose(created.rows[0]!.id);
  };
  return (
    <div className="layout">
      <nav>
        {workspaces.map((workspace) => (
          <section key={workspace.id}>
            <h2>{workspace.name}</h2>
            <ul>
              {projects
                .filter((candidate) => candidate.workspace_id === workspace.id)
                .map((candidate) => (
                  <li key={candidate.id}>
                    <button className={candidate.id === project?.id ? 'selected' : ''} onClick={() => choose(candidate.id)} data-testid="project">
                      {candidate.name}
                    </button>
                  </li>
                ))}
            </ul>
          </section>
        ))}
        <form
          onSubmit={(event) => {
            event.preventDefault();
            void addProject();
          }}
        >
          <input value={newProject} onChange={(event) => setNewProject(event.target.value)} placeholder="New project" aria-label="New project name" />
        </form>
      </nav>
      {project ? (
        <Columns
          key={project.id}
          client={client}
          session={session}
          project={project}
          held={held.ready}
          notHeld={!held.ready && held.offline}
          firstTasks={!held.ready && first?.board?.projectId === project.id ? first?.board?.tasks : undefined}
        />
      ) : (
        <p className="loading">No projects yet.</p>
      )}
    </div>
  );
}

/** How many projects the device keeps after the board moved on from them (the one on screen included). */
const HELD_PROJECTS = 3;

/**
 * The board holds the project on screen (a subscription: its tasks and their comments) and the last
 * few it showed, so switching back is instant and works offline; older ones are let go.
 */
function useHeldProject(client: BrowserSyncClient, session: Session, projectId: string | undefined) {
  const status = useSyncStatus();
  const { ready, error } = useSubscription('project', projectId ? { projectId } : undefined);
  useEffect(() => {
    if (!projectId) return;
    const key = `walsync-demo:held-projects:${session.user.id}`;
    const kept = [projectId, ...(JSON.parse(localStorage.getItem(key) ?? '[]') as string[]).filter((id) => id !== projectId)];
    for (const old of kept.slice(HELD_PROJECTS)) void client.unsubscribe('project', { projectId: old }).catch(() => undefined);
    localStorage.setItem(key, JSON.stringify(kept.slice(0, HELD_PROJECTS)));
  }, [client, session, projectId]);
  return { ready, error, offline: status === 'offline' };
}

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
function Columns({
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
