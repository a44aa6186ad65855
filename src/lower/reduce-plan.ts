/**
 * The planner of a two-stage reduction's second stage (src/lower/reduce.ts
 * grows the chosen plan into vertices and exchanges).
 *
 * The output's columns are cut into segments (where the output's tile or the
 * set of partials covering a column changes); a segment with more partials
 * than a fan-in f is first reduced in groups of at most f partials on other
 * tiles (intermediate stages, spread over all tiles by a greedy balance of
 * estimated cycles, optionally with the segment cut into column chunks of
 * whole vectors), until at most f remain; the last stage sums them on the
 * output's tiles, scaled. Candidates: 1 to 4 stages (f = ceil(m^(1/L)) for
 * the most partials m of any column), with and without column chunks, and
 * the naive plan (every tile's full-width partial sent to the output's
 * tiles). Each candidate is costed with the engine's own model (sim/cost.ts:
 * compute sets from the codelets' estimators, exchanges with their broadcast
 * rules, one sync per stage; on one IPU counted straight from the plan, the
 * same numbers); the cheapest wins, ties to the fewer stages.
 *
 * Candidates are built and costed as int32 columns (Ints, one per field, a
 * stage's inputs in one flat list): a bias gradient of a
 * linearly mapped [128, 3072] activation has 768 segments of 4 columns with
 * 128 partials each, and its four tree candidates some 60,000 tasks; one
 * object per task and value made planning that one reduction a quarter of a
 * second of a BERT layer's compile, most of it garbage collection. Only the
 * plans asked for are made objects (ReducePlan).
 */
import { CodeletRegistry } from '../../sim/codelet.js';
import { reduceFinalCodelet, reducePartialCodelet } from '../../sim/codelets/reduce.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { computeSetCost, exchangeCost } from '../../sim/cost.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { DeviceDType, Vertex } from '../../sim/program.js';
import { CopyTableBuilder, doubled } from '../../sim/copies.js';
import type { TileRange } from './devicegraph.js';
import { vertexTable } from '../../sim/vertex-table.js';

/** Float32 data for columns [colBegin, colEnd) held on one tile: a stage-1 partial or an intermediate sum. */
export interface PlanValue {
  tile: number;
  colBegin: number;
  colEnd: number;
}

/** One stage-1 vertex: x elements [begin, end) on `tile` into value `value`, first element at column offset `offset` of it. */
export interface PartialVertex {
  tile: number;
  begin: number;
  end: number;
  value: number;
  offset: number;
}

/** One later-stage vertex: values `inputs` (their columns [colBegin, colEnd)) summed on `tile`, into value `out` or, last, into the output. */
export interface PlanTask {
  tile: number;
  colBegin: number;
  colEnd: number;
  inputs: number[];
  out?: number;
}

export interface ReducePlan {
  name: string;
  stage1: PartialVertex[];
  values: PlanValue[];
  /** The later stages in order; the last writes the output. */
  stages: PlanTask[][];
  /** Estimated cycles of each stage (stage 1 first), sync included. */
  stageCycles: number[];
  cycles: number;
}

export interface ReductionProblem {
  /** Tile ranges of x (elements of the [rows, cols] row-major view). */
  x: readonly TileRange[];
  xDType: DeviceDType;
  cols: number;
  /** Tile ranges of the output (its cols elements). */
  out: readonly TileRange[];
  outDType: DeviceDType;
  device: DeviceSpec;
  numTiles: number;
}

/** A growable column of int32s (plain arrays pushed to by the hundred thousand were most of the planning time). */
class Ints {
  a: Int32Array;
  n = 0;
  constructor(capacity = 16) {
    this.a = new Int32Array(Math.max(16, capacity));
  }
  push(v: number): void {
    if (this.n === this.a.length) this.a = doubled(this.a);
    this.a[this.n++] = v;
  }
  copy(): Ints {
    const c = new Ints(this.n);
    c.a.set(this.a.subarray(0, this.n));
    c.n = this.n;
    return c;
  }
  /** Entries [from, to) as a plain array. */
  list(from = 0, to = this.n): number[] {
    const out = new Array<number>(to - from);
    for (let i = from; i < to; i++) out[i - from] = this.a[i];
    return out;
  }
}

