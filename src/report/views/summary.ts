/** The page's top: totals, the loss per step and the phase split per step. */
import { escapeHtml } from './common.js';
import type { ReportData } from '../report-data.js';

export function summarySection(data: ReportData): string {
  const s = data.summary;
  const d = s.device as { name: string; tiles: number; clockHz: number };
  const c = s.cycles;
  const pct = (x: number) => (c.total ? ((100 * x) / c.total).toFixed(1) : '0.0');
  const num = (x: number) => x.toLocaleString('en-US');
  const hasLoss = s.steps.some((st) => st.loss !== undefined);
  return `<section id="summary">
<div class="facts">${escapeHtml(d.name)}: ${d.tiles} tiles at ${(d.clockHz / 1e9).toFixed(2)} GHz; ${s.steps.length} steps; every number sums all steps unless it says "a step"</div>
<div class="grid" id="totals">
  <div class="card">total cycles<b>${num(c.total)}</b>${(s.seconds * 1e6).toFixed(2)} us; ${num(Math.round(c.total / Math.max(1, s.steps.length)))} a step</div>
  <div class="card">compute<b>${pct(c.compute)}%</b>${num(c.compute)} cycles</div>
  <div class="card">exchange<b>${pct(c.exchange)}%</b>${num(c.exchange)} cycles</div>
  <div class="card">sync<b>${pct(c.sync)}%</b>${num(c.sync)} cycles</div>
  <div class="card">host copies<b>${pct(c.streamCopy)}%</b>${num(c.streamCopy)} cycles</div>${
    c.streamingMemory ? `\n  <div class="card">Streaming Memory<b>${pct(c.streamingMemory)}%</b>${num(c.streamingMemory)} cycles</div>` : ''
  }
  <div class="card">peak tile memory<b>${num(s.memory.maxTileBytes)} B</b>tile ${s.memory.maxTile} of ${num(s.memory.tileCapacity)} B</div>
</div>
<h2>Loss per step</h2>
${hasLoss ? '<div class="chart"><canvas id="loss"></canvas></div>' : '<p class="note" id="no-loss">An inference run: no loss.</p>'}
<h2>Phase split per step</h2><div class="chart"><canvas id="steps"></canvas></div>
</section>`;
}

export const SUMMARY_SCRIPT = String.raw`
if (document.getElementById('loss')) {
  const st = data.summary.steps.filter((s) => s.loss !== undefined);
  chart('loss', { type: 'line', options: { ...common, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: 'step' } }, y: { title: { display: true, text: 'loss' } } } },
    data: { labels: st.map((s) => s.step), datasets: [{ label: 'loss', borderColor: '#e15759', backgroundColor: '#e15759', pointRadius: st.length > 60 ? 0 : 2, data: st.map((s) => s.loss) }] } });
}
chart('steps', { type: 'bar', options: { ...common, scales: { x: { stacked: true, title: { display: true, text: 'step' } }, y: { stacked: true, title: { display: true, text: 'cycles' } } } },
  data: { labels: data.tables.steps.map((s) => s.step), datasets: ['compute', 'exchange', 'sync', 'streamCopy', ...(data.tables.steps.some((s) => s.streamingMemory !== undefined) ? ['streamingMemory'] : [])].map((k) => ({ label: k, backgroundColor: colors[k], data: data.tables.steps.map((s) => s[k]) })) } });
`;
