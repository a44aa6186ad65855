/** The human summary `sim run` prints. */
import type { Summary } from '../report/summary.js';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const pct = (a: number, b: number) => (b > 0 ? `${((100 * a) / b).toFixed(1)}%` : '-');

export function formatSeconds(s: number): string {
  if (s >= 1) return `${s.toFixed(3)} s`;
  if (s >= 1e-3) return `${(s * 1e3).toFixed(3)} ms`;
  return `${(s * 1e6).toFixed(3)} us`;
}

/** What `sim run` prints first: the run and its device. */
export function formatHeader(name: string, d: { name: string; ipus: number; tilesPerIpu: number; clockHz: number }): string {
  return `${name} on ${d.name} (${d.ipus * d.tilesPerIpu} tiles, ${(d.clockHz / 1e9).toFixed(2)} GHz)`;
}

/** One step's line, printed as the step ends. Steps count from 0, as in summary.json and the CSVs. */
export function formatStep(st: { step: number; loss?: number | string; cycles: number }): string {
  const loss = typeof st.loss === 'number' ? st.loss.toPrecision(6) : st.loss;
  return `  step ${String(st.step).padStart(3)}  ${loss !== undefined ? `loss ${loss}  ` : ''}cycles ${int(st.cycles)}`;
}

/** The summary after the run; the header and step lines are left out when they were printed as the run went. */
export function formatSummary(s: Summary, dir: string, opts: { live?: boolean } = {}): string {
  const lines: string[] = [];
  const d = s.device as { name: string; ipus: number; tilesPerIpu: number; clockHz: number };
  if (!opts.live) {
    lines.push(formatHeader(s.name, d));
    for (const st of s.steps) lines.push(formatStep(st));
  }
  const c = s.cycles;
  lines.push(`total cycles   ${int(c.total)}  (${formatSeconds(s.seconds)} simulated)`);
  lines.push(
    `  compute ${int(c.compute)} (${pct(c.compute, c.total)})  exchange ${int(c.exchange)} (${pct(c.exchange, c.total)})  ` +
      `sync ${int(c.sync)} (${pct(c.sync, c.total)})  host copies ${int(c.streamCopy)} (${pct(c.streamCopy, c.total)})` +
      (c.streamingMemory ? `  Streaming Memory ${int(c.streamingMemory)} (${pct(c.streamingMemory, c.total)})` : ''),
  );
  const top = [...s.ops]
    .map((o) => ({ o, total: o.cycles.compute + o.cycles.exchange + o.cycles.sync }))
    .sort((a, b) => b.total - a.total)
    .slice(0, 5);
  lines.push('most expensive ops');
  for (const { o, total } of top) lines.push(`  ${o.name.padEnd(32)} ${o.domain}::${o.type}`.padEnd(70) + `${int(total).padStart(12)} cycles`);
  const m = s.memory;
  lines.push(`peak tile memory ${int(m.maxTileBytes)} B on tile ${m.maxTile} of ${int(m.tileCapacity)} B (${pct(m.maxTileBytes, m.tileCapacity)}); ${m.tilesUsed} tiles used`);
  lines.push(`run folder     ${dir}`);
  return lines.join('\n');
}
