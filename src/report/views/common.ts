/**
 * Browser-side helpers every view uses (plain JS, run in the page): number
 * formatting, sortable tables, chart defaults, and the per-tile rows of a
 * program step unpacked from the packed columns (views/compact.ts).
 */
export const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export const CLIENT_COMMON = String.raw`
const colors = { compute: '#4e79a7', exchange: '#f28e2b', sync: '#bab0ac', streamCopy: '#59a14f', streamingMemory: '#b07aa1', alwaysLive: '#4e79a7', temporaries: '#e15759', code: '#76b7b2', vertexState: '#edc948', sent: '#f28e2b', received: '#59a14f' };
const common = { responsive: true, maintainAspectRatio: false, animation: false };
const fmt = (v) => typeof v === 'number' ? v.toLocaleString('en-US', { maximumFractionDigits: 1 }) : String(v ?? '');
const nSteps = Math.max(1, data.summary.steps.length);
const charts = {};
function chart(id, config) {
  if (charts[id]) charts[id].destroy();
  charts[id] = new Chart(document.getElementById(id), config);
  return charts[id];
}
/** A sortable table: columns [{key, label, text?, value?(row), fmt?(v, row)}]; click a header to sort, again to reverse. */
function table(el, columns, rows, opts = {}) {
  el.innerHTML = '';
  const thead = el.createTHead().insertRow();
  const tbody = el.createTBody();
  let sortKey = opts.sortKey, dir = opts.sortDir || 'desc';
  const value = (c, r) => c.value ? c.value(r) : r[c.key];
  const draw = () => {
    const col = columns.find((c) => c.key === sortKey);
    const list = col ? [...rows].sort((a, b) => {
      const x = value(col, a), y = value(col, b);
      const o = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return dir === 'asc' ? o : -o;
    }) : rows;
    tbody.innerHTML = '';
    for (const r of list) {
      const tr = tbody.insertRow();
      if (opts.onClick) { tr.className = 'clickable'; tr.addEventListener('click', () => { for (const s of tbody.querySelectorAll('tr.selected')) s.classList.remove('selected'); tr.classList.add('selected'); opts.onClick(r); }); }
      for (const c of columns) {
        const td = tr.insertCell();
        const v = value(c, r);
        td.textContent = c.fmt ? c.fmt(v, r) : fmt(v);
        if (c.text) td.className = 'text';
      }
    }
    for (const th of thead.cells) th.dataset.sort = th.dataset.key === sortKey ? dir : '';
  };
  for (const c of columns) {
    const th = document.createElement('th');
    th.textContent = c.label;
    th.dataset.key = c.key;
    if (c.text) th.className = 'text';
    th.addEventListener('click', () => { if (sortKey === c.key) dir = dir === 'asc' ? 'desc' : 'asc'; else { sortKey = c.key; dir = c.text ? 'asc' : 'desc'; } draw(); });
    thead.appendChild(th);
  }
  draw();
}
/** Per-tile rows of program step i: [{tile, cycles, vertices, regions, sent, received}]. */
function tilesOf(i) {
  const p = data.packedTiles[i];
  if (!p) return [];
  let tile = 0;
  return p.d.map((d, k) => ({ tile: (tile += d), cycles: p.c[k], vertices: p.v ? p.v[k] : 0, regions: p.r ? p.r[k] : 0, sent: p.s ? p.s[k] : 0, received: p.x ? p.x[k] : 0 }));
}
/** Axis labels are cut to 40 characters (the full name is in the tooltip and the tables). */
const short = (s) => s.length > 40 ? s.slice(0, 39) + '\u2026' : s;
const stepLabel = (i) => data.program[i] ? i + ' ' + data.program[i].name : (data.liveness[i] ? i + ' ' + data.liveness[i].name : String(i));
/** Canvas size so that every one of n labels gets px pixels (the container scrolls). */
function sizeFor(id, n, px, axis) {
  const box = document.getElementById(id).parentElement;
  if (axis === 'y') box.style.height = Math.max(240, n * px + 80) + 'px';
  else box.style.width = Math.min(32000, Math.max(1180, n * px + 120)) + 'px';
}
`;
