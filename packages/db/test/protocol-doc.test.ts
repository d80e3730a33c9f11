import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describeSyncedTables, tableReference, withTableReference } from '@walsync/db/server';
import { describe, expect, it } from 'vitest';

describe('docs/protocol.md', () => {
  it('describes every synced table as the entities define it (run `yarn docs:tables` after a schema change)', async () => {
    const document = readFileSync(path.resolve(__dirname, '../../../docs/protocol.md'), 'utf8');
    const tables = await describeSyncedTables();
    expect(withTableReference(document, tableReference(tables))).toBe(document);
    // Spot checks that the generated text says what a client needs.
    expect(document).toContain('| `title` | text (string) | required on insert |');
    expect(document).toContain('| `project_id` | uuid (string) | required on insert; a `project` id of the same workspace |');
    expect(document).toContain("| `assignee_id` | uuid (string) | optional, nullable; a user who is a member of the row's workspace |");
  });
});
