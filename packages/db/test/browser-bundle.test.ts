import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshPGlite } from './support/pglite';

const dist = path.resolve(__dirname, '../dist');
const require = createRequire(__filename);

describe('the browser build (dist/browser.mjs)', () => {
  it('contains no TypeORM and imports only small browser-safe packages', () => {
    const metafile = JSON.parse(readFileSync(path.join(dist, 'browser.meta.json'), 'utf8')) as {
      outputs: Record<string, { imports: { path: string; external?: boolean }[] }>;
      inputs: Record<string, unknown>;
    };
    expect(Object.keys(metafile.inputs).filter((input) => /typeorm|reflect-metadata|node_modules/.test(input))).toEqual([]);
    const imports = Object.values(metafile.outputs).flatMap((output) => output.imports.map((each) => each.path));
    expect([...new Set(imports)].sort()).toEqual(['@noble/hashes/sha2.js', '@noble/hashes/utils.js', 'zod']);
    const code = readFileSync(path.join(dist, 'browser.mjs'), 'utf8');
    expect(code).not.toMatch(/(from|import|require)\s*\(?\s*["'](typeorm|reflect-metadata|pg|node:[a-z]+)["']/);
    expect(code).not.toContain(path.resolve(__dirname, '../../..'));
  });

  it('is what `import` resolves to, applies every migration to PGlite, and agrees with the CommonJS server build', async () => {
    const browser = await import('@walsync/db');
    const server = require('@walsync/db') as typeof import('@walsync/db/server');
    expect(require.resolve('@walsync/db')).toBe(path.join(dist, 'server.cjs'));

    expect(browser.schemaVersion).toBe(server.schemaVersion);
    expect(browser.migrations).toEqual(await server.extractMigrations(server.migrations));
    expect(browser.syncedTables.map((table) => [table.name, table.scope, table.primaryKey])).toEqual([
      ['workspace', 'id', ['id']],
      ['workspace_member', 'workspace_id', ['workspace_id', 'user_id']],
      ['project', 'workspace_id', ['id']],
      ['task', 'workspace_id', ['id']],
      ['comment', 'workspace_id', ['id']],
    ]);

    const db = await freshPGlite();
    try {
      const result = await browser.createMigrationAPI(db).migrateToLatest();
      expect(result.error).toBeUndefined();
      expect(result.results.map((each) => each.migrationName)).toEqual(browser.migrations.map((each) => each.name));
      const status = await browser.createMigrationAPI(db).getMigrationStatus();
      expect(status.every((each) => each.state === 'applied')).toBe(true);
    } finally {
      await db.close();
    }
  });
});
