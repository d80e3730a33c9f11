import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChaosClient } from './chaos-clients';
import type { Cluster } from './cluster';
import { type Plan, type SubscriptionRef, finalSubscriptions } from './schedule';

/** The rows compared between a client and the server: every synced column that a write can change, and the column clocks. */
function rowQueries(where: { task: string; comment: string } = { task: '', comment: '' }): Record<string, string> {
  return {
    task: `SELECT id::text, workspace_id::text, project_id::text, title, status::text, position, labels::text, assignee_id::text, version, hlc, coalesce(column_hlcs, '{}')::text AS column_hlcs, deleted_at IS NOT NULL AS deleted FROM task ${where.task} ORDER BY id`,
    comment: `SELECT id::text, workspace_id::text, task_id::text, author_id::text, body, version, hlc, coalesce(column_hlcs, '{}')::text AS column_hlcs, deleted_at IS NOT NULL AS deleted FROM comment ${where.comment} ORDER BY id`,
  };
}

/**
 * What the server holds for a client: its scope ($1); for a partial client, only the rows its
 * subscriptions select ($2 projects, $3 tasks) — the rules of @walsync/db's `project` and `task`.
 */
function serverSelection(subscriptions: SubscriptionRef[] | undefined): { where: { task: string; comment: string }; params: (scope: string[]) => unknown[] } {
  if (!subscriptions) return { where: { task: `WHERE workspace_id = ANY($1::uuid[])`, comment: `WHERE workspace_id = ANY($1::uuid[])` }, params: (scope) => [scope] };
  const projects = subscriptions.flatMap((ref) => (ref.name === 'project' ? [ref.params.projectId] : []));
  const tasks = subscriptions.flatMap((ref) => (ref.name === 'task' ? [ref.params.taskId] : []));
  return {
    where: {
      task: `WHERE workspace_id = ANY($1::uuid[]) AND (project_id = ANY($2::uuid[]) OR id = ANY($3::uuid[]))`,
      comment: `WHERE workspace_id = ANY($1::uuid[]) AND (project_id = ANY($2::uuid[]) OR task_id = ANY($3::uuid[]))`,
    },
    params: (scope) => [scope, projects, tasks],
  };
}

const refKey = (ref: SubscriptionRef) => `${ref.name}:${JSON.stringify(ref.params)}`;

/** The first few differences between two row lists keyed by id, for the failure message. */
function differences(table: string, client: Array<Record<string, unknown>>, server: Array<Record<string, unknown>>): string[] {
  const serverById = new Map(server.map((row) => [row.id, row]));
  const clientById = new Map(client.map((row) => [row.id, row]));
  const lines: string[] = [];
  for (const [id, row] of serverById) {
    const mine = clientById.get(id);
    if (!mine) lines.push(`${table} ${id} missing on the client: server has ${JSON.stringify(row)}`);
    else if (JSON.stringify(mine) !== JSON.stringify(row)) lines.push(`${table} ${id} differs: client ${JSON.stringify(mine)} server ${JSON.stringify(row)}`);
  }
  for (const [id, row] of clientById) if (!serverById.has(id)) lines.push(`${table} ${id} on the client but not the server (in its scope): ${JSON.stringify(row)}`);
  return lines;
}

/**
 * The checks once everyone is online and quiet (DESIGN.md, invariants 1 and 2): each client equals
 * the server in its scope and has an empty outbox; every write the server acknowledged is still
 * there or was overwritten by a later one (LWW by HLC); no transaction is in change_history twice.
 * Returns how many rows were compared.
 */