/** Values as columns: value i is columns [colBegin[i], colEnd[i]) on tile[i] (-1 until placed). */
interface ValueCols {
  tile: Ints;
  colBegin: Ints;
  colEnd: Ints;
}

function valueCols(): ValueCols {
  return { tile: new Ints(), colBegin: new Ints(), colEnd: new Ints() };
}

/**
 * Tasks (a later stage) or segments as columns: item i covers columns [colBegin[i], colEnd[i]) on
 * tile[i] (a segment: its output tile), summing values inputs[inStart[i] .. inStart[i + 1]) into value
 * out[i] (-1: the output; segments have none).
 */
interface ItemCols {
  tile: Ints;
  colBegin: Ints;
  colEnd: Ints;
  /** One more entry than items: the last is inputs.n. */
  inStart: Ints;
  inputs: Ints;
  out: Ints;
}

/** A candidate plan as columns, costed. */
interface Candidate {
  name: string;
  stage1: PartialVertex[];
  values: ValueCols;
  stages: ItemCols[];
  stageCycles: number[];
  cycles: number;
}

const ESTIMATORS = new CodeletRegistry();
ESTIMATORS.add(reducePartialCodelet);
ESTIMATORS.add(reduceFinalCodelet);

/** Empty columns with room for about `n` items of `inputs` inputs in all (they grow past it). */
function items(n = 16, inputs = 16): ItemCols {
  const c = { tile: new Ints(n), colBegin: new Ints(n), colEnd: new Ints(n), inStart: new Ints(n + 1), inputs: new Ints(inputs), out: new Ints(n) };
  c.inStart.push(0);
  return c;
}

function count(c: ItemCols): number {
  return c.tile.n;
}

/** Inputs of item i. */
function inputsOf(c: ItemCols, i: number): number {
  return c.inStart.a[i + 1] - c.inStart.a[i];
}

/**
 * The candidate plans for a reduction, each with its estimated cycles, and
 * the chosen one (mode 'naive' forces the naive plan).
 */
export function planReduction(p: ReductionProblem, mode: 'auto' | 'naive' = 'auto'): { chosen: ReducePlan; candidates: ReducePlan[] } {
  const { chosen, candidates } = candidatesOf(p, mode);
  const plans = candidates.map((c) => planOf(p, c));
  return { chosen: plans[chosen], candidates: plans };
}

/** planReduction with only the chosen plan made into objects: the others named with their cycles (for the note). */
export function chooseReduction(p: ReductionProblem, mode: 'auto' | 'naive' = 'auto'): { chosen: ReducePlan; others: string[] } {
  const { chosen, candidates } = candidatesOf(p, mode);
  return { chosen: planOf(p, candidates[chosen]), others: candidates.filter((_, i) => i !== chosen).map((c) => `${c.name} ${c.cycles}`) };
}

/** The candidates as columns, costed, and the index of the chosen one. */
function candidatesOf(p: ReductionProblem, mode: 'auto' | 'naive'): { chosen: number; candidates: Candidate[] } {
  const naive = naivePlan(p);
  if (mode === 'naive' || p.cols === 0 || p.x.length === 0) return { chosen: 0, candidates: [naive] };
  const { stage1, values } = windowedPartials(p);
  const segments = segmentsOf(p, values);
  let most = 0;
  for (let s = 0; s < count(segments); s++) most = Math.max(most, inputsOf(segments, s));
  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  for (let levels = 1; levels <= 4; levels++) {
    const fanIn = levels === 1 ? Infinity : Math.max(2, Math.ceil(most ** (1 / levels) - 1e-9));
    for (const chunked of levels === 1 ? [false] : [false, true]) {
      // A chunked tree that cuts no segment at any stage is the plain tree again: not planned twice.
      if (chunked && !chunksAny(p, segments, fanIn)) continue;
      const plan = treePlan(p, stage1, values, segments, fanIn, chunked);
      const key = JSON.stringify(plan.stages.map(count)) + plan.stages.length + (chunked ? 'c' : '') + fanIn;
      if (seen.has(key) || (levels > 1 && plan.stages.length === 1)) continue;
      seen.add(key);
      plan.name = levels === 1 ? 'one stage on the output tiles' : `${plan.stages.length} stages, fan-in ${fanIn}${chunked ? ', column chunks' : ''}`;
      candidates.push(plan);
    }
  }
  candidates.push(naive);
  let chosen = 0;
  for (let i = 1; i < candidates.length; i++) {
    const c = candidates[i];
    const best = candidates[chosen];
    if (c.cycles < best.cycles || (c.cycles === best.cycles && c.stages.length < best.stages.length)) chosen = i;
  }
  return { chosen, candidates };
}

