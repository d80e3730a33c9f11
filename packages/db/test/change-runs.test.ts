import { type StreamChange, collapseRuns } from '@walsync/db/server';
import { random } from '@walsync/test-support';
import { describe, expect, it } from 'vitest';

const primaryKeys: Record<string, string[]> = { task: ['id'], comment: ['id'] };
const primaryKey = (table: string) => primaryKeys[table];

/** What a replica holds after the changes, applied one at a time: an upsert never replaces a newer version, a delete removes. */
function applyOneByOne(changes: StreamChange[]): Map<string, Record<string, unknown>> {
  const rows = new Map<string, Record<string, unknown>>();
  for (const change of changes) {
    const key = `${change.table}:${String((change.data ?? change.old)?.id)}`;
    if (change.op === 'delete') rows.delete(key);
    else if (change.op === 'truncate') for (const each of [...rows.keys()].filter((name) => name.startsWith(`${change.table}:`))) rows.delete(each);
    else if (!(Number(rows.get(key)?.version) > Number(change.data!.version))) rows.set(key, change.data!);
  }
  return rows;
}

/** A batch as the stream sends it: rows of two tables inserted, updated (versions rising; a late answer may carry an older one), deleted. */
function batch(seed: number): StreamChange[] {
  const next = random(seed);
  const versions = new Map<string, number>();
  const changes: StreamChange[] = [];
  for (let i = 0; i < 40; i++) {
    const table = next() < 0.7 ? 'task' : 'comment';
    const id = `r${Math.floor(next() * 4)}`;
    const roll = next();
    const version = (versions.get(`${table}:${id}`) ?? 0) + (next() < 0.1 ? -1 : 1);
    versions.set(`${table}:${id}`, Math.max(version, versions.get(`${table}:${id}`) ?? 0));
    if (roll < 0.1) changes.push({ table, op: 'delete', old: { id, version } });
    else if (roll < 0.12) changes.push({ table, op: 'truncate' });
    else changes.push({ table, op: roll < 0.3 ? 'insert' : 'update', data: { id, version, title: `${table} ${id} v${version} #${i}` } });
  }
  return changes;
}

describe('a changes batch collapsed as a replica applies it (collapseRuns)', () => {
  it('keeps one change per row in each run of upserts, and what a replica ends with does not change (200 seeded batches)', () => {
    let shorter = 0;
    for (let seed = 1; seed <= 200; seed++) {
      const changes = batch(seed);
      const collapsed = collapseRuns(changes, primaryKey);
      expect(applyOneByOne(collapsed), `seed ${seed}`).toEqual(applyOneByOne(changes));
      if (collapsed.length < changes.length) shorter++;
    }
    // The batches do collapse (a check on the generator: a test of nothing would pass too).
    expect(shorter).toBeGreaterThan(150);
  });

  it('leaves deletes, truncates and tables it has no key for where they are', () => {
    const changes: StreamChange[] = [
      { table: 'task', op: 'insert', data: { id: 'a', version: 1 } },
      { table: 'task', op: 'update', data: { id: 'a', version: 2 } },
      { table: 'task', op: 'delete', old: { id: 'a', version: 2 } },
      { table: 'task', op: 'insert', data: { id: 'a', version: 3 } },
      { table: 'other', op: 'update', data: { id: 'x', version: 1 } },
      { table: 'other', op: 'update', data: { id: 'x', version: 2 } },
    ];
    expect(collapseRuns(changes, primaryKey)).toEqual([changes[1], changes[2], changes[3], changes[4], changes[5]]);
  });
});
