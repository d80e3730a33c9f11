/** The demo's sign-in: the development login, with the session kept in localStorage so the board opens offline too. */
export interface Session {
  token: string;
  user: { id: string; email: string; name: string };
}

const sessionKey = (email: string) => `walsync-demo:session:${email}`;

/** A stored session still valid for a minute, so the board opens offline too; else the dev login. */
export async function signIn(email: string): Promise<Session> {
  const stored = localStorage.getItem(sessionKey(email));
  if (stored) {
    const session = JSON.parse(stored) as Session;
    const expires = JSON.parse(atob(session.token.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))).exp as number;
    if (expires * 1000 > Date.now() + 60_000) return session;
  }
  const response = await fetch('/dev/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error?.message ?? `sign-in failed (${response.status})`);
  localStorage.setItem(sessionKey(email), JSON.stringify(body));
  localStorage.setItem('walsync-demo:last-user', email);
  return body as Session;
}
