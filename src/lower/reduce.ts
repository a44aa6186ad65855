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
 * the output, in stages the planner chooses (src/lower/reduce-plan.ts:
 * planReduction costs trees of several fan-ins, with and without column
 * chunks, and the naive plan, with the engine's own model; the cheapest
 * wins). A compile plans each distinct problem once. The choice is noted
 * (ctx.note('plan', ...)) for `sim compile`.
 */
import { reduceFinalCodelet, reducePartialCodelet } from '../../sim/codelets/reduce.js';
import type { DeviceDType } from '../../sim/program.js';
import type { LowerContext } from './context.js';
import type { BuildTensor, DeviceGraph, TileRange } from './devicegraph.js';
import { chooseReduction, type ReducePlan, type ReductionProblem } from './reduce-plan.js';

export { engineCost, planReduction, type PartialVertex, type PlanTask, type PlanValue, type ReducePlan, type ReductionProblem } from './reduce-plan.js';

export interface ReduceOptions {
  /** Sum |x| instead of x. */
  abs?: boolean;
  /** Multiply the sums by this (e.g. 1 / rows for a mean). */
  scale?: number;
  /** 'auto' (default): the planner's choice; 'naive': full partials straight to the output's tiles. */
  plan?: 'auto' | 'naive';
}

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
  const made = { key, ...chooseReduction(p, mode) };
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
        // Each value's columns are read once, by one task (segments and chunks cut them apart).
        return ctx.onTileOnce(tensor, base + task.colBegin - v.colBegin, base + task.colEnd - v.colBegin, task.tile);
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
