/**
 * Moving data without arithmetic (popops' rearrangements, Poplar's Copy
 * programs, in spirit): the lowering side of the shape ops.
 *
 * Most shape ops are an *affine view* of a row-major source: output element
 * with multi-index i is source element `offset + sum_k i_k strides[k]`
 * (Transpose permutes the strides, Slice scales them by the steps and moves
 * the offset, a Concat piece is a view of the output). After merging axes
 * (size-1 axes dropped; neighbours merged where they are contiguous in the
 * source), one of three lowerings applies:
 *
 *   - the view is the whole source in order: the output is an alias (no
 *     copy, no cycles);
 *   - the innermost merged axis is contiguous in the source (stride 1) and
 *     its runs hold at least COPY_MIN_RUN_BYTES: the runs are copied by one
 *     exchange straight into the output, adjacent runs merged (a copy whose
 *     source and destination share a tile is an on-tile copy, which the
 *     exchange does at no exchange cost: sim/cost.ts);
 *   - otherwise (single elements or short runs: a transpose, a strided or
 *     reversed slice) one Rearrange MultiVertex per output tile range does
 *     per-element addressing, with the view's merged shape and strides as
 *     vertex `arrays`. It reads the source interval covering everything its
 *     range needs (brought by onTile) when that interval is not much larger
 *     than what is needed; otherwise (a transpose cut into thin ranges) the
 *     exchange packs exactly the needed elements into one buffer on the tile
 *     (ctx.gather; see rearrangeInto). Memory cost: the covering interval or
 *     the staging buffer, per tile.
 *
 * When a view is one contiguous interval of the source, its output is mapped
 * onto the tiles that hold that interval (PopART clones the view's mapping),
 * so the copy never leaves the tile.
 *
 * The inverse, scatterInto (Slice's gradient), writes a source-shaped tensor
 * that is zero outside the view: long runs are copied into place and the
 * gaps zeroed (ZeroRegions, popops::zero), else one RearrangeScatter vertex
 * per tile range reads the interval of the view's elements landing there.
 *
 * Exchanges into existing tensors are added with copyRuns (see there for how
 * it reaches the op's program).
 */
import { DTYPE_BYTES, type ProgramStep } from '../../sim/program.js';
import type { LowerContext } from './context.js';
import type { BuildTensor, Slice, TileRange } from './devicegraph.js';
import { rowMajorStrides } from './broadcast.js';
import { RunList } from './layout.js';
import { rearrangeCodelet, rearrangeScatterCodelet, zeroRegionsCodelet } from '../../sim/codelets/shape.js';

/**
 * Runs shorter than this many bytes go through the Rearrange vertex instead
 * of the exchange: below two 64-bit words a run is one or two stores, and an
 * exchange program entry per run would cost more code and setup than the
 * vertex's per-element addressing (a choice: no public figure exists).
 */
export const COPY_MIN_RUN_BYTES = 16;

/** Output element i (row-major over `shape`) is source element offset + sum_k i_k strides[k]. */
export interface AffineView {
  shape: number[];
  strides: number[];
  offset: number;
}

export { rowMajorStrides };

export function numElements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The view with size-1 axes dropped and neighbouring axes merged where the source is contiguous across them. */
export function mergeView(v: AffineView): AffineView {
  const shape: number[] = [];
  const strides: number[] = [];
  for (let k = 0; k < v.shape.length; k++) {
    const d = v.shape[k];
    if (d === 1) continue;
    const last = shape.length - 1;
    if (last >= 0 && strides[last] === v.strides[k] * d) {
      shape[last] *= d;
      strides[last] = v.strides[k];
    } else {
      shape.push(d);
      strides.push(v.strides[k]);
    }
  }
  return { shape, strides, offset: v.offset };
}

/** The view of a source of `shape` whose output axis k is source axis perm[k]. */
export function transposeView(shape: readonly number[], perm: readonly number[]): AffineView {
  const s = rowMajorStrides(shape);
  return { shape: perm.map((p) => shape[p]), strides: perm.map((p) => s[p]), offset: 0 };
}

