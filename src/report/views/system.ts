/**
 * The system view of a multi-IPU run: per IPU, its busy cycles and memory
 * (summary.ipus); per IPU-Link / GW-Link group, the bytes it carried in each
 * step and its utilisation (summary.links, report/links.ts); for a pipeline,
 * its stages, bubble fraction and each stage's busy cycles (summary.pipeline,
 * report/pipeline.ts). Absent on one IPU.
 */
import type { ReportData } from '../report-data.js';

/** Link groups drawn at most (the table lists every one). */
export const MAX_LINK_BARS = 96;

export function hasSystemView(data: ReportData): boolean {
  return !!(data.summary.ipus || data.summary.links);
}

export function systemSection(data: ReportData): string {
  if (!hasSystemView(data)) return '';
  const l = data.summary.links;
  const facts = l
    ? `${l.systemIpus} IPUs in ${l.domains} IPU-Link domain${l.domains > 1 ? 's (joined by GW-Links)' : ''}; ${l.groups.length} link groups carried data.`
    : 'No exchange crossed IPUs.';
  const replication = data.summary.replication;
  return `<section id="system-view">
<h2>IPUs</h2>
<p class="note">${replication ? `One replica's ${data.summary.ipus?.length ?? 1} IPU(s); every replica runs the same. ` : ''}Each IPU's compute and exchange cycles (per phase, its busiest tile's; all IPUs step together, so the gap to the total is waiting) and memory.</p>
${data.summary.ipus ? '<div class="chart"><canvas id="ipus"></canvas></div><div class="scroll-table"><table id="iputable"></table></div>' : ''}
<h2>Links</h2>
<p class="note" id="links-note">${facts} Bytes each group carried per step, and its utilisation: the share of the run's cycles it needed at its rate (IpuCopy exchanges and collectives' ring steps${replication ? ', every replica' : ''}).</p>
${l && l.groups.length ? '<div class="scroll-x"><div class="chart"><canvas id="links"></canvas></div></div><div class="scroll-x"><div class="chart"><canvas id="linkutil"></canvas></div></div><div class="scroll-table"><table id="linktable"></table></div>' : ''}
${pipelineSection(data)}</section>`;
}

function pipelineSection(data: ReportData): string {
  const p = data.summary.pipeline;
  if (!p) return '';
  const pct = (p.bubbleFraction * 100).toFixed(1);
  return `<h2 id="pipeline-view">Pipeline</h2>
<p class="note" id="pipeline-facts">${p.stages} stages over ${new Set(p.stageList.map((s) => s.ipu)).size} IPUs, ${p.microBatches} micro-batches a weight update: ${p.cycles} pipeline cycles (fill, main, flush), a bubble of ${pct}% ((P - 1) / (G + P - 1)). Each pipeline cycle lasts as long as its busiest IPU: the stages' busy cycles below show which one sets the pace.</p>
<div class="chart"><canvas id="stages"></canvas></div><div class="scroll-table"><table id="stagetable"></table></div>
`;
}

export const SYSTEM_SCRIPT = String.raw`
if (document.getElementById('stages')) {
  const rows = data.summary.pipeline.stageList;
  const busy = (r, k) => (r.busy ? r.busy[k] : 0);
  chart('stages', { type: 'bar', options: { ...common, scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: 'busy cycles (all steps)' } } } },
    data: { labels: rows.map((r) => 'stage ' + r.stage + ' (IPU ' + r.ipu + ', ' + r.pass + ')'), datasets: ['compute', 'exchange', 'sync'].map((k) => ({ label: k, backgroundColor: colors[k], data: rows.map((r) => busy(r, k)) })) } });
  table(document.getElementById('stagetable'), [
    { key: 'stage', label: 'stage' },
    { key: 'ipu', label: 'IPU' },
    { key: 'pass', label: 'pass', text: true },
    { key: 'ops', label: 'ops' },
    { key: 'busy', label: 'busy cycles', value: (r) => busy(r, 'total') },
    { key: 'stashDepth', label: 'stash depth' },
    { key: 'stashBytes', label: 'stash (B)' },
  ], rows, { sortKey: 'stage', sortDir: 'asc' });
}
if (document.getElementById('ipus')) {
  const rows = data.summary.ipus;
  chart('ipus', { type: 'bar', options: { ...common, scales: { x: { title: { display: true, text: 'IPU' } }, y: { title: { display: true, text: 'busy cycles (all steps)' } } } },
    data: { labels: rows.map((r) => 'IPU ' + r.ipu), datasets: ['compute', 'exchange'].map((k) => ({ label: k, backgroundColor: colors[k], data: rows.map((r) => r.cycles ? r.cycles[k] : 0) })) } });
  table(document.getElementById('iputable'), [
    { key: 'ipu', label: 'IPU' },
    { key: 'ops', label: 'ops', value: (r) => r.ops ?? '-' },
    { key: 'compute', label: 'compute cycles', value: (r) => r.cycles ? r.cycles.compute : 0 },
    { key: 'exchange', label: 'exchange cycles', value: (r) => r.cycles ? r.cycles.exchange : 0 },
    { key: 'tiles', label: 'tiles used', value: (r) => r.memory.tilesUsed },
    { key: 'max', label: 'max tile (B)', value: (r) => r.memory.maxTileBytes },
    { key: 'total', label: 'memory (B)', value: (r) => r.memory.totalBytes },
  ], rows, { sortKey: 'ipu', sortDir: 'asc' });
}
if (document.getElementById('links')) {
  const groups = data.summary.links.groups;
  const shown = [...groups].sort((a, b) => b.bytes - a.bytes).slice(0, ${MAX_LINK_BARS}).sort((a, b) => a.group - b.group);
  if (shown.length < groups.length) document.getElementById('links-note').textContent += ' The charts show the ' + shown.length + ' busiest of ' + groups.length + ' groups; the table has all.';
  sizeFor('links', shown.length, 22, 'x');
  sizeFor('linkutil', shown.length, 22, 'x');
  const steps = data.summary.steps;
  const palette = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];
  // One stacked dataset per step while they are few; past that, the mean a step.
  const datasets = steps.length <= 10
    ? steps.map((s, i) => ({ label: 'step ' + s.step, backgroundColor: palette[i % palette.length], data: shown.map((g) => g.bytesPerStep[i]) }))
    : [{ label: 'bytes a step (mean)', backgroundColor: palette[0], data: shown.map((g) => g.bytes / nSteps) }];
  chart('links', { type: 'bar', options: { ...common, scales: { x: { stacked: true, ticks: { autoSkip: false } }, y: { stacked: true, title: { display: true, text: 'bytes per step' } } } },
    data: { labels: shown.map((g) => g.name), datasets } });
  chart('linkutil', { type: 'bar', options: { ...common, plugins: { legend: { display: false } }, scales: { x: { ticks: { autoSkip: false } }, y: { title: { display: true, text: 'utilisation (% of the run)' } } } },
    data: { labels: shown.map((g) => g.name), datasets: [{ label: 'utilisation %', backgroundColor: shown.map((g) => g.kind === 'gwLink' ? '#e15759' : '#4e79a7'), data: shown.map((g) => 100 * g.utilisation) }] } });
  table(document.getElementById('linktable'), [
    { key: 'name', label: 'link group', text: true },
    { key: 'kind', label: 'kind', text: true },
    { key: 'bytesPerCycle', label: 'B/cycle', fmt: (v) => v.toFixed(2) },
    { key: 'bytes', label: 'bytes' },
    { key: 'perStep', label: 'bytes a step', value: (g) => g.bytes / nSteps },
    { key: 'busyCycles', label: 'busy cycles' },
    { key: 'utilisation', label: 'utilisation %', value: (g) => 100 * g.utilisation, fmt: (v) => v.toFixed(2) },
  ], groups, { sortKey: 'bytes' });
}
`;
