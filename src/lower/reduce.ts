/**
 * The two-stage reduction PopLibs uses, with a planner for its second stage.
 *
 * reduceLeading sums a row-major [rows, cols] view of `x` over its rows into
 * `out` (cols elements): a bias gradient, or with cols = 1 a full reduction.
 *
 * Stage 1: every tile reduces each contiguous run of `x` it holds into a
 * float32 partial on that tile: a run of at least a row gives a partial of
 * every column; a shorter run gives a partial of just the columns it covers
 * (split in two where it wraps past the last column), so no tile sends
 * columns it never saw.
 *
 * Stage 2: the partials of each column are combined on the tiles that own
 * the output. The planner chooses how (src/lower/reduce.ts planReduction):
 * the output's columns are cut into segments (where the output's tile or the
 * set of partials covering a column changes); a segment with more partials
 * than a fan-in f is first reduced in groups of at most f partials on other
 * tiles (intermediate stages, spread over all tiles by a greedy balance of
 * estimated cycles, optionally with the segment cut into column chunks of
 * whole vectors), until at most f remain; the last stage sums them on the
 * output's tiles, scaled. Candidates: 1 to 4 stages (f = ceil(m^(1/L)) for
 * the most partials m of any column), with and without column chunks, and
 * the naive plan (every tile's full-width partial sent to the output's
 * tiles). Each candidate is costed with the engine's own model
 * (sim/cost.ts: compute sets from the codelets' estimators, exchanges with
 * their broadcast rules, one sync per stage; on one IPU counted straight
 * from the plan, the same numbers: costed()); the cheapest wins, ties to the
 * fewer stages. A compile plans each distinct problem once. The choice is noted (ctx.note('plan', ...)) for `sim compile`.
 */
import { CodeletRegistry } from '../../sim/codelet.js';
import { reduceFinalCodelet, reducePartialCodelet } from '../../sim/codelets/reduce.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { computeSetCost, exchangeCost } from '../../sim/cost.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { DeviceDType, Vertex } from '../../sim/program.js';
import { CopyTableBuilder } from '../../sim/copies.js';
import type { LowerContext } from './context.js';
import type { BuildTensor, DeviceGraph, TileRange } from './devicegraph.js';
import { vertexTable } from '../../sim/vertex-table.js';

export interface ReduceOptions {
  /** Sum |x| instead of x. */
  abs?: boolean;
  /** Multiply the sums by this (e.g. 1 / rows for a mean). */
  scale?: number;
  /** 'auto' (default): the planner's choice; 'naive': full partials straight to the output's tiles. */
  plan?: 'auto' | 'naive';
}

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

const ESTIMATORS = new CodeletRegistry();
ESTIMATORS.add(reducePartialCodelet);
ESTIMATORS.add(reduceFinalCodelet);

export function reduceLeading(ctx: LowerContext, x: BuildTensor, out: BuildTensor, opts: ReduceOptions = {}): void {
  const problem: ReductionProblem = {
    x: ctx.ranges(x),
    xDType: x.dtype,
    cols: out.size,
    out: ctx.ranges(out),
    outDType: out.dtype,
    device: ctx.device,
    numTiles: ctx.graph.numTiles,
  };
  const { chosen, others } = planOnce(ctx.graph, problem, opts.plan ?? 'auto');
  const rows = out.size > 0 ? x.size / out.size : 0;
  ctx.note(
    'plan',
    `reduce [${rows}, ${out.size}] (${x.dtype} -> ${out.dtype}): ${chosen.stage1.length} partials on ${new Set(chosen.stage1.map((p) => p.tile)).size} tiles, ` +
      `${chosen.name}: ${chosen.stages.length + 1} compute sets, ~${chosen.cycles} cycles (stages ${chosen.stageCycles.join(' + ')}, syncs included)` +
      (others.length ? `; other candidates: ${others.join(', ')}` : ''),
  );
  emit(ctx, x, out, chosen, opts);
}

interface PlanMade {
  key: Int32Array;
  chosen: ReducePlan;
  /** The other candidates, named with their cycles (for the note). */
  others: string[];
}

