import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPostgres } from '@walsync/test-support';

const repoRoot = path.resolve(__dirname, '../../..');
const tsx = path.join(repoRoot, 'node_modules/tsx/dist/cli.mjs');

/** The CLI runs on a copy of the package, so generated migrations never touch the repository. */
const copy = path.join(repoRoot, 'packages/db/.cli-test', `run-${process.pid}`);
const migrationsDir = path.join(copy, 'src/migrations');
const extractedDir = path.join(copy, 'dist/migrations');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [tsx, '--tsconfig', path.join(copy, 'tsconfig.json'), path.join(copy, 'src/cli/main.ts'), ...args], { cwd: repoRoot, env: { ...process.env, ...env } }, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('the migration CLI end to end on the embedded Postgres', () => {
  let postgres: Awaited<ReturnType<typeof startPostgres>>;
  let env: Record<string, string>;
  let db: pg.Client;
  const run = (args: string[]) => cli(args, env);
  const sourceFiles = () => readdirSync(migrationsDir).filter((file) => /^\d{13}-/.test(file));
  /** The repository's migrations, by TypeORM name, in order. */
  const baseline = readdirSync(path.join(repoRoot, 'packages/db/src/migrations'))
    .map((file) => /^(\d{13})-(\w+)\.ts$/.exec(file))
    .filter((match) => match !== null)
    .map((match) => `${match![2]}${match![1]}`)
    .sort((a, b) => a.slice(-13).localeCompare(b.slice(-13)));
  const catalog = async () =>
    (await db.query(`SELECT "migrationName", "appliedAt" IS NOT NULL AS applied FROM client_migration ORDER BY "timestamp"`)).rows;

  beforeAll(async () => {
    rmSync(copy, { recursive: true, force: true });
    mkdirSync(copy, { recursive: true });
    cpSync(path.join(repoRoot, 'packages/db/src'), path.join(copy, 'src'), { recursive: true });
    writeFileSync(path.join(copy, 'tsconfig.json'), JSON.stringify({ extends: path.join(repoRoot, 'tsconfig.base.json'), include: ['src'] }));
    postgres = await startPostgres();
    env = { DATABASE_URL: postgres.url };
    db = new pg.Client({ connectionString: postgres.url });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await postgres?.dispose();
    rmSync(copy, { recursive: true, force: true });
  });

  it('run applies the initial migration and stores the catalog; generate --check finds no drift', async () => {
    const ran = await run(['migration:run']);
    expect(ran).toMatchObject({ code: 0, stdout: `Applied ${baseline.join(', ')}\nStored the migrations in client_migration.\n` });
    expect(await catalog()).toEqual(baseline.map((name) => ({ migrationName: name, applied: true })));

    const check = await run(['migration:generate', '--check']);
    expect(check).toMatchObject({ code: 0, stdout: expect.stringContaining('No changes') });
  });

  it('generate turns an entity change into a migration; show, run, revert and cleanup manage it', async () => {
    const taskEntity = path.join(copy, 'src/entities/task.ts');
    writeFileSync(
      taskEntity,
      readFileSync(taskEntity, 'utf8').replace(
        '  @ManyToOne(() => Workspace',
        "  @Column({ name: 'due_at', type: 'timestamptz', nullable: true })\n  dueAt!: Date | null;\n\n  @ManyToOne(() => Workspace",
      ),
    );
    const check = await run(['migration:generate', '--check']);
    expect(check.code).toBe(1);
    expect(check.stdout).toContain('ALTER TABLE "task" ADD "due_at" TIMESTAMP WITH TIME ZONE');

    const generated = await run(['migration:generate', 'AddDueAt']);
    expect(generated).toMatchObject({ code: 0, stdout: expect.stringMatching(/Generated src\/migrations\/\d{13}-AddDueAt\.ts/) });
    const added = sourceFiles().at(-1);
    expect(sourceFiles()).toHaveLength(baseline.length + 1);
    expect(added).toMatch(/-AddDueAt\.ts$/);
    expect(readFileSync(path.join(migrationsDir, 'index.ts'), 'utf8')).toMatch(/import \{ AddDueAt\d{13} \}[\s\S]*AddDueAt\d{13},\n\];/);
    expect(readdirSync(extractedDir)).toHaveLength(baseline.length + 1);

    const showPending = await run(['migration:show']);
    expect(showPending.stdout).toMatch(
      new RegExp(`${baseline.map((name) => `\\[X\\] ${name}\\n`).join('')}\\[ \\] AddDueAt\\d{13}\\n${baseline.length + 1} migration\\(s\\), 1 pending`),
    );

    expect((await run(['migration:run'])).stdout).toMatch(/Applied AddDueAt\d{13}/);
    expect((await db.query(`SELECT column_name FROM information_schema.columns WHERE table_name = 'task' AND column_name = 'due_at'`)).rowCount).toBe(1);
    expect((await run(['migration:generate', '--check'])).code).toBe(0);
    expect((await catalog()).map((row) => row.applied)).toEqual([...baseline.map(() => true), true]);

    const refused = await run(['migration:cleanup', 'AddDueAt']);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/AddDueAt\d{13} is applied to the database, so it cannot be cleaned up/) });
    expect(sourceFiles()).toHaveLength(baseline.length + 1);

    expect((await run(['migration:revert'])).stdout).toMatch(/Reverted AddDueAt\d{13}/);
    expect((await db.query(`SELECT 1 FROM information_schema.columns WHERE table_name = 'task' AND column_name = 'due_at'`)).rowCount).toBe(0);
    expect((await catalog()).map((row) => row.applied)).toEqual([...baseline.map(() => true), false]);

    const cleaned = await run(['migration:cleanup', 'AddDueAt']);
    expect(cleaned).toMatchObject({ code: 0, stdout: expect.stringContaining('Removed src/migrations/') });
    expect(sourceFiles()).toHaveLength(baseline.length);
    expect(readFileSync(path.join(migrationsDir, 'index.ts'), 'utf8')).not.toContain('AddDueAt');
    expect(readdirSync(extractedDir)).toHaveLength(baseline.length);
    expect((await catalog()).map((row) => row.migrationName)).toEqual(baseline);
  });

  it('generate gives a new synced table the REPLICA IDENTITY FULL capture needs', async () => {
    const index = path.join(copy, 'src/entities/index.ts');
    const original = readFileSync(index, 'utf8');
    writeFileSync(
      path.join(copy, 'src/entities/tag.ts'),
      `import { Column, Entity } from 'typeorm';
import { Synced } from '../schema/synced';
import { SyncedRecord } from './columns';

@Synced({ scope: 'workspace_id' })
@Entity('tag')
export class Tag extends SyncedRecord {
  @Column({ name: 'workspace_id', type: 'uuid' })
  workspaceId!: string;

  @Column({ type: 'text' })
  name!: string;
}
`,
    );
    writeFileSync(index, original.replace("import { AppUser } from './app-user';", "import { AppUser } from './app-user';\nimport { Tag } from './tag';").replace('Task, Comment];', 'Task, Comment, Tag];'));
    try {
      const check = await run(['migration:generate', '--check']);
      expect(check.code).toBe(1);
      expect(check.stdout).toContain('CREATE TABLE "tag"');
      expect(check.stdout).toContain('ALTER TABLE "tag" REPLICA IDENTITY FULL');
    } finally {
      writeFileSync(index, original);
      rmSync(path.join(copy, 'src/entities/tag.ts'));
    }
    // (The earlier test left its due_at column in the entity; only the tag is gone.)
    expect((await run(['migration:generate', '--check'])).stdout).not.toContain('"tag"');
  });

  it('create adds an empty migration that store-sql publishes, and cleanup removes it again', async () => {
    const created = await run(['migration:create', 'seedDefaults']);
    expect(created).toMatchObject({ code: 0, stdout: expect.stringMatching(/Created src\/migrations\/\d{13}-SeedDefaults\.ts/) });
    const stored = await run(['migration:store-sql']);
    expect(stored).toMatchObject({ code: 0, stdout: expect.stringMatching(new RegExp(`client_migration: 1 added \\(SeedDefaults\\d{13}\\), ${baseline.length} unchanged`)) });
    expect((await catalog()).map((row) => row.applied)).toEqual([...baseline.map(() => true), false]);
    expect((await run(['migration:cleanup', 'SeedDefaults'])).code).toBe(0);
    expect(await catalog()).toHaveLength(baseline.length);
  });

  it('store-sql refuses a hand-edited or corrupt extracted file and writes nothing', async () => {
    const [file] = readdirSync(extractedDir).sort();
    const full = path.join(extractedDir, file!);
    const original = readFileSync(full, 'utf8');
    try {
      writeFileSync(full, original.replace('CREATE TABLE', 'CREATE UNLOGGED TABLE'));
      const edited = await run(['migration:store-sql']);
      expect(edited).toMatchObject({ code: 1, stderr: expect.stringMatching(/was changed after extraction/) });
      writeFileSync(full, '{ "name": ');
      expect((await run(['migration:store-sql'])).stderr).toMatch(/is not valid JSON/);
      expect(await catalog()).toHaveLength(baseline.length);
    } finally {
      writeFileSync(full, original);
    }
  });

  it('refuses a migration that uses anything but queryRunner.query(), naming it and the call', async () => {
    expect((await run(['migration:create', 'Handwritten'])).code).toBe(0);
    const file = sourceFiles().at(-1);
    const source = path.join(migrationsDir, file!);
    writeFileSync(source, readFileSync(source, 'utf8').replace(/(public async up\(queryRunner: QueryRunner\): Promise<void> \{)/, '$1\n        await queryRunner.dropTable("task");'));
    const run2 = await run(['migration:run']);
    expect(run2).toMatchObject({ code: 1, stderr: expect.stringMatching(/Migration Handwritten\d{13} uses queryRunner\.dropTable, but only queryRunner\.query\(\)/) });
    expect((await db.query(`SELECT to_regclass('task') AS t`)).rows[0].t).toBe('task');
    expect((await run(['migration:cleanup', 'Handwritten'])).code).toBe(0);
  });

  it('answers bad arguments and an unreachable database with a clear error', async () => {
    const unknown = await run(['migration:frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'migration:frobnicate'/);

    for (const args of [['migration:generate'], ['migration:create'], ['migration:create', '1stThing'], ['migration:create', 'drop-table']]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr).toMatch(/(is not a valid migration name|A migration name is required): use letters and digits/);
    }
    expect(sourceFiles()).toHaveLength(baseline.length);

    const unreachable = await cli(['migration:show'], { DATABASE_URL: 'postgres://admin:hunter2secret@127.0.0.1:9/app' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain('Cannot connect to the Postgres at 127.0.0.1:9');
    expect(unreachable.stdout + unreachable.stderr).not.toContain('hunter2secret');
    expect(existsSync(path.join(copy, '.walsync'))).toBe(false);
  });

  it('uses the local Postgres already running on its data directory (as while yarn start runs), and says so', async () => {
    const { DATABASE_URL: _url, ...withoutUrl } = process.env;
    const shown = await new Promise<CliResult>((resolve) =>
      execFile(
        process.execPath,
        [tsx, '--tsconfig', path.join(copy, 'tsconfig.json'), path.join(copy, 'src/cli/main.ts'), 'migration:show'],
        { cwd: repoRoot, env: { ...withoutUrl, WALSYNC_DATA_DIR: postgres.dataDir } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(shown.stderr).toContain(`Database: the running local Postgres in ${postgres.dataDir} (pid `);
    expect(shown).toMatchObject({ code: 0, stdout: expect.stringContaining(`[X] ${baseline[0]}`) });
    // It was used, not stopped.
    expect((await db.query(`SELECT 1 AS up`)).rows).toEqual([{ up: 1 }]);
  });
});
