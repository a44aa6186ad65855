/** Cycles by op (every op, one readable label each) and the sortable op table. */
import type { ReportData } from '../report-data.js';

export function opsSection(data: ReportData): string {
  const steps = Math.max(1, data.summary.steps.length);
  return `<section id="ops-view">
<h2>Cycles by op</h2>
<p class="note" id="ops-note">All ${data.summary.ops.length} ops, most expensive first, summed over all ${steps} steps (the list scrolls).</p>
<div class="scroll-y"><div class="chart"><canvas id="ops"></canvas></div></div>
<h2>Ops</h2>
<p class="note">Cycles and FLOPs sum all ${steps} steps; "a step" divides by ${steps} (every step runs the same program). % is of all cycles. Memory: bytes of the device tensors the op makes. Click a header to sort.</p>
<div class="scroll-table"><table id="optable"></table></div>
</section>`;
}

export const OPS_SCRIPT = String.raw`
{
  const total = (o) => o.cycles.compute + o.cycles.exchange + o.cycles.sync;
  const sorted = [...data.summary.ops].sort((a, b) => total(b) - total(a));
  // A canvas taller than ~32k px is not drawn: past MAX_OPS labels, show the most expensive and say so (the table has all).
  const MAX_OPS = 1700;
  const ops = sorted.slice(0, MAX_OPS);
  if (ops.length < sorted.length) document.getElementById('ops-note').textContent = 'The ' + ops.length + ' most expensive of ' + sorted.length + ' ops (the table below has every op), summed over all ' + nSteps + ' steps (the list scrolls).';
  sizeFor('ops', ops.length, 18, 'y');
  chart('ops', { type: 'bar', options: { ...common, indexAxis: 'y', scales: { x: { stacked: true, position: 'top', title: { display: true, text: 'cycles (all steps)' } }, y: { stacked: true, ticks: { autoSkip: false } } } },
    data: { labels: ops.map((o) => o.name), datasets: ['compute', 'exchange', 'sync'].map((k) => ({ label: k, backgroundColor: colors[k], data: ops.map((o) => o.cycles[k]) })) } });
  const all = data.summary.cycles.total || 1;
  const mem = new Map(data.tables.ops.map((o) => [o.name, o.memoryBytes]));
  table(document.getElementById('optable'), [
    { key: 'name', label: 'op', text: true },
    { key: 'type', label: 'type', text: true, value: (o) => o.domain + '::' + o.type },
    { key: 'compute', label: 'compute', value: (o) => o.cycles.compute },
    { key: 'exchange', label: 'exchange', value: (o) => o.cycles.exchange },
    { key: 'sync', label: 'sync', value: (o) => o.cycles.sync },
    { key: 'total', label: 'total cycles', value: total },
    { key: 'pct', label: '%', value: (o) => (100 * total(o)) / all, fmt: (v) => v.toFixed(1) },
    { key: 'perStep', label: 'cycles a step', value: (o) => total(o) / nSteps },
    { key: 'flops', label: 'FLOPs', value: (o) => o.flops },
    { key: 'memory', label: 'memory (B)', value: (o) => mem.get(o.name) ?? 0 },
  ], data.summary.ops, {});
}
`;
