import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WalsyncError } from '../errors';
import { migrationsIndexFile, migrationsSourceDir } from './paths';

/** A migration name as the user types it: an identifier that becomes the class name. */
export function assertMigrationName(name: string | undefined): string {
  if (!name || !/^[A-Za-z][A-Za-z0-9]*$/.test(name)) {
    throw new WalsyncError(
      'CLI_USAGE',
      `${name ? `"${name}" is not a valid migration name` : 'A migration name is required'}: use letters and digits, starting with a letter (e.g. AddDueDate).`,
      { name },
    );
  }
  return name[0]!.toUpperCase() + name.slice(1);
}

export interface MigrationSource {
  file: string;
  className: string;
  name: string;
  timestamp: number;
}

/** The migration source files in src/migrations (`<timestamp>-<Name>.ts`). */
export function listMigrationSources(): MigrationSource[] {
  return readdirSync(migrationsSourceDir)
    .map((file) => /^(\d{13})-([A-Za-z][A-Za-z0-9]*)\.ts$/.exec(file))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([file, timestamp, name]) => ({ file: path.join(migrationsSourceDir, file!), className: `${name}${timestamp}`, name: name!, timestamp: Number(timestamp) }))
    .sort((a, b) => a.timestamp - b.timestamp);
}

/** A timestamp later than every existing migration's, even within the same millisecond. */
export function nextTimestamp(): number {
  const latest = listMigrationSources().at(-1)?.timestamp ?? 0;
  return Math.max(Date.now(), latest + 1);
}

/** Writes a new migration source file and lists it in src/migrations/index.ts. */
export function addMigrationSource(name: string, timestamp: number, content: string): MigrationSource {
  const existing = listMigrationSources().find((source) => source.name === name);
  if (existing) {
    throw new WalsyncError('CLI_USAGE', `A migration named ${name} already exists (${path.basename(existing.file)}); choose another name.`, { name });
  }
  const source: MigrationSource = { file: path.join(migrationsSourceDir, `${timestamp}-${name}.ts`), className: `${name}${timestamp}`, name, timestamp };
  writeFileSync(source.file, content);
  const lines = readFileSync(migrationsIndexFile, 'utf8').split('\n');
  const lastImport = lines.findLastIndex((line) => line.startsWith('import '));
  const closing = lines.findLastIndex((line) => line === '];');
  if (lastImport < 0 || closing < lastImport) {
    rmSync(source.file);
    throw new WalsyncError('MIGRATION_FILE', `${migrationsIndexFile} is not in the expected shape; add ${source.className} to it by hand.`, {});
  }
  lines.splice(closing, 0, `  ${source.className},`);
  lines.splice(lastImport + 1, 0, `import { ${source.className} } from './${timestamp}-${name}';`);
  writeFileSync(migrationsIndexFile, lines.join('\n'));
  return source;
}

/** Removes a migration source file and its entry in src/migrations/index.ts. */
export function removeMigrationSource(source: MigrationSource): void {
  const index = readFileSync(migrationsIndexFile, 'utf8')
    .split('\n')
    .filter((line) => !line.includes(`import { ${source.className} }`) && line.trim() !== `${source.className},`)
    .join('\n');
  writeFileSync(migrationsIndexFile, index);
  if (existsSync(source.file)) rmSync(source.file);
}

/** Finds a migration by its name (AddDueDate) or its full TypeORM name (AddDueDate1763900000000). */
export function findMigrationSource(nameOrClass: string): MigrationSource {
  const found = listMigrationSources().find((source) => source.name === nameOrClass || source.className === nameOrClass);
  if (!found) {
    const known = listMigrationSources().map((source) => source.name);
    throw new WalsyncError('MIGRATION_UNKNOWN', `There is no migration named ${nameOrClass} in src/migrations (known: ${known.join(', ') || 'none'}).`, {
      name: nameOrClass,
    });
  }
  return found;
}
