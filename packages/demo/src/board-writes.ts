/** The board's rows, and this tab's writes as the board shows them before the replica's live query has them. */

export const STATUSES = ['todo', 'doing', 'done'] as const;
export type Status = (typeof STATUSES)[number];

export interface Task {
  id: string;
  title: string;
  status: Status;
  position: number;
  labels: string[];
  comments: number;
  /** Shown before the replica's live query has it (a write of this tab, just made). */
  pending?: boolean;
}

/** One column of the board: its count and the page of cards shown. */
export interface ColumnPage {
  status: Status;
  n: number;
  cards: Task[];
}

/**
 * Every column's count and page of cards, for the project $1 and the page sizes $2–$4 (todo, doing,
 * done): one live query, read through the task_board index.
 */
export const BOARD_QUERY = `SELECT s.status, (SELECT count(*) FROM task c WHERE c.project_id = $1 AND c.status = s.status AND c.deleted_at IS NULL)::int AS n,
        coalesce((SELECT json_agg(card ORDER BY card.position, card.created_at) FROM (
           SELECT t.id, t.title, t.status, t.position, t.created_at, t.labels,
                  (SELECT count(*) FROM comment m WHERE m.task_id = t.id AND m.deleted_at IS NULL)::int AS comments
             FROM task t WHERE t.project_id = $1 AND t.status = s.status AND t.deleted_at IS NULL
            ORDER BY t.position, t.created_at LIMIT s.shown) card), '[]') AS cards
   FROM unnest(ARRAY['todo', 'doing', 'done']::task_status[], ARRAY[$2::int, $3::int, $4::int]) AS s(status, shown)`;

/** A write of this tab, as the board shows it before the live query re-reads it. */
export type BoardWrite = { kind: 'add'; card: Task } | { kind: 'move'; id: string; to: Status } | { kind: 'title'; id: string; title: string } | { kind: 'delete'; id: string };
export type Write = (action: BoardWrite, run: () => Promise<unknown>) => void;

/** The board with `action` done: a card added on top of "To do", moved on top of its new column, renamed or gone; counts along. */
export function applyWrite(pages: ColumnPage[], action: BoardWrite): ColumnPage[] {
  const card = action.kind === 'add' ? action.card : pages.flatMap((page) => page.cards).find((each) => each.id === action.id);
  if (!card) return pages;
  const shown: Task = { ...card, pending: true };
  const to = action.kind === 'add' ? 'todo' : action.kind === 'move' ? action.to : undefined;
  return pages.map((page) => {
    if (action.kind === 'title') return { ...page, cards: page.cards.map((each) => (each.id === card.id ? { ...shown, title: action.title } : each)) };
    const cards = page.cards.filter((each) => each.id !== card.id);
    const n = page.n - (page.cards.length - cards.length);
    return page.status === to ? { ...page, n: n + 1, cards: [{ ...shown, status: to }, ...cards] } : { ...page, n, cards };
  });
}

/** A v4 uuid for a new row (crypto.randomUUID exists only on https and localhost pages). */
export function newId(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
