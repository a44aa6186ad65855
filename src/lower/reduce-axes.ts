/**
 * Reductions over arbitrary axes (popops::reduce in spirit): ReduceSum,
 * ReduceMean, ReduceMax, ReduceMin and ReduceProd, and the gradients of broadcasting ops (the output
 * gradient summed over the broadcast axes).
 *
 * The axes are first merged (size-1 axes dropped, neighbouring reduced or
 * kept axes joined), so the problem is a row-major tensor of alternating kept
 * and reduced axes. Then:
 *   - nothing reduced: an alias (or a scaled copy when a scale is asked);
 *   - a sum over the leading axes ([reduced, kept] or [reduced]): the shared
 *     two-stage reduceLeading of ./reduce.ts;
 *   - otherwise every tile reduces its own part of the input into the
 *     interval of output elements that part touches (ReduceAxesPartial). When
 *     those intervals do not overlap, no output element has inputs on two
 *     tiles: the output is mapped onto those intervals and the tiles write it
 *     directly (one stage). Else each tile writes an fp32 partial, and the
 *     tiles owning the (linearly mapped) output combine the pieces of every
 *     partial that overlap their elements (ReduceAxesFinal, stage 2).
 */
import { nelms } from '../ir/tensorinfo.js';
import { mapBroadcast, indexExtent, rowMajorStrides, type Operand } from './broadcast.js';
import type { LowerContext } from './context.js';
import type { BuildTensor, Slice, TileRange } from './devicegraph.js';
import { reduceLeading } from './reduce.js';
import { reduceAxesFinalCodelet, reduceAxesPartialCodelet } from '../../sim/codelets/reduce-axes.js';
import { zeroRegionsCodelet } from '../../sim/codelets/shape.js';
import { broadcastCopyCodelet } from '../../sim/codelets/binary.js';

export type ReduceKind = 'sum' | 'max' | 'min' | 'prod';

export interface ReduceAxesOptions {
  kind?: ReduceKind;
  /** The result is multiplied by this (1/N for a mean, -1 for a negated gradient). */
  scale?: number;
}

const KIND_CODE: Record<ReduceKind, number> = { sum: 0, max: 1, min: 2, prod: 3 };

/** Axes of `from` to reduce so the result broadcasts back as `to` (leading extra axes, and 1s of `to` over larger dims). */
export function reducedAxes(from: readonly number[], to: readonly number[]): number[] {
  const off = from.length - to.length;
  const axes: number[] = [];
  for (let k = 0; k < from.length; k++) {
    if (k < off) axes.push(k);
    else if (to[k - off] === 1 && from[k] !== 1) axes.push(k);
  }
  return axes;
}

/** `shape` merged into alternating runs: dims and whether each run is reduced. Size-1 axes dropped. */
export function mergeReduceAxes(shape: readonly number[], axes: readonly number[]): { dims: number[]; reduced: boolean[] } {
  const red = new Set(axes);
  const dims: number[] = [];
  const reduced: boolean[] = [];
  for (const [k, d] of shape.entries()) {
    if (d === 1) continue;
    const r = red.has(k);
    if (reduced.length > 0 && reduced[reduced.length - 1] === r) dims[dims.length - 1] *= d;
    else {
      dims.push(d);
      reduced.push(r);
    }
  }
  return { dims, reduced };
}

/** Whether reducing `shape` over `axes` combines any elements (a reduced axis longer than 1). */
export function needsReduction(shape: readonly number[], axes: readonly number[]): boolean {
  return axes.some((a) => shape[a] > 1);
}

/**
 * Create op output `i` as `x` reduced over `axes`: an alias when nothing is
 * combined and no scale is asked, else a new tensor.
 */
export function reduceToOutput(ctx: LowerContext, i: number, x: Operand, axes: readonly number[], opts: ReduceAxesOptions = {}): void {
  const scale = opts.scale ?? 1;
  if (nelms(x.shape) === 0) {
    // Over no elements: the identity (0, -inf, +inf, 1); a mean of nothing is 0, as onnxruntime gives.
    const out = ctx.output(i);
    if (out.size === 0) return;
    const kind = opts.kind ?? 'sum';
    const int = out.dtype === 'int32';
    const identity = { sum: 0, max: int ? -(2 ** 31) : -Infinity, min: int ? 2 ** 31 - 1 : Infinity, prod: 1 }[kind];
    ctx.computeSet('identity');
    for (const r of ctx.ranges(out)) ctx.vertex(zeroRegionsCodelet, r.tile, { out: [ctx.slice(out, r.begin, r.end)] }, { value: identity === 0 ? 0 : identity * (int ? 1 : scale) });
    return;
  }
  if (!needsReduction(x.shape, axes)) {
    if (scale === 1) {
      ctx.aliasOutput(i, x.t);
      return;
    }
    const out = ctx.output(i, { like: x.t });
    mapBroadcast(ctx, broadcastCopyCodelet, { in: x }, { t: out, shape: ctx.op.outInfo(i).shape }, { params: { scale }, name: 'scale' });
    return;
  }
  reduceAxes(ctx, x, axes, ctx.output(i), opts);
}

