import path from 'node:path';
import { defaultLocalDataDir } from '../postgres/local-postgres';

/** Where the package's sources and artifacts are, relative to this file (so a copy of the package works on itself). */
export const packageRoot = path.resolve(__dirname, '../..');
export const migrationsSourceDir = path.join(packageRoot, 'src/migrations');
export const migrationsIndexFile = path.join(migrationsSourceDir, 'index.ts');
export const extractedMigrationsDir = path.join(packageRoot, 'dist/migrations');

/** The local Postgres data directory used when DATABASE_URL is not set. */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.WALSYNC_DATA_DIR ? path.resolve(env.WALSYNC_DATA_DIR) : defaultLocalDataDir(path.join(packageRoot, '../../.walsync/postgres'));
}