/** A candidate as a ReducePlan of objects (a final task has no `out`). */
function planOf(p: ReductionProblem, c: Candidate): ReducePlan {
  const v = c.values;
  const values: PlanValue[] = Array.from({ length: v.tile.n }, (_, i) => ({ tile: v.tile.a[i], colBegin: v.colBegin.a[i], colEnd: v.colEnd.a[i] }));
  const stages = c.stages.map((s) =>
    Array.from({ length: count(s) }, (_, i): PlanTask => {
      const [tile, colBegin, colEnd, out] = [s.tile.a[i], s.colBegin.a[i], s.colEnd.a[i], s.out.a[i]];
      const inputs = s.inputs.list(s.inStart.a[i], s.inStart.a[i + 1]);
      return out >= 0 ? { tile, colBegin, colEnd, inputs, out } : { tile, colBegin, colEnd, inputs };
    }),
  );
  return { name: c.name, stage1: c.stage1, values, stages, stageCycles: c.stageCycles, cycles: c.cycles };
}

/** Every tile's full-width partial sent to the output's tiles, one vertex per output range. */
function naivePlan(p: ReductionProblem): Candidate {
  const values = valueCols();
  const stage1: PartialVertex[] = p.x.map((r, i) => {
    values.tile.push(r.tile);
    values.colBegin.push(0);
    values.colEnd.push(p.cols);
    return { tile: r.tile, begin: r.begin, end: r.end, value: i, offset: p.cols ? r.begin % p.cols : 0 };
  });
  const final = items(p.out.length, p.out.length * p.x.length);
  for (const r of p.out) {
    for (let i = 0; i < p.x.length; i++) final.inputs.push(i);
    pushItem(final, r.tile, r.begin, r.end, -1);
  }
  return costed(p, { name: 'naive (full partials to the output tiles)', stage1, values, stages: [final], stageCycles: [], cycles: 0 });
}

/** Close item i of `c` (its inputs pushed already). */
function pushItem(c: ItemCols, tile: number, colBegin: number, colEnd: number, out: number): void {
  c.tile.push(tile);
  c.colBegin.push(colBegin);
  c.colEnd.push(colEnd);
  c.out.push(out);
  c.inStart.push(c.inputs.n);
}

/** Stage 1 with each run's partial covering only its columns. */
function windowedPartials(p: ReductionProblem): { stage1: PartialVertex[]; values: ValueCols } {
  const { cols } = p;
  const values = valueCols();
  const stage1: PartialVertex[] = [];
  const add = (tile: number, begin: number, end: number, colBegin: number, colEnd: number, offset: number) => {
    values.tile.push(tile);
    values.colBegin.push(colBegin);
    values.colEnd.push(colEnd);
    stage1.push({ tile, begin, end, value: values.tile.n - 1, offset });
  };
  for (const r of p.x) {
    const n = r.end - r.begin;
    const c0 = r.begin % cols;
    if (n >= cols) add(r.tile, r.begin, r.end, 0, cols, c0);
    else if (c0 + n <= cols) add(r.tile, r.begin, r.end, c0, c0 + n, 0);
    else {
      const first = cols - c0;
      add(r.tile, r.begin, r.begin + first, c0, cols, 0);
      add(r.tile, r.begin + first, r.end, 0, n - first, 0);
    }
  }
  return { stage1, values };
}