/** The view of a source of `shape` that takes, on each axis, `counts[k]` elements from `starts[k]` every `steps[k]`. */
export function sliceView(shape: readonly number[], starts: readonly number[], steps: readonly number[], counts: readonly number[]): AffineView {
  const s = rowMajorStrides(shape);
  let offset = 0;
  for (let k = 0; k < shape.length; k++) if (counts[k] > 0) offset += starts[k] * s[k];
  return { shape: [...counts], strides: s.map((st, k) => st * steps[k]), offset };
}

/** A merged view that is elements [offset, offset + n) of its source in order (n = its size). */
export function isContiguous(m: AffineView): boolean {
  return m.shape.length === 0 || (m.shape.length === 1 && m.strides[0] === 1);
}

/** Calls f(j, src) for every output element j in [begin, end) with its source index, walking an odometer. */
export function forEachSource(v: AffineView, begin: number, end: number, f: (j: number, src: number) => void): void {
  const rank = v.shape.length;
  const idx = new Array<number>(rank).fill(0);
  let rem = begin;
  let src = v.offset;
  for (let k = rank - 1; k >= 0; k--) {
    idx[k] = rem % v.shape[k];
    rem = Math.floor(rem / v.shape[k]);
    src += idx[k] * v.strides[k];
  }
  for (let j = begin; j < end; j++) {
    f(j, src);
    let k = rank - 1;
    while (k >= 0) {
      idx[k]++;
      src += v.strides[k];
      if (idx[k] < v.shape[k]) break;
      src -= v.shape[k] * v.strides[k];
      idx[k] = 0;
      k--;
    }
  }
}

/** [lowest, highest] source index that output elements [begin, end) read. */
export function coveringInterval(v: AffineView, begin: number, end: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  forEachSource(v, begin, end, (_j, s) => {
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  });
  return [lo, hi];
}

/** One contiguous copy: n elements from src[srcBegin] to dst[dstBegin]. */
export interface Run {
  src: BuildTensor;
  srcBegin: number;
  dst: BuildTensor;
  dstBegin: number;
  n: number;
}

/** Runs of a merged view whose innermost axis has stride 1: output [o*L, o*L+L) <- source [s, s+L). */
export function viewRuns(m: AffineView, src: BuildTensor, dst: BuildTensor, dstBase = 0): Run[] {
  const rank = m.shape.length;
  const L = rank === 0 ? 1 : m.shape[rank - 1];
  const outer: AffineView = { shape: m.shape.slice(0, -1), strides: m.strides.slice(0, -1), offset: m.offset };
  const runs: Run[] = [];
  const count = numElements(outer.shape);
  forEachSource(outer, 0, count, (o, s) => runs.push({ src, srcBegin: s, dst, dstBegin: dstBase + o * L, n: L }));
  return runs;
}

/** Merge runs that continue each other in both source and destination. */
export function mergeRuns(runs: readonly Run[]): Run[] {
  const out: Run[] = [];
  for (const r of runs) {
    if (r.n <= 0) continue;
    const p = out[out.length - 1];
    if (p && p.src === r.src && p.dst === r.dst && p.srcBegin + p.n === r.srcBegin && p.dstBegin + p.n === r.dstBegin) p.n += r.n;
    else out.push({ ...r });
  }
  return out;
}

/**
 * Add one exchange of the given runs as the op's next program step.
 *
 * LowerContext exposes no step for an exchange into existing tensors (its
 * exchanges only feed onTile copies before a compute set), so this appends
 * to the step list that ctx.finish() returns, after flushing any open
 * compute set, and checks that the step really landed there.
 */
export function copyRuns(ctx: LowerContext, name: string, runs: readonly Run[]): void {
  const merged = mergeRuns(runs);
  if (merged.length === 0) return;
  const ex = ctx.graph.addExchange(`${ctx.op.name}/${name}`, ctx.op.name);
  for (const r of merged) ctx.graph.addCopy(ex, ctx.slice(r.src, r.srcBegin, r.srcBegin + r.n), ctx.slice(r.dst, r.dstBegin, r.dstBegin + r.n));
  const step: ProgramStep = { kind: 'exchange', exchange: ex };
  ctx.finish().push(step);
  if (!ctx.finish().includes(step)) throw new Error('internal: LowerContext.finish() no longer returns its live step list; copyRuns cannot add its exchange');
}

