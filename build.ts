/**
 * Builds every package in dependency order: `yarn build`.
 *
 * @walsync/db: dist/server.cjs (Node, with TypeORM), then the migrations extracted from it into
 * dist/migrations/*.json and dist/catalog.json, then dist/browser.mjs (no TypeORM, the catalog
 * inlined), then declarations in dist/types/.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { build, type BuildOptions, type Plugin } from 'esbuild';

const root = __dirname;
const requireFromHere = createRequire(__filename);

const library: BuildOptions = {
  bundle: true,
  packages: 'external',
  sourcemap: true,
  keepNames: true,
  target: 'es2022',
  logLevel: 'warning',
};

/** Declarations (tsc) run beside the bundling; they only need the sources. */
function declarations(tsconfig: string): Promise<void> {
  const child = spawn(process.execPath, [requireFromHere.resolve('typescript/bin/tsc'), '-p', tsconfig], { stdio: 'inherit' });
  return new Promise((resolve, reject) =>
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tsc -p ${path.relative(root, tsconfig)} failed (exit ${code})`)))),
  );
}

/** Resolves when the bundles are written; `types` when the declarations are too (they take longest). */
async function buildDb(types: Promise<void>[]): Promise<void> {
  const dir = path.join(root, 'packages/db');
  const dist = path.join(dir, 'dist');
  types.push(declarations(path.join(dir, 'tsconfig.json')));
  await build({ ...library, entryPoints: [path.join(dir, 'src/server.ts')], outfile: path.join(dist, 'server.cjs'), platform: 'node', format: 'cjs' });

  const db = requireFromHere(path.join(dist, 'server.cjs')) as typeof import('./packages/db/src/server');
  const migrations = await db.extractMigrations(db.migrations);
  // A migration no client could apply fails the build. PGlite takes a second or two to start, so
  // the check runs beside the rest, and only when the migrations changed since it last passed.
  const checked = path.join(dist, 'pglite-checked.json');
  const checksums = JSON.stringify(migrations.map((migration) => migration.checksum));
  if (!existsSync(checked) || readFileSync(checked, 'utf8') !== checksums) {
    types.push(db.checkMigrationsOnPGlite(migrations).then(() => writeFileSync(checked, checksums)));
  }
  db.writeExtractedMigrations(path.join(dist, 'migrations'), migrations);
  const catalog = { schemaVersion: db.schemaVersion, migrations, tables: await db.describeSyncedTables() };
  writeFileSync(path.join(dist, 'catalog.json'), `${JSON.stringify(catalog, null, 2)}\n`);

  const browser = await build({
    ...library,
    entryPoints: [path.join(dir, 'src/browser.ts')],
    outfile: path.join(dist, 'browser.mjs'),
    platform: 'neutral',
    format: 'esm',
    metafile: true,
    plugins: [
      {
        name: 'walsync-catalog',
        setup(plugin) {
          plugin.onResolve({ filter: /^walsync:catalog$/ }, () => ({ path: 'dist/catalog.json', namespace: 'walsync-catalog' }));
          plugin.onLoad({ filter: /.*/, namespace: 'walsync-catalog' }, (args) => ({ contents: readFileSync(path.join(dir, args.path), 'utf8'), loader: 'json' }));
        },
      },
    ],
  });
  writeFileSync(path.join(dist, 'browser.meta.json'), JSON.stringify(browser.metafile));
  // The retry policy alone, for the browser worker's bootstrap, which must stay a few kilobytes.
  await build({ ...library, entryPoints: [path.join(dir, 'src/rules/retry.ts')], outfile: path.join(dist, 'retry.mjs'), platform: 'neutral', format: 'esm' });
}

/** An application, not a library: bundles only; `yarn typecheck` checks its types. */
async function buildServer(): Promise<void> {
  const dir = path.join(root, 'packages/server');
  await build({
    ...library,
    entryPoints: { index: path.join(dir, 'src/index.ts'), main: path.join(dir, 'src/main.ts') },
    outdir: path.join(dir, 'dist'),
    outExtension: { '.js': '.cjs' },
    platform: 'node',
    format: 'cjs',
  });
}

/** PGlite's Node-only code paths (NodeFS) import these; a browser never runs them, so they bundle as empty modules. */
const nodeOnlyModulesAreEmpty: Plugin = {
  name: 'node-only-modules-are-empty',
  setup(plugin) {
    plugin.onResolve({ filter: /^(node:.*|fs|fs\/promises|path|crypto|url|module)$/ }, (args) => ({ path: args.path, namespace: 'node-only' }));
    plugin.onLoad({ filter: /.*/, namespace: 'node-only' }, () => ({ contents: 'export {}', loader: 'js' }));
  },
};

/**
 * The client: dist/index.cjs and dist/index.mjs for Node (dependencies external); for the browser,
 * dist/browser.mjs (a tab's handle) and dist/worker.js (the sync loop), each self-contained, with
 * PGlite's WebAssembly and data files beside them, where PGlite looks for them (`import.meta.url`).
 */
async function buildWeb(): Promise<void> {
  const dir = path.join(root, 'packages/web');
  const dist = path.join(dir, 'dist');
  const node = (['cjs', 'esm'] as const).map((format) =>
    build({
      ...library,
      entryPoints: [path.join(dir, 'src/index.ts')],
      outfile: path.join(dist, format === 'cjs' ? 'index.cjs' : 'index.mjs'),
      platform: 'node',
      format,
      // The Node client finds the replica template beside itself through __dirname, in both formats.
      banner: format === 'esm' ? { js: `import { fileURLToPath as __walsyncPath } from 'node:url'; const __dirname = __walsyncPath(new URL('.', import.meta.url));` } : undefined,
    }),
  );
  const browser = build({
    ...library,
    packages: undefined,
    // worker.js is the worker's small bootstrap; it loads worker-main.js (the sync loop) beside it.
    entryPoints: { browser: path.join(dir, 'src/browser.ts'), worker: path.join(dir, 'src/worker-boot.ts'), 'worker-main': path.join(dir, 'src/worker.ts') },
    outdir: dist,
    outExtension: { '.js': '.js' },
    entryNames: '[name]',
    platform: 'browser',
    format: 'esm',
    minify: true,
    plugins: [nodeOnlyModulesAreEmpty],
  });
  const pglite = path.dirname(requireFromHere.resolve('@electric-sql/pglite', { paths: [dir] }));
  mkdirSync(dist, { recursive: true });
  for (const file of ['pglite.wasm', 'pglite.data', 'initdb.wasm']) copyFileSync(path.join(pglite, file), path.join(dist, file));
  await Promise.all([...node, browser]);
}

/** @walsync/react: dist/index.mjs, its dependencies (React, pglite-react, @walsync/web) external. */
async function buildReact(): Promise<void> {
  const dir = path.join(root, 'packages/react');
  await build({ ...library, entryPoints: [path.join(dir, 'src/index.ts')], outfile: path.join(dir, 'dist/index.mjs'), platform: 'neutral', format: 'esm' });
}

/**
 * The demo app: packages/demo/dist/index.html, app.js and app.css. The server serves them at `/`
 * together with @walsync/web's dist (worker.js, PGlite's files, the replica template), which the
 * client finds beside the page.
 */
async function buildDemo(): Promise<void> {
  const dir = path.join(root, 'packages/demo');
  const dist = path.join(dir, 'dist');
  await build({
    ...library,
    packages: undefined,
    entryPoints: { app: path.join(dir, 'src/main.tsx'), 'app-styles': path.join(dir, 'src/styles.css') },
    outdir: dist,
    entryNames: '[name]',
    platform: 'browser',
    format: 'esm',
    minify: true,
    jsx: 'automatic',
    define: { 'process.env.NODE_ENV': '"production"' },
    plugins: [nodeOnlyModulesAreEmpty],
  });
  renameSync(path.join(dist, 'app-styles.css'), path.join(dist, 'app.css'));
  copyFileSync(path.join(dir, 'src/index.html'), path.join(dist, 'index.html'));
}

/**
 * `yarn build:template` (and `yarn start`, while the server starts), not `yarn build`: PGlite's initdb
 * alone takes seconds.
 *
 * dist/replica.tar.gz: a PGlite data directory with every migration applied, which a browser's new
 * replica starts from instead of running initdb and the migrations itself (≈4 s in a worker). It is
 * the same SQL the MigrationAPI would apply, recorded in the same client_migration rows. Kept while
 * the migrations and the client's own SQL are unchanged (dist/replica.json holds their checksums);
 * written atomically, since a browser may fetch it while it is made (`yarn start` makes it while the
 * server starts).
 */
export async function buildReplicaTemplate(): Promise<void> {
  const dist = path.join(root, 'packages/web/dist');
  const catalog = JSON.parse(readFileSync(path.join(root, 'packages/db/dist/catalog.json'), 'utf8')) as { migrations: Array<{ checksum: string }> };
  const browser = (await import(pathToFileURL(path.join(root, 'packages/db/dist/browser.mjs')).href)) as typeof import('./packages/db/src/browser');
  const { ensureLocalSchema, localSchemaHash } = await import('./packages/web/src/local-schema');
  // The client's own SQL counts too: a template with an older one is reinstalled at every new replica's first connect.
  const localSchema = localSchemaHash(browser.syncedTables);
  const key = { revision: 5, migrations: catalog.migrations.map((migration) => migration.checksum), localSchema };
  const stamp = path.join(dist, 'replica.json');
  const made = existsSync(stamp) ? (JSON.parse(readFileSync(stamp, 'utf8')) as typeof key) : undefined;
  if (existsSync(path.join(dist, 'replica.tar.gz')) && JSON.stringify({ revision: made?.revision, migrations: made?.migrations, localSchema: made?.localSchema }) === JSON.stringify(key)) return;
  const { PGlite } = await import('@electric-sql/pglite');
  const tar = await import('tar');
  const dir = mkdtempSync(path.join(tmpdir(), 'walsync-template-'));
  try {
    const pglite = await PGlite.create(dir);
    let wal: string;
    try {
      const result = await browser.createMigrationAPI(pglite).migrateToLatest();
      if (result.error) throw new Error(`the replica template could not be migrated: ${result.error.message}`);
      // The client's own tables and capture triggers, as a client of this build installs them (it
      // skips the install when the recorded key matches: ≈0.1 s of a first start).
      await ensureLocalSchema(pglite, browser.syncedTables);
      // A replica uses the database "postgres" only: without template0 and template1 it is 14 MB smaller.
      await pglite.exec(`UPDATE pg_database SET datistemplate = false WHERE datname IN ('template0', 'template1')`);
      await pglite.exec(`DROP DATABASE template0`);
      await pglite.exec(`DROP DATABASE template1`);
      // Everything in the data files, then a new WAL segment that holds nothing but the last checkpoint.
      await pglite.exec(`CHECKPOINT`);
      await pglite.query(`SELECT pg_switch_wal()`);
      await pglite.exec(`CHECKPOINT`);
      wal = (await pglite.query<{ name: string }>(`SELECT pg_walfile_name(pg_current_wal_lsn()) AS name`)).rows[0]!.name;
    } finally {
      // A clean shutdown: a replica made from these files starts without crash recovery.
      await pglite.close();
    }
    trimWal(path.join(dir, 'pg_wal'), wal);
    dropMaps(dir);
    const made = path.join(dist, 'replica.tar.gz.tmp');
    mkdirSync(dist, { recursive: true });
    await tar.create({ gzip: true, file: made, cwd: dir, portable: true, noPax: true }, readdirSync(dir));
    const files = tarFiles(gunzipSync(readFileSync(made)));
    renameSync(made, path.join(dist, 'replica.tar.gz'));
    // How many files a replica made from it starts with: OPFS makes that many (and some to spare) at once.
    writeFileSync(stamp, JSON.stringify({ ...key, files }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Keeps only the WAL segment `current` (the one the last checkpoint is in), cut after its last
 * written page: a segment is 16 MB of which the checkpoint uses one page, and every new replica would
 * write all of it. Postgres writes the rest of the segment as it needs it, like any file it extends.
 */
function trimWal(walDir: string, current: string): void {
  for (const entry of readdirSync(walDir)) {
    const file = path.join(walDir, entry);
    if (!statSync(file).isFile()) continue;
    if (entry !== current) {
      rmSync(file);
      continue;
    }
    const data = readFileSync(file);
    let end = data.length;
    while (end > 0 && data[end - 1] === 0) end--;
    truncateSync(file, Math.ceil(end / WAL_PAGE) * WAL_PAGE);
  }
}

const WAL_PAGE = 8192;

/**
 * Removes the free space maps and visibility maps (`_fsm`, `_vm`): a fifth of the files, each one a
 * file handle a new OPFS replica makes. Postgres works without them (a relation without a free space
 * map is extended at its end; without a visibility map no page counts as all-visible) and makes them
 * again when it needs them.
 */
function dropMaps(dir: string): void {
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && /^\d+_(fsm|vm)$/.test(entry.name)) rmSync(path.join(entry.parentPath, entry.name));
  }
}

/** The regular files in a tar archive (ustar headers: the size at 124, the type at 156). */
function tarFiles(tar: Buffer): number {
  let files = 0;
  for (let at = 0; at + 512 <= tar.length && tar[at] !== 0; ) {
    const size = Number.parseInt(tar.toString('latin1', at + 124, at + 136).replace(/\0.*$/, '').trim() || '0', 8);
    if (tar[at + 156] === 0x30 || tar[at + 156] === 0) files++;
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** The packages, without the replica template. */
export async function buildPackages(): Promise<void> {
  // The server bundle keeps @walsync/db external, so it builds beside it; the browser bundles of
  // @walsync/web inline @walsync/db/browser, so they wait for its bundle (not its declarations).
  const types: Promise<void>[] = [];
  await Promise.all([buildDb(types).then(buildWeb).then(buildReact).then(buildDemo), buildServer()]);
  await Promise.all(types);
}

async function main(): Promise<void> {
  const started = performance.now();
  await buildPackages();
  if (process.argv.includes('--replica-template')) await buildReplicaTemplate();
  console.log(`Built @walsync/db, @walsync/server, @walsync/web, @walsync/react and the demo in ${Math.round(performance.now() - started)} ms`);
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
