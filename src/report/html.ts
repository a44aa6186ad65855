/**
 * report.html: one self-contained page with the views a PopVision user
 * expects (src/report/views/: summary, ops, program, memory, tiles,
 * insights, and on several IPUs the IPU and link view). Charts are drawn by Chart.js, inlined (no network), from data
 * embedded as JSON; every view reads that one object.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { insights } from './insights.js';
import type { ReportData } from './report-data.js';
import { packProgramTiles } from './views/compact.js';
import { CLIENT_COMMON, escapeHtml } from './views/common.js';
import { memorySection, MEMORY_SCRIPT } from './views/memory.js';
import { opsSection, OPS_SCRIPT } from './views/ops.js';
import { programSection, PROGRAM_SCRIPT } from './views/program.js';
import { summarySection, SUMMARY_SCRIPT } from './views/summary.js';
import { hasSystemView, systemSection, SYSTEM_SCRIPT } from './views/system.js';
import { tilesSection, TILES_SCRIPT, insightsSection } from './views/tiles.js';

export type { ReportData } from './report-data.js';

let chartJs: string | undefined;

export function chartLibrary(): string {
  if (chartJs === undefined) {
    const require = createRequire(import.meta.url);
    // The UMD bundle is not in the package's exports: find it beside the main entry (dist/).
    chartJs = readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
  }
  return chartJs;
}

/** JSON safe inside a <script> element. */
export function embed(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}


export const PAGE_STYLE = `
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 16px; margin: 32px 0 6px; }
  h3 { font-size: 14px; margin: 16px 0 6px; }
  nav { position: sticky; top: 0; background: #fff; padding: 6px 0; border-bottom: 1px solid #ddd; z-index: 1; }
  nav a { margin-right: 12px; color: #4e79a7; text-decoration: none; }
  .facts, .note { color: #555; }
  .note { font-size: 13px; margin: 2px 0 8px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; margin: 12px 0; }
  .card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
  .card b { display: block; font-size: 18px; }
  .chart { position: relative; height: 320px; max-width: 1200px; }
  .chart.tall { height: 520px; }
  .scroll-y { max-height: 640px; overflow-y: auto; max-width: 1200px; border: 1px solid #eee; }
  .scroll-x { overflow-x: auto; max-width: 1200px; border: 1px solid #eee; }
  .scroll-table { max-height: 480px; overflow: auto; max-width: 1200px; border: 1px solid #eee; }
  table { border-collapse: collapse; font-size: 13px; }
  td, th { border-bottom: 1px solid #eee; padding: 3px 8px; text-align: right; white-space: nowrap; }
  td.text, th.text { text-align: left; }
  th { position: sticky; top: 0; background: #f6f6f6; cursor: pointer; user-select: none; }
  th[data-sort="asc"]::after { content: " \\25B2"; }
  th[data-sort="desc"]::after { content: " \\25BC"; }
  tr.selected td { background: #fff3c4; }
  tbody tr.clickable { cursor: pointer; }
  .panel { border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin: 8px 0; max-width: 1176px; }
  .insight { margin: 10px 0; }
  .insight b { display: block; }
  .kind { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; background: #eee; margin-right: 6px; }
`;

/** A self-contained page's head and title, shared by report.html and the comparison page. */
export function pageStart(title: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${title}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<h1>${title}</h1>`;
}

export function renderReport(data: ReportData): string {
  const s = data.summary;
  const title = `tilesim report: ${escapeHtml(s.name)}`;
  const page = {
    ...data,
    programTiles: undefined,
    packedTiles: packProgramTiles(data.programTiles),
    insights: insights(data),
  };
  return `${pageStart(title)}
<nav><a href="#summary">summary</a><a href="#insights">insights</a><a href="#ops-view">ops</a><a href="#program-view">program</a><a href="#memory-view">memory</a><a href="#liveness-view">liveness</a><a href="#tile-view">tiles</a>${hasSystemView(data) ? '<a href="#system-view">IPUs and links</a>' : ''}${data.summary.pipeline ? '<a href="#pipeline-view">pipeline</a>' : ''}</nav>
${summarySection(data)}
${insightsSection()}
${opsSection(data)}
${programSection(data)}
${memorySection(data)}
${tilesSection(data)}
${systemSection(data)}
<script>${chartLibrary()}</script>
<script>
const data = ${embed(page)};
${CLIENT_COMMON}
${SUMMARY_SCRIPT}
${OPS_SCRIPT}
${PROGRAM_SCRIPT}
${MEMORY_SCRIPT}
${TILES_SCRIPT}
${SYSTEM_SCRIPT}
document.body.dataset.ready = 'true';
</script>
</body>
</html>
`;
}