/** The tile ranges of `src`'s elements [begin, begin + n), shifted to start at 0 (a mapping for a copy of them). */
export function shiftedMapping(ctx: LowerContext, src: BuildTensor, begin: number, n: number): TileRange[] {
  return ctx.ranges(src, begin, begin + n).map((r) => ({ tile: r.tile, begin: r.begin - begin, end: r.end - begin }));
}

/** Whether runs of a merged view are long enough to copy (see COPY_MIN_RUN_BYTES). */
export function runsAreLong(m: AffineView, dtypeBytes: number): boolean {
  const rank = m.shape.length;
  if (rank === 0) return true;
  return m.strides[rank - 1] === 1 && m.shape[rank - 1] * dtypeBytes >= COPY_MIN_RUN_BYTES;
}

/**
 * Create op output `i` as `src` seen through `view` (view.shape has the
 * output's element count): an alias, copies of runs or Rearrange vertices
 * (see the file comment). `label` names the compute set or exchange.
 */
export function rearrangeToOutput(ctx: LowerContext, i: number, src: BuildTensor, view: AffineView, label: string): void {
  const m = mergeView(view);
  const n = numElements(view.shape);
  if (isContiguous(m) && m.offset === 0 && n === src.size) {
    ctx.aliasOutput(i, src);
    return;
  }
  const out = ctx.output(i);
  if (n === 0) return;
  if (isContiguous(m)) {
    // One interval of the source: keep it on its tiles, copy on tile.
    ctx.graph.setTileMapping(out, shiftedMapping(ctx, src, m.offset, n));
    copyRuns(ctx, label, [{ src, srcBegin: m.offset, dst: out, dstBegin: 0, n }]);
    return;
  }
  rearrangeInto(ctx, src, m, out, label);
}

/**
 * A covering interval may be up to this many times the elements a tile range
 * needs before the range is staged instead (see rearrangeInto).
 */
export const MAX_COVERING_WASTE = 2;

/** Where one Rearrange vertex reads: a covering interval of the source, or a staging buffer filled by the exchange. */
type ReadPlan =
  | { kind: 'covering'; lo: number; hi: number }
  | { kind: 'staged'; size: number; runs: RunList; strides: number[]; offset: number };

/**
 * The box (per merged output axis, [lo, hi]) containing output elements
 * [begin, end): axes before the first one on which the range's ends differ
 * are fixed, that axis spans [first, last], later axes are whole. At most the
 * range plus two partial rows.
 */
export function boxOf(m: AffineView, begin: number, end: number): { lo: number[]; hi: number[] } {
  const rank = m.shape.length;
  const multi = (flat: number) => {
    const idx = new Array<number>(rank);
    for (let k = rank - 1; k >= 0; k--) {
      idx[k] = flat % m.shape[k];
      flat = Math.floor(flat / m.shape[k]);
    }
    return idx;
  };
  const a = multi(begin);
  const b = multi(end - 1);
  const lo = [...a];
  const hi = [...a];
  const k = a.findIndex((v, i) => v !== b[i]);
  if (k >= 0) {
    hi[k] = b[k];
    for (let j = k + 1; j < rank; j++) {
      lo[j] = 0;
      hi[j] = m.shape[j] - 1;
    }
  }
  return { lo, hi };
}

/**
 * Output elements [begin, end) of a row-major `shape` cut into ranges whose
 * boxes (boxOf) hold them exactly: at the first axis on which the ends
 * differ, a head up to the next whole row of that axis and a tail from the
 * last (each cut again, deeper), and the whole rows between. At most
 * 2 x rank - 1 ranges (a head and a tail per axis but the last, and the
 * middle), in order.
 */
