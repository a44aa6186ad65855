/**
 * report.html in a real headless browser (playwright-core driving a system chromium, or the
 * one @sparticuz/chromium ships, found by test/browser/global-setup.ts): the page loads with no script
 * errors and no network, every view draws the run's numbers, every op label is on the axis,
 * the tables sort, the details panels follow a click, and `sim report` rebuilds the page
 * from the run folder alone. A full mk2 report stays small and draws too.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, loadConfigText } from '../../src/config/load.js';
import { renderReport } from '../../src/report/html.js';
import type { ReportData } from '../../src/report/report-data.js';
import { rerenderReport } from '../../src/report/rerender.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run } from '../../src/session.js';
import { launchBrowser } from '../browser/launch.js';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';
import { MLP_MK2_YAML } from './mlp-mk2.js';

const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const base = mkdtempSync(path.join(tmpdir(), 'tilesim-html-'));
const dir = path.join(base, 'run');
const mk2Dir = path.join(base, 'mk2');
let browser: Browser;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const config = loadConfig(EXAMPLE_CONFIG, { steps: 3 });
  await writeRun(dir, await run(await compile(config), { workers: 1, numerics: true, steps: 3 }), 1);
  const mk2 = loadConfigText(MLP_MK2_YAML, path.join(base, 'mlp-mk2.yaml'), { steps: 2 });
  await writeRun(mk2Dir, await run(await compile(mk2), { workers: 1, numerics: false, steps: 2 }), 1);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  await browser?.close();
});

interface ChartInfo {
  id: string;
  points: number;
  height: number;
  width: number;
  labels: string[];
  /** Tick labels Chart.js drew on the category axis (y for horizontal bars, else x). */
  ticks: string[];
  data: unknown[][];
}

async function open(file: string): Promise<{ page: Page; errors: string[]; requests: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(file).href);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 20_000 });
  return { page, errors, requests };
}

function charts(page: Page): Promise<ChartInfo[]> {
  return page.evaluate(() => {
    type C = {
      canvas: HTMLCanvasElement;
      options: { indexAxis?: string };
      data: { labels?: unknown[]; datasets: { data: unknown[] }[] };
      scales: Record<string, { ticks: { label: unknown }[] }>;
    };
    const w = window as unknown as { Chart: { instances: Record<string, C> } };
    return Object.values(w.Chart.instances).map((c) => {
      const axis = c.options.indexAxis === 'y' ? 'y' : 'x';
      return {
        id: c.canvas.id,
        points: c.data.datasets.reduce((s, d) => s + d.data.length, 0),
        height: c.canvas.getBoundingClientRect().height,
        width: c.canvas.getBoundingClientRect().width,
        labels: (c.data.labels ?? []).map(String),
        ticks: (c.scales[axis]?.ticks ?? []).map((t) => String(t.label)),
        data: c.data.datasets.map((d) => d.data),
      };
    });
  });
}

const ALL_CHARTS = ['balance', 'cstiles', 'exchange', 'liveness', 'loss', 'memory', 'ops', 'program', 'steps', 'tensors'];

