/**
 * `yarn docs:tables`: rewrites the table reference in docs/protocol.md from the entities (primary
 * keys, columns, types, rules), so a client written from the document knows the schema this build
 * speaks. The test suite fails when the document and the entities disagree.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeSyncedTables, tableReference, withTableReference } from '../packages/db/src/server';

async function main(): Promise<void> {
  const file = path.resolve(__dirname, '../docs/protocol.md');
  const document = readFileSync(file, 'utf8');
  const updated = withTableReference(document, tableReference(await describeSyncedTables()));
  if (updated === document) {
    console.log('docs/protocol.md: the table reference is up to date');
    return;
  }
  writeFileSync(file, updated);
  console.log('docs/protocol.md: table reference rewritten from the entities');
}

main().catch((error) => {
  console.error(`docs:tables failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