export function tightPieces(shape: readonly number[], begin: number, end: number): [number, number][] {
  const out: [number, number][] = [];
  const cut = (b: number, e: number): void => {
    if (e <= b) return;
    // inner: elements of one row of the first axis on which b and e - 1 differ (1 past the last axis).
    let inner = 1;
    let k = shape.length - 1;
    for (; k >= 0; k--) {
      if (Math.floor(b / (inner * shape[k])) === Math.floor((e - 1) / (inner * shape[k]))) break;
      inner *= shape[k];
    }
    // b and e - 1 in one row of `inner` elements, or the range whole rows of it: its box is the range.
    if (inner === 1 || (b % inner === 0 && e % inner === 0)) {
      out.push([b, e]);
      return;
    }
    const head = Math.ceil(b / inner) * inner;
    const tail = Math.floor(e / inner) * inner;
    cut(b, head);
    if (tail > head) out.push([head, tail]);
    cut(Math.max(head, tail), e);
  };
  cut(begin, end);
  return out;
}

/**
 * The staged read of output elements [begin, end): the source elements of
 * their box, packed in ascending source order into a buffer of the box's
 * size (by ctx.gather). The buffer index of output multi-index i is affine in i (offset +
 * sum_k i_k strides[k]), so the Rearrange vertex reads it as it would read
 * the source. The buffer is filled by runs along the source's unit-stride
 * axis (single elements when no box axis has stride +-1). Undefined when two
 * axes of the box have equal |stride| (not a view this file makes).
 */
function stagedPlan(m: AffineView, begin: number, end: number): ReadPlan | undefined {
  const { lo, hi } = boxOf(m, begin, end);
  const rank = m.shape.length;
  const axes = [...Array(rank).keys()].filter((k) => hi[k] > lo[k]).sort((x, y) => Math.abs(m.strides[y]) - Math.abs(m.strides[x]));
  for (let i = 1; i < axes.length; i++) if (Math.abs(m.strides[axes[i]]) === Math.abs(m.strides[axes[i - 1]])) return undefined;
  const ext = (k: number) => hi[k] - lo[k] + 1;
  // Buffer strides: row-major over the box axes in source order.
  const W = new Array<number>(rank).fill(0);
  let acc = 1;
  for (let i = axes.length - 1; i >= 0; i--) {
    W[axes[i]] = acc;
    acc *= ext(axes[i]);
  }
  const size = acc;
  // Source index of buffer element 0 (each axis at its lowest source position).
  let s0 = m.offset;
  for (let k = 0; k < rank; k++) s0 += (m.strides[k] > 0 ? lo[k] : hi[k]) * m.strides[k];
  const last = axes[axes.length - 1];
  const unit = last !== undefined && Math.abs(m.strides[last]) === 1;
  const runLen = unit ? ext(last) : 1;
  const outerAxes = unit ? axes.slice(0, -1) : axes;
  // The odometer over the outer axes visits buffer positions 0, runLen, 2 runLen, ... in order,
  // so the runs are packed back to back; runs that continue each other in the source merge.
  // One flat RunList (RunList.push merges): a run object and an axis iterator per element was most of a
  // thin transpose's garbage (a BERT layer's K^T reads 234k single elements).
  const runs = new RunList();
  const axisStride = outerAxes.map((k) => Math.abs(m.strides[k]));
  const axisExt = outerAxes.map((k) => ext(k));
  const u = new Array<number>(outerAxes.length).fill(0);
  const count = axisExt.reduce((c, e) => c * e, 1);
  for (let r = 0; r < count; r++) {
    let src = s0;
    for (let i = 0; i < u.length; i++) src += u[i] * axisStride[i];
    runs.push(src, src + runLen);
    for (let i = u.length - 1; i >= 0; i--) {
      if (++u[i] < axisExt[i]) break;
      u[i] = 0;
    }
  }
  // Buffer index of output multi-index i: sum_k (stride > 0 ? i_k - lo_k : hi_k - i_k) W_k.
  const strides = m.strides.map((t, k) => (t > 0 ? W[k] : -W[k]));
  let offset = 0;
  for (let k = 0; k < rank; k++) offset += m.strides[k] > 0 ? -lo[k] * W[k] : hi[k] * W[k];
  return { kind: 'staged', size, runs, strides, offset };
}

