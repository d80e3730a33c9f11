import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { lock } from 'proper-lockfile';

const LOCK_FILE = 'walsync.lock';
const OWNER_FILE = 'walsync.lock.owner';
/** The lock's files in a replica directory, beside PGlite's. */
export const LOCK_FILES = [LOCK_FILE, OWNER_FILE];

/**
 * Takes the one-writer lock on a Node replica directory (two PGlite instances on one directory lose
 * rows). The lock is a directory whose age proper-lockfile keeps fresh; a holder that stops
 * refreshing it for 5 s is presumed dead. A holder on this machine that was killed is known dead at
 * once, by its pid, so a restart after a crash does not wait those 5 s.
 *
 * @example
 *   const release = await lockReplica('./data', (error) => console.error(error));
 *   await release();
 */
export async function lockReplica(dataDir: string, onCompromised: (error: Error) => void): Promise<() => Promise<void>> {
  const lockDir = path.join(dataDir, LOCK_FILE);
  const take = async () => {
    const release = await lock(dataDir, { stale: 5_000, update: 1_000, lockfilePath: lockDir, onCompromised });
    const owner: Owner = { pid: process.pid, host: hostname(), inode: statSync(lockDir).ino };
    writeFileSync(path.join(dataDir, OWNER_FILE), JSON.stringify(owner));
    return release;
  };
  try {
    return await take();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOCKED' || !holderIsGone(dataDir, lockDir)) throw error;
    rmSync(lockDir, { recursive: true, force: true });
    return take();
  }
}

interface Owner {
  pid: number;
  host: string;
  /** The lock directory the owner made: a lock taken again since has another. */
  inode: number;
}

/** Whether the lock's holder was a process on this machine that no longer runs. */
function holderIsGone(dataDir: string, lockDir: string): boolean {
  try {
    const owner = JSON.parse(readFileSync(path.join(dataDir, OWNER_FILE), 'utf8')) as Owner;
    if (owner.host !== hostname() || statSync(lockDir).ino !== owner.inode) return false;
    process.kill(owner.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
