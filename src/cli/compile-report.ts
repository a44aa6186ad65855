/** What `sim compile` prints: program size and the per-tile memory summary. */
import { DTYPE_BYTES } from '../../sim/program.js';
import type { Compiled } from '../session.js';

export function compileReport(c: Compiled): string {
  const p = c.program;
  const d = p.device;
  const bytes = p.tileBytes;
  const used = bytes.filter((b) => b > 0);
  let maxTile = 0;
  for (let t = 1; t < bytes.length; t++) if (bytes[t] > bytes[maxTile]) maxTile = t;
  const byCategory = new Map<string, number>();
  for (const t of p.tensors) {
    const n = t.intervals.reduce((s, i) => s + (i.end - i.begin), 0) * DTYPE_BYTES[t.dtype];
    byCategory.set(t.category, (byCategory.get(t.category) ?? 0) + n);
  }
  const vertices = p.computeSets.reduce((s, cs) => s + cs.vertices.length, 0);
  const lines = [
    `${c.config.name} compiled for ${d.name} (${d.ipus * d.tilesPerIpu} tiles, ${d.bytesPerTile} bytes per tile)`,
    `  ops ${c.schedule.length}, compute sets ${p.computeSets.length}, vertices ${vertices}, exchanges ${p.exchanges.length}, host streams ${p.streams.length}`,
    `memory`,
    `  tiles used       ${used.length} of ${bytes.length}`,
    `  max tile         ${bytes[maxTile]} B on tile ${maxTile} (${((100 * bytes[maxTile]) / d.bytesPerTile).toFixed(2)}% of ${d.bytesPerTile} B)`,
    `  mean (used)      ${used.length ? Math.round(used.reduce((a, b) => a + b, 0) / used.length) : 0} B`,
    `  total            ${bytes.reduce((a, b) => a + b, 0)} B`,
    `  by category      ${[...byCategory].map(([k, v]) => `${k} ${v} B`).join(', ')}`,
  ];
  if (p.notes?.length) {
    lines.push('plans');
    for (const n of p.notes) lines.push(`  ${n.op} [${n.kind}]: ${n.text}`);
  }
  return lines.join('\n');
}
