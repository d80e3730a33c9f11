/**
 * The walsync demo: a task board on the browser client. Signs in through the development login
 * (`/?user=alice@demo.test`), opens the user's replica (OPFS, or IndexedDB where the browser has no OPFS), and renders from live queries.
 */
import { SyncProvider } from '@walsync/react';
import { type BrowserSyncClient, createSyncClient } from '@walsync/web/browser';
import { createRoot } from 'react-dom/client';
import { Board } from './board';
import { readFirstView } from './first-view';
import { type Session, signIn } from './session';
import { SignIn } from './sign-in';

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

const lastResultsKey = (session: Session) => `walsync-demo:last-results:${session.user.id}`;

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
    performance.mark('walsync:signed-in');
    // The replica holds the user's workspaces and projects, and the tasks of the projects the board
    // subscribes to (the one on screen and the last few): `subscriptions` makes it a partial replica.
    client = await createSyncClient({ url: location.origin, token: session.token, dataDir: `walsync-board-${session.user.id}`, subscriptions: [] });
  } catch (error) {
    root.render(<Failure message={(error as Error).message} />);
    return;
  }
  // A first visit (no last view kept) paints from rows read once from the server while the replica starts.
  const firstView = localStorage.getItem(lastResultsKey(session)) ? undefined : readFirstView(session);
  // Marks for `yarn bench demo`'s account of a reload (performance.getEntriesByType('mark')).
  performance.mark('walsync:opened');
  void client.ready.then(() => performance.mark('walsync:ready'));
  addEventListener('pagehide', () => void client.close());
  // For the console and the tests: the client behind the board.
  (window as unknown as { walsync: BrowserSyncClient }).walsync = client;
  root.render(
    <SyncProvider client={client} lastResults={lastResultsKey(session)}>
      <Board client={client} session={session} firstView={firstView} />
    </SyncProvider>,
  );
}

void main();
