/**
 * sweep.html, the chart of a `sim sweep --out DIR`: one bar per point, its
 * cycles stacked by phase (compute, exchange, sync, host copies), and the
 * point's peak tile memory against the tile's capacity; points that failed
 * (out of tile memory) are named with their error. Chart.js is inlined (no
 * network), as in report.html.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export interface SweepChartPoint {
  /** The point's settings, e.g. `device.tiles=64 device.exchangeBytesPerCycle=2`. */
  label: string;
  cycles?: { compute: number; exchange: number; sync: number; streamCopy: number; total: number };
  peakTileBytes?: number;
  tileCapacity?: number;
  error?: string;
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
const embed = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderSweepReport(name: string, points: SweepChartPoint[]): string {
  const failed = points.filter((p) => p.error);
  const title = `tilesim sweep: ${escapeHtml(name)}`;
  // Tall enough for one readable label per point (bars are horizontal).
  const height = Math.max(240, 28 * points.length + 80);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 28px 0 8px; }
  .chart { position: relative; height: ${height}px; max-width: 1100px; }
  li { color: #a33; }
</style>
</head>
<body>
<h1>${title}</h1>
<div>${points.length} points${failed.length ? `, ${failed.length} failed` : ''}</div>
<h2>Cycles per point, by phase</h2><div class="chart"><canvas id="cycles"></canvas></div>
<h2>Peak tile memory per point</h2><div class="chart"><canvas id="memory"></canvas></div>
${failed.length ? `<h2>Failed points</h2><ul id="failed">${failed.map((p) => `<li>${escapeHtml(p.label)}: ${escapeHtml(p.error!)}</li>`).join('')}</ul>` : ''}
<script>${chartLibrary()}</script>
<script>
const points = ${embed(points)};
const colors = { compute: '#4e79a7', exchange: '#f28e2b', sync: '#bab0ac', streamCopy: '#59a14f' };
const common = { responsive: true, maintainAspectRatio: false, animation: false, indexAxis: 'y' };
const labels = points.map((p) => p.error ? p.label + ' (failed)' : p.label);
new Chart(document.getElementById('cycles'), { type: 'bar', options: { ...common, scales: { x: { stacked: true, title: { display: true, text: 'cycles' } }, y: { stacked: true, ticks: { autoSkip: false } } } },
  data: { labels, datasets: ['compute', 'exchange', 'sync', 'streamCopy'].map((k) => ({ label: k === 'streamCopy' ? 'host copies' : k, backgroundColor: colors[k], data: points.map((p) => p.cycles ? p.cycles[k] : 0) })) } });
new Chart(document.getElementById('memory'), { type: 'bar', options: { ...common, scales: { x: { title: { display: true, text: 'bytes (peak tile)' }, suggestedMax: Math.max(0, ...points.map((p) => p.tileCapacity || 0)) }, y: { ticks: { autoSkip: false } } } },
  data: { labels, datasets: [{ label: 'peak tile bytes', backgroundColor: '#76b7b2', data: points.map((p) => p.peakTileBytes || 0) }] } });
document.body.dataset.ready = 'true';
</script>
</body>
</html>
`;
}