/**
 * Fill all of `out` (already mapped) from `src` through the merged view `m`:
 * copies of long runs, else Rearrange vertices. Each vertex reads the
 * source interval covering its range (one onTile copy) when that interval is
 * at most MAX_COVERING_WASTE times the range's box; otherwise (a transpose
 * whose tile ranges are thin slices of the source, as on a large device,
 * where the covering interval would be most of the source on every tile) the
 * box's source elements arrive packed in source order (ctx.gather: one
 * buffer on the tile, filled by the compute set's exchange) and the vertex
 * reads that: memory and traffic are then what the range needs, at the cost
 * of one copy per run.
 */
export function rearrangeInto(ctx: LowerContext, src: BuildTensor, m: AffineView, out: BuildTensor, label: string): void {
  if (runsAreLong(m, DTYPE_BYTES[src.dtype])) {
    const runs = viewRuns(m, src, out);
    ctx.note('rearrange', `${label}: ${runs.length} runs of ${m.shape[m.shape.length - 1] ?? 1} elements copied by the exchange`);
    copyRuns(ctx, label, runs);
    return;
  }
  const tileRanges = ctx.ranges(out);
  const boxSize = (begin: number, end: number) => {
    const { lo, hi } = boxOf(m, begin, end);
    return lo.reduce((c, l, k) => c * (hi[k] - l + 1), 1);
  };
  // A range read through a staging buffer is cut where its box is not tight: the box of a range that
  // crosses a row (of any axis) holds both rows whole, so a thin transpose staged more than it needs
  // (a BERT layer's K^T 234k elements for 98k outputs, 2.4 times; its gradient 2.8 times).
  const ranges: TileRange[] = [];
  const plans: ReadPlan[] = [];
  for (const r of tileRanges) {
    const [lo, hi] = coveringInterval(m, r.begin, r.end);
    if (hi + 1 - lo <= MAX_COVERING_WASTE * boxSize(r.begin, r.end)) {
      ranges.push(r);
      plans.push({ kind: 'covering', lo, hi });
      continue;
    }
    for (const [b, e] of tightPieces(m.shape, r.begin, r.end)) {
      const [plo, phi] = coveringInterval(m, b, e);
      ranges.push({ tile: r.tile, begin: b, end: e });
      plans.push(phi + 1 - plo <= MAX_COVERING_WASTE * (e - b) ? { kind: 'covering', lo: plo, hi: phi } : (stagedPlan(m, b, e) ?? { kind: 'covering', lo: plo, hi: phi }));
    }
  }
  ctx.computeSet(label);
  let read = 0;
  let staged = 0;
  for (const [k, r] of ranges.entries()) {
    const p = plans[k];
    const outSlice = ctx.slice(out, r.begin, r.end);
    if (p.kind === 'covering') {
      read += p.hi + 1 - p.lo;
      ctx.vertex(rearrangeCodelet, r.tile, { in: [ctx.onTile(src, p.lo, p.hi + 1, r.tile)], out: outSlice }, { base: p.lo, begin: r.begin, offset: m.offset }, { shape: m.shape, strides: m.strides });
    } else {
      // The runs in buffer order, packed back to back by the exchange (or read in place when at most one travels).
      read += p.size;
      staged++;
      ctx.vertex(rearrangeCodelet, r.tile, { in: ctx.gather(src, p.runs, r.tile), out: outSlice }, { base: 0, begin: r.begin, offset: p.offset }, { shape: m.shape, strides: p.strides });
    }
  }
  ctx.note(
    'rearrange',
    `${label}: per-element addressing (merged view [${m.shape.join(', ')}], source strides [${m.strides.join(', ')}]); ` +
      `${staged} of ${ranges.length} ranges (of ${tileRanges.length} tile ranges) read packed runs; the vertices read ${read} elements in all for ${out.size} outputs`,
  );
}

/**
 * Scatter: out (already mapped, the source's shape) = 0 except that element
 * offset + sum_k i_k strides[k] of it takes element i of `src` (the inverse
 * of a view that reads each source element at most once, e.g. a slice).
 * Long runs are copied and the rest of `out` zeroed; otherwise one
 * RearrangeScatter vertex per tile range of `out` reads the interval of
 * `src` whose elements land in that range.
 */
