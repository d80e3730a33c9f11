import { type KeyObject, createSecretKey } from 'node:crypto';
import { UUID_PATTERN } from '@walsync/db/server';
import { type JWTPayload, SignJWT, errors, jwtVerify } from 'jose';

/** A request without a usable token: the message says what is wrong, never echoes the token. */
export class AuthenticationError extends Error {}

export interface Principal {
  /** `app_user.id` from the `sub` claim. */
  userId: string;
  /** When the token expires (ms since the epoch), if it does. */
  expiresAt?: number;
}

/**
 * HS256 tokens: `sub` = the app_user id. The scope is not in the token; it is the user's
 * workspace_member rows, read live.
 *
 * @example
 *   const tokens = new Tokens(secret);
 *   const { userId } = await tokens.verify(request.headers.authorization);
 */
export class Tokens {
  /** Imported once: handing jose raw bytes would import the key again on every verification. */
  private readonly key: KeyObject;

  constructor(secret: string) {
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  /** Signs a token for a user (the dev login and tests). */
  issue(userId: string, expiresIn: string | number = '12h'): Promise<string> {
    return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setIssuedAt().setExpirationTime(expiresIn).sign(this.key);
  }

  /** Accepts `Bearer <token>` or the bare token. */
  async verify(header: string | undefined): Promise<Principal> {
    const token = header?.replace(/^Bearer\s+/i, '').trim();
    if (!token) throw new AuthenticationError('missing token: send "Authorization: Bearer <jwt>"');
    const cached = this.verified.get(token);
    if (cached && cached.expiresAt > Date.now()) return cached.principal;
    return this.verifyToken(token);
  }

  /**
   * Tokens already verified, until they expire: the same string carries the same signature, so
   * checking it again proves nothing new. Bounded; the oldest entry goes first.
   */
  private readonly verified = new Map<string, { principal: Principal; expiresAt: number }>();

  private async verifyToken(token: string): Promise<Principal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw new AuthenticationError('the token has expired');
      throw new AuthenticationError('the token is not valid (bad signature, algorithm or format)');
    }
    if (typeof payload.sub !== 'string' || !UUID_PATTERN.test(payload.sub)) throw new AuthenticationError('the token has no user id (sub) that is a uuid');
    const principal: Principal = { userId: payload.sub.toLowerCase(), ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
    if (typeof payload.exp === 'number') {
      if (this.verified.size >= 10_000) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { principal, expiresAt: payload.exp * 1000 });
    }
    return principal;
  }
}

/** The longest setTimeout Node takes (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `expired` when `expiresAt` (ms since the epoch) comes, however far ahead it is; returns the
 * cancel function.
 *
 * @example
 *   const cancel = atExpiry(principal.expiresAt, () => socket.close(4401, 'the token expired'));
 */
export function atExpiry(expiresAt: number, expired: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const wait = expiresAt - Date.now();
    if (wait <= 0) return expired();
    timer = setTimeout(arm, Math.min(wait, MAX_TIMER_MS));
  };
  arm();
  return () => clearTimeout(timer);
}
