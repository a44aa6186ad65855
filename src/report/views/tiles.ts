/** Insights (computed by src/report/insights.ts) and the per-tile details: pick a tile, see what runs and lives on it. */
import type { ReportData } from '../report-data.js';

export function insightsSection(): string {
  return `<section id="insights">
<h2>Insights</h2>
<p class="note">The tiles, tensors, compute sets and exchanges that cost the most, and what would reduce them.</p>
<div id="insight-list"></div>
</section>`;
}

export function tilesSection(data: ReportData): string {
  const n = data.tables.tiles.length;
  return `<section id="tile-view">
<h2>Tile details</h2>
<p class="note">Pick a tile (0 to ${n - 1}) to see its memory and the compute sets and exchanges it takes part in, one step.${
    new Set(data.programTiles.map((t) => t.programStep)).size < data.program.filter((r) => r.tiles > 0).length
      ? ' The run folder keeps per-tile rows for the most expensive program steps only, so the list below may miss cheaper ones.'
      : ''
  }</p>
<label>tile <input id="tile-input" type="number" min="0" max="${Math.max(0, n - 1)}" value="${data.summary.memory.maxTile}"></label>
<span id="tile-shortcuts"></span>
<div class="panel" id="tile-details"><div id="tile-facts"></div><div class="scroll-table"><table id="tiletable"></table></div></div>
</section>`;
}

export const TILES_SCRIPT = String.raw`
{
  const list = document.getElementById('insight-list');
  for (const i of data.insights) {
    const div = document.createElement('div');
    div.className = 'insight';
    const kind = document.createElement('span'); kind.className = 'kind'; kind.textContent = i.kind;
    const b = document.createElement('b'); b.appendChild(kind); b.appendChild(document.createTextNode(i.title));
    const detail = document.createElement('div'); detail.textContent = i.detail;
    const advice = document.createElement('div'); advice.className = 'note'; advice.textContent = 'What would help: ' + i.advice;
    div.append(b, detail, advice);
    list.appendChild(div);
  }
  if (!data.insights.length) list.textContent = 'Nothing stands out.';

  // Per tile: the program steps that use it, built once from the packed columns.
  const byTile = new Map();
  data.program.forEach((r, i) => { for (const t of tilesOf(i)) { if (!byTile.has(t.tile)) byTile.set(t.tile, []); byTile.get(t.tile).push({ ...t, programStep: i, kind: r.kind, name: r.name, op: r.op }); } });
  const input = document.getElementById('tile-input');
  const showTile = (tile) => {
    const t = data.tables.tiles[tile];
    const facts = document.getElementById('tile-facts');
    if (!t) { facts.textContent = 'No tile ' + tile + '.'; return; }
    input.value = String(tile);
    const rows = byTile.get(tile) ?? [];
    const sum = (k) => rows.reduce((a, r) => a + r[k], 0);
    facts.textContent = 'Tile ' + tile + ': ' + fmt(t.bytes) + ' B in use (always live ' + fmt(t.alwaysLive) + ', temporaries ' + fmt(t.temporaries) + ', code ' + fmt(t.code) + ', vertex state ' + fmt(t.vertexState) + '); a step: '
      + rows.filter((r) => r.kind === 'compute').length + ' compute sets with ' + fmt(sum('vertices')) + ' vertices and ' + fmt(sum('regions')) + ' regions, '
      + rows.filter((r) => r.kind === 'exchange').length + ' exchanges sending ' + fmt(sum('sent')) + ' B and receiving ' + fmt(sum('received')) + ' B.';
    table(document.getElementById('tiletable'), [
      { key: 'programStep', label: '#' },
      { key: 'kind', label: 'kind', text: true },
      { key: 'name', label: 'name', text: true },
      { key: 'op', label: 'op', text: true },
      { key: 'cycles', label: 'cycles on this tile' },
      { key: 'vertices', label: 'vertices' },
      { key: 'regions', label: 'regions' },
      { key: 'sent', label: 'sent B' },
      { key: 'received', label: 'received B' },
    ], rows, {});
  };
  input.addEventListener('change', () => showTile(Number(input.value)));
  const shortcuts = document.getElementById('tile-shortcuts');
  const tiles = data.tables.tiles;
  const busiest = tiles.reduce((a, t) => (t.computeCycles > (tiles[a]?.computeCycles ?? -1) ? t.tile : a), 0);
  for (const [label, tile] of [['most memory', data.summary.memory.maxTile], ['most compute', busiest]]) {
    const btn = document.createElement('button');
    btn.textContent = label + ' (tile ' + tile + ')';
    btn.addEventListener('click', () => showTile(tile));
    shortcuts.appendChild(btn);
  }
  showTile(data.summary.memory.maxTile);
}
`;
