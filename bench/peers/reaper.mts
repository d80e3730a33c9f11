/**
 * The bench's lifeline, for the one way out its own handlers cannot see: SIGKILL. peers.mts starts it
 * detached, with a pipe as its stdin, and writes a line per process it starts (`pid <pid> <start
 * time>`) and per directory it makes (`dir <path>`). If the bench dies, the kernel closes the pipe:
 * the reaper SIGKILLs each of those processes that is still the one registered (same pid, same start
 * time), with every process below it, removes the directories and exits. A bench that ends on its
 * own writes `done` first, and the reaper exits without touching anything.
 */
import { rmSync } from 'node:fs';
import { processTree, startTime } from './process-tree.mts';

const processes = new Map<number, string>();
const directories = new Set<string>();
let pending = '';

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  pending += chunk;
  const lines = pending.split('\n');
  pending = lines.pop()!;
  for (const line of lines) {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'done') process.exit(0);
    if (kind === 'pid') processes.set(Number(rest[0]), rest[1]!);
    if (kind === 'dir') directories.add(rest.join(' '));
  }
});
process.stdin.on('end', () => {
  for (const [pid, started] of processes) {
    if (startTime(pid) !== started) continue;
    for (const each of processTree(pid)) {
      try {
        process.kill(each, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  for (const directory of directories) rmSync(directory, { recursive: true, force: true });
  process.exit(0);
});
