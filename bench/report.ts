import { cpus, totalmem } from 'node:os';

/** One measured figure, beside the goal it is held to and, where one exists, the raw baseline it is bounded by. */
export interface Figure {
  issue: number;
  name: string;
  value: number;
  unit: string;
  /** e.g. '<= 5' or '>= 50000'. */
  goal?: string;
  /** What was measured, how often, and the command's own notes. */
  note?: string;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function meetsGoal(figure: Figure): boolean | undefined {
  const match = figure.goal && /^(<=|>=)\s*([\d.]+)$/.exec(figure.goal);
  if (!match) return undefined;
  return match[1] === '<=' ? figure.value <= Number(match[2]) : figure.value >= Number(match[2]);
}

const round = (value: number) => (Math.abs(value) >= 100 ? Math.round(value).toString() : value.toFixed(2));

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${process.platform}`;
}

export function table(figures: Figure[]): string {
  const rows = figures.map((figure) => {
    const met = meetsGoal(figure);
    return `| #${figure.issue} | ${figure.name} | ${round(figure.value)} ${figure.unit} | ${figure.goal ? `${figure.goal} ${figure.unit}` : '—'} | ${met === undefined ? '—' : met ? 'met' : '**not met**'} | ${figure.note ?? ''} |`;
  });
  return ['| issue | figure | measured | goal | | how |', '|---|---|---|---|---|---|', ...rows].join('\n');
}
