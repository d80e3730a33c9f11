// A walsync client in a process of its own, for crash tests: it writes tasks one by one while it
// syncs, and reports each committed write on stdout, until it is killed.
import { createSyncClient } from '@walsync/web';

const { URL: url, TOKEN: token, DATA_DIR: dataDir, WORKSPACE: workspace, PROJECT: project } = process.env;
const client = await createSyncClient({ url, token, dataDir });
await client.ready;
console.log('ready');
for (let i = 0; ; i++) {
  await client.db.query(`INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)`, [workspace, project, `child ${i}`]);
  console.log(`wrote ${i}`);
  await new Promise((resolve) => setTimeout(resolve, 5));
}
