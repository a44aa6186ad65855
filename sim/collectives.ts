/**
 * Cross-replica collectives (ipu-architecture.md §7; PopLibs'
 * lib/popops/ReplicatedCollectives.cpp): an all-reduce is a reduce-scatter
 * then an all-gather, each a sequence of ring steps. A ring step is three
 * BSP supersteps, so its cost comes from the BSP model, not a constant:
 *
 *   slice    compute: each tile copies the fragment it sends (Copy codelet)
 *   exchange the inter-IPU sync, then every tile sends its fragment to the
 *            same tile of the neighbour replica's IPU: as long as the
 *            busiest tile's exchange or the busiest IPU-Link group on the
 *            routes (sim/links.ts) takes
 *   reduce   compute: each tile adds what it received into its fragment
 *            (Add codelet); in the all-gather, copies it into place (Copy)
 *
 * Replica r runs on IPUs [r k, (r + 1) k) of the system (k IPUs per
 * replica); the ring is replicas 0, 1, ..., n - 1, 0, and each of a replica's
 * IPUs sends to the same IPU of the next replica. Methods (per phase, as
 * PopLibs has them):
 *
 *   clockwise      n - 1 steps, fragments of 1/n of the tensor, to r + 1
 *   anticlockwise  the same, to r - 1
 *   bidirectional  a ring pair: half the data each way, n - 1 steps of
 *                  1/(2n) to r + 1 and 1/(2n) to r - 1 at once
 *   meetInMiddle   fragments of 1/n travel half-way round each way:
 *                  floor((n - 1) / 2) steps sending both ways at once (and,
 *                  with n even, one more the longer way only), then
 *                  (reduce-scatter) one combining compute of the two halves
 *   auto           PopLibs' choice (chooseMethod)
 *
 * The numerics of the all-reduce are not run by these vertices: the host
 * side sums the replicas' tensors in the clockwise ring's order
 * (src/replicas.ts); cost and order are documented in docs/architecture.md.
 */
import type { CodeletRegistry } from './codelet.js';
import { computeSetCost } from './cost.js';
import { elementsPerTile } from './intervals.js';
import type { DeviceSpec } from './device.js';
import { deviceRoute, groupCycles, interIpuSyncCycles } from './links.js';
import { DTYPE_BYTES, type ComputeSet, type DeviceTensor, type Vertex } from './program.js';
import { vertexTable } from './vertex-table.js';

export type CollectiveMethod = 'clockwise' | 'anticlockwise' | 'bidirectional' | 'meetInMiddle';
export const COLLECTIVE_METHODS = ['auto', 'clockwise', 'anticlockwise', 'bidirectional', 'meetInMiddle'] as const;
export type CollectiveChoice = (typeof COLLECTIVE_METHODS)[number];

/** How a program is replicated (DeviceProgram.replication): its device is one replica's IPUs. */
export interface Replication {
  replicas: number;
  /** IPUs of the whole system: replicas x the program device's ipus. */
  systemIpus: number;
  /** replicatedCollectives method (default auto). */
  method?: CollectiveChoice;
}

/** The name of an all-reduce's row in reports; each of its phases' names starts with it and a space. */
export function allReduceName(tensor: string): string {
  return `allReduce(${tensor})`;
}

/** A collective's row name in reports (allReduce(t), reduceScatter(t), allGather(t), replicaShard(t)). */
export function collectiveName(kind: 'allReduce' | 'reduceScatter' | 'allGather' | 'replicaShard', tensor: string): string {
  return `${kind}(${tensor})`;
}

/** One ring step of a collective phase: the fraction of the tensor each direction sends, and whether the receiver adds. */
export interface RingStep {
  fraction: number;
  /** +1: to replica r + 1; -1: to r - 1. */
  directions: (1 | -1)[];
  reduce: boolean;
}

/**
 * PopLibs' automatic choice (§7, SRC) for n replicas and b bytes per IPU: the
 * clockwise ring with 2 or fewer replicas or more than one IPU per replica;
 * otherwise meet-in-the-middle below size thresholds (halved for the
 * all-gather), else the bidirectional ring pair.
 */
export function chooseMethod(replicas: number, ipusPerReplica: number, bytesPerIpu: number, phase: 'reduceScatter' | 'allGather'): CollectiveMethod {
  if (replicas <= 2 || ipusPerReplica > 1) return 'clockwise';
  const s = phase === 'allGather' ? 0.5 : 1;
  const b = bytesPerIpu;
  const n = replicas;
  if (b < 1_245_184 * s || (n > 4 && b < 4_980_736 * s) || (n > 8 && b < 39_845_888 * s) || n > 16) return 'meetInMiddle';
  return 'bidirectional';
}