/** Column segments with one output tile and one set of covering values each (inputs in increasing order). */
function segmentsOf(p: ReductionProblem, values: ValueCols): ItemCols {
  const cuts = new Set<number>([0, p.cols]);
  for (const r of p.out) cuts.add(r.begin).add(r.end);
  const nv = values.tile.n;
  const vb = values.colBegin.a;
  const ve = values.colEnd.a;
  for (let i = 0; i < nv; i++) cuts.add(vb[i]).add(ve[i]);
  const points = Int32Array.from(cuts).sort();
  const byBegin = Array.from({ length: nv }, (_, i) => i).sort((a, b) => vb[a] - vb[b] || a - b);
  const segments = items(points.length, nv);
  let next = 0;
  const active: number[] = [];
  let sorted = new Int32Array(16);
  let outIdx = 0;
  const outs = [...p.out].sort((a, b) => a.begin - b.begin);
  for (let k = 0; k + 1 < points.length; k++) {
    const b = points[k];
    const e = points[k + 1];
    while (next < nv && vb[byBegin[next]] <= b) active.push(byBegin[next++]);
    // Drop the values ending by b (every active one begins at or before it).
    let w = 0;
    for (let q = 0; q < active.length; q++) if (ve[active[q]] > b) active[w++] = active[q];
    active.length = w;
    while (outIdx < outs.length && outs[outIdx].end <= b) outIdx++;
    if (sorted.length < w) sorted = new Int32Array(2 * w);
    const ins = sorted.subarray(0, w);
    for (let q = 0; q < w; q++) ins[q] = active[q];
    ins.sort();
    for (let q = 0; q < w; q++) segments.inputs.push(ins[q]);
    pushItem(segments, outs[outIdx].tile, b, e, -1);
  }
  return segments;
}

/** The column chunks a chunked tree cuts a segment of `len` columns into at a stage of `groupsTotal` groups: as many as the tiles allow each group, each at least a vector wide. */
function chunkCount(p: ReductionProblem, groupsTotal: number, len: number, vw: number): number {
  return Math.max(1, Math.min(Math.floor(p.numTiles / groupsTotal), Math.floor(len / vw)));
}

/**
 * Whether treePlan's chunked tree cuts any segment into column chunks: the
 * cuts depend on the segments' widths and input counts alone, not on where
 * tasks are placed, so the stages are followed as counts (no plan made).
 */
function chunksAny(p: ReductionProblem, segments0: ItemCols, fanIn: number): boolean {
  const vw = vectorWidth('float32', p.device);
  let segments = Array.from({ length: count(segments0) }, (_, s) => ({ len: segments0.colEnd.a[s] - segments0.colBegin.a[s], n: inputsOf(segments0, s) }));
  while (segments.some((s) => s.n > fanIn)) {
    const groupsTotal = segments.reduce((n, s) => n + (s.n > fanIn ? Math.ceil(s.n / fanIn) : 0), 0);
    for (const s of segments) if (s.n > fanIn && chunkCount(p, groupsTotal, s.len, vw) > 1) return true;
    segments = segments.map((s) => (s.n > fanIn ? { len: s.len, n: Math.ceil(s.n / fanIn) } : s));
  }
  return false;
}

