/**
 * The execution view behind report.html and profile/program*.csv, derived
 * from the DeviceProgram and the phases of the first step (every step runs
 * the same batch program, and cycles never depend on data):
 *
 * - one ProgramRow per leaf step of the batch program (compute set, exchange,
 *   host copy; a repeat's body once, as liveness numbers it) with its cycles,
 *   tiles, vertices, regions and busiest tile;
 * - sparse per-tile rows (ProgramTileRow) for the tiles each step uses:
 *   vertices, regions and cycles of a compute set, bytes sent and received by
 *   an exchange (exchangeTraffic, the cost model's own accounting);
 * - per tile, exchange bytes sent and received over the run.
 */
import { allReduceName, collectiveName } from '../../sim/collectives.js';
import { remoteName } from '../../sim/streaming-memory.js';
import { exchangeTraffic } from '../../sim/cost.js';
import type { Phase } from '../../sim/profile.js';
import { DTYPE_BYTES, pipelineCycles, type DeviceProgram, type ProgramStep } from '../../sim/program.js';
import { vertexCodelet, vertexRegions } from '../../sim/vertex-table.js';

type Leaf = Exclude<ProgramStep, { kind: 'repeat' } | { kind: 'switch' } | { kind: 'repeatWhile' } | { kind: 'pipeline' } | { kind: 'call' }>;

export interface ProgramRow {
  /** Index of the leaf step in the flattened batch program (as profile/liveness.csv's programStep). */
  programStep: number;
  kind: 'compute' | 'exchange' | 'streamCopy' | 'streamingMemory';
  name: string;
  op: string;
  /** Cycles in one step (a step in a repeat body counts every pass), syncs apart. */
  cycles: number;
  /** Cycles of the syncs before it, in one step. */
  syncCycles: number;
  /** Tiles that do work (compute) or send or receive (exchange). */
  tiles: number;
  vertices: number;
  regions: number;
  /** Cycles of the busiest tile and the mean over the tiles used, one pass. */
  maxTileCycles: number;
  meanTileCycles: number;
  busiestTile: number;
  /** Exchange: bytes received over all tiles; host copy: bytes moved; one pass. */
  bytes: number;
  /** Compute: the codelets and how many vertices of each, e.g. "MatMul x 64; Add x 1". */
  codelets: string;
}

export interface ProgramTileRow {
  programStep: number;
  tile: number;
  vertices: number;
  regions: number;
  cycles: number;
  sentBytes: number;
  receivedBytes: number;
}

export interface ProgramView {
  rows: ProgramRow[];
  tiles: ProgramTileRow[];
  /** Per tile (index = tile): exchange bytes sent and received over the whole run. */
  sent: number[];
  received: number[];
}

export function flattenBatch(p: DeviceProgram): { leaves: Leaf[]; order: number[]; switches: boolean; opsOf: (Record<string, string> | undefined)[] } {
  const leaves: Leaf[] = [];
  // Per leaf inside a call: the call's op names for the function's.
  const opsOf: (Record<string, string> | undefined)[] = [];
  let switches = false;
  // Returns the leaf indices of `list` in execution order, repeats expanded.
  const walk = (list: ProgramStep[]): number[] => {
    const out: number[] = [];
    for (const s of list) {
      if (s.kind === 'repeat') {
        const body = walk(s.body);
        for (let k = 0; k < s.count; k++) out.push(...body);
      } else if (s.kind === 'repeatWhile') {
        // Up to maxCount passes: matching phases to leaves skips those not run.
        switches = true;
        const body = walk(s.body);
        for (let k = 0; k < s.maxCount; k++) out.push(...body);
      } else if (s.kind === 'pipeline') {
        // In the engine's order: each cycle's lanes, then the copies (sim/program.ts pipelineCycles).
        const index = new Map<ProgramStep[], number[]>();
        const of = (l: ProgramStep[]): number[] => {
          let w = index.get(l);
          if (!w) index.set(l, (w = walk(l)));
          return w;
        };
        for (const cycle of pipelineCycles(s)) {
          for (const lane of cycle.lanes) for (const l of lane.lists) out.push(...of(l));
          out.push(...of(s.copies));
        }
      } else if (s.kind === 'call') {
        // Each call's steps are leaves of their own (as liveness numbers them), named after the call's ops.
        const from = leaves.length;
        out.push(...walk(s.body));
        for (let l = from; l < leaves.length; l++) opsOf[l] ??= s.ops;
      } else if (s.kind === 'switch') {
        // Both branches, in order: matching phases to leaves skips the branch not taken.
        switches = true;
        out.push(...walk(s.whenTrue), ...walk(s.whenFalse));
      } else {
        out.push(leaves.length);
        leaves.push(s);
      }
    }
    return out;
  };
  const order = walk(p.programs.batch ?? []);
  return { leaves, order, switches, opsOf };
}

