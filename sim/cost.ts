/**
 * The cycle model (ipu-architecture.md §2), kept apart from execution so that
 * cycles never depend on data, worker count or host speed.
 *
 * - Compute set, per tile: supervisorOverheadCycles + the sum of its
 *   MultiVertex estimates + W x the busiest worker, single-worker vertices
 *   being list-scheduled (longest first) over the W worker contexts. The
 *   phase lasts as long as the slowest tile.
 * - Exchange (exchangeTraffic): per tile, the bytes it sends and receives,
 *   with the exchange's broadcast rules (MODEL, ipu-architecture.md §1-§2):
 *     - a source sends a piece of data once however many tiles receive it
 *       (receivers listen to the sender's bus), so identical copies (same
 *       source tile, offset and length) to several destinations cost the
 *       sender one send;
 *     - tiles of one shared exchange bus (tilesPerSharedBus consecutive
 *       tiles, a supertile) that receive the same data receive it at
 *       k times the rate when k of them take it: each is charged bytes / k;
 *   then ceil(max(send charge, receive charge) / exchangeBytesPerCycle)
 *   cycles (send and receive are separate ports); the phase lasts as long as
 *   the busiest tile. Sync is not part of it (the engine counts it).
 *   IPU-level limits: the on-chip exchange is non-blocking, every tile
 *   sending and receiving at its full rate at once (4 B/cycle x 1472 tiles x
 *   1.33 GHz ~ 8 TB/s is the vendor's aggregate figure, SPEC), so one IPU
 *   adds no cap beyond the per-tile one. Copies between IPUs are charged
 *   like on-chip ones (IPU-Link bandwidth is not a preset field yet).
 * - Sync: syncCycles, once per superstep (see engine.ts for where).
 * - Host stream copy: hostCopyLatencyCycles + bytes at the host link's rate.
 */
import type { CodeletRegistry, VertexShape } from './codelet.js';
import type { DeviceSpec } from './device.js';
import type { ComputeSet, Exchange } from './program.js';

/**
 * Whether a vertex writes its output over input `input` (the very same
 * region): popops' *InPlace vertex variants, whose estimates differ (e.g.
 * BinaryOp1DInPlace, base 58). Codelet estimators pass it to theirs.
 */
export function writesInPlace(v: VertexShape, input: string, output = 'out'): boolean {
  const a = v.fields[input];
  const o = v.fields[output];
  if (!a || !o || Array.isArray(a) || Array.isArray(o)) return false;
  return a.offset === o.offset && a.count === o.count && a.dtype === o.dtype;
}

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

/** One tile's exchange traffic in a phase. */
export interface TileTraffic {
  tile: number;
  /** Bytes the tile puts on the exchange (a broadcast counted once). */
  sent: number;
  /** Bytes written into the tile's memory by the exchange. */
  received: number;
  /** Receive bytes charged after shared-bus sharing (received / k for data k tiles of its bus take together). */
  receiveCharge: number;
  /** ceil(max(sent, receiveCharge) / exchangeBytesPerCycle). */
  cycles: number;
}

/** Shared exchange bus of a tile: tilesPerSharedBus consecutive tiles of one IPU. */
export function busOf(tile: number, device: DeviceSpec): number {
  const ipu = Math.floor(tile / device.tilesPerIpu);
  const busesPerIpu = Math.ceil(device.tilesPerIpu / device.tilesPerSharedBus);
  return ipu * busesPerIpu + Math.floor((tile % device.tilesPerIpu) / device.tilesPerSharedBus);
}

/** Per-tile traffic of an exchange, ascending by tile, tiles without traffic left out. */
export function exchangeTraffic(ex: Exchange, device: DeviceSpec): TileTraffic[] {
  // Group identical data (source tile, offset, length): one message, any number of receivers.
  const messages = new Map<string, { src: number; bytes: number; dst: Map<number, number> }>();
  for (const c of ex.copies) {
    if (c.srcTile === c.dstTile || c.bytes === 0) continue; // an on-tile copy is not exchange traffic
    const key = `${c.srcTile}:${c.srcOffset}:${c.bytes}`;
    let m = messages.get(key);
    if (!m) messages.set(key, (m = { src: c.srcTile, bytes: c.bytes, dst: new Map() }));
    m.dst.set(c.dstTile, (m.dst.get(c.dstTile) ?? 0) + 1);
  }
  // Receive charges are kept in integer units of 1/L byte, L = lcm(1..tilesPerSharedBus), so sums are exact.
  let L = 1;
  for (let k = 2; k <= device.tilesPerSharedBus; k++) L = (L * k) / gcd(L, k);
  const sent = new Map<number, number>();
  const received = new Map<number, number>();
  const charge = new Map<number, number>();
  for (const m of messages.values()) {
    sent.set(m.src, (sent.get(m.src) ?? 0) + m.bytes);
    const perBus = new Map<number, number>();
    for (const d of m.dst.keys()) perBus.set(busOf(d, device), (perBus.get(busOf(d, device)) ?? 0) + 1);
    for (const [d, times] of m.dst) {
      received.set(d, (received.get(d) ?? 0) + times * m.bytes);
      charge.set(d, (charge.get(d) ?? 0) + (times * m.bytes * L) / perBus.get(busOf(d, device))!);
    }
  }
  const tiles = [...new Set([...sent.keys(), ...received.keys()])].sort((a, b) => a - b);
  return tiles.map((tile) => {
    const s = sent.get(tile) ?? 0;
    const rc = charge.get(tile) ?? 0;
    const cycles = Math.ceil(Math.max(s * L, rc) / (device.exchangeBytesPerCycle * L));
    return { tile, sent: s, received: received.get(tile) ?? 0, receiveCharge: rc / L, cycles };
  });
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

export function exchangeCost(ex: Exchange, device: DeviceSpec): PhaseCost {
  const out: [number, number][] = [];
  let max = 0;
  for (const t of exchangeTraffic(ex, device)) {
    out.push([t.tile, t.cycles]);
    if (t.cycles > max) max = t.cycles;
  }
  return { cycles: max, tiles: out };
}

export function streamCopyCycles(bytes: number, device: DeviceSpec): number {
  return device.hostCopyLatencyCycles + Math.ceil((bytes / device.hostLinkBytesPerSecond) * device.clockHz);
}