/** Per compile (its graph), the plans made, by a hash of their problem. */
const plansMade = new WeakMap<DeviceGraph, Map<number, PlanMade[]>>();

const DTYPE_CODE: Record<DeviceDType, number> = { float32: 0, float16: 1, int32: 2, uint8: 3 };

/**
 * planReduction, once per distinct problem of a compile: a plan depends only
 * on the mappings of x and out, the columns, the dtypes, the tiles and the
 * mode, and a model reduces the same mappings again and again (the bias
 * gradients of a layer's projections, every layer's). Plans are never
 * changed once made, so an equal problem shares its plan.
 */
function planOnce(graph: DeviceGraph, p: ReductionProblem, mode: 'auto' | 'naive'): PlanMade {
  const key = new Int32Array(6 + 3 * (p.x.length + p.out.length));
  key[0] = p.cols;
  key[1] = p.numTiles;
  key[2] = DTYPE_CODE[p.xDType];
  key[3] = DTYPE_CODE[p.outDType];
  key[4] = mode === 'naive' ? 1 : 0;
  key[5] = p.x.length;
  let k = 6;
  for (const rs of [p.x, p.out])
    for (const r of rs) {
      key[k++] = r.tile;
      key[k++] = r.begin;
      key[k++] = r.end;
    }
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193);
  let byHash = plansMade.get(graph);
  if (!byHash) plansMade.set(graph, (byHash = new Map()));
  let list = byHash.get(h);
  if (!list) byHash.set(h, (list = []));
  for (const m of list) if (m.key.length === key.length && m.key.every((x, i) => x === key[i])) return m;
  const { chosen, candidates } = planReduction(p, mode);
  const made = { key, chosen, others: candidates.filter((c) => c !== chosen).map((c) => `${c.name} ${c.cycles}`) };
  list.push(made);
  return made;
}

/**
 * Grow the chosen plan into compute sets, vertices and exchanges. Each
 * stage's values are runs of one float32 tensor, each run on its tile: one
 * tensor per value made hundreds of thousands of tensors, and as many
 * exchange buffers, for a model's bias gradients.
 */
function emit(ctx: LowerContext, x: BuildTensor, out: BuildTensor, plan: ReducePlan, opts: ReduceOptions): void {
  // Where each value lives: its stage's tensor and its first element there.
  const home: { tensor: BuildTensor; base: number }[] = [];
  const stageTensor = (name: string, ids: readonly number[]): BuildTensor => {
    let size = 0;
    const mapping: TileRange[] = [];
    for (const id of ids) {
      const v = plan.values[id];
      mapping.push({ tile: v.tile, begin: size, end: size + v.colEnd - v.colBegin });
      size += v.colEnd - v.colBegin;
    }
    const t = ctx.addTensor(name, 'float32', [size], 'temporary');
    ctx.graph.setTileMapping(t, mapping);
    for (const [k, id] of ids.entries()) home[id] = { tensor: t, base: mapping[k].begin };
    return t;
  };
  ctx.computeSet('reduce/partials');
  const partials = stageTensor('partials', plan.stage1.map((p) => p.value));
  for (const p of plan.stage1) {
    const v = plan.values[p.value];
    const { base } = home[p.value];
    ctx.vertex(reducePartialCodelet, p.tile, { in: ctx.slice(x, p.begin, p.end), out: ctx.slice(partials, base, base + v.colEnd - v.colBegin) }, { offset: p.offset, abs: opts.abs ? 1 : 0 });
  }
  for (const [s, tasks] of plan.stages.entries()) {
    const last = s === plan.stages.length - 1;
    ctx.computeSet(last ? 'reduce/final' : `reduce/intermediate${s + 1}`);
    const outs = tasks.filter((t) => !last && t.out !== undefined).map((t) => t.out!);
    const sums = outs.length > 0 ? stageTensor(`intermediate${s + 1}`, outs) : undefined;
    for (const task of tasks) {
      const parts = task.inputs.map((id) => {
        const v = plan.values[id];
        const { tensor, base } = home[id];
        return ctx.onTile(tensor, base + task.colBegin - v.colBegin, base + task.colEnd - v.colBegin, task.tile);
      });
      let dst;
      if (last || task.out === undefined || !sums) dst = ctx.slice(out, task.colBegin, task.colEnd);
      else {
        const { base } = home[task.out];
        dst = ctx.slice(sums, base, base + task.colEnd - task.colBegin);
      }
      ctx.vertex(reduceFinalCodelet, task.tile, { partials: parts, out: dst }, { scale: last ? (opts.scale ?? 1) : 1 });
    }
  }
}

