/**
 * The error classes of @walsync/db. Each carries a `code`, the context a user needs to act
 * (migration, file, host) and the `cause`. They are recognised by a brand instead of
 * `instanceof`, because this package ships both a CommonJS and an ES module build and an
 * application may load both.
 */
const BRAND = Symbol.for('walsync.error');

export type WalsyncErrorCode =
  | 'MIGRATION_EXTRACTION'
  | 'MIGRATION_FILE'
  | 'MIGRATION_FAILED'
  | 'MIGRATION_DRIFT'
  | 'MIGRATION_ORDER'
  | 'MIGRATION_UNKNOWN'
  | 'CATALOG_CHECKSUM'
  | 'CAPTURE_NOT_READY'
  | 'POSTGRES_IN_USE'
  | 'POSTGRES_START'
  | 'DATABASE_UNREACHABLE'
  | 'CLI_USAGE';

export class WalsyncError extends Error {
  readonly [BRAND] = true;
  readonly code: WalsyncErrorCode;
  readonly context: Record<string, unknown>;

  constructor(code: WalsyncErrorCode, message: string, context: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'WalsyncError';
    this.code = code;
    this.context = context;
  }
}

/** True for any walsync error, whichever build of the package created it. */
export function isWalsyncError(value: unknown, code?: WalsyncErrorCode): value is WalsyncError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[BRAND] === true &&
    (code === undefined || (value as WalsyncError).code === code)
  );
}

/** The message of any thrown value, for error fields and logs. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