export function scatterInto(ctx: LowerContext, src: BuildTensor, view: AffineView, out: BuildTensor, label: string): void {
  const m = mergeView(view);
  const n = numElements(view.shape);
  if (n === 0) {
    zeroIntervals(ctx, out, [[0, out.size]], `${label}/zero`);
    return;
  }
  if (runsAreLong(m, DTYPE_BYTES[src.dtype])) {
    // Runs of src (contiguous in src by construction) land as runs of out.
    const inv = viewRuns(m, out, src).map((r) => ({ src, srcBegin: r.dstBegin, dst: out, dstBegin: r.srcBegin, n: r.n }));
    copyRuns(ctx, label, inv);
    const written = inv.map((r) => [r.dstBegin, r.dstBegin + r.n] as [number, number]).sort((a, b) => a[0] - b[0]);
    const holes: [number, number][] = [];
    let at = 0;
    for (const [b, e] of written) {
      if (b > at) holes.push([at, b]);
      at = Math.max(at, e);
    }
    if (at < out.size) holes.push([at, out.size]);
    zeroIntervals(ctx, out, holes, `${label}/zero`);
    ctx.note('rearrange', `${label}: ${inv.length} runs copied into place, ${holes.length} gaps zeroed`);
    return;
  }
  // For each tile range of out, the src elements landing there: [lo, hi] in src's flat order.
  const ranges = ctx.ranges(out);
  const lo = new Array<number>(ranges.length).fill(Infinity);
  const hi = new Array<number>(ranges.length).fill(-Infinity);
  forEachSource(m, 0, n, (q, p) => {
    let a = 0;
    let b = ranges.length - 1;
    while (a < b) {
      const mid = (a + b + 1) >> 1;
      if (ranges[mid].begin <= p) a = mid;
      else b = mid - 1;
    }
    if (q < lo[a]) lo[a] = q;
    if (q > hi[a]) hi[a] = q;
  });
  const empty: [number, number][] = [];
  ctx.computeSet(label);
  for (const [k, r] of ranges.entries()) {
    if (lo[k] > hi[k]) {
      empty.push([r.begin, r.end]);
      continue;
    }
    ctx.vertex(
      rearrangeScatterCodelet,
      r.tile,
      { in: ctx.onTile(src, lo[k], hi[k] + 1, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { base: lo[k], begin: r.begin, offset: m.offset },
      { shape: m.shape, strides: m.strides },
    );
  }
  zeroIntervals(ctx, out, empty, `${label}/zero`, true);
}

/**
 * Zero elements [b, e) of `t` for each given interval: per tile, the pieces
 * are shared among up to W ZeroRegions worker vertices (popops::zero's
 * Fill2D), balanced by element count. They go into a compute set of their
 * own, or into the one the caller has open (`intoOpen`).
 */
export function zeroIntervals(ctx: LowerContext, t: BuildTensor, intervals: readonly [number, number][], label: string, intoOpen = false): void {
  const perTile = new Map<number, Slice[]>();
  for (const [b, e] of intervals) {
    for (const r of ctx.ranges(t, b, e)) {
      if (!perTile.has(r.tile)) perTile.set(r.tile, []);
      perTile.get(r.tile)!.push(ctx.slice(t, r.begin, r.end));
    }
  }
  if (perTile.size === 0) return;
  if (!intoOpen) ctx.computeSet(label);
  const W = ctx.device.workersPerTile;
  for (const [tile, slices] of [...perTile].sort((a, b) => a[0] - b[0])) {
    for (const group of splitSlices(slices, W)) ctx.vertex(zeroRegionsCodelet, tile, { out: group });
  }
}

/** Split slices into at most `parts` groups of about equal element count (slices cut where needed). */
export function splitSlices(slices: readonly Slice[], parts: number): Slice[][] {
  const total = slices.reduce((s, x) => s + x.end - x.begin, 0);
  const per = Math.ceil(total / parts);
  const groups: Slice[][] = [];
  let cur: Slice[] = [];
  let room = per;
  for (const s of slices) {
    let b = s.begin;
    while (b < s.end) {
      const take = Math.min(room, s.end - b);
      cur.push({ tensor: s.tensor, begin: b, end: b + take });
      b += take;
      room -= take;
      if (room === 0) {
        groups.push(cur);
        cur = [];
        room = per;
      }
    }
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}
