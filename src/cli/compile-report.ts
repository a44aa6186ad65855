/**
 * What `sim compile` prints: program size, the per-tile memory summary
 * (Poplar's memory report in brief: always-live data, temporaries at their
 * peak, code, vertex state; the fullest tiles), on a multi-IPU device each
 * IPU's ops and memory, and the lowering's plans.
 */
import type { DeviceProgram, TileMemoryUse } from '../../sim/program.js';
import type { Compiled } from '../session.js';
import { ipuReport } from '../report/ipus.js';
import { isSharded } from '../shard/place.js';
import { pipelineReport } from '../report/pipeline.js';

const CATEGORIES: [keyof TileMemoryUse, string][] = [
  ['alwaysLive', 'always-live'],
  ['temporaries', 'peak temporaries'],
  ['code', 'code'],
  ['vertexState', 'vertex state'],
];

/** Per-tile memory use: the program's breakdown, or (a program from elsewhere) its tileBytes as data. */
export function tileMemory(p: DeviceProgram): TileMemoryUse[] {
  return p.memory ?? p.tileBytes.map((b) => ({ alwaysLive: b, temporaries: 0, code: 0, vertexState: 0, total: b }));
}

export function memoryReport(p: DeviceProgram): string[] {
  const d = p.device;
  const mem = tileMemory(p);
  const pct = (b: number) => `${((100 * b) / d.bytesPerTile).toFixed(2)}%`;
  const used = mem.map((m, tile) => ({ m, tile })).filter((x) => x.m.total > 0);
  let maxTile = 0;
  for (let t = 1; t < mem.length; t++) if (mem[t].total > mem[maxTile].total) maxTile = t;
  const mean = (k: keyof TileMemoryUse) => (used.length ? Math.round(used.reduce((s, x) => s + x.m[k], 0) / used.length) : 0);
  const breakdown = (m: TileMemoryUse) => CATEGORIES.map(([k, name]) => `${name} ${m[k]}`).join(', ');
  const lines = [
    `memory`,
    `  tiles used       ${used.length} of ${mem.length}`,
    `  max tile         ${mem[maxTile]?.total ?? 0} B on tile ${maxTile} (${pct(mem[maxTile]?.total ?? 0)} of ${d.bytesPerTile} B)`,
    `  mean (used)      ${mean('total')} B (${pct(mean('total'))})`,
    `  total            ${mem.reduce((s, m) => s + m.total, 0)} B`,
    `  by category      ${'max tile'.padEnd(10)} ${'mean (used)'.padStart(12)}`,
  ];
  for (const [k, name] of CATEGORIES) lines.push(`    ${name.padEnd(17)}${String(mem[maxTile]?.[k] ?? 0).padStart(8)} B ${String(mean(k)).padStart(10)} B`);
  lines.push(`  fullest tiles    (B: ${CATEGORIES.map(([, n]) => n).join(', ')})`);
  const fullest = [...used].sort((a, b) => b.m.total - a.m.total || a.tile - b.tile).slice(0, 5);
  for (const { m, tile } of fullest) lines.push(`    tile ${String(tile).padEnd(6)} ${String(m.total).padStart(8)} B ${pct(m.total).padStart(7)}  ${breakdown(m)}`);
  return lines;
}

export function compileReport(c: Compiled): string {
  const p = c.program;
  const d = p.device;
  const vertices = p.computeSets.reduce((s, cs) => s + cs.vertices.count, 0);
  const lines = [
    `${c.config.name} compiled for ${d.name} (${d.ipus * d.tilesPerIpu} tiles, ${d.bytesPerTile} bytes per tile)`,
    `  ops ${c.schedule.length}, compute sets ${p.computeSets.length}, vertices ${vertices}, exchanges ${p.exchanges.length}, host streams ${p.streams.length}`,
    ...(p.replication ? [`  replicated: ${p.replication.replicas} replicas of ${d.ipus} IPU${d.ipus > 1 ? 's' : ''} each share this program (${p.replication.systemIpus} IPUs in all); memory below is one replica's`] : []),
    ...memoryReport(p),
    ...(d.ipus > 1 ? ipuReport(p, c.schedule, isSharded(c.config)) : []),
    ...pipelineReport(p),
  ];
  if (p.notes?.length) {
    lines.push('plans');
    for (const n of p.notes) lines.push(`  ${n.op} [${n.kind}]: ${n.text}`);
  }
  return lines.join('\n');
}
