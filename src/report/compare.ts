/**
 * `sim report --compare A B`: one page comparing two run folders (two
 * devices, two plans of one model, before and after a change): totals and the
 * phase split, cycles per step, per-op cycles and memory side by side with
 * deltas (ops matched by name), and memory per tile. Same Chart.js page
 * machinery as report.html; reads only the run folders.
 */
import { existsSync, statSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { chartLibrary, embed, pageStart } from './html.js';
import type { ReportData } from './report-data.js';
import { readRunFolder } from './rerender.js';
import { UserError } from '../errors.js';
import { CLIENT_COMMON, escapeHtml } from './views/common.js';

export interface CompareRow {
  name: string;
  type: string;
  /** Cycles (compute + exchange + sync) over all steps; null when the op is not in that run. */
  cyclesA: number | null;
  cyclesB: number | null;
  memoryA: number | null;
  memoryB: number | null;
}

export function compareOps(a: ReportData, b: ReportData): CompareRow[] {
  const rows = new Map<string, CompareRow>();
  const add = (d: ReportData, side: 'A' | 'B') => {
    for (const o of d.tables.ops) {
      let r = rows.get(o.name);
      if (!r) rows.set(o.name, (r = { name: o.name, type: `${o.domain}::${o.type}`, cyclesA: null, cyclesB: null, memoryA: null, memoryB: null }));
      r[`cycles${side}`] = o.compute + o.exchange + o.sync;
      r[`memory${side}`] = o.memoryBytes ?? 0;
    }
  };
  add(a, 'A');
  add(b, 'B');
  return [...rows.values()];
}

export function renderCompare(a: ReportData, b: ReportData, labelA: string, labelB: string): string {
  const title = `tilesim comparison: ${escapeHtml(labelA)} vs ${escapeHtml(labelB)}`;
  const side = (d: ReportData) => ({ name: d.summary.name, device: d.summary.device, cycles: d.summary.cycles, memory: d.summary.memory, steps: d.summary.steps, tiles: d.tables.tiles.map((t) => t.bytes) });
  const page = { labels: [labelA, labelB], a: side(a), b: side(b), ops: compareOps(a, b), summary: { steps: a.summary.steps }, program: [], liveness: [], packedTiles: {} };
  return `${pageStart(title)}
<p class="facts">A: ${escapeHtml(labelA)} (${escapeHtml(a.summary.name)}, ${escapeHtml(String((a.summary.device as { name?: string }).name))}, ${a.summary.steps.length} steps); B: ${escapeHtml(labelB)} (${escapeHtml(b.summary.name)}, ${escapeHtml(String((b.summary.device as { name?: string }).name))}, ${b.summary.steps.length} steps). Deltas are B - A; cycles sum all steps of each run.</p>
<h2>Totals</h2>
<div class="scroll-table"><table id="totals"></table></div>
<h2>Cycles per step</h2><div class="chart"><canvas id="steps"></canvas></div>
<h2>Cycles by op, A and B</h2>
<p class="note" id="ops-note"></p>
<div class="scroll-y"><div class="chart"><canvas id="ops"></canvas></div></div>
<h2>Ops side by side</h2>
<p class="note">Ops matched by name; "-" where an op is not in that run. Memory: bytes of the device tensors the op makes. Click a header to sort.</p>
<div class="scroll-table"><table id="optable"></table></div>
<h2>Memory per tile</h2><div class="chart"><canvas id="memory"></canvas></div>
<script>${chartLibrary()}</script>
<script>
const data = ${embed(page)};
${CLIENT_COMMON}
const [A, B] = data.labels;
const delta = (x, y) => (x === null || y === null ? null : y - x);
const dpct = (x, y) => (x === null || y === null || x === 0 ? null : (100 * (y - x)) / x);
const sgn = (v) => (v === null ? '-' : (v > 0 ? '+' : '') + fmt(v));
const sgnPct = (v) => (v === null ? '-' : (v > 0 ? '+' : '') + v.toFixed(1) + '%');
const dash = (v) => (v === null ? '-' : fmt(v));
{
  const rows = [
    ['total cycles', data.a.cycles.total, data.b.cycles.total], ['compute', data.a.cycles.compute, data.b.cycles.compute],
    ['exchange', data.a.cycles.exchange, data.b.cycles.exchange], ['sync', data.a.cycles.sync, data.b.cycles.sync],
    ['host copies', data.a.cycles.streamCopy, data.b.cycles.streamCopy],
    ['peak tile memory (B)', data.a.memory.maxTileBytes, data.b.memory.maxTileBytes], ['total memory (B)', data.a.memory.totalBytes, data.b.memory.totalBytes],
    ['tiles used', data.a.memory.tilesUsed, data.b.memory.tilesUsed],
  ].map(([what, a, b]) => ({ what, a, b }));
  table(document.getElementById('totals'), [
    { key: 'what', label: '', text: true }, { key: 'a', label: A }, { key: 'b', label: B },
    { key: 'd', label: 'delta', value: (r) => delta(r.a, r.b), fmt: sgn }, { key: 'p', label: 'delta %', value: (r) => dpct(r.a, r.b), fmt: sgnPct },
  ], rows, {});
  const n = Math.max(data.a.steps.length, data.b.steps.length);
  chart('steps', { type: 'line', options: { ...common, scales: { x: { title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'cycles' } } } },
    data: { labels: Array.from({ length: n }, (_, i) => i + 1), datasets: [{ label: A, borderColor: colors.compute, data: data.a.steps.map((s) => s.cycles) }, { label: B, borderColor: colors.exchange, data: data.b.steps.map((s) => s.cycles) }] } });
  const ops = [...data.ops].sort((x, y) => Math.max(y.cyclesA ?? 0, y.cyclesB ?? 0) - Math.max(x.cyclesA ?? 0, x.cyclesB ?? 0));
  document.getElementById('ops-note').textContent = 'All ' + ops.length + ' ops of either run, most expensive first (the list scrolls).';
  sizeFor('ops', ops.length, 24, 'y');
  chart('ops', { type: 'bar', options: { ...common, indexAxis: 'y', scales: { x: { position: 'top', title: { display: true, text: 'cycles (all steps)' } }, y: { ticks: { autoSkip: false } } } },
    data: { labels: ops.map((o) => o.name), datasets: [{ label: A, backgroundColor: colors.compute, data: ops.map((o) => o.cyclesA ?? 0) }, { label: B, backgroundColor: colors.exchange, data: ops.map((o) => o.cyclesB ?? 0) }] } });
  table(document.getElementById('optable'), [
    { key: 'name', label: 'op', text: true }, { key: 'type', label: 'type', text: true },
    { key: 'cyclesA', label: 'cycles ' + A, fmt: dash }, { key: 'cyclesB', label: 'cycles ' + B, fmt: dash },
    { key: 'dc', label: 'delta cycles', value: (o) => delta(o.cyclesA, o.cyclesB), fmt: sgn }, { key: 'dcp', label: 'delta %', value: (o) => dpct(o.cyclesA, o.cyclesB), fmt: sgnPct },
    { key: 'memoryA', label: 'memory ' + A, fmt: dash }, { key: 'memoryB', label: 'memory ' + B, fmt: dash },
    { key: 'dm', label: 'delta memory', value: (o) => delta(o.memoryA, o.memoryB), fmt: sgn },
  ], data.ops, {});
  const t = Math.max(data.a.tiles.length, data.b.tiles.length);
  chart('memory', { type: 'line', options: { ...common, scales: { x: { title: { display: true, text: 'tile' } }, y: { title: { display: true, text: 'bytes in use' } } } },
    data: { labels: Array.from({ length: t }, (_, i) => i), datasets: [{ label: A, borderColor: colors.compute, pointRadius: 0, data: data.a.tiles }, { label: B, borderColor: colors.exchange, pointRadius: 0, data: data.b.tiles }] } });
}
document.body.dataset.ready = 'true';
</script>
</body>
</html>
`;
}

/** Compare run folders `a` and `b`; write the page to `out` (atomically) and return its path. */
export async function writeComparison(a: string, b: string, out: string): Promise<string> {
  const folder = path.dirname(out);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UserError(`--out ${out}: folder ${folder} does not exist`);
  // Folder names label the runs; two runs both called e.g. "run" are told apart by their paths.
  const same = path.basename(a) === path.basename(b);
  const label = (d: string) => (same ? d : path.basename(d) || d);
  const html = renderCompare(readRunFolder(a), readRunFolder(b), label(a), label(b));
  const partial = `${out}.partial-${process.pid}`;
  await writeFile(partial, html);
  await rename(partial, out);
  return out;
}
