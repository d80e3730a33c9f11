import { randomUUID } from 'node:crypto';
import { AuthenticationError, Tokens } from '@walsync/server';
import { describe, expect, it } from 'vitest';

describe('bearer tokens', () => {
  const tokens = new Tokens('a-secret-long-enough-for-hs256');

  it('accept a valid token, and refuse it once it has expired even after it was verified before', async () => {
    const user = randomUUID();
    const expiresAt = (Math.floor(Date.now() / 1000) + 2) * 1000;
    const token = await tokens.issue(user, expiresAt / 1000);
    expect(await tokens.verify(`Bearer ${token}`)).toEqual({ userId: user, expiresAt });
    expect(await tokens.verify(token)).toEqual({ userId: user, expiresAt });
    await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 50));
    await expect(tokens.verify(`Bearer ${token}`)).rejects.toThrow(/expired/);
  });

  it('refuse tokens signed with another secret or algorithm, and tokens without a user', async () => {
    const other = await new Tokens('another-secret-long-enough').issue(randomUUID());
    await expect(tokens.verify(other)).rejects.toBeInstanceOf(AuthenticationError);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(`{"sub":"${randomUUID()}"}`).toString('base64url')}.`;
    await expect(tokens.verify(unsigned)).rejects.toThrow(/not valid/);
    const { SignJWT } = await import('jose');
    const noSubject = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode('a-secret-long-enough-for-hs256'));
    await expect(tokens.verify(noSubject)).rejects.toThrow(/no user id/);
    await expect(tokens.verify(undefined)).rejects.toThrow(/missing token/);
  });
});
