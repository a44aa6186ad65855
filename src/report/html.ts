/**
 * report.html: one self-contained page with the views a PopVision user
 * expects: cycles by op, phase split per step, tile memory map, tile
 * balance, liveness over the program. Charts are drawn by Chart.js, inlined
 * (no network), from data embedded as JSON.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { LivenessRow } from './liveness.js';
import type { Summary } from './summary.js';
import type { ProfileTables } from './types.js';

export interface ReportData {
  summary: Summary;
  tables: ProfileTables;
  liveness: LivenessRow[];
}

let chartJs: string | undefined;

function chartLibrary(): string {
  if (chartJs === undefined) {
    const require = createRequire(import.meta.url);
    // The UMD bundle is not in the package's exports: find it beside the main entry (dist/).
    chartJs = readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  }
  return chartJs;
}

/** JSON safe inside a <script> element. */
function embed(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderReport(data: ReportData): string {
  const s = data.summary;
  const d = s.device as { name: string; tiles: number; clockHz: number };
  const c = s.cycles;
  const pct = (x: number) => (c.total ? ((100 * x) / c.total).toFixed(1) : '0.0');
  const title = `tilesim report: ${escapeHtml(s.name)}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 28px 0 8px; }
  .facts { color: #555; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; margin: 12px 0; }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
  .card b { display: block; font-size: 18px; }
  .chart { position: relative; height: 320px; max-width: 1100px; }
  table { border-collapse: collapse; }
  td, th { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: right; }
  td:first-child, th:first-child { text-align: left; }
</style>
</head>
<body>
<h1>${title}</h1>
<div class="facts">${escapeHtml(d.name)}: ${d.tiles} tiles at ${(d.clockHz / 1e9).toFixed(2)} GHz; ${s.steps.length} steps</div>
<div class="grid" id="totals">
  <div class="card">total cycles<b>${c.total.toLocaleString('en-US')}</b>${(s.seconds * 1e6).toFixed(2)} us</div>
  <div class="card">compute<b>${pct(c.compute)}%</b>${c.compute.toLocaleString('en-US')} cycles</div>
  <div class="card">exchange<b>${pct(c.exchange)}%</b>${c.exchange.toLocaleString('en-US')} cycles</div>
  <div class="card">sync<b>${pct(c.sync)}%</b>${c.sync.toLocaleString('en-US')} cycles</div>
  <div class="card">host copies<b>${pct(c.streamCopy)}%</b>${c.streamCopy.toLocaleString('en-US')} cycles</div>
  <div class="card">peak tile memory<b>${s.memory.maxTileBytes.toLocaleString('en-US')} B</b>tile ${s.memory.maxTile} of ${s.memory.tileCapacity.toLocaleString('en-US')} B</div>
</div>
<h2>Cycles by op</h2><div class="chart"><canvas id="ops"></canvas></div>
<h2>Phase split per step</h2><div class="chart"><canvas id="steps"></canvas></div>
<h2>Tile memory map</h2><div class="chart"><canvas id="memory"></canvas></div>
<h2>Tile balance (compute cycles per tile)</h2><div class="chart"><canvas id="balance"></canvas></div>
<h2>Liveness over the program (bytes live, all tiles)</h2><div class="chart"><canvas id="liveness"></canvas></div>
<h2>Ops</h2>
<table id="optable"><thead><tr><th>op</th><th>type</th><th>compute</th><th>exchange</th><th>sync</th><th>FLOPs</th></tr></thead><tbody></tbody></table>
<script>${chartLibrary()}</script>
<script>
const data = ${embed(data)};
const colors = { compute: '#4e79a7', exchange: '#f28e2b', sync: '#bab0ac', streamCopy: '#59a14f' };
const common = { responsive: true, maintainAspectRatio: false, animation: false };
const ops = [...data.summary.ops].sort((a, b) => (b.cycles.compute + b.cycles.exchange + b.cycles.sync) - (a.cycles.compute + a.cycles.exchange + a.cycles.sync)).slice(0, 30);
new Chart(document.getElementById('ops'), { type: 'bar', options: { ...common, indexAxis: 'y', scales: { x: { stacked: true, title: { display: true, text: 'cycles' } }, y: { stacked: true } } },
  data: { labels: ops.map((o) => o.name), datasets: ['compute', 'exchange', 'sync'].map((k) => ({ label: k, backgroundColor: colors[k], data: ops.map((o) => o.cycles[k]) })) } });
new Chart(document.getElementById('steps'), { type: 'bar', options: { ...common, scales: { x: { stacked: true, title: { display: true, text: 'step' } }, y: { stacked: true, title: { display: true, text: 'cycles' } } } },
  data: { labels: data.tables.steps.map((s) => s.step + 1), datasets: ['compute', 'exchange', 'sync', 'streamCopy'].map((k) => ({ label: k, backgroundColor: colors[k], data: data.tables.steps.map((s) => s[k]) })) } });
new Chart(document.getElementById('memory'), { type: 'bar', options: { ...common, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: 'tile' } }, y: { max: data.summary.memory.tileCapacity, title: { display: true, text: 'bytes' } } } },
  data: { labels: data.tables.tiles.map((t) => t.tile), datasets: [{ label: 'bytes', backgroundColor: '#76b7b2', data: data.tables.tiles.map((t) => t.bytes) }] } });
new Chart(document.getElementById('balance'), { type: 'bar', options: { ...common, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: 'tile' } }, y: { title: { display: true, text: 'compute cycles' } } } },
  data: { labels: data.tables.tiles.map((t) => t.tile), datasets: [{ label: 'compute cycles', backgroundColor: colors.compute, data: data.tables.tiles.map((t) => t.computeCycles) }] } });
new Chart(document.getElementById('liveness'), { type: 'line', options: { ...common, plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => data.liveness[items[0].dataIndex].name } } }, scales: { x: { title: { display: true, text: 'program step' } }, y: { title: { display: true, text: 'bytes live' } } } },
  data: { labels: data.liveness.map((r) => r.step), datasets: [{ label: 'bytes live', borderColor: '#e15759', pointRadius: 0, data: data.liveness.map((r) => r.bytes) }] } });
const tbody = document.querySelector('#optable tbody');
for (const o of data.summary.ops) {
  const tr = document.createElement('tr');
  for (const v of [o.name, o.domain + '::' + o.type, o.cycles.compute, o.cycles.exchange, o.cycles.sync, o.flops]) {
    const td = document.createElement('td');
    td.textContent = typeof v === 'number' ? v.toLocaleString('en-US') : v;
    tr.appendChild(td);
  }
  tbody.appendChild(tr);
}
document.body.dataset.ready = 'true';
</script>
</body>
</html>
`;
}