/**
 * The candidate plans for a reduction, each with its estimated cycles, and
 * the chosen one (mode 'naive' forces the naive plan).
 */
export function planReduction(p: ReductionProblem, mode: 'auto' | 'naive' = 'auto'): { chosen: ReducePlan; candidates: ReducePlan[] } {
  const naive = naivePlan(p);
  if (mode === 'naive' || p.cols === 0 || p.x.length === 0) return { chosen: naive, candidates: [naive] };
  const { stage1, values } = windowedPartials(p);
  const segments = segmentsOf(p, values);
  const most = segments.reduce((m, s) => Math.max(m, s.inputs.length), 0);
  const candidates: ReducePlan[] = [];
  const seen = new Set<string>();
  for (let levels = 1; levels <= 4; levels++) {
    const fanIn = levels === 1 ? Infinity : Math.max(2, Math.ceil(most ** (1 / levels) - 1e-9));
    for (const chunked of levels === 1 ? [false] : [false, true]) {
      // A chunked tree that cuts no segment at any stage is the plain tree again: not planned twice.
      if (chunked && !chunksAny(p, segments, fanIn)) continue;
      const plan = treePlan(p, stage1, values, segments, fanIn, chunked);
      const key = JSON.stringify(plan.stages.map((s) => s.length)) + plan.stages.length + (chunked ? 'c' : '') + fanIn;
      if (seen.has(key) || (levels > 1 && plan.stages.length === 1)) continue;
      seen.add(key);
      plan.name = levels === 1 ? 'one stage on the output tiles' : `${plan.stages.length} stages, fan-in ${fanIn}${chunked ? ', column chunks' : ''}`;
      candidates.push(plan);
    }
  }
  candidates.push(naive);
  const chosen = candidates.reduce((best, c) => (c.cycles < best.cycles || (c.cycles === best.cycles && c.stages.length < best.stages.length) ? c : best));
  return { chosen, candidates };
}

/** Every tile's full-width partial sent to the output's tiles, one vertex per output range. */
function naivePlan(p: ReductionProblem): ReducePlan {
  const values: PlanValue[] = [];
  const stage1: PartialVertex[] = p.x.map((r) => {
    values.push({ tile: r.tile, colBegin: 0, colEnd: p.cols });
    return { tile: r.tile, begin: r.begin, end: r.end, value: values.length - 1, offset: p.cols ? r.begin % p.cols : 0 };
  });
  const final: PlanTask[] = p.out.map((r) => ({ tile: r.tile, colBegin: r.begin, colEnd: r.end, inputs: values.map((_, i) => i) }));
  return costed(p, { name: 'naive (full partials to the output tiles)', stage1, values, stages: [final], stageCycles: [], cycles: 0 });
}

