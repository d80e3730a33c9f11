import type { z } from 'zod';

/** A uuid in any case (Postgres accepts both). */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * One line for a failed validation: the path of the first problem and what was expected, e.g.
 * `changes.0.hlc: Invalid input: expected string`. `what` names the value when the problem is at its root.
 *
 * @example
 *   const parsed = HelloSchema.safeParse(value);
 *   if (!parsed.success) throw new Error(formatIssues(parsed.error, 'hello'));
 */
export function formatIssues(error: z.ZodError, what = 'value'): string {
  const issue = error.issues[0];
  if (!issue) return `${what}: invalid`;
  return `${issue.path.join('.') || what}: ${issue.message}`;
}
