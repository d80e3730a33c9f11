import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser } from '@walsync/test-support';

export interface LatencyPoint {
  clients: number;
  p50: number;
  p99: number;
}

const WIDTH = 720;
const HEIGHT = 420;
const MARGIN = { left: 70, right: 30, top: 40, bottom: 60 };

/**
 * Draws end-to-end latency against connected clients as an SVG (log-scaled client axis) and has
 * Chromium rasterise it to `file` (PNG): the machine's own browser, no image library.
 */
export async function renderLatencyPlot(points: LatencyPoint[], file: string, caption: string): Promise<void> {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const maxClients = Math.max(...points.map((point) => point.clients));
  const maxMs = Math.ceil(Math.max(...points.map((point) => point.p99)) / 10) * 10 || 10;
  const x = (clients: number) => MARGIN.left + (Math.log10(clients) / Math.log10(maxClients)) * plotW;
  const y = (ms: number) => MARGIN.top + plotH - (ms / maxMs) * plotH;
  const line = (key: 'p50' | 'p99', color: string) =>
    `<polyline fill="none" stroke="${color}" stroke-width="2.5" points="${points.map((point) => `${x(point.clients)},${y(point[key])}`).join(' ')}"/>` +
    points.map((point) => `<circle cx="${x(point.clients)}" cy="${y(point[key])}" r="4" fill="${color}"/>`).join('');
  const yTicks = Array.from({ length: 6 }, (_, i) => (maxMs / 5) * i);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="13">
    <rect width="100%" height="100%" fill="white"/>
    <text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16">External commit → client, by connected clients</text>
    ${yTicks.map((ms) => `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(ms)}" y2="${y(ms)}" stroke="#e5e5e5"/><text x="${MARGIN.left - 8}" y="${y(ms) + 4}" text-anchor="end">${Math.round(ms)}</text>`).join('')}
    ${points.map((point) => `<text x="${x(point.clients)}" y="${HEIGHT - MARGIN.bottom + 20}" text-anchor="middle">${point.clients}</text>`).join('')}
    <text x="${WIDTH / 2}" y="${HEIGHT - 18}" text-anchor="middle">connected clients (log scale) — ${caption}</text>
    <text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">latency (ms)</text>
    ${line('p99', '#d9480f')}${line('p50', '#1971c2')}
    <text x="${WIDTH - MARGIN.right - 60}" y="${MARGIN.top + 14}" fill="#1971c2">p50</text>
    <text x="${WIDTH - MARGIN.right - 60}" y="${MARGIN.top + 32}" fill="#d9480f">p99</text>
  </svg>`;
  const profile = mkdtempSync(path.join(tmpdir(), 'walsync-plot-'));
  const browser = await launchBrowser(profile);
  try {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: WIDTH, height: HEIGHT });
    await page.setContent(`<body style="margin:0">${svg}</body>`);
    await page.screenshot({ path: file, clip: { x: 0, y: 0, width: WIDTH, height: HEIGHT } });
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

export interface RatioBar {
  label: string;
  /** > 1: walsync ahead. */
  ratio: number;
}

/**
 * Draws walsync ÷ peer ratios as horizontal bars on a log scale around 1 (right and green: walsync
 * ahead; left and red: behind) and rasterises it to `file` (PNG) with Chromium, like the latency plot.
 */
export async function renderRatioChart(bars: RatioBar[], file: string, title: string): Promise<void> {
  const width = 900;
  const rowH = 34;
  const left = 430;
  const right = 40;
  const top = 50;
  const height = top + bars.length * rowH + 50;
  const span = Math.max(2, ...bars.map((bar) => Math.abs(Math.log10(bar.ratio)))) * 1.1;
  const plotW = width - left - right;
  const x = (ratio: number) => left + plotW / 2 + (Math.log10(ratio) / span) * (plotW / 2);
  const ticks = [0.01, 0.1, 0.5, 1, 2, 10, 100].filter((tick) => Math.abs(Math.log10(tick)) <= span);
  const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13">
    <rect width="100%" height="100%" fill="white"/>
    <text x="${width / 2}" y="26" text-anchor="middle" font-size="16">${escape(title)}</text>
    ${ticks.map((tick) => `<line x1="${x(tick)}" x2="${x(tick)}" y1="${top - 6}" y2="${height - 44}" stroke="${tick === 1 ? '#444' : '#e5e5e5'}"/><text x="${x(tick)}" y="${height - 28}" text-anchor="middle">${tick}×</text>`).join('')}
    ${bars
      .map((bar, i) => {
        const y = top + i * rowH;
        const from = Math.min(x(1), x(bar.ratio));
        const color = bar.ratio >= 1 ? '#2f9e44' : '#e03131';
        return `<text x="${left - 10}" y="${y + rowH / 2 + 4}" text-anchor="end">${escape(bar.label)}</text>
          <rect x="${from}" y="${y + 6}" width="${Math.max(1, Math.abs(x(bar.ratio) - x(1)))}" height="${rowH - 12}" fill="${color}"/>
          <text x="${bar.ratio >= 1 ? x(bar.ratio) + 6 : x(bar.ratio) - 6}" y="${y + rowH / 2 + 4}" text-anchor="${bar.ratio >= 1 ? 'start' : 'end'}">${bar.ratio.toFixed(2)}×</text>`;
      })
      .join('')}
    <text x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">← peer ahead · walsync ahead → (log scale)</text>
  </svg>`;
  const profile = mkdtempSync(path.join(tmpdir(), 'walsync-plot-'));
  const browser = await launchBrowser(profile);
  try {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width, height });
    await page.setContent(`<body style="margin:0">${svg}</body>`);
    await page.screenshot({ path: file, clip: { x: 0, y: 0, width, height } });
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
