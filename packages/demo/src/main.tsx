/**
 * The walsync demo: a task board on the browser client. Signs in through the development login
 * (`/?user=alice@demo.test`), opens the user's replica in IndexedDB, and renders from live queries.
 */
import { SyncProvider } from '@walsync/react';
import { type BrowserSyncClient, createSyncClient } from '@walsync/web/browser';
import { createRoot } from 'react-dom/client';
import { Board } from './board';
import { SignIn } from './sign-in';

export interface Session {
  token: string;
  user: { id: string; email: string; name: string };
}

const sessionKey = (email: string) => `walsync-demo:session:${email}`;

/** A stored session still valid for a minute, so the board opens offline too; else the dev login. */
async function signIn(email: string): Promise<Session> {
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

function Failure({ message }: { message: string }) {
  return (
    <main className="centered">
      <h1>walsync demo</h1>
      <p className="message error" data-testid="sync-message">
        {message}
      </p>
      <p>
        <a href="/">Choose another user</a>
      </p>
    </main>
  );
}

async function main(): Promise<void> {
  const root = createRoot(document.getElementById('root')!);
  const params = new URLSearchParams(location.search);
  const email = params.get('user') ?? localStorage.getItem('walsync-demo:last-user');
  if (!email) {
    root.render(<SignIn />);
    return;
  }
  let session: Session;
  let client: BrowserSyncClient;
  try {
    session = await signIn(email.toLowerCase());
    client = await createSyncClient({ url: location.origin, token: session.token, dataDir: `idb://walsync-demo-${session.user.id}` });
  } catch (error) {
    root.render(<Failure message={(error as Error).message} />);
    return;
  }
  addEventListener('pagehide', () => void client.close());
  // For the console and the tests: the client behind the board.
  (window as unknown as { walsync: BrowserSyncClient }).walsync = client;
  root.render(
    <SyncProvider client={client}>
      <Board client={client} session={session} />
    </SyncProvider>,
  );
}

void main();
