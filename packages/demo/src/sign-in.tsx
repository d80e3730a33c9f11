import { useEffect, useState } from 'react';

const DEMO_USERS = ['alice@demo.test', 'bob@demo.test', 'carol@demo.test'];

/** The development login: pick a user (the server lists them; the demo users when it cannot be reached). */
export function SignIn() {
  const [users, setUsers] = useState<Array<{ email: string; name?: string }>>(DEMO_USERS.map((email) => ({ email })));
  useEffect(() => {
    fetch('/dev/users')
      .then((response) => (response.ok ? response.json() : undefined))
      .then((body) => body?.users && setUsers(body.users))
      .catch(() => undefined);
  }, []);
  return (
    <main className="centered">
      <h1>walsync demo</h1>
      <p>A local-first task board: your data lives in PGlite in this browser and syncs with the server's Postgres.</p>
      <p>Sign in as (development login):</p>
      <ul className="users">
        {users.map((user) => (
          <li key={user.email}>
            <a href={`/?user=${encodeURIComponent(user.email)}`}>{user.name ? `${user.name} — ${user.email}` : user.email}</a>
          </li>
        ))}
      </ul>
      <p className="hint">alice and bob share a workspace; carol has her own. Open two windows to watch them sync.</p>
    </main>
  );
}
