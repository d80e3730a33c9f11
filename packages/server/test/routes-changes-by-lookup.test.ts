import { randomUUID } from 'node:crypto';
import { subscriptionDefinitions } from '@walsync/db/server';
import { type FeedEntry, SessionRouter } from '@walsync/server';
import { describe, expect, it } from 'vitest';

/** A session as the router sees it: what it was handed, and how often it was woken. */
class Listener {
  inbox: FeedEntry[] | null = [];
  woken = 0;
  pump(): void {
    this.woken++;
  }
}

const entry = (fields: Partial<FeedEntry> & Pick<FeedEntry, 'table' | 'op'>): FeedEntry => ({ commitLsn: 1n, data: null, old: null, clientId: null, scopeId: null, oldScopeId: null, ...fields });

/**
 * The server finds the sessions a change goes to by looking its values up: a change reaches the
 * sessions that may hold its row (old or new), and no other session does any work for it.
 */
describe('the session router', () => {
  const workspace = randomUUID();
  const projects = Array.from({ length: 100 }, () => randomUUID());

  /** 1,000 sessions, each subscribed to one of 100 projects, and 10 that hold the whole workspace. */
  const setUp = () => {
    const router = new SessionRouter<Listener>(subscriptionDefinitions);
    const partial = projects.flatMap((project) =>
      Array.from({ length: 10 }, () => {
        const session = new Listener();
        router.index(session, { whole: false, workspaces: [workspace], selectors: [['task', 'project_id', project], ['comment', 'project_id', project]], userId: randomUUID(), clientId: randomUUID() });
        return { session, project };
      }),
    );
    const whole = Array.from({ length: 10 }, () => {
      const session = new Listener();
      router.index(session, { whole: true, workspaces: [workspace], selectors: [], userId: randomUUID(), clientId: randomUUID() });
      return session;
    });
    return { router, partial, whole };
  };

  it('hands a task change to the sessions of its project and the whole-scope sessions only', () => {
    const { router, partial, whole } = setUp();
    const task = { id: randomUUID(), workspace_id: workspace, project_id: projects[7] };
    router.route([entry({ table: 'task', op: 'insert', data: task, scopeId: workspace })]);
    const reached = partial.filter(({ session }) => session.woken > 0);
    expect(reached.map(({ project }) => project)).toEqual(Array(10).fill(projects[7]));
    expect(reached.every(({ session }) => session.inbox!.length === 1)).toBe(true);
    expect(whole.every((session) => session.woken === 1 && session.inbox!.length === 1)).toBe(true);
  });

  it('hands a move to the sessions of the old project and of the new one; a project row to every session of the workspace', () => {
    const { router, partial } = setUp();
    const id = randomUUID();
    router.route([entry({ table: 'task', op: 'update', data: { id, project_id: projects[2] }, old: { id, project_id: projects[1] }, scopeId: workspace })]);
    expect(new Set(partial.filter(({ session }) => session.woken > 0).map(({ project }) => project))).toEqual(new Set([projects[1], projects[2]]));
    const { router: second, partial: all } = setUp();
    second.route([entry({ table: 'project', op: 'update', data: { id: projects[3], workspace_id: workspace }, scopeId: workspace })]);
    expect(all.every(({ session }) => session.woken === 1)).toBe(true);
  });

  it('wakes a catching-up session on every advance without handing it entries, and drops an inbox that grows without bound', () => {
    const { router, partial } = setUp();
    const { session, project } = partial[0]!;
    router.catchUp(session);
    router.route([]);
    expect(session.woken).toBe(1);
    expect(session.inbox).toBeNull();
    router.caughtUp(session);
    const many = Array.from({ length: 10_001 }, () => entry({ table: 'task', op: 'insert', data: { id: randomUUID(), project_id: project }, scopeId: workspace }));
    router.route(many);
    // Past the bound the session reads the feed itself (its position did not move, nothing is lost).
    expect(session.inbox).toBeNull();
    router.remove(session);
    router.route([]);
    expect(session.woken).toBe(2);
  });
});