/** A plan reducing each segment in groups of at most fanIn until fanIn remain, then on the output tiles. */
function treePlan(p: ReductionProblem, stage1: PartialVertex[], values0: ValueCols, segments0: ItemCols, fanIn: number, chunked: boolean): Candidate {
  const values: ValueCols = { tile: values0.tile.copy(), colBegin: values0.colBegin.copy(), colEnd: values0.colEnd.copy() };
  const stages: ItemCols[] = [];
  const vw = vectorWidth('float32', p.device);
  let segments = segments0;
  const over = (c: ItemCols) => {
    for (let s = 0; s < count(c); s++) if (inputsOf(c, s) > fanIn) return true;
    return false;
  };
  while (over(segments)) {
    let groupsTotal = 0;
    for (let s = 0; s < count(segments); s++) if (inputsOf(segments, s) > fanIn) groupsTotal += Math.ceil(inputsOf(segments, s) / fanIn);
    // Sized for no column chunks (exact then).
    const tasks = items(groupsTotal, segments.inputs.n);
    const next = items(count(segments), segments.inputs.n);
    for (let s = 0; s < count(segments); s++) {
      const n = inputsOf(segments, s);
      const first = segments.inStart.a[s];
      const ins = segments.inputs.a;
      const [tile, colBegin, colEnd] = [segments.tile.a[s], segments.colBegin.a[s], segments.colEnd.a[s]];
      if (n <= fanIn) {
        for (let q = 0; q < n; q++) next.inputs.push(ins[first + q]);
        pushItem(next, tile, colBegin, colEnd, -1);
        continue;
      }
      // Consecutive groups whose sizes differ by at most one.
      const groups = Math.ceil(n / fanIn);
      const chunks = chunked ? chunkCount(p, groupsTotal, colEnd - colBegin, vw) : 1;
      const bounds = chunkBounds(colBegin, colEnd, chunks, vw);
      for (let c = 0; c + 1 < bounds.length; c++) {
        let at = first;
        for (let g = 0; g < groups; g++) {
          const size = Math.floor(n / groups) + (g < n % groups ? 1 : 0);
          values.tile.push(-1);
          values.colBegin.push(bounds[c]);
          values.colEnd.push(bounds[c + 1]);
          const out = values.tile.n - 1;
          for (let q = 0; q < size; q++) tasks.inputs.push(ins[at + q]);
          pushItem(tasks, -1, bounds[c], bounds[c + 1], out);
          next.inputs.push(out);
          at += size;
        }
        pushItem(next, tile, bounds[c], bounds[c + 1], -1);
      }
    }
    place(p, tasks, values);
    for (let i = 0; i < count(tasks); i++) values.tile.a[tasks.out.a[i]] = tasks.tile.a[i];
    stages.push(tasks);
    segments = next;
  }
  // The last stage: each segment on its output tile.
  stages.push(segments);
  return costed(p, { name: '', stage1, values, stages, stageCycles: [], cycles: 0 });
}

/** [begin, end) cut into `n` pieces of whole vectors (the last takes the rest). */
function chunkBounds(begin: number, end: number, n: number, vw: number): number[] {
  const len = end - begin;
  const per = Math.ceil(Math.ceil(len / n) / vw) * vw;
  const out = [begin];
  for (let b = begin + per; b < end; b += per) out.push(b);
  out.push(end);
  return out;
}

/**
 * Greedy placement of one stage's tasks (largest first): each on the tile,
 * among those holding one of its inputs and the least-loaded tile, where
 * its estimated receive plus compute cycles end lowest (ties: lower tile).
 */
