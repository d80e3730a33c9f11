import { launchBrowser } from '@walsync/test-support';
async function main() {
  const browser = await launchBrowser('/tmp/demo-probe/chromium-' + Date.now());
  const page = await browser.context.newPage();
  await page.goto('http://localhost:3917/?user=alice@demo.test');
  await page.getByTestId('task-card').first().waitFor({ timeout: 60000 });
  for (let r = 0; r < 2; r++) {
    const t = Date.now(); await page.reload(); await page.getByTestId('task-card').first().waitFor(); console.log('reload', Date.now() - t);
    console.log(await page.evaluate(`JSON.stringify({ marks: performance.getEntriesByType('mark').map((m) => [m.name, Math.round(m.startTime)]), res: performance.getEntriesByType('resource').map((r) => [r.name.split('/').pop(), Math.round(r.startTime), Math.round(r.duration)]), dcl: Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd), now: Math.round(performance.now()) })`));
  }
  await page.waitForTimeout(3000);
  const probe = await page.evaluate(`(async () => {
    const w = window.walsync;
    const out = { select: [], insert: [], live: [], idle: [] };
    for (let i = 0; i < 10; i++) { const t = performance.now(); await w.db.query('SELECT 1'); out.select.push(Math.round((performance.now() - t) * 10) / 10); }
    const ws = (await w.db.query('SELECT workspace_id, project_id FROM task LIMIT 1')).rows[0];
    let resolveFired = () => {};
    const live = await w.db.live.query('SELECT id, title FROM task ORDER BY position LIMIT 40', [], () => resolveFired(performance.now()));
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 800));
      const t = performance.now(); await w.db.query('SELECT 1'); out.idle.push(Math.round((performance.now() - t) * 10) / 10);
      const got = new Promise((r) => (resolveFired = r));
      const s = performance.now(); await w.db.query('INSERT INTO task (workspace_id, project_id, title) VALUES ($1, $2, $3)', [ws.workspace_id, ws.project_id, 'probe']);
      out.insert.push(Math.round(performance.now() - s));
      out.live.push(Math.round((await got) - s));
    }
    await live.unsubscribe();
    return JSON.stringify(out);
  })()`);
  console.log(probe);
  await browser.close();
}
main();
