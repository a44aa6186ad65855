/**
 * The cycle model (ipu-architecture.md §2), kept apart from execution so that
 * cycles never depend on data, worker count or host speed.
 *
 * - Compute set, per tile: supervisorOverheadCycles + the sum of its
 *   MultiVertex estimates + W x the busiest worker, single-worker vertices
 *   being list-scheduled (longest first) over the W worker contexts. The
 *   phase lasts as long as the slowest tile.
 * - Exchange, per tile: ceil(max(bytes sent, bytes received) /
 *   exchangeBytesPerCycle) (send and receive are separate ports); the phase
 *   lasts as long as the busiest tile.
 * - Sync: syncCycles, once per superstep (see engine.ts for where).
 * - Host stream copy: hostCopyLatencyCycles + bytes at the host link's rate.
 */
import type { CodeletRegistry } from './codelet.js';
import type { DeviceSpec } from './device.js';
import type { ComputeSet, Exchange } from './program.js';

export interface PhaseCost {
  cycles: number;
  /** Sparse [tile, cycles] for the tiles that did work, ascending by tile. */
  tiles: [number, number][];
}

export function computeSetCost(cs: ComputeSet, codelets: CodeletRegistry, device: DeviceSpec): PhaseCost {
  const multi = new Map<number, number>();
  const single = new Map<number, number[]>();
  for (const v of cs.vertices) {
    const c = codelets.get(v.codelet);
    const cycles = c.cycles(v, device);
    if (c.kind === 'multi') multi.set(v.tile, (multi.get(v.tile) ?? 0) + cycles);
    else {
      if (!single.has(v.tile)) single.set(v.tile, []);
      single.get(v.tile)!.push(cycles);
    }
  }
  const tiles = [...new Set([...multi.keys(), ...single.keys()])].sort((a, b) => a - b);
  const out: [number, number][] = [];
  let max = 0;
  for (const t of tiles) {
    const workers = scheduleWorkers(single.get(t) ?? [], device.workersPerTile);
    const c = device.supervisorOverheadCycles + (multi.get(t) ?? 0) + device.workersPerTile * workers;
    out.push([t, c]);
    if (c > max) max = c;
  }
  return { cycles: max, tiles: out };
}

/** Longest-processing-time list scheduling; returns the busiest worker's cycles. */
export function scheduleWorkers(jobs: number[], workers: number): number {
  if (jobs.length === 0) return 0;
  const load = new Array<number>(workers).fill(0);
  for (const j of [...jobs].sort((a, b) => b - a)) {
    let k = 0;
    for (let i = 1; i < workers; i++) if (load[i] < load[k]) k = i;
    load[k] += j;
  }
  return Math.max(...load);
}

export function exchangeCost(ex: Exchange, device: DeviceSpec): PhaseCost {
  const sent = new Map<number, number>();
  const recv = new Map<number, number>();
  for (const c of ex.copies) {
    if (c.srcTile === c.dstTile) continue; // an on-tile copy is not exchange traffic
    sent.set(c.srcTile, (sent.get(c.srcTile) ?? 0) + c.bytes);
    recv.set(c.dstTile, (recv.get(c.dstTile) ?? 0) + c.bytes);
  }
  const tiles = [...new Set([...sent.keys(), ...recv.keys()])].sort((a, b) => a - b);
  const out: [number, number][] = [];
  let max = 0;
  for (const t of tiles) {
    const bytes = Math.max(sent.get(t) ?? 0, recv.get(t) ?? 0);
    const c = Math.ceil(bytes / device.exchangeBytesPerCycle);
    out.push([t, c]);
    if (c > max) max = c;
  }
  return { cycles: max, tiles: out };
}

export function streamCopyCycles(bytes: number, device: DeviceSpec): number {
  return device.hostCopyLatencyCycles + Math.ceil((bytes / device.hostLinkBytesPerSecond) * device.clockHz);
}