/** The ring steps of one phase (reduce-scatter when `reduce`, else all-gather) with `method` over n replicas. */
export function ringSteps(method: CollectiveMethod, n: number, reduce: boolean): RingStep[] {
  if (n <= 1) return [];
  const repeat = (k: number, s: RingStep): RingStep[] => Array.from({ length: k }, () => s);
  switch (method) {
    case 'clockwise':
      return repeat(n - 1, { fraction: 1 / n, directions: [1], reduce });
    case 'anticlockwise':
      return repeat(n - 1, { fraction: 1 / n, directions: [-1], reduce });
    case 'bidirectional':
      return repeat(n - 1, { fraction: 1 / (2 * n), directions: [1, -1], reduce });
    case 'meetInMiddle': {
      // The n - 1 other replicas split into the two halves of the ring: with n even one half is one
      // longer, so the last step goes one way only. Each replica sends (n - 1)/n of the tensor, as a ring.
      const both = Math.floor((n - 1) / 2);
      const steps = repeat(both, { fraction: 1 / n, directions: [1, -1], reduce });
      return n % 2 === 0 ? [...steps, { fraction: 1 / n, directions: [1], reduce }] : steps;
    }
  }
}

/** A phase of a collective, as the engine records it. */
export interface CollectivePhase {
  kind: 'compute' | 'sync' | 'exchange';
  name: string;
  cycles: number;
  tiles?: [number, number][];
  /** The exchange's bytes per link group of the system (Phase.links). */
  links?: [number, number][];
}

/** What an all-reduce of a tensor moves, for summary.json (PopLibs' collectives tool). */
export interface CollectiveBytes {
  /** The tensor's bytes on one replica ("algorithm bytes"). */
  algorithmBytes: number;
  /** Bytes each replica sends over IPU-Links: algorithm bytes x 2(n - 1)/n for a ring all-reduce. */
  linkBytes: number;
  method: { reduceScatter: CollectiveMethod; allGather: CollectiveMethod };
}

/** The methods and bytes of an all-reduce of `t` on a replicated program. */
export function allReduceBytes(t: DeviceTensor, device: DeviceSpec, rep: Replication): CollectiveBytes {
  const n = rep.replicas;
  const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
  const perIpu = bytes / device.ipus;
  const pick = (phase: 'reduceScatter' | 'allGather'): CollectiveMethod =>
    !rep.method || rep.method === 'auto' ? chooseMethod(n, device.ipus, perIpu, phase) : rep.method;
  return { algorithmBytes: bytes, linkBytes: (bytes * 2 * (n - 1)) / n, method: { reduceScatter: pick('reduceScatter'), allGather: pick('allGather') } };
}

/**
 * The phases of an all-reduce of `t` (one replica's view; every replica runs
 * the same at once): per ring step slice, sync, exchange, reduce or copy.
 */
export function allReducePhases(t: DeviceTensor, device: DeviceSpec, rep: Replication, codelets: CodeletRegistry): CollectivePhase[] {
  return collectivePhases(t, device, rep, codelets, 'allReduce');
}

/**
 * The phases of a collective of `t` (the whole tensor, N elements): an
 * all-reduce is the reduce-scatter's ring steps then the all-gather's; with
 * replicated tensor sharding each runs on its own (the reduce-scatter of a
 * gradient before the update on the shard, the all-gather of the weight
 * after), at the same cost as that half of the all-reduce.
 */
export function collectivePhases(t: DeviceTensor, device: DeviceSpec, rep: Replication, codelets: CodeletRegistry, which: 'allReduce' | 'reduceScatter' | 'allGather'): CollectivePhase[] {
  if (rep.replicas <= 1) return [];
  // Elements of t on each tile of the replica's device.
  const perTile = elementsPerTile(t.intervals);
  // The phases depend on the tensor's dtype, size and elements per tile, not its name: the weights of a
  // model's layers, laid out alike, share them (each is a few compute sets' costs over every tile).
  let byDevice = PHASES.get(device);
  if (!byDevice) PHASES.set(device, (byDevice = new WeakMap()));
  let memo = byDevice.get(codelets);
  if (!memo) byDevice.set(codelets, (memo = new Map()));
  let key = `${which}|${t.dtype}|${t.shape.join(',')}|${rep.replicas}|${rep.systemIpus}|${rep.method ?? ''}|`;
  for (const [tile, elems] of perTile) key += `${tile}:${elems};`;
  let phases = memo.get(key);
  if (!phases) memo.set(key, (phases = phasesOf({ ...t, name: NAME }, perTile, device, rep, codelets, which)));
  return phases.map((p) => ({ ...p, name: p.name.replace(NAME, () => t.name) }));
}

/** The tensor name in memoised phases (collectivePhases), replaced by each tensor's own. */
const NAME = '\u0000';
const PHASES = new WeakMap<DeviceSpec, WeakMap<CodeletRegistry, Map<string, CollectivePhase[]>>>();