function place(p: ReductionProblem, tasks: ItemCols, values: ValueCols): void {
  const { device } = p;
  const load = new Float64Array(p.numTiles);
  const heap = new MinHeap(p.numTiles);
  for (let t = 0; t < p.numTiles; t++) heap.push(0, t);
  // Per task: how many of its inputs each candidate tile holds, counted in arrays stamped by task.
  const stamp = new Int32Array(p.numTiles).fill(-1);
  const holds = new Int32Array(p.numTiles);
  const order = bySizeDown(tasks);
  const vt = values.tile.a;
  const ins = tasks.inputs.a;
  for (let oi = 0; oi < order.length; oi++) {
    const i = order[oi];
    const len = tasks.colEnd.a[i] - tasks.colBegin.a[i];
    const i0 = tasks.inStart.a[i];
    const n = tasks.inStart.a[i + 1] - i0;
    const compute = reduceFinalCyclesOf(n, len, 'float32', device);
    while (heap.size > 0 && load[heap.topTile()] !== heap.topLoad()) heap.pop();
    for (let q = 0; q < n; q++) {
      const tile = vt[ins[i0 + q]];
      if (stamp[tile] !== i) {
        stamp[tile] = i;
        holds[tile] = 0;
      }
      holds[tile]++;
    }
    const least = heap.size > 0 ? heap.topTile() : -1;
    if (least >= 0 && stamp[least] !== i) {
      stamp[least] = i;
      holds[least] = 0;
    }
    let best = -1;
    let bestEnd = Infinity;
    // Each input's tile, then the least loaded tile.
    for (let k = 0; k <= n; k++) {
      if (k === n && least < 0) break;
      const tile = k < n ? vt[ins[i0 + k]] : least;
      const end = load[tile] + Math.ceil(((n - holds[tile]) * len * 4) / device.exchangeBytesPerCycle) + compute;
      // Ties to the lower tile.
      if (end < bestEnd || (end === bestEnd && tile < best)) {
        best = tile;
        bestEnd = end;
      }
    }
    tasks.tile.a[i] = best;
    load[best] = bestEnd;
    heap.push(bestEnd, best);
  }
}

/** Task indices by size (columns x inputs) down, ties by index up: one numeric sort of packed keys where they fit. */
function bySizeDown(tasks: ItemCols): Int32Array {
  const n = count(tasks);
  const size = new Float64Array(n);
  let most = 0;
  for (let i = 0; i < n; i++) {
    size[i] = (tasks.colEnd.a[i] - tasks.colBegin.a[i]) * inputsOf(tasks, i);
    most = Math.max(most, size[i]);
  }
  const order = new Int32Array(n);
  const shift = 2 ** Math.ceil(Math.log2(n + 1));
  if ((most + 1) * shift < 2 ** 53) {
    // key = (most - size) * shift + index: exact in a double, so its numeric order is the order wanted.
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (most - size[i]) * shift + i;
    keys.sort();
    for (let i = 0; i < n; i++) order[i] = keys[i] % shift;
    return order;
  }
  for (let i = 0; i < n; i++) order[i] = i;
  return order.sort((a, b) => size[b] - size[a] || a - b);
}

/** Cycles of a ReduceFinal vertex by (partials, length), per device and dtype, memoised: the planner asks the same few shapes millions of times. */
const finalCycles = new WeakMap<DeviceSpec, Map<DeviceDType, Map<number, number>>>();

function reduceFinalCyclesOf(parts: number, len: number, dtype: DeviceDType, device: DeviceSpec): number {
  let byDtype = finalCycles.get(device);
  if (!byDtype) finalCycles.set(device, (byDtype = new Map()));
  let memo = byDtype.get(dtype);
  if (!memo) byDtype.set(dtype, (memo = new Map()));
  // A number key, not a string per call: lengths stay far below 2^26.
  const key = parts * 2 ** 26 + len;
  let c = memo.get(key);
  if (c === undefined) {
    const region = { offset: 0, count: len, dtype };
    c = reduceFinalCodelet.cycles({ fields: { partials: Array.from({ length: parts }, () => region), out: region }, params: {} }, device);
    memo.set(key, c);
  }
  return c;
}

/**
 * A candidate with its estimated cycles, stage by stage, by the engine's
 * model: sync + exchange + compute per stage. On one IPU it is counted
 * straight from the plan (per-tile sums in typed arrays): every planned copy
 * is distinct data to one receiver, so the engine's exchange model reduces
 * to each tile's bytes sent and received, and both codelets are multi-vertex
 * (a tile's cycles are the supervisor's overhead plus their sum). Across
 * IPUs the links matter too: the engine's own model then (engineCost), which
 * the tests also hold this count to.
 */
