import { useHasLastResults, useLiveQuery, usePendingCount, useSubscription, useSyncEvent, useSyncStatus } from '@walsync/react';
import type { BrowserSyncClient, SyncStatus } from '@walsync/web/browser';
import { useEffect, useState } from 'react';
import { type FirstView, type Project, byCreation, lastProjectKey, openedProject } from './first-view';
import { Columns } from './project-board';
import type { Session } from './session';

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
  const project = openedProject(projects, selected);
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
