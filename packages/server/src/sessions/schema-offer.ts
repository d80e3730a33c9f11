import type { ExtractedMigration, ServerMessage } from '@walsync/db/server';

/** What a client at `clientSchema` is offered: the migrations it lacks, or a roll-back of reverted ones first. */
export interface SchemaOffer {
  /** The client's version is neither applied nor reverted here: it is ahead of the server. */
  ahead: boolean;
  migrations: ExtractedMigration[];
  /** Set when the client applied a migration the server reverted: it rolls these back, then re-snapshots. */
  revert?: string[];
}

/**
 * The one rule for what a client is offered, at hello and whenever the server's schema moves on.
 * `reverted` is read only for a version the catalog does not have (hello is a hot path).
 *
 * @example
 *   const offer = await schemaOffer(catalog, deps.reverted, hello.schemaVersion);
 *   if (offer.ahead) refuse();
 */
export async function schemaOffer(catalog: ExtractedMigration[], revertedMigrations: () => Promise<string[]>, clientSchema: string | null): Promise<SchemaOffer> {
  if (clientSchema === null) return { ahead: false, migrations: catalog };
  const known = catalog.findIndex((migration) => migration.name === clientSchema);
  if (known >= 0) return { ahead: false, migrations: catalog.slice(known + 1) };
  const reverted = await revertedMigrations();
  // The client's migrations up to the reverted ones are in the catalog; it skips those it applied.
  if (reverted.includes(clientSchema)) return { ahead: false, migrations: catalog, revert: reverted };
  return { ahead: true, migrations: [] };
}

/** The `welcome` that tells a client the server's schema (the catalog's last) and its offer. */
export function welcomeMessage(session: { userId: string; clientId: string; workspaces: Iterable<string> }, catalog: ExtractedMigration[], offer: SchemaOffer): ServerMessage {
  const { userId, clientId, workspaces } = session;
  const revert = offer.revert ? { revert: offer.revert } : {};
  return { type: 'welcome', userId, clientId, schemaVersion: catalog.at(-1)?.name ?? '', migrations: offer.migrations, ...revert, workspaces: [...workspaces] };
}
