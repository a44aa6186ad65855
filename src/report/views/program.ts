/**
 * The execution view: the batch program's compute sets, exchanges and host
 * copies in order with one step's cycles, tiles, vertices and regions, and a
 * details panel per step (cycles, vertices and regions per tile, busiest tile,
 * codelets): what makes one compute set cost more than another.
 */
import type { ReportData } from '../report-data.js';

export function programSection(data: ReportData): string {
  if (!data.program.length) return '<section id="program-view"><h2>Program</h2><p class="note">This run folder has no profile/program.csv (written by an older tilesim): run it again for the program view.</p></section>';
  return `<section id="program-view">
<h2>Program: compute sets and exchanges in order (one step)</h2>
<p class="note">${data.program.length} program steps of the batch program, cycles of one step: each bar is one compute set, exchange or host copy, with the sync before it. Click a row of the table for its tiles.</p>
<div class="scroll-x"><div class="chart tall"><canvas id="program"></canvas></div></div>
<div class="scroll-table"><table id="programtable"></table></div>
<div class="panel" id="csdetails"><h3 id="csdetails-title"></h3><div id="csdetails-facts"></div><div class="chart" style="height:240px"><canvas id="cstiles"></canvas></div></div>
</section>`;
}

export const PROGRAM_SCRIPT = String.raw`
if (document.getElementById('program')) {
  const rows = data.program;
  sizeFor('program', rows.length, 16, 'x');
  chart('program', { type: 'bar', options: { ...common, plugins: { tooltip: { callbacks: { title: (items) => stepLabel(items[0].dataIndex) + ' (' + rows[items[0].dataIndex].op + ')' } } },
      scales: { x: { stacked: true, ticks: { autoSkip: rows.length > 1500, maxRotation: 90, minRotation: 90, font: { size: 10 } } }, y: { stacked: true, title: { display: true, text: 'cycles (one step)' } } } },
    data: { labels: rows.map((r, i) => short(stepLabel(i))), datasets: [
      { label: 'sync', backgroundColor: colors.sync, data: rows.map((r) => r.syncCycles) },
      ...['compute', 'exchange', 'streamCopy', ...(rows.some((r) => r.kind === 'streamingMemory') ? ['streamingMemory'] : [])].map((k) => ({ label: k, backgroundColor: colors[k], data: rows.map((r) => r.kind === k ? r.cycles : 0) })),
    ] } });
  const show = (r) => {
    const tiles = tilesOf(r.programStep);
    document.getElementById('csdetails-title').textContent = 'Step ' + r.programStep + ': ' + r.name + ' (' + r.kind + ', op ' + (r.op || 'host') + ')';
    const facts = [
      ['cycles (one step)', fmt(r.cycles)], ['sync before it', fmt(r.syncCycles)], ['tiles used', fmt(r.tiles)],
      ['vertices', fmt(r.vertices)], ['regions', fmt(r.regions)], ['max cycles per tile', fmt(r.maxTileCycles)],
      ['mean cycles per tile', fmt(r.meanTileCycles)], ['busiest tile', r.busiestTile < 0 ? '-' : String(r.busiestTile)],
      ['vertices per tile (max)', fmt(Math.max(0, ...tiles.map((t) => t.vertices)))], ['bytes', fmt(r.bytes)], ['codelets', r.codelets || '-'],
    ];
    const el = document.getElementById('csdetails-facts');
    el.innerHTML = '';
    if (r.tiles > 0 && !data.packedTiles[r.programStep]) {
      const p = document.createElement('p');
      p.className = 'note';
      p.textContent = 'This run folder keeps per-tile rows for its most expensive program steps only (profile/program-tiles.csv): none for this one.';
      el.appendChild(p);
    }
    const grid = document.createElement('div');
    grid.className = 'grid';
    for (const [k, v] of facts) { const c = document.createElement('div'); c.className = 'card'; c.textContent = k; const b = document.createElement('b'); b.textContent = v; c.appendChild(b); grid.appendChild(c); }
    el.appendChild(grid);
    const ex = r.kind === 'exchange';
    chart('cstiles', { type: 'bar', options: { ...common, scales: { x: { title: { display: true, text: 'tile' } }, y: { title: { display: true, text: ex ? 'bytes' : 'cycles' } }, y2: { display: !ex, position: 'right', grid: { drawOnChartArea: false }, title: { display: true, text: 'vertices' } } } },
      data: { labels: tiles.map((t) => t.tile), datasets: ex
        ? [{ label: 'sent', backgroundColor: colors.sent, data: tiles.map((t) => t.sent) }, { label: 'received', backgroundColor: colors.received, data: tiles.map((t) => t.received) }]
        : [{ label: 'cycles', backgroundColor: colors.compute, data: tiles.map((t) => t.cycles) }, { label: 'vertices', type: 'line', yAxisID: 'y2', borderColor: '#e15759', pointRadius: 0, data: tiles.map((t) => t.vertices) }] } });
  };
  table(document.getElementById('programtable'), [
    { key: 'programStep', label: '#' },
    { key: 'kind', label: 'kind', text: true },
    { key: 'name', label: 'name', text: true },
    { key: 'op', label: 'op', text: true },
    { key: 'cycles', label: 'cycles' },
    { key: 'syncCycles', label: 'sync' },
    { key: 'tiles', label: 'tiles' },
    { key: 'vertices', label: 'vertices' },
    { key: 'regions', label: 'regions' },
    { key: 'maxTileCycles', label: 'max/tile' },
    { key: 'meanTileCycles', label: 'mean/tile' },
    { key: 'busiestTile', label: 'busiest tile', fmt: (v) => v < 0 ? '-' : String(v) },
    { key: 'bytes', label: 'bytes' },
  ], rows, { onClick: show });
  // Open on the most expensive compute set.
  const first = rows.filter((r) => r.kind === 'compute').sort((a, b) => b.cycles - a.cycles)[0] ?? rows[0];
  show(first);
}
`;