/**
 * out = scale x reduce(x) over `axes` (out has x's elements with those axes
 * removed, in row-major order). May remap `out` (one-stage case), so pass a
 * tensor nothing has used yet.
 */
export function reduceAxes(ctx: LowerContext, x: Operand, axes: readonly number[], out: BuildTensor, opts: ReduceAxesOptions = {}): void {
  const kind = opts.kind ?? 'sum';
  const scale = opts.scale ?? 1;
  const { dims, reduced } = mergeReduceAxes(x.shape, axes);
  if (!reduced.some(Boolean)) {
    mapBroadcast(ctx, broadcastCopyCodelet, { in: x }, { t: out, shape: [out.size] }, { params: { scale }, name: 'scale' });
    return;
  }
  if (kind === 'sum' && reduced[0] && reduced.length <= 2) {
    ctx.note('reduce', `sum over the leading axes of [${x.shape.join(', ')}] (${dims.join(' x ')} merged): two-stage reduceLeading`);
    reduceLeading(ctx, x.t, out, { scale });
    return;
  }

  // Output stride of every merged axis; 0 for reduced ones.
  const keptDims = dims.filter((_, k) => !reduced[k]);
  const keptStrides = rowMajorStrides(keptDims);
  let kept = 0;
  const outStrides = dims.map((_, k) => (reduced[k] ? 0 : keptStrides[kept++]));
  const parts = ctx.ranges(x.t).map((r) => {
    const [lo, hi] = indexExtent(dims, outStrides, r.begin, r.end);
    return { r, lo, hi };
  });
  const sorted = [...parts].sort((a, b) => a.lo - b.lo);
  const disjoint = sorted.every((p, j) => j === 0 || p.lo >= sorted[j - 1].hi);
  const arrays = { shape: dims, out: outStrides };
  const params = (r: TileRange, lo: number, s: number) => ({ begin: r.begin, outBase: lo, kind: KIND_CODE[kind], scale: s });

  if (disjoint) {
    ctx.note('reduce', `${kind} of [${x.shape.join(', ')}] over axes [${axes.join(', ')}]: one stage, each output element's inputs on one tile`);
    ctx.graph.setTileMapping(out, parts.map((p) => ({ tile: p.r.tile, begin: p.lo, end: p.hi })));
    ctx.computeSet('reduce');
    for (const p of parts) ctx.vertex(reduceAxesPartialCodelet, p.r.tile, { in: ctx.slice(x.t, p.r.begin, p.r.end), out: ctx.slice(out, p.lo, p.hi) }, params(p.r, p.lo, scale), arrays);
    return;
  }

  ctx.note('reduce', `${kind} of [${x.shape.join(', ')}] over axes [${axes.join(', ')}]: two stages, ${parts.length} partials`);
  ctx.computeSet('reduce/partials');
  const partials = parts.map((p, j) => {
    const t = ctx.addTensor(`partial${j}`, 'float32', [p.hi - p.lo], 'temporary');
    ctx.graph.mapToTile(t, p.r.tile);
    ctx.vertex(reduceAxesPartialCodelet, p.r.tile, { in: ctx.slice(x.t, p.r.begin, p.r.end), out: ctx.slice(t) }, params(p.r, p.lo, 1), arrays);
    return { t, lo: p.lo, hi: p.hi };
  });
  ctx.computeSet('reduce/final');
  for (const r of ctx.ranges(out)) {
    const pieces: Slice[] = [];
    const offsets: number[] = [];
    for (const p of partials) {
      const b = Math.max(r.begin, p.lo);
      const e = Math.min(r.end, p.hi);
      if (e <= b) continue;
      pieces.push(ctx.onTile(p.t, b - p.lo, e - p.lo, r.tile));
      offsets.push(b - r.begin);
    }
    ctx.vertex(reduceAxesFinalCodelet, r.tile, { partials: pieces, out: ctx.slice(out, r.begin, r.end) }, { kind: KIND_CODE[kind], scale }, { offsets });
  }
}

/** x's shape with `axes` set to 1: the keepdims shape, whose elements are a reduction's in order. */
export function keepDimsShape(shape: readonly number[], axes: readonly number[]): number[] {
  const red = new Set(axes);
  return shape.map((d, k) => (red.has(k) ? 1 : d));
}

/** Elements of `shape` combined into each output element of a reduction over `axes`. */
export function reductionSize(shape: readonly number[], axes: readonly number[]): number {
  return nelms(axes.map((a) => shape[a]));
}
