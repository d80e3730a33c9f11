import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { ClientOp, SubscriptionRef } from './schedule';

const SCRIPT = path.join(__dirname, 'chaos-client.mjs');

type ChildMessage =
  | { type: 'ready'; clientId: string }
  | { type: 'done'; index: number }
  | { type: 'finished' }
  | { type: 'settled' }
  | { type: 'closed' }
  | { type: 'event'; event: 'pull' | 'captured' | 'error' | 'op_failed'; message?: string; index?: number; changes?: number }
  | { type: 'dump'; rows: Record<string, Array<Record<string, unknown>>>; outbox: number; status: string };

/**
 * The client processes of a chaos run. One that closed its replica cleanly waits here for the next
 * seed's (module loading and PGlite's first start are a good part of a client's start-up); a killed
 * one is gone, and a new process takes its place.
 */
export class ClientProcesses {
  private readonly idle: ChildProcess[] = [];

  take(): ChildProcess {
    return this.idle.pop() ?? fork(SCRIPT, [], { execArgv: [], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  }

  give(child: ChildProcess): void {
    if (child.exitCode === null && child.signalCode === null) this.idle.push(child);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.idle.splice(0).map(
        (child) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => (clearTimeout(timer), resolve()));
            child.send({ type: 'exit' });
          }),
      ),
    );
  }
}

/**
 * One chaos client: @walsync/web in a process of its own on its own data directory, which the test
 * can kill -9 at any moment and start again on the same directory, where it carries on with the
 * operations it had not reported done.
 */
export class ChaosClient {
  clientId = '';
  /** Index of the last operation the process reported committed. */
  done = -1;
  finished = false;
  kills = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private detach: () => void = () => undefined;
  private listeners = new Set<(message: ChildMessage) => void>();
  private turn: Promise<unknown> = Promise.resolve();
  /** When the operations' clock started (epoch ms); set by the first `start()`. */
  private startedAt = 0;
  readonly log: string[] = [];

  constructor(
    readonly index: number,
    private readonly processes: ClientProcesses,
    /** `subscriptions`: what a partial client asks for at its first start (a restart resumes what its replica stored). */
    private readonly replica: { url: string; token: string; dataDir: string; subscriptions?: SubscriptionRef[] },
    private readonly ops: ClientOp[],
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  /** Opens the replica in a client process and waits until it is ready; then it runs the operations left. */
  async start(): Promise<void> {
    const child = this.processes.take();
    this.child = child;
    let stderr = '';
    const onStderr = (chunk: Buffer) => (stderr = (stderr + chunk).slice(-4000));
    const onMessage = (message: ChildMessage) => {
      if (message.type === 'done') this.done = Math.max(this.done, message.index);
      else if (message.type === 'finished') this.finished = true;
      else if (message.type === 'ready') this.clientId = message.clientId;
      else if (message.type === 'event' && (message.event === 'error' || message.event === 'op_failed')) this.note(`${message.event}: ${message.message}`);
      for (const listener of this.listeners) listener(message);
    };
    let onExit: (code: number | null, signal: NodeJS.Signals | null) => void = () => undefined;
    this.exited = new Promise((resolve) => {
      onExit = (code, signal) => {
        if (this.child === child) this.child = undefined;
        if (signal !== 'SIGKILL' && code !== 0) this.note(`exited with ${code ?? signal}: ${stderr.trim()}`);
        resolve();
      };
    });
    child.stderr!.on('data', onStderr);
    child.on('message', onMessage);
    child.once('exit', onExit);
    this.detach = () => {
      child.stderr!.off('data', onStderr);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const ready = this.next((message) => message.type === 'ready', 60_000);
    const { subscriptions, ...replica } = this.replica;
    child.send({ type: 'open', ...replica, subscriptions: subscriptions && (this.startedAt ? [] : subscriptions) });
    await ready;
    this.startedAt ||= Date.now();
    if (!this.finished) child.send({ type: 'run', ops: this.ops, from: this.done + 1, startedAt: this.startedAt });
  }

  /** Runs `action` after every earlier one on this client: two faults never kill and restart it at once. */
  exclusive<T>(action: () => Promise<T>): Promise<T> {
    const result = this.turn.then(action);
    this.turn = result.catch(() => undefined);
    return result;
  }

  note(line: string): void {
    this.log.push(`client ${this.index}: ${line}`);
  }

  /** The next message from the process that matches, or an error when it exits or the time is up. */
  next(matches: (message: ChildMessage) => boolean, timeoutMs: number): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const done = (error?: Error, message?: ChildMessage) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (error) reject(error);
        else resolve(message!);
      };
      const listener = (message: ChildMessage) => matches(message) && done(undefined, message);
      const timer = setTimeout(() => done(new Error(`client ${this.index} sent no expected message within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.add(listener);
      void this.exited.then(() => this.child === undefined && done(new Error(`client ${this.index} exited`)));
    });
  }

  /** SIGKILL: no chance to finish the statement, the store or the push in hand. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
    this.kills += 1;
  }

  async request<T extends ChildMessage['type']>(message: Record<string, unknown>, reply: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> {
    const answer = this.next((each) => each.type === reply, timeoutMs);
    this.child!.send(message);
    return (await answer) as never;
  }

  /** Closes the replica; the process goes back to the pool for the next seed (or is killed if it does not close). */
  async close(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const closed = await this.request({ type: 'close' }, 'closed', 5000).then(
      () => true,
      () => false,
    );
    this.detach();
    this.child = undefined;
    if (closed) this.processes.give(child);
    else child.kill('SIGKILL');
  }
}
