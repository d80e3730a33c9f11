/**
 * Quoting for SQL text that walsync builds from names (tables, columns) and constants. Values from
 * users always go as parameters; these are for identifiers and for generated PL/pgSQL.
 */

/** A quoted identifier: `task` → `"task"`, `a"b` → `"a""b"`. */
export function quoteIdent(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/** A quoted string literal: `it's` → `'it''s'`. */
export function quoteLiteral(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}
