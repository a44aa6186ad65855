/**
 * `sim report --compare A B`: the same model on two devices (the tiny preset,
 * and the tiny preset with a quarter of its exchange bandwidth), compared on
 * one page: per-op cycles and memory side by side with deltas, drawn in a real
 * browser; and the command itself, through the built CLI.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compareOps, writeComparison } from '../../src/report/compare.js';
import { readRunFolder } from '../../src/report/rerender.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run } from '../../src/session.js';
import { launchBrowser } from '../browser/launch.js';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-compare-'));
const A = path.join(tmp, 'fast');
const B = path.join(tmp, 'slow');
let browser: Browser;

async function runInto(dir: string, device: string) {
  const text = readFileSync(EXAMPLE_CONFIG, 'utf8').replace(/^device: tiny$/m, `device: ${device}`);
  const config = loadConfigText(text, EXAMPLE_CONFIG, { steps: 2 });
  await writeRun(dir, await run(await compile(config), { workers: 1, numerics: false, steps: 2 }), 1);
}

beforeAll(async () => {
  await runInto(A, 'tiny');
  await runInto(B, '{preset: tiny, exchangeBytesPerCycle: 1}');
  browser = await launchBrowser();
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

describe('sim report --compare', () => {
  it('matches ops by name with both runs numbers; only exchange-heavy ops get slower', () => {
    const a = readRunFolder(A);
    const b = readRunFolder(B);
    const rows = compareOps(a, b);
    expect(rows.map((r) => r.name)).toEqual(a.summary.ops.map((o) => o.name));
    for (const r of rows) {
      const oa = a.tables.ops.find((o) => o.name === r.name)!;
      const ob = b.tables.ops.find((o) => o.name === r.name)!;
      expect(r.cyclesA).toBe(oa.compute + oa.exchange + oa.sync);
      expect(r.cyclesB).toBe(ob.compute + ob.exchange + ob.sync);
      expect(r.memoryA).toBe(r.memoryB); // the same program: only the exchange rate differs
      expect(r.cyclesB! - r.cyclesA!).toBe(ob.exchange - oa.exchange);
    }
    expect(rows.some((r) => r.cyclesB! > r.cyclesA!)).toBe(true);
  });

  it('writes a page with totals, per-step, per-op and per-tile views and signed deltas', async () => {
    const out = path.join(tmp, 'compare.html');
    await writeComparison(A, B, out);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(out).href);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
    await page.screenshot({ path: path.join(ROOT, 'test-artifacts/compare.png'), fullPage: true });
    expect(errors).toEqual([]);
    expect(requests.every((u) => u.startsWith('file:'))).toBe(true);
    const charts = await page.evaluate(() => {
      const w = window as unknown as { Chart: { instances: Record<string, { canvas: HTMLCanvasElement; data: { labels: unknown[]; datasets: { label: string }[] } }> } };
      return Object.values(w.Chart.instances).map((c) => ({ id: c.canvas.id, labels: c.data.labels.length, datasets: c.data.datasets.map((d) => d.label) }));
    });
    expect(charts.map((c) => c.id).sort()).toEqual(['memory', 'ops', 'steps']);
    const a = readRunFolder(A);
    const b = readRunFolder(B);
    expect(charts.find((c) => c.id === 'ops')).toEqual({ id: 'ops', labels: a.summary.ops.length, datasets: ['fast', 'slow'] });
    // The totals row: A, B and the signed delta of total cycles.
    const totalRow = await page.locator('#totals tbody tr', { hasText: 'total cycles' }).locator('td').allInnerTexts();
    const d = b.summary.cycles.total - a.summary.cycles.total;
    expect(totalRow.slice(1, 4)).toEqual([a.summary.cycles.total.toLocaleString('en-US'), b.summary.cycles.total.toLocaleString('en-US'), `+${d.toLocaleString('en-US')}`]);
    expect(await page.locator('#optable tbody tr').count()).toBe(a.summary.ops.length);
    // Sort by delta cycles: the op the slow exchange hurts most comes first.
    await page.locator('#optable thead th', { hasText: 'delta cycles' }).click();
    const worst = compareOps(a, b).sort((x, y) => y.cyclesB! - y.cyclesA! - (x.cyclesB! - x.cyclesA!))[0];
    expect(await page.locator('#optable tbody tr').first().locator('td').first().innerText()).toBe(worst.name);
    await page.close();
  });

  it('is a `sim report` option of the built CLI; a wrong folder count exits 2', () => {
    const bin = path.join(ROOT, 'bin/sim.js');
    if (!existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
    const out = path.join(tmp, 'cli-compare.html');
    const ok = spawnSync(process.execPath, [bin, 'report', '--compare', A, B, '--out', out], { encoding: 'utf8', cwd: tmp });
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('comparison written to cli-compare.html');
    expect(readFileSync(out, 'utf8')).toContain('tilesim comparison: fast vs slow');
    const bad = spawnSync(process.execPath, [bin, 'report', '--compare', A], { encoding: 'utf8', cwd: tmp });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--compare takes two run folders/);
    const notRun = spawnSync(process.execPath, [bin, 'report', '--compare', A, tmp], { encoding: 'utf8', cwd: tmp });
    expect(notRun.status).toBe(2);
    expect(notRun.stderr).toMatch(/is not a run folder/);
  });
});
