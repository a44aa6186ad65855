/**
 * Per-IPU views of a multi-IPU program (summary.json `ipus`, `sim compile`):
 * the ops placed on each IPU (sharding), its tiles' memory, and the cycles
 * its tiles were busy. All IPUs of a system step together (BSP: one sync
 * ends every superstep), so an IPU's compute cycles are, per compute phase,
 * its own busiest tile's, and the run's total is not their sum: the gap is
 * where the IPU waited for the others.
 */
import type { Phase } from '../../sim/profile.js';
import type { DeviceProgram } from '../../sim/program.js';
import type { Op } from '../ir/op.js';

export interface IpuRow {
  ipu: number;
  /** Ops placed on the IPU (IpuCopies on their destination); absent when the program is not sharded. */
  ops?: number;
  /** Cycles of compute and exchange phases the IPU's tiles took part in, its busiest tile's each. */
  cycles?: { compute: number; exchange: number };
  memory: { maxTileBytes: number; totalBytes: number; tilesUsed: number };
}

/** One row per IPU: placement and memory, and busy cycles when `phases` is given. */
export function ipuRows(program: DeviceProgram, schedule: readonly Op[], sharded: boolean, phases?: readonly Phase[]): IpuRow[] {
  const d = program.device;
  const per = d.tilesPerIpu;
  const rows: IpuRow[] = [];
  for (let ipu = 0; ipu < d.ipus; ipu++) {
    const bytes = program.tileBytes.slice(ipu * per, (ipu + 1) * per);
    rows.push({
      ipu,
      ...(sharded ? { ops: schedule.filter((op) => op.settings.ipu === ipu).length } : {}),
      ...(phases ? { cycles: { compute: 0, exchange: 0 } } : {}),
      memory: { maxTileBytes: Math.max(0, ...bytes), totalBytes: bytes.reduce((a, b) => a + b, 0), tilesUsed: bytes.filter((b) => b > 0).length },
    });
  }
  const busiest = new Float64Array(d.ipus);
  for (const p of phases ?? []) {
    if ((p.kind !== 'compute' && p.kind !== 'exchange') || !p.tiles) continue;
    busiest.fill(0);
    for (const [t, c] of p.tiles) {
      const ipu = Math.floor(t / per);
      if (c > busiest[ipu]) busiest[ipu] = c;
    }
    for (let ipu = 0; ipu < d.ipus; ipu++) rows[ipu].cycles![p.kind] += busiest[ipu];
  }
  return rows;
}

/** `sim compile`'s lines for a multi-IPU device. */
export function ipuReport(program: DeviceProgram, schedule: readonly Op[], sharded: boolean): string[] {
  const rows = ipuRows(program, schedule, sharded);
  const lines = [`IPUs             ${'ops'.padStart(6)} ${'tiles used'.padStart(11)} ${'max tile'.padStart(10)} ${'total'.padStart(12)}`];
  for (const r of rows) {
    const m = r.memory;
    lines.push(`  IPU ${String(r.ipu).padEnd(11)} ${(r.ops === undefined ? '-' : String(r.ops)).padStart(6)} ${String(m.tilesUsed).padStart(11)} ${`${m.maxTileBytes} B`.padStart(10)} ${`${m.totalBytes} B`.padStart(12)}`);
  }
  if (rows[0].ops === undefined) lines.push('  (not sharded: every op spans all IPUs; see model.virtualGraphMode)');
  return lines;
}