function costed(p: ReductionProblem, plan: Candidate): Candidate {
  const { device } = p;
  if (device.ipus > 1) {
    const { stageCycles, cycles } = engineCost(p, planOf(p, plan));
    return { ...plan, stageCycles, cycles };
  }
  const n = Math.max(p.numTiles, device.ipus * device.tilesPerIpu);
  // Tallies by tile, kept from call to call (every candidate plan of every reduction is costed): each stage's
  // close() clears the tiles it touched, so they are all zero again when a call returns. Taken out while in
  // use, so a call that throws leaves none half-filled behind.
  const mine = tallies?.work.length === n ? tallies : { work: new Float64Array(n), sent: new Float64Array(n), received: new Float64Array(n), touched: new Uint8Array(n), hasVertex: new Uint8Array(n) };
  tallies = undefined;
  const { work, sent, received, touched, hasVertex } = mine;
  const tiles: number[] = [];
  const touch = (tile: number) => {
    if (touched[tile] === 0) {
      touched[tile] = 1;
      tiles.push(tile);
    }
  };
  // The busiest tile's compute (overhead + its vertices) and exchange cycles, the tallies cleared for the next stage.
  let L = 1;
  for (let k = 2; k <= device.tilesPerSharedBus; k++) L = (L * k) / gcd(L, k);
  const close = (): { cs: number; ex: number } => {
    let cs = 0;
    let ex = 0;
    for (let q = 0; q < tiles.length; q++) {
      const t = tiles[q];
      if (hasVertex[t] === 1) cs = Math.max(cs, device.supervisorOverheadCycles + work[t]);
      const s = sent[t];
      const r = received[t];
      if (s !== 0 || r !== 0) ex = Math.max(ex, Math.ceil(Math.max(s * L, r * L) / (device.exchangeBytesPerCycle * L)));
      work[t] = sent[t] = received[t] = 0;
      touched[t] = hasVertex[t] = 0;
    }
    tiles.length = 0;
    return { cs, ex };
  };
  for (const s of plan.stage1) {
    touch(s.tile);
    hasVertex[s.tile] = 1;
    work[s.tile] += reducePartialCyclesOf(s.end - s.begin, p.xDType, device);
  }
  const cycles = [device.syncCycles + close().cs];
  const vt = plan.values.tile.a;
  for (let s = 0; s < plan.stages.length; s++) {
    const last = s === plan.stages.length - 1;
    const tasks = plan.stages[s];
    const ins = tasks.inputs.a;
    for (let q = 0; q < count(tasks); q++) {
      const tile = tasks.tile.a[q];
      const len = tasks.colEnd.a[q] - tasks.colBegin.a[q];
      const bytes = len * 4;
      const i0 = tasks.inStart.a[q];
      const i1 = tasks.inStart.a[q + 1];
      for (let v = i0; v < i1; v++) {
        const src = vt[ins[v]];
        if (src === tile || bytes === 0) continue;
        touch(src);
        sent[src] += bytes;
        touch(tile);
        received[tile] += bytes;
      }
      touch(tile);
      hasVertex[tile] = 1;
      // With no partials the estimate reads the output's dtype.
      work[tile] += reduceFinalCyclesOf(i1 - i0, len, i1 > i0 || !last ? 'float32' : p.outDType, device);
    }
    const { cs, ex } = close();
    cycles.push(device.syncCycles + ex + cs);
  }
  tallies = mine;
  return { ...plan, stageCycles: cycles, cycles: cycles.reduce((a, b) => a + b, 0) };
}

/** costed's tallies by tile (all zero between calls). */
let tallies: { work: Float64Array; sent: Float64Array; received: Float64Array; touched: Uint8Array; hasVertex: Uint8Array } | undefined;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Cycles of a ReducePartial vertex by (input elements, dtype), memoised as reduceFinalCyclesOf is. */
const partialCycles = new WeakMap<DeviceSpec, Map<DeviceDType, Map<number, number>>>();

function reducePartialCyclesOf(count: number, dtype: DeviceDType, device: DeviceSpec): number {
  let byDtype = partialCycles.get(device);
  if (!byDtype) partialCycles.set(device, (byDtype = new Map()));
  let memo = byDtype.get(dtype);
  if (!memo) byDtype.set(dtype, (memo = new Map()));
  let c = memo.get(count);
  if (c === undefined) {
    c = reducePartialCodelet.cycles({ fields: { in: { offset: 0, count, dtype }, out: { offset: 0, count: 1, dtype: 'float32' } }, params: {} }, device);
    memo.set(count, c);
  }
  return c;
}