function phasesOf(t: DeviceTensor, perTile: ReadonlyMap<number, number>, device: DeviceSpec, rep: Replication, codelets: CodeletRegistry, which: 'allReduce' | 'reduceScatter' | 'allGather'): CollectivePhase[] {
  const n = rep.replicas;
  const { method } = allReduceBytes(t, device, rep);
  const system: DeviceSpec = { ...device, ipus: rep.systemIpus };
  const size = DTYPE_BYTES[t.dtype];
  const out: CollectivePhase[] = [];
  const interIpuSync = device.syncCycles + interIpuSyncCycles(system);
  const stepPhases = (s: RingStep, label: string): void => {
    const frag = (elems: number): number => Math.ceil(elems * s.fraction);
    const vertices = (codelet: string, fields: string[]): Vertex[] =>
      [...perTile].flatMap(([tile, elems]) =>
        s.directions.map(() => ({ codelet, tile, fields: Object.fromEntries(fields.map((f) => [f, { offset: 0, count: frag(elems), dtype: t.dtype }])), params: {} })),
      );
    const cost = (name: string, codelet: string, fields: string[]): CollectivePhase => {
      const cs: ComputeSet = { id: -1, name, op: '', vertices: vertexTable(vertices(codelet, fields)) };
      const c = computeSetCost(cs, codelets, device);
      return { kind: 'compute', name, cycles: c.cycles, tiles: c.tiles };
    };
    out.push({ kind: 'sync', name: 'sync', cycles: device.syncCycles });
    out.push(cost(`${label} slice`, 'Copy', ['in', 'out']));
    // The exchange: each tile sends its fragments (one per direction) to its twin on the neighbour replica.
    const tiles: [number, number][] = [];
    let onChip = 0;
    const ipuBytes = new Float64Array(device.ipus);
    for (const [tile, elems] of perTile) {
      const bytes = frag(elems) * size * s.directions.length;
      const c = Math.ceil(bytes / device.exchangeBytesPerCycle);
      tiles.push([tile, c]);
      onChip = Math.max(onChip, c);
      ipuBytes[Math.floor(tile / device.tilesPerIpu)] += bytes / s.directions.length;
    }
    const load = new Map<number, number>();
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < device.ipus; i++) {
        if (ipuBytes[i] === 0) continue;
        for (const d of s.directions) {
          const to = ((r + d + n) % n) * device.ipus + i;
          for (const g of deviceRoute(r * device.ipus + i, to, system)) load.set(g, (load.get(g) ?? 0) + ipuBytes[i]);
        }
      }
    }
    let linkCycles = 0;
    for (const [g, bytes] of load) linkCycles = Math.max(linkCycles, groupCycles(g, bytes, system));
    out.push({ kind: 'sync', name: 'sync', cycles: interIpuSync });
    const links = [...load].sort((a, b) => a[0] - b[0]);
    out.push({ kind: 'exchange', name: `${label} exchange`, cycles: Math.max(onChip, linkCycles), tiles: tiles.sort((a, b) => a[0] - b[0]), links });
    out.push(s.reduce ? cost(`${label} reduce`, 'Add', ['a', 'b', 'out']) : cost(`${label} copy`, 'Copy', ['in', 'out']));
  };
  const rs = which === 'allGather' ? [] : ringSteps(method.reduceScatter, n, true);
  const name = collectiveName(which, t.name);
  rs.forEach((s, k) => stepPhases(s, `${name} reduce-scatter ${k + 1}/${rs.length}`));
  if (which !== 'allGather' && method.reduceScatter === 'meetInMiddle') {
    // The two halves of each fragment meet: one more add.
    const s: RingStep = { fraction: 1 / n, directions: [1], reduce: true };
    const cs: ComputeSet = {
      id: -1,
      name: 'meet',
      op: '',
      vertices: vertexTable([...perTile].map(([tile, elems]) => ({ codelet: 'Add', tile, fields: Object.fromEntries(['a', 'b', 'out'].map((f) => [f, { offset: 0, count: Math.ceil(elems * s.fraction), dtype: t.dtype }])), params: {} }))),
    };
    const c = computeSetCost(cs, codelets, device);
    out.push({ kind: 'sync', name: 'sync', cycles: device.syncCycles }, { kind: 'compute', name: `${name} reduce-scatter combine`, cycles: c.cycles, tiles: c.tiles });
  }
  const ag = which === 'reduceScatter' ? [] : ringSteps(method.allGather, n, false);
  ag.forEach((s, k) => stepPhases(s, `${name} all-gather ${k + 1}/${ag.length}`));
  return out;
}

/** The replica's own fragment of `t` copied into its shard: on each tile a Copy of 1/n of its elements (no exchange: the shard lies with the fragment's tiles' share). */
export function replicaShardPhases(t: DeviceTensor, device: DeviceSpec, rep: Replication, codelets: CodeletRegistry): CollectivePhase[] {
  const perTile = elementsPerTile(t.intervals);
  const frag = (elems: number): number => Math.ceil(elems / rep.replicas);
  const vertices: Vertex[] = [...perTile].map(([tile, elems]) => ({ codelet: 'Copy', tile, fields: { in: { offset: 0, count: frag(elems), dtype: t.dtype }, out: { offset: 0, count: frag(elems), dtype: t.dtype } }, params: {} }));
  const name = collectiveName('replicaShard', t.name);
  const c = computeSetCost({ id: -1, name, op: '', vertices: vertexTable(vertices) }, codelets, device);
  return [
    { kind: 'sync', name: 'sync', cycles: device.syncCycles },
    { kind: 'compute', name: `${name} slice`, cycles: c.cycles, tiles: c.tiles },
  ];
}