export async function checkInvariants(cluster: Cluster, plan: Plan, clients: ChaosClient[]): Promise<number> {
  const { own, shared } = plan.fixture.workspaces;
  const scopeOf = (index: number) => ({ alice: [shared, own], bob: [shared], carol: [own] })[plan.clients[index]!.user];
  let compared = 0;
  for (const client of clients) {
    const scope = scopeOf(client.index);
    // A partial client must hold exactly the subscriptions the plan leaves it with, all of them ready, and their rows.
    const subscriptions = finalSubscriptions(plan.clients[client.index]!);
    const selection = serverSelection(subscriptions);
    const expected = (subscriptions ?? []).map((ref) => `${refKey(ref)} ready`).sort();
    let last: string[] = [];
    const deadline = Date.now() + 60_000;
    for (;;) {
      const server: Record<string, Array<Record<string, unknown>>> = {};
      for (const [table, sql] of Object.entries(rowQueries(selection.where))) server[table] = await cluster.query(sql, selection.params(scope));
      const held = `SELECT name, params, state FROM walsync_subscription ORDER BY key`;
      const dump = await client.request({ type: 'dump', queries: { ...rowQueries(), held } }, 'dump', 30_000);
      last = Object.keys(server).flatMap((table) => differences(table, dump.rows[table]!, server[table]!));
      if (dump.outbox !== 0) last.unshift(`${dump.outbox} changes still in the outbox`);
      const stored = (dump.rows.held as Array<SubscriptionRef & { state: string }>).map((row) => `${refKey(row)} ${row.state}`).sort();
      if (JSON.stringify(stored) !== JSON.stringify(expected)) last.unshift(`subscriptions: the replica holds ${JSON.stringify(stored)}, the plan left ${JSON.stringify(expected)}`);
      if (last.length === 0) {
        compared += Object.values(server).reduce((sum, rows) => sum + rows.length, 0);
        break;
      }
      if (Date.now() > deadline) {
        // Where a missing or different row went wrong: is it in change_history, and at which positions?
        const ids = [...new Set(last.flatMap((line) => /^(?:task|comment) ([0-9a-f-]{36})/.exec(line)?.[1] ?? []))].slice(0, 5);
        const history = await cluster.query<{ id: string; entries: string }>(
          `SELECT coalesce(data->>'id', old_data->>'id') AS id, string_agg(operation || '@' || lsn || '/' || coalesce(client_id, 'sql') || '/' || coalesce(scope_id::text, ''), ', ' ORDER BY commit_lsn, op_index) AS entries
             FROM change_history WHERE coalesce(data->>'id', old_data->>'id') = ANY($1) GROUP BY 1`,
          [ids],
        );
        const sent = await cluster.query<{ acked: string | null }>(`SELECT acked_position AS acked FROM sync_client WHERE client_id = $1`, [client.clientId]);
        // The user's memberships over time: a scope that went and came back is where many races live.
        const memberships = await cluster.query<{ entries: string }>(
          `SELECT string_agg(operation || '@' || lsn || ' ' || coalesce(scope_id::text, old_scope_id::text, ''), ', ' ORDER BY commit_lsn, op_index) AS entries
             FROM change_history WHERE table_name = 'workspace_member' AND coalesce(data->>'user_id', old_data->>'user_id') = $1`,
          [plan.fixture.users[plan.clients[client.index]!.user]],
        );
        last.unshift(
          ...history.map((row) => `history of ${row.id}: ${row.entries}`),
          `memberships of ${plan.clients[client.index]!.user}: ${memberships[0]?.entries ?? 'none'}`,
          `client ${client.clientId} acked ${sent[0]?.acked ?? "nothing"}`,
        );
        throw new Error(
          `client ${client.index} (${client.clientId}, ${dump.status}) diverged from the server after 60 s of quiet:\n${last.slice(0, 20).join('\n')}${last.length > 20 ? `\n… ${last.length - 20} more` : ''}` +
            (await replicaDetail(client, ids, held)) +
            wireLines(plan.seed, client.index, ids),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  // Every applied write receipt: each column it wrote holds its value, or a later write's (or an external delete removed the row).
  const externallyDeleted = new Set(plan.external.flatMap((write) => (write.kind === 'delete' ? [write.id] : [])));
  // A column's clock: its entry in column_hlcs, else the row's hlc (rules/column-clocks.ts).
  const clockOf = (row: Record<string, unknown>, column: string) => String((row.column_hlcs as Record<string, string> | null)?.[column] ?? row.hlc);
  const acked = await cluster.query<{ change_id: string; id: string; acked: Record<string, unknown>; now: Record<string, unknown> | null; applied: string[] }>(
    `SELECT r.change_id::text, r.result->'row'->>'id' AS id, r.result->'row' AS acked, coalesce(to_jsonb(t), to_jsonb(c)) AS now,
            ARRAY(SELECT jsonb_array_elements_text(coalesce(r.result->'columns'->'applied', '[]'))) AS applied
       FROM write_receipt r
       LEFT JOIN task t ON t.id = (r.result->'row'->>'id')::uuid
       LEFT JOIN comment c ON c.id = (r.result->'row'->>'id')::uuid
      WHERE r.client_id = ANY($1) AND r.result->>'status' = 'applied' AND jsonb_typeof(r.result->'row') = 'object'`,
    [clients.map((client) => client.clientId)],
  );
  const lost: string[] = [];
  for (const receipt of acked) {
    const { acked: row, now } = receipt;
    if (!now) {
      const task = (row.task_id as string | undefined) ?? receipt.id;
      if (!externallyDeleted.has(receipt.id) && !externallyDeleted.has(task)) lost.push(`change ${receipt.change_id}: row ${receipt.id} is gone (acked ${JSON.stringify(row)})`);
    } else if (String(now.hlc) < String(row.hlc)) {
      lost.push(`change ${receipt.change_id}: row ${receipt.id} went back from hlc ${row.hlc} to ${now.hlc}`);
    } else if (receipt.applied.some((column) => clockOf(now, column) < clockOf(row, column))) {
      lost.push(`change ${receipt.change_id}: a column it wrote went back to an older write (${receipt.applied.join(', ')}; acked ${JSON.stringify(row)}, now ${JSON.stringify(now)})`);
    } else {
      // A column no later write took must still hold the acked value (other columns may have moved on).
      const changed = receipt.applied.filter((column) => clockOf(now, column) === clockOf(row, column) && JSON.stringify(now[column]) !== JSON.stringify(row[column]));
      if (changed.length > 0) lost.push(`change ${receipt.change_id}: row ${receipt.id} has the acked clocks of ${changed.join(', ')} but other values`);
    }
  }
  if (acked.length === 0) throw new Error('the server acknowledged no write at all: the run tested nothing');
  if (lost.length > 0) throw new Error(`${lost.length} of ${acked.length} acknowledged writes were lost:\n${lost.slice(0, 12).join('\n')}`);

  const repeated = await cluster.query(
    `SELECT transaction_id, count(DISTINCT commit_lsn)::int AS positions FROM change_history GROUP BY transaction_id HAVING count(DISTINCT commit_lsn) > 1
     UNION ALL
     SELECT commit_lsn::text || '/' || op_index, count(*)::int FROM change_history GROUP BY commit_lsn, op_index HAVING count(*) > 1 LIMIT 5`,
  );
  if (repeated.length > 0) throw new Error(`change_history holds a change twice: ${JSON.stringify(repeated)}`);
  return compared;
}

/** What the client's replica says of `ids` beside the rows: its outbox, what it holds back, its subscriptions. */
async function replicaDetail(client: ChaosClient, ids: string[], held: string): Promise<string> {
  const list = ids.map((id) => `'${id}'`).join(', ') || `''`;
  const dump = await client.request(
    {
      type: 'dump',
      queries: {
        outbox: `SELECT table_name, op, pk->>'id' AS id, attempts, last_error FROM walsync_outbox WHERE pk->>'id' IN (${list}) OR data->>'task_id' IN (${list})`,
        deferred: `SELECT table_name, pk->>'id' AS id, version, row IS NULL AS removal FROM walsync_deferred WHERE pk->>'id' IN (${list})`,
        held,
      },
    },
    'dump',
    30_000,
  );
  return `\nreplica: outbox ${JSON.stringify(dump.rows.outbox)}; held back ${JSON.stringify(dump.rows.deferred)}; subscriptions ${JSON.stringify(dump.rows.held)}`;
}

/** The last lines of the client's wire log (WALSYNC_CHAOS_WIRE) that name one of `ids`, or a subscription or a session's start. */
function wireLines(seed: number, index: number, ids: string[]): string {
  const file = process.env.WALSYNC_CHAOS_WIRE && path.join(process.env.WALSYNC_CHAOS_WIRE, `seed-${seed}-client-${index}.wire.log`);
  if (!file || !existsSync(file) || ids.length === 0) return '';
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => ids.some((id) => line.includes(id)) || /"type":"(hello|subscribe|unsubscribe|unsubscribed|snapshot_start|snapshot_end|resnapshot|scope_removed)"/.test(line))
    .map((line) => line.slice(0, 400));
  return `\nwire (${file}), what names the rows, subscriptions and sessions, last 40:\n${lines.slice(-40).join('\n')}`;
}
