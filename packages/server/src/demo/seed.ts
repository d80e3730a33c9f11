import type pg from 'pg';
import { checkout } from '../connection';

export const DEMO_USERS = [
  { email: 'alice@demo.test', name: 'Alice' },
  { email: 'bob@demo.test', name: 'Bob' },
  { email: 'carol@demo.test', name: 'Carol' },
] as const;

const TASKS: Array<[project: number, title: string, status: 'todo' | 'doing' | 'done', labels: string[]]> = [
  [0, 'Sketch the new landing page', 'done', ['design']],
  [0, 'Write the launch announcement', 'doing', ['copy']],
  [0, 'Pick a font pairing', 'done', ['design']],
  [0, 'Set up analytics', 'todo', ['infra']],
  [0, 'Review pricing page copy', 'todo', ['copy']],
  [0, 'Check the page on slow 3G', 'todo', ['perf']],
  [1, 'Offline mode for the task list', 'doing', ['sync']],
  [1, 'Push notifications', 'todo', []],
  [1, 'App store screenshots', 'todo', ['design']],
  [1, 'Crash reporting', 'done', ['infra']],
  [2, 'Choose ten best photos', 'doing', []],
  [2, 'Write the about page', 'todo', ['copy']],
];

/**
 * The demo data: alice and bob share the "Acme" workspace, carol is alone in "Carol's studio".
 * Idempotent: a database that already has the demo users is left as it is.
 */
export async function seedDemo(pool: pg.Pool): Promise<'seeded' | 'already seeded'> {
  const client = await checkout(pool);
  try {
    await client.query('BEGIN');
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('walsync.demo_seed'))`);
    const existing = await client.query(`SELECT 1 FROM app_user WHERE email = $1`, [DEMO_USERS[0].email]);
    if (existing.rowCount) {
      await client.query('ROLLBACK');
      return 'already seeded';
    }
    const users = (
      await client.query<{ id: string }>(`INSERT INTO app_user (email, name) SELECT * FROM unnest($1::text[], $2::text[]) RETURNING id`, [
        DEMO_USERS.map((user) => user.email),
        DEMO_USERS.map((user) => user.name),
      ])
    ).rows.map((row) => row.id);
    const [acme, studio] = (await client.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('Acme'), ('Carol''s studio') RETURNING id`)).rows.map((row) => row.id);
    await client.query(`INSERT INTO workspace_member (workspace_id, user_id, role) VALUES ($1, $2, 'owner'), ($1, $3, 'member'), ($4, $5, 'owner')`, [acme, users[0], users[1], studio, users[2]]);
    const projects = (
      await client.query<{ id: string; workspace_id: string }>(
        `INSERT INTO project (workspace_id, name) VALUES ($1, 'Website relaunch'), ($1, 'Mobile app'), ($2, 'Portfolio') RETURNING id, workspace_id`,
        [acme, studio],
      )
    ).rows;
    const tasks: string[] = [];
    for (const [index, [project, title, status, labels]] of TASKS.entries()) {
      const row = await client.query<{ id: string }>(
        `INSERT INTO task (workspace_id, project_id, title, status, labels, position) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
        [projects[project]!.workspace_id, projects[project]!.id, title, status, JSON.stringify(labels), index + 1],
      );
      tasks.push(row.rows[0]!.id);
    }
    await client.query(
      `INSERT INTO comment (workspace_id, task_id, author_id, body) VALUES ($1, $2, $3, 'First draft is in the shared folder.'), ($1, $2, $4, 'Looks good, a few notes inline.'), ($5, $6, $7, 'Shortlist is on my desk.')`,
      [acme, tasks[1], users[0], users[1], studio, tasks[10], users[2]],
    );
    await client.query('COMMIT');
    return 'seeded';
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