/**
 * A plan costed by the engine's own model (sim/cost.ts: compute sets from
 * the codelets' estimators, the exchange with its broadcast rules and
 * IPU-Links): what costed() counts directly on one IPU.
 */
export function engineCost(p: ReductionProblem, plan: ReducePlan): ReducePlan {
  const { device } = p;
  const region = (count: number, dtype: DeviceDType) => ({ offset: 0, count, dtype });
  const stage1: Vertex[] = plan.stage1.map((s) => {
    const v = plan.values[s.value];
    return { codelet: 'ReducePartial', tile: s.tile, fields: { in: region(s.end - s.begin, p.xDType), out: region(v.colEnd - v.colBegin, 'float32') }, params: {} };
  });
  const cycles = [device.syncCycles + computeSetCost({ id: 0, name: '', op: '', vertices: vertexTable(stage1) }, ESTIMATORS, device).cycles];
  let nextOffset = 0;
  for (const [s, tasks] of plan.stages.entries()) {
    const last = s === plan.stages.length - 1;
    const copies = new CopyTableBuilder();
    const vertices: Vertex[] = [];
    for (const t of tasks) {
      const len = t.colEnd - t.colBegin;
      for (const id of t.inputs) {
        const v = plan.values[id];
        if (v.tile !== t.tile) copies.push(v.tile, nextOffset++, t.tile, 0, len * 4);
      }
      const partial = region(len, 'float32');
      vertices.push({
        codelet: 'ReduceFinal',
        tile: t.tile,
        fields: { partials: new Array<typeof partial>(t.inputs.length).fill(partial), out: region(len, last ? p.outDType : 'float32') },
        params: {},
      });
    }
    const ex = exchangeCost({ id: 0, name: '', op: '', copies: copies.finish() }, device).cycles;
    const cs = computeSetCost({ id: 0, name: '', op: '', vertices: vertexTable(vertices.sort((a, b) => a.tile - b.tile)) }, ESTIMATORS, device).cycles;
    cycles.push(device.syncCycles + ex + cs);
  }
  return { ...plan, stageCycles: cycles, cycles: cycles.reduce((a, b) => a + b, 0) };
}

/** A binary min-heap of (load, tile) in typed arrays, ties to the lower tile. */
class MinHeap {
  private load: Float64Array;
  private tile: Int32Array;
  size = 0;
  constructor(capacity: number) {
    // Each pop is matched by at most one push per placed task, so twice the tiles plus tasks is ample: grow if not.
    this.load = new Float64Array(Math.max(16, capacity));
    this.tile = new Int32Array(Math.max(16, capacity));
  }
  private less(i: number, j: number): boolean {
    return this.load[i] < this.load[j] || (this.load[i] === this.load[j] && this.tile[i] < this.tile[j]);
  }
  private swap(i: number, j: number): void {
    const l = this.load[i];
    this.load[i] = this.load[j];
    this.load[j] = l;
    const t = this.tile[i];
    this.tile[i] = this.tile[j];
    this.tile[j] = t;
  }
  topLoad(): number {
    return this.load[0];
  }
  topTile(): number {
    return this.tile[0];
  }
  push(load: number, tile: number): void {
    if (this.size === this.load.length) this.grow();
    let i = this.size++;
    this.load[i] = load;
    this.tile[i] = tile;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }
  pop(): void {
    if (this.size === 0) return;
    this.size--;
    if (this.size === 0) return;
    this.load[0] = this.load[this.size];
    this.tile[0] = this.tile[this.size];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < this.size && this.less(l, m)) m = l;
      if (r < this.size && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
  }
  private grow(): void {
    const load = new Float64Array(this.load.length * 2);
    load.set(this.load);
    const tile = new Int32Array(this.tile.length * 2);
    tile.set(this.tile);
    this.load = load;
    this.tile = tile;
  }
}