/** Stage 1 with each run's partial covering only its columns. */
function windowedPartials(p: ReductionProblem): { stage1: PartialVertex[]; values: PlanValue[] } {
  const { cols } = p;
  const values: PlanValue[] = [];
  const stage1: PartialVertex[] = [];
  const add = (tile: number, begin: number, end: number, colBegin: number, colEnd: number, offset: number) => {
    values.push({ tile, colBegin, colEnd });
    stage1.push({ tile, begin, end, value: values.length - 1, offset });
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

interface Segment {
  colBegin: number;
  colEnd: number;
  outTile: number;
  inputs: number[];
}

/** Column segments with one output tile and one set of covering values each. */
function segmentsOf(p: ReductionProblem, values: readonly PlanValue[]): Segment[] {
  const cuts = new Set<number>([0, p.cols]);
  for (const r of p.out) cuts.add(r.begin).add(r.end);
  for (const v of values) cuts.add(v.colBegin).add(v.colEnd);
  const points = [...cuts].sort((a, b) => a - b);
  const byBegin = values.map((_, i) => i).sort((a, b) => values[a].colBegin - values[b].colBegin || a - b);
  const segments: Segment[] = [];
  let next = 0;
  let active: number[] = [];
  let outIdx = 0;
  const outs = [...p.out].sort((a, b) => a.begin - b.begin);
  for (let k = 0; k + 1 < points.length; k++) {
    const [b, e] = [points[k], points[k + 1]];
    while (next < byBegin.length && values[byBegin[next]].colBegin <= b) active.push(byBegin[next++]);
    active = active.filter((i) => values[i].colEnd > b);
    while (outIdx < outs.length && outs[outIdx].end <= b) outIdx++;
    const inputs = active.filter((i) => values[i].colBegin <= b).sort((x, y) => x - y);
    segments.push({ colBegin: b, colEnd: e, outTile: outs[outIdx].tile, inputs });
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
function chunksAny(p: ReductionProblem, segments0: readonly Segment[], fanIn: number): boolean {
  const vw = vectorWidth('float32', p.device);
  let segments = segments0.map((s) => ({ len: s.colEnd - s.colBegin, n: s.inputs.length }));
  while (segments.some((s) => s.n > fanIn)) {
    const groupsTotal = segments.reduce((n, s) => n + (s.n > fanIn ? Math.ceil(s.n / fanIn) : 0), 0);
    for (const s of segments) if (s.n > fanIn && chunkCount(p, groupsTotal, s.len, vw) > 1) return true;
    segments = segments.map((s) => (s.n > fanIn ? { len: s.len, n: Math.ceil(s.n / fanIn) } : s));
  }
  return false;
}

/** A plan reducing each segment in groups of at most fanIn until fanIn remain, then on the output tiles. */
function treePlan(p: ReductionProblem, stage1: PartialVertex[], values0: PlanValue[], segments0: Segment[], fanIn: number, chunked: boolean): ReducePlan {
  const values = values0.map((v) => ({ ...v }));
  const stages: PlanTask[][] = [];
  const vw = vectorWidth('float32', p.device);
  let segments = segments0;
  while (segments.some((s) => s.inputs.length > fanIn)) {
    const groupsTotal = segments.reduce((n, s) => n + (s.inputs.length > fanIn ? Math.ceil(s.inputs.length / fanIn) : 0), 0);
    const tasks: PlanTask[] = [];
    const nextSegments: Segment[] = [];
    for (const s of segments) {
      if (s.inputs.length <= fanIn) {
        nextSegments.push(s);
        continue;
      }
      const groups = split(s.inputs, Math.ceil(s.inputs.length / fanIn));
      const len = s.colEnd - s.colBegin;
      const chunks = chunked ? chunkCount(p, groupsTotal, len, vw) : 1;
      const bounds = chunkBounds(s.colBegin, s.colEnd, chunks, vw);
      for (let c = 0; c + 1 < bounds.length; c++) {
        const inputs: number[] = [];
        for (const g of groups) {
          values.push({ tile: -1, colBegin: bounds[c], colEnd: bounds[c + 1] });
          const out = values.length - 1;
          tasks.push({ tile: -1, colBegin: bounds[c], colEnd: bounds[c + 1], inputs: g, out });
          inputs.push(out);
        }
        nextSegments.push({ colBegin: bounds[c], colEnd: bounds[c + 1], outTile: s.outTile, inputs });
      }
    }
    place(p, tasks, values);
    for (const t of tasks) values[t.out!].tile = t.tile;
    stages.push(tasks);
    segments = nextSegments;
  }
  stages.push(segments.map((s) => ({ tile: s.outTile, colBegin: s.colBegin, colEnd: s.colEnd, inputs: s.inputs })));
  return costed(p, { name: '', stage1, values, stages, stageCycles: [], cycles: 0 });
}

/** `items` in `n` consecutive groups whose sizes differ by at most one. */
function split<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (let g = 0; g < n; g++) {
    const size = Math.floor(items.length / n) + (g < items.length % n ? 1 : 0);
    out.push(items.slice(at, at + size));
    at += size;
  }
  return out;
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
function place(p: ReductionProblem, tasks: PlanTask[], values: readonly PlanValue[]): void {
  const { device } = p;
  const load = new Float64Array(p.numTiles);
  const heap = new MinHeap(p.numTiles);
  for (let t = 0; t < p.numTiles; t++) heap.push(0, t);
  // Per task: how many of its inputs each candidate tile holds, counted in arrays stamped by task
  // (no Set or filtered list per task: the planner places hundreds of thousands per model).
  const stamp = new Int32Array(p.numTiles).fill(-1);
  const holds = new Int32Array(p.numTiles);
  const size = (t: PlanTask) => (t.colEnd - t.colBegin) * t.inputs.length;
  const order = tasks.map((_, i) => i).sort((a, b) => size(tasks[b]) - size(tasks[a]) || a - b);
  for (let oi = 0; oi < order.length; oi++) {
    const i = order[oi];
    const task = tasks[i];
    const len = task.colEnd - task.colBegin;
    const compute = reduceFinalCyclesOf(task.inputs.length, len, 'float32', device);
    while (heap.size > 0 && load[heap.topTile()] !== heap.topLoad()) heap.pop();
    for (let q = 0; q < task.inputs.length; q++) {
      const tile = values[task.inputs[q]].tile;
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
    // Each input's tile, then the least loaded tile (no closure or pair per candidate: this runs per task of every candidate plan).
    const n = task.inputs.length;
    for (let k = 0; k <= n; k++) {
      if (k === n && least < 0) break;
      const tile = k < n ? values[task.inputs[k]].tile : least;
      const end = load[tile] + Math.ceil(((n - holds[tile]) * len * 4) / device.exchangeBytesPerCycle) + compute;
      // Ties to the lower tile.
      if (end < bestEnd || (end === bestEnd && tile < best)) {
        best = tile;
        bestEnd = end;
      }
    }
    task.tile = best;
    load[best] = bestEnd;
    heap.push(bestEnd, best);
  }
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
 * Estimated cycles of a plan, stage by stage, with the engine's model: sync +
 * exchange + compute per stage. On one IPU it is counted straight from the
 * plan (per-tile sums in typed arrays): every planned copy is distinct data
 * to one receiver, so the engine's exchange model reduces to each tile's
 * bytes sent and received, and both codelets are multi-vertex (a tile's
 * cycles are the supervisor's overhead plus their sum). The planner costs
 * several candidates per reduction, and building each one's vertices and
 * copy table for the engine was most of its time and garbage. Across IPUs
 * the links matter too: the engine's own model then (engineCost), which the
 * tests also hold this count to.
 */
function costed(p: ReductionProblem, plan: ReducePlan): ReducePlan {
  const { device } = p;
  if (device.ipus > 1) return engineCost(p, plan);
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
  for (const [s, tasks] of plan.stages.entries()) {
    const last = s === plan.stages.length - 1;
    for (let q = 0; q < tasks.length; q++) {
      const t = tasks[q];
      const len = t.colEnd - t.colBegin;
      const bytes = len * 4;
      for (let v = 0; v < t.inputs.length; v++) {
        const src = plan.values[t.inputs[v]].tile;
        if (src === t.tile || bytes === 0) continue;
        touch(src);
        sent[src] += bytes;
        touch(t.tile);
        received[t.tile] += bytes;
      }
      touch(t.tile);
      hasVertex[t.tile] = 1;
      // With no partials the estimate reads the output's dtype.
      work[t.tile] += reduceFinalCyclesOf(t.inputs.length, len, t.inputs.length > 0 || !last ? 'float32' : p.outDType, device);
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