describe('report.html', () => {
  it('renders every view with the run numbers, no errors and no network', async () => {
    const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    const { page, errors, requests } = await open(path.join(dir, 'report.html'));
    const cs = await charts(page);
    const byId = (id: string) => cs.find((c) => c.id === id)!;
    // The screenshot is kept for a person to look at (test-artifacts/ is not committed).
    await page.screenshot({ path: path.join(ARTIFACTS, 'report.png'), fullPage: true });
    // One picture per view too, readable at full size (the sticky nav would cover part of each).
    await page.addStyleTag({ content: 'nav { position: static; }' });
    for (const id of ['summary', 'insights', 'ops-view', 'program-view', 'memory-view', 'liveness-view', 'tile-view']) {
      await page.locator(`#${id}`).screenshot({ path: path.join(ARTIFACTS, `report-${id}.png`) });
    }
    expect(errors).toEqual([]);
    expect(requests.every((u) => u.startsWith('file:'))).toBe(true);
    expect(cs.map((c) => c.id).sort()).toEqual(ALL_CHARTS);
    for (const c of cs) {
      expect(c.points, c.id).toBeGreaterThan(0);
      expect(c.height, c.id).toBeGreaterThan(100);
    }
    // Loss per step: the summary's losses.
    expect(byId('loss').data[0]).toEqual(summary.steps.map((s: { loss: number }) => s.loss));
    expect(byId('steps').points).toBe(4 * 3); // four phase kinds x three steps
    expect(byId('memory').points).toBe(4 * 4); // four categories x the tiny device's four tiles
    expect(byId('exchange').points).toBe(2 * 4); // sent and received per tile
    const tiles = readFileSync(path.join(dir, 'profile/tiles.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
    expect(byId('memory').data[0]).toEqual(tiles.map((t) => t[4])); // always live, per tile
    expect(byId('exchange').data[0]).toEqual(tiles.map((t) => t[8])); // sent bytes, per tile
    // Cycles by op: every op, each with its own readable label.
    const ops = byId('ops');
    expect(ops.labels).toHaveLength(summary.ops.length);
    expect(ops.ticks).toHaveLength(summary.ops.length);
    expect(ops.height).toBeGreaterThanOrEqual(summary.ops.length * 16);
    const computeOf = new Map(summary.ops.map((o: { name: string; cycles: { compute: number } }) => [o.name, o.cycles.compute]));
    expect(ops.data[0]).toEqual(ops.labels.map((l) => computeOf.get(l)));
    // Liveness and the program view are labelled with named program steps.
    const program = readFileSync(path.join(dir, 'profile/program.csv'), 'utf8').trim().split('\n').length - 1;
    expect(byId('liveness').ticks).toHaveLength(program);
    expect(byId('liveness').ticks[0]).toMatch(/^0 \S+/);
    expect(byId('liveness').ticks[program - 1]).toContain(readFileSync(path.join(dir, 'profile/liveness.csv'), 'utf8').trim().split('\n').at(-1)!.split(',')[1].slice(0, 30));
    expect(byId('program').ticks).toHaveLength(program);
    expect(byId('tensors').labels.length).toBeGreaterThan(0);
    // The op table: one row per op, says it sums all steps, has a % and a per-step column.
    expect(await page.locator('#optable tbody tr').count()).toBe(summary.ops.length);
    expect(await page.locator('#ops-view').innerText()).toContain('sum all 3 steps');
    const header = await page.locator('#optable thead th').allInnerTexts();
    expect(header).toEqual(expect.arrayContaining(['%', 'cycles a step', 'total cycles']));
    expect(await page.locator('#totals').innerText()).toContain(summary.cycles.total.toLocaleString('en-US'));
    await page.close();
  });

  it('sorts the op table by a clicked header, both ways', async () => {
    const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    const total = (o: { cycles: { compute: number; exchange: number; sync: number } }) => o.cycles.compute + o.cycles.exchange + o.cycles.sync;
    const sorted = [...summary.ops].sort((a, b) => total(b) - total(a));
    const { page } = await open(path.join(dir, 'report.html'));
    const th = page.locator('#optable thead th', { hasText: 'total cycles' });
    await th.click();
    const first = () => page.locator('#optable tbody tr').first().locator('td').first().innerText();
    expect(await first()).toBe(sorted[0].name);
    const pct = await page.locator('#optable tbody tr').first().locator('td').nth(6).innerText();
    expect(Number(pct)).toBeCloseTo((100 * total(sorted[0])) / summary.cycles.total, 1);
    await th.click();
    expect(await first()).toBe(sorted[sorted.length - 1].name);
    await page.close();
  });

  it('shows a compute set details panel and a tile details panel on request, and insights', async () => {
    const { page, errors } = await open(path.join(dir, 'report.html'));
    // The program table: click a compute set row; the panel names it and draws its tiles.
    const row = page.locator('#programtable tbody tr', { hasText: 'compute' }).nth(1);
    const name = await row.locator('td').nth(2).innerText();
    await row.click();
    expect(await page.locator('#csdetails-title').innerText()).toContain(name);
    expect(await page.locator('#csdetails-facts').innerText()).toMatch(/vertices[\s\S]*regions[\s\S]*busiest tile/);
    const cstiles = (await charts(page)).find((c) => c.id === 'cstiles')!;
    expect(cstiles.labels.length).toBeGreaterThan(0);
    // Tile details: pick tile 1.
    await page.locator('#tile-input').fill('1');
    await page.locator('#tile-input').dispatchEvent('change');
    expect(await page.locator('#tile-facts').innerText()).toMatch(/^Tile 1: [\d,]+ B in use/);
    expect(await page.locator('#tiletable tbody tr').count()).toBeGreaterThan(0);
    // Insights name the peak tile.
    const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    expect(await page.locator('#insight-list').innerText()).toContain(`Tile ${summary.memory.maxTile} has the most memory in use`);
    expect(errors).toEqual([]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'report-details.png'), fullPage: false, clip: { x: 0, y: 0, width: 1280, height: 900 } });
    await page.close();
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
    const { page, errors } = await open(path.join(dir, 'report.html'));
    expect(errors).toEqual([]);
    expect((await charts(page)).map((c) => c.id).sort()).toEqual(ALL_CHARTS);
    await page.close();
  });

  it('`sim report` on a folder that is not a run folder says so', async () => {
    await expect(rerenderReport(path.dirname(dir) + '/nothing')).rejects.toThrow(/is not a run folder: no summary\.json/);
  });

  it('stays small on a full mk2 and draws every tile and op', async () => {
    const bytes = statSync(path.join(mk2Dir, 'report.html')).size;
    // Chart.js is ~200 KB; per-tile columns for ~70 program steps over 1472 tiles about 800 KB.
    expect(bytes).toBeLessThan(2.5 * 1024 * 1024);
    const summary = JSON.parse(readFileSync(path.join(mk2Dir, 'summary.json'), 'utf8'));
    const { page, errors } = await open(path.join(mk2Dir, 'report.html'));
    const cs = await charts(page);
    await page.screenshot({ path: path.join(ARTIFACTS, 'report-mk2.png'), fullPage: true });
    await page.addStyleTag({ content: 'nav { position: static; }' });
    for (const id of ['program-view', 'memory-view', 'insights']) await page.locator(`#${id}`).screenshot({ path: path.join(ARTIFACTS, `report-mk2-${id}.png`) });
    expect(errors).toEqual([]);
    expect(cs.find((c) => c.id === 'memory')!.points).toBe(4 * 1472);
    const ops = cs.find((c) => c.id === 'ops')!;
    expect(ops.ticks).toHaveLength(summary.ops.length);
    expect(ops.height).toBeGreaterThanOrEqual(summary.ops.length * 16);
    await page.close();
  }, 60_000);

  it('pipelined: draws each stage\'s busy cycles, the summary\'s, which add up to the stages\' phases', async () => {
    // Timing only on the 4-IPU pipelined encoder example: 7 stages.
    const pipeDir = path.join(base, 'pipelined');
    const config = loadConfig(path.join(ROOT, 'configs/examples/bert-pipelined-4ipu.yaml'), { steps: 1 });
    const result = await run(await compile(config), { workers: 1, numerics: false, steps: 1 });
    await writeRun(pipeDir, result, 1);
    const summary = JSON.parse(readFileSync(path.join(pipeDir, 'summary.json'), 'utf8'));
    const stages = summary.pipeline.stageList as { stage: number; ipu: number; pass: string; busy: { compute: number; exchange: number; sync: number; total: number } }[];
    expect(stages).toHaveLength(7);
    const staged = result.phases.filter((p) => p.stage !== undefined);
    expect(stages.reduce((a, s) => a + s.busy.total, 0)).toBe(staged.reduce((a, p) => a + p.cycles, 0));
    for (const s of stages) expect(s.busy.compute, `stage ${s.stage}`).toBeGreaterThan(0);
    const { page, errors } = await open(path.join(pipeDir, 'report.html'));
    expect(errors).toEqual([]);
    const cs = await charts(page);
    const chartOf = cs.find((c) => c.id === 'stages')!;
    expect(chartOf.labels).toEqual(stages.map((s) => `stage ${s.stage} (IPU ${s.ipu}, ${s.pass})`));
    expect(chartOf.data[0]).toEqual(stages.map((s) => s.busy.compute));
    expect(await page.locator('#stagetable tbody tr').count()).toBe(7);
    expect(await page.locator('#pipeline-facts').textContent()).toContain(`bubble of ${(summary.pipeline.bubbleFraction * 100).toFixed(1)}%`);
    await page.close();
  }, 60_000);

  it('on several IPUs, draws each IPU and each link group with the summary\'s numbers', async () => {
    // Timing only on the 2-IPU sharded example: a few seconds.
    const shardDir = path.join(base, 'sharded');
    const config = loadConfig(path.join(ROOT, 'configs/examples/mlp-sharded-2ipu.yaml'), { steps: 2 });
    await writeRun(shardDir, await run(await compile(config), { workers: 1, numerics: false, steps: 2 }), 1);
    const summary = JSON.parse(readFileSync(path.join(shardDir, 'summary.json'), 'utf8'));
    const { page, errors } = await open(path.join(shardDir, 'report.html'));
    await page.addStyleTag({ content: 'nav { position: static; }' });
    await page.locator('#system-view').screenshot({ path: path.join(ARTIFACTS, 'report-system-view.png') });
    expect(errors).toEqual([]);
    const cs = await charts(page);
    const byId = (id: string) => cs.find((c) => c.id === id)!;
    expect(byId('ipus').labels).toEqual(['IPU 0', 'IPU 1']);
    expect(byId('ipus').data[0]).toEqual(summary.ipus.map((r: { cycles: { compute: number } }) => r.cycles.compute));
    const groups = summary.links.groups as { name: string; bytesPerStep: number[]; utilisation: number }[];
    expect(byId('links').labels).toEqual(groups.map((g) => g.name));
    // One dataset per step: bytes per group per step.
    expect(byId('links').data).toEqual([0, 1].map((i) => groups.map((g) => g.bytesPerStep[i])));
    expect(byId('linkutil').data[0]).toEqual(groups.map((g) => 100 * g.utilisation));
    expect(await page.locator('#linktable tbody tr').count()).toBe(groups.length);
    await page.close();
  }, 60_000);

  it('with more ops than one canvas can hold, shows the most expensive and says so', async () => {
    const summary = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    const n = 2000;
    const ops = Array.from({ length: n }, (_, i) => ({ name: `Op_${i}`, type: 'Add', domain: 'ai.onnx', cycles: { compute: i + 1, exchange: 0, sync: 0 }, flops: 0 }));
    const data: ReportData = {
      summary: { ...summary, ops },
      tables: { steps: [], ops: ops.map((o) => ({ name: o.name, type: o.type, domain: o.domain, ...o.cycles, flops: 0, memoryBytes: 0 })), tiles: [] },
      liveness: [],
      program: [],
      programTiles: [],
      tensors: [],
    };
    const file = path.join(base, 'many-ops.html');
    writeFileSync(file, renderReport(data));
    const { page, errors } = await open(file);
    expect(errors).toEqual([]);
    const chart = (await charts(page)).find((c) => c.id === 'ops')!;
    expect(chart.ticks).toHaveLength(1700);
    expect(chart.ticks[0]).toBe(`Op_${n - 1}`);
    expect(chart.height).toBeGreaterThanOrEqual(1700 * 16);
    expect(await page.locator('#ops-note').innerText()).toMatch(/^The 1700 most expensive of 2000 ops/);
    expect(await page.locator('#optable tbody tr').count()).toBe(n);
    await page.close();
  }, 60_000);
});
