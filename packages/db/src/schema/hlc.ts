/**
 * Hybrid logical clock timestamps, shared by the server and every client.
 *
 * Text form: `<wall ms, 15 digits>:<counter, 6 digits>:<node>` — e.g.
 * `001795396924095:000003:6f1c…`. Plain string order is HLC order: wall time, then counter, then
 * node id, so ties between clients are broken by client id, and Postgres can compare the `hlc`
 * column with `<`/`>`. Writes from outside walsync are stamped on the server with node `server`.
 */
export interface Hlc {
  wallMs: number;
  counter: number;
  node: string;
}

const HLC_PATTERN = /^(\d{15}):(\d{6}):([A-Za-z0-9_-]{1,64})$/;
export const MAX_HLC_COUNTER = 999_999;
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function formatHlc(hlc: Hlc): string {
  return `${String(hlc.wallMs).padStart(15, '0')}:${String(hlc.counter).padStart(6, '0')}:${hlc.node}`;
}

/** Parses the text form; undefined when it is not a valid HLC. */
export function parseHlc(text: string): Hlc | undefined {
  const match = HLC_PATTERN.exec(text);
  if (!match) return undefined;
  return { wallMs: Number(match[1]), counter: Number(match[2]), node: match[3]! };
}

/**
 * A clock for one node. `now()` stamps a local event; `observe(remote)` moves the clock past a
 * timestamp seen from elsewhere, so the next local event orders after it.
 *
 * @example
 *   const clock = new HybridLogicalClock(clientId);
 *   const stamp = clock.now();          // '001795396924095:000000:<clientId>'
 *   clock.observe(remoteRow.hlc);
 */
export class HybridLogicalClock {
  private last: Hlc;

  constructor(
    readonly node: string,
    last?: string | null,
    private readonly wallClock: () => number = Date.now,
  ) {
    if (!NODE_ID_PATTERN.test(node)) throw new Error(`An HLC node id must match ${NODE_ID_PATTERN}, got "${node}".`);
    this.last = (last && parseHlc(last)) || { wallMs: 0, counter: 0, node };
  }

  now(): string {
    const wall = this.wallClock();
    this.last =
      wall > this.last.wallMs
        ? { wallMs: wall, counter: 0, node: this.node }
        : { wallMs: this.last.wallMs, counter: this.last.counter + 1, node: this.node };
    if (this.last.counter > MAX_HLC_COUNTER) this.last = { wallMs: this.last.wallMs + 1, counter: 0, node: this.node };
    return formatHlc(this.last);
  }

  observe(remote: string | null | undefined): void {
    const parsed = remote ? parseHlc(remote) : undefined;
    if (!parsed) return;
    if (parsed.wallMs > this.last.wallMs || (parsed.wallMs === this.last.wallMs && parsed.counter > this.last.counter)) {
      this.last = { wallMs: parsed.wallMs, counter: parsed.counter, node: this.node };
    }
  }

  /** The latest timestamp this clock issued or observed (to persist it). */
  get latest(): string {
    return formatHlc(this.last);
  }
}
