import support from '@walsync/test-support';
const { launchBrowser } = support as any;
const url = 'http://127.0.0.1:3917/?user=alice@demo.test';
for (let i = 0; i < 3; i++) {
  const browser = await launchBrowser(`/tmp/demo-probe/profile-${Date.now()}`);
  const page = await browser.context.newPage();
  await page.addInitScript(`(() => {
    window.__seen = {};
    const observer = new MutationObserver(() => {
      for (const [name, selector] of [['nav', '[data-testid="project"]'], ['column', 'section.column'], ['card', '[data-testid="task-card"]'], ['loading', '.loading']]) {
        if (!window.__seen[name] && document.querySelector(selector)) window.__seen[name] = performance.now().toFixed(0);
      }
    });
    window.__q = [];
    let client;
    Object.defineProperty(window, 'walsync', { configurable: true, get: () => client, set: (value) => {
      client = value;
      const db = value.db;
      for (const name of ['query', 'exec']) {
        const original = db[name].bind(db);
        db[name] = (sql, ...rest) => { const t = performance.now(); const p = original(sql, ...rest); p.then(() => window.__q.push(name + ' ' + t.toFixed(0) + '→' + performance.now().toFixed(0) + ' ' + String(sql).replace(/\\s+/g, ' ').slice(0, 60))); return p; };
      }
      const live = db.live.query.bind(db.live);
      db.live.query = (sql, ...rest) => { const t = performance.now(); const p = live(sql, ...rest); p.then(() => window.__q.push('live ' + t.toFixed(0) + '→' + performance.now().toFixed(0) + ' ' + String(sql).replace(/\\s+/g, ' ').slice(0, 60))); return p; };
    } });
    document.addEventListener('DOMContentLoaded', () => observer.observe(document.body, { childList: true, subtree: true }));
  })()`);
  const t = performance.now();
  await page.goto(url);
  await page.getByTestId('task-card').first().waitFor({ timeout: 60_000 });
  const total = performance.now() - t;
  const card = await page.evaluate('performance.now()');
  const marks = await page.evaluate(`performance.getEntriesByType('mark').map((m) => m.name + ' ' + m.startTime.toFixed(0)).join('\\n')`);
  const res = await page.evaluate(`performance.getEntriesByType('resource').map((r) => r.name.replace(/^.*\\//, '') + ' ' + r.startTime.toFixed(0) + '→' + r.responseEnd.toFixed(0) + ' ' + (r.transferSize/1e3).toFixed(0) + 'KB').join('\\n')`);
  const seen = await page.evaluate('JSON.stringify(window.__seen)');
  const q = await page.evaluate('window.__q.join("\\n")');
  console.log(q);
  console.log(`--- run ${i}: seen ${seen}: ${total.toFixed(0)} ms (card at page time ${Number(card).toFixed(0)})\n${marks}\n${res}`);
  await browser.close();
}
