/**
 * report.html in a real headless browser (playwright-core driving a system chromium, or the
 * one @sparticuz/chromium ships, found by test/browser/global-setup.ts): the page loads with no script
 * errors, draws its five charts from the run's numbers, and `sim report`
 * rebuilds it from the run folder alone.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { rerenderReport } from '../../src/report/rerender.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run } from '../../src/session.js';
import { launchBrowser } from '../browser/launch.js';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';

const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const dir = path.join(mkdtempSync(path.join(tmpdir(), 'tilesim-html-')), 'run');
let browser: Browser;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const config = loadConfig(EXAMPLE_CONFIG, { steps: 3 });
  await writeRun(dir, await run(await compile(config), { workers: 1, numerics: true, steps: 3 }), 1);
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function inspect(file: string, screenshot?: string) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  const charts = await page.evaluate(() => {
    const w = window as unknown as { Chart: { instances: Record<string, { canvas: HTMLCanvasElement; data: { datasets: { data: number[] }[] } }> } };
    return Object.values(w.Chart.instances).map((c) => ({ id: c.canvas.id, points: c.data.datasets.reduce((s, d) => s + d.data.length, 0), height: c.canvas.height }));
  });
  const rows = await page.locator('#optable tbody tr').count();
  const totals = await page.locator('#totals').innerText();
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  await page.close();
  return { errors, requests, charts, rows, totals };
}

describe('report.html', () => {
  it('renders its five charts and the op table with no errors and no network', async () => {
    const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    // The screenshot is kept for a person to look at (test-artifacts/ is not committed).
    const r = await inspect(path.join(dir, 'report.html'), path.join(ARTIFACTS, 'report.png'));
    expect(r.errors).toEqual([]);
    expect(r.requests.every((u) => u.startsWith('file:'))).toBe(true);
    expect(r.charts.map((c) => c.id).sort()).toEqual(['balance', 'liveness', 'memory', 'ops', 'steps']);
    for (const c of r.charts) {
      expect(c.points, c.id).toBeGreaterThan(0);
      expect(c.height, c.id).toBeGreaterThan(100);
    }
    expect(r.charts.find((c) => c.id === 'steps')!.points).toBe(4 * 3); // four phase kinds x three steps
    expect(r.charts.find((c) => c.id === 'memory')!.points).toBe(4); // one bar per tile of the tiny device
    expect(r.rows).toBe(summary.ops.length);
    expect(r.totals).toContain(summary.cycles.total.toLocaleString('en-US'));
  });

  it('`sim report` rebuilds the same page from the run folder', async () => {
    const before = readFileSync(path.join(dir, 'report.html'), 'utf8');
    rmSync(path.join(dir, 'report.html'));
    await rerenderReport(dir);
    const after = readFileSync(path.join(dir, 'report.html'), 'utf8');
    // Compare the embedded data (a readable diff on failure), then the page as a whole.
    const data = (html: string) => JSON.parse(html.split('\n').find((l) => l.startsWith('const data = '))!.slice('const data = '.length, -1));
    expect(data(after)).toEqual(data(before));
    expect(after === before).toBe(true);
    // The screenshot is kept for a person to look at (test-artifacts/ is not committed).
    const r = await inspect(path.join(dir, 'report.html'), path.join(ARTIFACTS, 'report.png'));
    expect(r.errors).toEqual([]);
    expect(r.charts).toHaveLength(5);
  });

  it('`sim report` on a folder that is not a run folder says so', async () => {
    await expect(rerenderReport(path.dirname(dir) + '/nothing')).rejects.toThrow(/is not a run folder: no summary\.json/);
  });
});