export function programView(p: DeviceProgram, phases: readonly Phase[]): ProgramView {
  const { leaves, order, switches, opsOf } = flattenBatch(p);
  const totalTiles = p.device.tilesPerIpu * p.device.ipus;
  // Fields in PROGRAM_COLUMNS order, so a row read back from profile/program.csv is the same JSON.
  const row = (i: number, kind: ProgramRow['kind'], name: string, op: string, bytes = 0): ProgramRow => ({
    programStep: i, kind, name, op, cycles: 0, syncCycles: 0, tiles: 0, vertices: 0, regions: 0, maxTileCycles: 0, meanTileCycles: 0, busiestTile: -1, bytes, codelets: '',
  });
  const rows: ProgramRow[] = leaves.map((s, i) => {
    if (s.kind === 'execute') {
      const cs = p.computeSets[s.computeSet];
      return row(i, 'compute', cs.name, opsOf[i]?.[cs.op] ?? cs.op);
    }
    if (s.kind === 'exchange') {
      const ex = p.exchanges[s.exchange];
      return row(i, 'exchange', ex.name, opsOf[i]?.[ex.op] ?? ex.op);
    }
    if (s.kind === 'allReduce') {
      // Its ring steps' phases are all named after it (sim/collectives.ts): summed into this row.
      const t = p.tensors[s.tensor];
      return row(i, 'exchange', allReduceName(t.name), s.op, t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
    }
    if (s.kind === 'reduceScatter' || s.kind === 'allGather' || s.kind === 'replicaShard') {
      const t = p.tensors[s.tensor];
      return row(i, s.kind === 'replicaShard' ? 'compute' : 'exchange', collectiveName(s.kind, t.name), s.op, p.tensors[s.shard].shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
    }
    if (s.kind === 'remoteLoad' || s.kind === 'remoteStore') {
      const t = p.tensors[s.tensor];
      return row(i, 'streamingMemory', remoteName(s.kind, t.name), s.op, t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
    }
    const st = p.streams[s.stream];
    const t = p.tensors[st.tensor];
    return row(i, 'streamCopy', st.name, s.op, t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype]);
  });

  // Phases of the first step, in order: each sync belongs to the leaf that follows it.
  const first = phases.length ? phases[0].step : 0;
  const perTileCycles = new Map<number, [number, number][]>();
  let k = 0;
  let sync = 0;
  let collective = -1;
  for (const ph of phases) {
    if (ph.step !== first) break;
    if (ph.kind === 'sync') {
      sync += ph.cycles;
      continue;
    }
    // The phases of an all-reduce after its first go to its row.
    if (collective >= 0 && ph.name.startsWith(`${rows[collective].name} `)) {
      rows[collective].cycles += ph.cycles;
      rows[collective].syncCycles += sync;
      sync = 0;
      continue;
    }
    collective = -1;
    const n = Math.max(1, order.length);
    // A switch's branch not taken has no phases: skip ahead to the next leaf of this name.
    let skip = 0;
    const matches = (leaf: number | undefined): boolean =>
      leaf !== undefined && rows[leaf] !== undefined && (rows[leaf].name === ph.name || (isCollective(leaves[leaf]) && ph.name.startsWith(`${rows[leaf].name} `)));
    while (skip < (switches ? n : 1) && !matches(order[(k + skip) % n])) skip++;
    if (!matches(order[(k + skip) % n])) break; // not the program we know: leave the rest at zero
    k += skip;
    const leaf = order[k % n];
    k++;
    const r = rows[leaf];
    if (isCollective(leaves[leaf])) collective = leaf;
    r.cycles += ph.cycles;
    r.syncCycles += sync;
    sync = 0;
    if (ph.tiles && !perTileCycles.has(leaf)) perTileCycles.set(leaf, ph.tiles);
  }

  const tiles: ProgramTileRow[] = [];
  const passes = new Array<number>(leaves.length).fill(0);
  for (const i of order) passes[i]++;
  const steps = new Set(phases.map((ph) => ph.step)).size;
  const sent = new Array<number>(totalTiles).fill(0);
  const received = new Array<number>(totalTiles).fill(0);
  leaves.forEach((s, i) => {
    const row = rows[i];
    const cycles = new Map(perTileCycles.get(i) ?? []);
    const perTile = new Map<number, ProgramTileRow>();
    const at = (tile: number) => {
      let r = perTile.get(tile);
      if (!r) perTile.set(tile, (r = { programStep: i, tile, vertices: 0, regions: 0, cycles: cycles.get(tile) ?? 0, sentBytes: 0, receivedBytes: 0 }));
      return r;
    };
    if (s.kind === 'execute') {
      const byCodelet = new Map<string, number>();
      const t = p.computeSets[s.computeSet].vertices;
      for (let v = 0; v < t.count; v++) {
        const r = at(t.tile[v]);
        r.vertices++;
        r.regions += vertexRegions(t, v);
        const codelet = vertexCodelet(t, v);
        byCodelet.set(codelet, (byCodelet.get(codelet) ?? 0) + 1);
      }
      row.codelets = [...byCodelet].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} x ${n}`).join('; ');
    } else if (s.kind === 'exchange') {
      for (const t of exchangeTraffic(p.exchanges[s.exchange], p.device)) {
        const r = at(t.tile);
        r.sentBytes = t.sent;
        r.receivedBytes = t.received;
        row.bytes += t.received;
        sent[t.tile] += t.sent * passes[i] * steps;
        received[t.tile] += t.received * passes[i] * steps;
      }
    }
    const used = [...perTile.values()].sort((a, b) => a.tile - b.tile);
    row.tiles = used.length;
    let total = 0;
    for (const r of used) {
      row.vertices += r.vertices;
      row.regions += r.regions;
      total += r.cycles;
      if (r.cycles > row.maxTileCycles) {
        row.maxTileCycles = r.cycles;
        row.busiestTile = r.tile;
      }
    }
    row.meanTileCycles = used.length ? Math.round((10 * total) / used.length) / 10 : 0;
    tiles.push(...used);
  });
  return { rows, tiles, sent, received };
}

/**
 * The per-tile rows a run folder keeps: every program step's while they fit
 * in `budget` rows, else those of the most expensive steps (a ResNet-sized
 * program on 1472 tiles has millions; the report's per-tile views say which
 * steps they lack).
 */
export function keepProgramTiles(rows: readonly ProgramRow[], tiles: readonly ProgramTileRow[], budget = 250_000): ProgramTileRow[] {
  if (tiles.length <= budget) return [...tiles];
  const keep = new Set<number>();
  let used = 0;
  for (const r of [...rows].sort((a, b) => b.cycles - a.cycles || a.programStep - b.programStep)) {
    if (used + r.tiles > budget) continue;
    keep.add(r.programStep);
    used += r.tiles;
  }
  return tiles.filter((t) => keep.has(t.programStep));
}

/** A leaf whose phases are all named after its row (sim/collectives.ts): its ring steps are summed into it. */
function isCollective(s: { kind: string }): boolean {
  return s.kind === 'allReduce' || s.kind === 'reduceScatter' || s.kind === 'allGather' || s.kind === 'replicaShard';
}
