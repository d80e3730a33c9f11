import { PGlite } from '@electric-sql/pglite';
import { createMigrationAPI, syncedTables } from '@walsync/db/browser';
import { localSchemaSql, setState } from '../packages/web/src/local-schema';

async function time(db: PGlite, sql: string, params: (i: number) => unknown[], n = 1000) {
  const t: number[] = [];
  for (let i = 0; i < n; i++) { const s = performance.now(); await db.query(sql, params(i)); if (i >= 100) t.push(performance.now() - s); }
  t.sort((a, b) => a - b); return t[Math.floor(t.length / 2)]!;
}
const ins = `INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`;
const upd = `UPDATE task SET title = $2 WHERE id = (SELECT id FROM task WHERE workspace_id = $1 LIMIT 1)`;
async function main() {
  const db = await PGlite.create();
  await createMigrationAPI(db).migrateToLatest();
  const w = (await db.query<{ id: string }>(`INSERT INTO workspace (name) VALUES ('w') RETURNING id`)).rows[0]!.id;
  const p = (await db.query<{ id: string }>(`INSERT INTO project (workspace_id, name) VALUES ($1, 'p') RETURNING id`, [w])).rows[0]!.id;
  const base = localSchemaSql(syncedTables as never);
  await db.exec(base);
  await setState(db, 'client_id', 'c1');
  const fn = base.match(/CREATE OR REPLACE FUNCTION walsync_local_write\(\)[\s\S]*?END \$\$;/)![0];
  const variants: Record<string, string> = {
    full: fn,
    nonotify: fn.replace(/PERFORM pg_notify[^;]*;/, ''),
    nohlc: fn.replace(/stamp := walsync_local_hlc\(\);/, `stamp := '000000000000001:000000:c1';`),
    nooutbox: fn.replace(/INSERT INTO walsync_outbox[^;]*;/, ''),
    onlyreturn: fn.replace(/BEGIN\n/, 'BEGIN\n RETURN NEW;\n'),
  };
  const results: Record<string, number[]> = { plain: [] };
  for (let round = 0; round < 3; round++) {
    await db.exec(`DROP TRIGGER IF EXISTS walsync_local_write ON task`);
    results.plain!.push(await time(db, ins, (i) => [w, p, 'x' + i]));
    await db.exec(`CREATE TRIGGER walsync_local_write BEFORE INSERT OR UPDATE ON task FOR EACH ROW EXECUTE FUNCTION walsync_local_write('1','id','workspace_id','project_id','title','description','status','position','assignee_id','deleted_at')`);
    for (const [name, sql] of Object.entries(variants)) {
      await db.exec(sql);
      (results[name] ??= []).push(await time(db, ins, (i) => [w, p, name + i]));
      (results[name + ':upd'] ??= []).push(await time(db, upd, (i) => [w, name + 'u' + i], 400));
    }
    await db.exec(`DELETE FROM walsync_outbox`);
  }
  for (const [k, v] of Object.entries(results)) console.log(k.padEnd(16), v.map((x) => x.toFixed(3)).join(' '));
  await db.close();
}
main();
