/** A server that sent nothing for this long is asked (`ping`)… */
const QUIET_MS = 3_000;
/** …and one silent for this long is gone (the process stopped, the network dropped): offline. */
const SILENT_MS = 7_000;

/**
 * Whether the server is still there, checked every second: each message it sends (and the socket's
 * opening) counts as heard; a server quiet for QUIET_MS is asked, one silent for SILENT_MS is gone.
 * A server that accepts the connection but never answers (a stopped process) is silent too.
 */
export class Heartbeat {
  private lastHeard = 0;
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly server: { quiet(): void; silent(): void }) {}

  start(): void {
    this.timer = setInterval(() => this.check(), 1_000);
  }

  /** The server was heard from (or a socket began to open): it is not silent now. */
  heard(): void {
    this.lastHeard = Date.now();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private check(): void {
    const silent = Date.now() - this.lastHeard;
    if (silent >= SILENT_MS) this.server.silent();
    else if (silent >= QUIET_MS) this.server.quiet();
  }
}
