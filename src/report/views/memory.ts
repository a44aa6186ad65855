/**
 * Memory and balance: the tile memory map by category, exchange bytes per
 * tile, compute cycles per tile, bytes live over the named program steps, and
 * the lifetimes of the tensors live at the peak.
 */
import type { ReportData } from '../report-data.js';

export function memorySection(data: ReportData): string {
  const steps = Math.max(1, data.summary.steps.length);
  return `<section id="memory-view">
<h2>Tile memory map by category</h2>
<p class="note">Bytes in use on each tile: always-live data (variables, constants, host-stream buffers), the peak of the temporaries (tensors sharing memory by liveness), code and vertex state. A tile holds ${data.summary.memory.tileCapacity.toLocaleString('en-US')} B; the y axis ends there once the busiest tile passes a quarter of it.</p>
<div class="chart"><canvas id="memory"></canvas></div>
<h2>Exchange bytes per tile</h2>
<p class="note">Bytes each tile sends (a broadcast once) and receives, all ${steps} steps.</p>
<div class="chart"><canvas id="exchange"></canvas></div>
<h2>Tile balance (compute cycles per tile, all ${steps} steps)</h2><div class="chart"><canvas id="balance"></canvas></div>
</section>
<section id="liveness-view">
<h2>Liveness over the program (bytes live, all tiles)</h2>
<p class="note">Each program step is named: its number, then the compute set, exchange or host copy. Always-live tensors are counted at every step.</p>
<div class="scroll-x"><div class="chart tall"><canvas id="liveness"></canvas></div></div>
<h2>Tensors live at the peak</h2>
<p class="note" id="tensors-note"></p>
<div class="scroll-y"><div class="chart"><canvas id="tensors"></canvas></div></div>
<h3>Largest tensors</h3>
<p class="note">The report keeps the largest ${data.tensors.length} tensors (profile/tensors.csv). Peak tile: bytes on tile ${data.summary.memory.maxTile}, the tile with the most memory in use.</p>
<div class="scroll-table"><table id="tensortable"></table></div>
</section>`;
}

export const MEMORY_SCRIPT = String.raw`
{
  const tiles = data.tables.tiles;
  chart('memory', { type: 'bar', options: { ...common, scales: { x: { stacked: true, title: { display: true, text: 'tile' } }, y: { stacked: true, max: data.summary.memory.maxTileBytes > data.summary.memory.tileCapacity / 4 ? data.summary.memory.tileCapacity : undefined, title: { display: true, text: 'bytes' } } } },
    data: { labels: tiles.map((t) => t.tile), datasets: [['alwaysLive', 'always live'], ['temporaries', 'temporaries'], ['code', 'code'], ['vertexState', 'vertex state']].map(([k, label]) => ({ label, backgroundColor: colors[k], data: tiles.map((t) => t[k] ?? 0) })) } });
  chart('exchange', { type: 'bar', options: { ...common, scales: { x: { title: { display: true, text: 'tile' } }, y: { title: { display: true, text: 'bytes' } } } },
    data: { labels: tiles.map((t) => t.tile), datasets: [{ label: 'sent', backgroundColor: colors.sent, data: tiles.map((t) => t.sentBytes ?? 0) }, { label: 'received', backgroundColor: colors.received, data: tiles.map((t) => t.receivedBytes ?? 0) }] } });
  chart('balance', { type: 'bar', options: { ...common, plugins: { legend: { display: false } }, scales: { x: { title: { display: true, text: 'tile' } }, y: { title: { display: true, text: 'compute cycles' } } } },
    data: { labels: tiles.map((t) => t.tile), datasets: [{ label: 'compute cycles', backgroundColor: colors.compute, data: tiles.map((t) => t.computeCycles) }] } });

  const live = data.liveness;
  sizeFor('liveness', live.length, 16, 'x');
  chart('liveness', { type: 'line', options: { ...common, plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => stepLabel(items[0].dataIndex) } } }, scales: { x: { ticks: { autoSkip: live.length > 1500, maxRotation: 90, minRotation: 90, font: { size: 10 } } }, y: { title: { display: true, text: 'bytes live' } } } },
    data: { labels: live.map((r) => short(r.step + ' ' + r.name)), datasets: [{ label: 'bytes live', borderColor: '#e15759', pointRadius: 0, data: live.map((r) => r.bytes) }] } });

  // Lifetimes (floating bars from first to last live step) of the largest tensors live at the liveness peak.
  let peak = 0;
  live.forEach((r, i) => { if (r.bytes > live[peak].bytes) peak = i; });
  const last = Math.max(0, live.length - 1);
  const isLive = (t) => t.liveFrom < 0 || (t.liveFrom <= peak && peak <= t.liveTo);
  const atPeak = data.tensors.filter(isLive).sort((a, b) => b.bytes - a.bytes).slice(0, 30);
  document.getElementById('tensors-note').textContent = 'The ' + atPeak.length + ' largest tensors live at the peak, program step ' + (live[peak] ? peak + ' ' + live[peak].name : '-') + ' (' + fmt(live[peak]?.bytes ?? 0) + ' B live): each bar runs from the first to the last program step it is live at; always-live tensors span the program.';
  sizeFor('tensors', atPeak.length, 20, 'y');
  chart('tensors', { type: 'bar', options: { ...common, indexAxis: 'y', plugins: { legend: { display: false }, tooltip: { callbacks: { label: (item) => { const t = atPeak[item.dataIndex]; return fmt(t.bytes) + ' B, ' + t.category + (t.liveFrom < 0 ? ', always live' : ', live ' + stepLabel(t.liveFrom) + ' .. ' + stepLabel(t.liveTo)); } } } },
      scales: { x: { min: 0, max: last, title: { display: true, text: 'program step' }, ticks: { maxTicksLimit: 12, maxRotation: 30, callback: (v) => (Number.isInteger(v) ? short(stepLabel(v)) : '') } }, y: { ticks: { autoSkip: false } } } },
    data: { labels: atPeak.map((t) => t.name + ' (' + fmt(t.bytes) + ' B)'), datasets: [{ label: 'live', backgroundColor: atPeak.map((t) => t.liveFrom < 0 ? colors.alwaysLive : colors.temporaries), data: atPeak.map((t) => t.liveFrom < 0 ? [0, last] : [t.liveFrom, t.liveTo + 0.9]) }] } });

  table(document.getElementById('tensortable'), [
    { key: 'name', label: 'tensor', text: true },
    { key: 'op', label: 'op', text: true },
    { key: 'category', label: 'category', text: true },
    { key: 'dtype', label: 'dtype', text: true },
    { key: 'shape', label: 'shape', text: true },
    { key: 'bytes', label: 'bytes' },
    { key: 'tiles', label: 'tiles' },
    { key: 'maxTileBytes', label: 'max on a tile' },
    { key: 'maxTile', label: 'that tile' },
    { key: 'peakTileBytes', label: 'on peak tile' },
    { key: 'live', label: 'live', text: true, value: (t) => t.liveFrom < 0 ? 'always' : stepLabel(t.liveFrom) + ' .. ' + stepLabel(t.liveTo) },
  ], data.tensors, { sortKey: 'bytes', sortDir: 'desc' });
}
`;
