/**
 * Lowering helpers for windowed ops (softmax, norms, pooling).
 *
 * The output is mapped linearly over its elements. For each of its tile
 * ranges, the vertex on that tile needs a window of its input: the groups
 * (softmax), rows (layer norm) or spatial box (pool) those output
 * elements depend on. The window is brought to the tile with onTile() and
 * its position passed to the codelet as params and `arrays`.
 *
 * Memory limit of this approach: each tile holds, besides its share of the
 * output, a copy of the input window its share depends on: for pooling,
 * the rows its outputs read of their own channel planes; the window keeps
 * only the rows needed (at the price of one copy per run of rows per plane,
 * see planeWindowOnTile). A convolution's window would be every channel of
 * the groups it touches, so the convolution, forward and backward, is
 * planned instead (src/lower/conv-planner.ts, conv-grad-planner.ts). When a
 * window does not fit, tile
 * allocation fails with the usual out-of-memory RunError naming the tile
 * and, as its largest tensor, the window (src/lower/memory.ts).
 *
 * Gradients that sum over the batch or the spatial positions (dW, dB,
 * BatchNorm's dscale; LayerNorm's sums over rows are planned reductions,
 * src/lower/reduce.ts) use two stages: each tile reduces what it holds into an
 * fp32 partial covering the interval of outputs it touches, then the tiles
 * owning the result add the overlapping pieces (reducePieces).
 */
import type { LowerContext } from './context.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import type { BuildTensor, Slice, TileRange } from './devicegraph.js';
import { channelSumCodelet, partialsFinalCodelet } from '../../sim/codelets/nn-util.js';
import type { Codelet } from '../../sim/codelet.js';
import type { WindowArrayKey, WindowParamKey } from '../../sim/codelets/nn-util.js';

/** A box of an [N, C, D0, rest] tensor: n in [nMin, nMax], c in [cLo, cHi], the rows of D0 with rows[i0] = 1. */
export interface PlaneBox {
  nMin: number;
  nMax: number;
  cLo: number;
  cHi: number;
  rows: Uint8Array;
}

/**
 * Bytes a window may take before it is split into exact pieces: a quarter
 * of the temporary memory PopLibs lets a convolution use on a tile
 * (availableMemoryProportion x bytesPerTile / 4; ~96 KB on Mk2). A heuristic
 * of this lowering, not a PopLibs figure.
 */
export function windowBudget(ctx: LowerContext): number {
  return (ctx.device.bytesPerTile * ctx.device.availableMemoryProportion) / 4;
}

/**
 * Most regions a window takes as exact pieces. Each is a copy made at
 * compile time (a tensor and exchange entries); a window over 1024
 * channels on 1472 tiles would make 1.5 million of them. Beyond this, planes
 * share regions again and the window may exceed the budget (and then the
 * tile's memory: an out-of-memory RunError).
 */
export const MAX_WINDOW_REGIONS = 512;

/** Ops already told (one note per op) that a window cannot fit. */
const noted = new WeakSet<LowerContext>();

/**
 * The box of `t` (viewed as [N, C, D0, rest]) on `tile`, as the list of
 * slices a codelet's PlaneWindow reads (sim/codelets/nn-util.ts) and the
 * params and arrays that describe it, named `${prefix}nMin`, `${prefix}rowRun`, ...
 *
 * Each slice is one copy made at compile time (a tensor and exchange
 * entries), so the window takes as few as fit the memory budget:
 * - whole planes when every row is needed (one region per n, or one in all);
 * - else k consecutive planes per region, from the first needed row of the
 *   first to the last needed row of the last, k as large as keeps the
 *   window within windowBudget() or within 1.25 x the rows actually needed;
 * - else one region per run of needed rows of each plane: exactly the rows
 *   needed, and the most regions (at most MAX_WINDOW_REGIONS; past that,
 *   the fewest planes per region that stay under it).
 */
export function planeWindowOnTile<const P extends string>(
  ctx: LowerContext,
  t: BuildTensor,
  dims: { C: number; D0: number; rest: number },
  box: PlaneBox,
  tile: number,
  prefix: P,
): { slices: Slice[]; params: Record<WindowParamKey<P>, number>; arrays: Record<WindowArrayKey<P>, number[]> & Partial<Record<`${P}lens`, number[]>> } {
  const { C, D0, rest } = dims;
  const plane = D0 * rest;
  const cCount = box.cHi - box.cLo + 1;
  const nCount = box.nMax - box.nMin + 1;
  const runs: [number, number][] = [];
  for (let i = 0; i < D0; i++) {
    if (!box.rows[i]) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  if (runs.length === 0) runs.push([0, 0]);
  const first = runs[0][0];
  const last = runs[runs.length - 1][1];
  const rowRun = new Array<number>(D0).fill(0);
  const rowOff = new Array<number>(D0).fill(0);
  // The regions the PlaneWindow reads, as element ranges of t; gathered into one tensor when many must travel.
  const pieces: [number, number][] = [];
  const planeStart = (n: number, c: number) => (n * C + c) * plane;
  const bytes = DTYPE_BYTES[t.dtype];
  // Elements of a window of k planes per region, each from row `first` of its first plane to row `last` of its last.
  const chunked = (k: number) => ((nCount * cCount) / k) * ((k - 1) * plane + (last - first + 1) * rest);
  const exact = nCount * cCount * runs.reduce((a, [lo, hi]) => a + hi - lo + 1, 0) * rest;
  const limit = Math.max(windowBudget(ctx), 1.25 * exact * bytes);
  let R = 1;
  let ppr = 0;
  if (first === 0 && last === D0 - 1 && runs.length === 1) ppr = cCount;
  else {
    for (let k = cCount; k >= 1; k--) {
      if (cCount % k === 0 && chunked(k) * bytes <= limit) {
        ppr = k;
        break;
      }
    }
    if (ppr === 0 && nCount * cCount * runs.length > MAX_WINDOW_REGIONS) {
      // Too many pieces to make: the fewest planes per region that keep the count in bounds (over the budget).
      for (let k = 1; k <= cCount; k++) {
        if (cCount % k === 0 && (nCount * cCount) / k <= MAX_WINDOW_REGIONS) {
          ppr = k;
          break;
        }
      }
      if (ppr === 0) ppr = cCount;
    }
  }
  if ((ppr > 0 ? chunked(ppr) : exact) * bytes > ctx.device.bytesPerTile) {
    // It cannot fit whatever the split: one region per n (the fewest copies to make), and the
    // allocator's out-of-memory RunError names this window as the largest tensor on the tile.
    ppr = cCount;
    if (!noted.has(ctx)) {
      noted.add(ctx);
      ctx.note(
        'window',
        `the window of '${t.name}' on tile ${tile} (${cCount} channel plane(s) of ${nCount} batch item(s)) needs more than the tile's ${ctx.device.bytesPerTile} bytes: ` +
          `windowed lowerings (pooling) do not split channels over tiles`,
      );
    }
  }
  if (ppr > 0) {
    // Regions of ppr consecutive planes (ppr divides cCount, so none straddles two n).
    for (let i = first; i <= last; i++) rowOff[i] = i - first;
    if (ppr === cCount && first === 0 && last === D0 - 1 && box.cLo === 0 && box.cHi === C - 1) {
      ppr = nCount * cCount;
      pieces.push([planeStart(box.nMin, 0), planeStart(box.nMax + 1, 0)]);
    } else {
      for (let n = box.nMin; n <= box.nMax; n++) {
        for (let c = box.cLo; c <= box.cHi; c += ppr) pieces.push([planeStart(n, c) + first * rest, planeStart(n, c + ppr - 1) + (last + 1) * rest]);
      }
    }
  } else {
    // One region per run of each plane: only the rows needed.
    R = runs.length;
    ppr = 1;
    for (const [r, [lo, hi]] of runs.entries()) {
      for (let i = lo; i <= hi; i++) {
        rowRun[i] = r;
        rowOff[i] = i - lo;
      }
    }
    for (let n = box.nMin; n <= box.nMax; n++) {
      for (let c = box.cLo; c <= box.cHi; c++) {
        for (const [lo, hi] of runs) pieces.push([planeStart(n, c) + lo * rest, planeStart(n, c) + (hi + 1) * rest]);
      }
    }
  }
  const slices: Slice[] = ctx.gather(t, pieces, tile);
  // One gathered region stands for all the pieces: the codelet splits it back by these lengths.
  const joined = slices.length !== pieces.length ? { [`${prefix}lens`]: pieces.map(([b, e]) => e - b) } : {};
  // Keys built from the prefix: the records are the ones the types spell out (sim/codelets/nn-util.ts windowParams).
  return {
    slices,
    params: { [`${prefix}nMin`]: box.nMin, [`${prefix}cLo`]: box.cLo, [`${prefix}cCount`]: cCount, [`${prefix}R`]: R, [`${prefix}ppr`]: ppr, [`${prefix}planeStride`]: plane } as Record<WindowParamKey<P>, number>,
    arrays: { [`${prefix}rowRun`]: rowRun, [`${prefix}rowOff`]: rowOff, ...joined } as Record<WindowArrayKey<P>, number[]> & Partial<Record<`${P}lens`, number[]>>,
  };
}

/**
 * For elements [b, e) of a row-major [outer, n, inner] tensor: the smallest
 * interval [lo, hi) of flat indices covering every group (fixed outer and
 * inner index, all n) that one of those elements belongs to.
 */
export function groupWindow(b: number, e: number, n: number, inner: number): [number, number] {
  const group = n * inner;
  const touched = (blockBegin: number, lo: number, hi: number): [number, number] => {
    const len = hi - lo;
    const j0 = (lo - blockBegin) % inner;
    const j1 = (hi - 1 - blockBegin) % inner;
    return len >= inner || j0 > j1 ? [0, inner - 1] : [j0, j1];
  };
  const ob0 = Math.floor(b / group);
  const ob1 = Math.floor((e - 1) / group);
  const [jMin] = touched(ob0 * group, b, Math.min(e, (ob0 + 1) * group));
  const [, jMax] = touched(ob1 * group, Math.max(b, ob1 * group), e);
  if (ob0 === ob1) {
    const [j0, j1] = touched(ob0 * group, b, e);
    return [ob0 * group + j0, ob0 * group + (n - 1) * inner + j1 + 1];
  }
  return [ob0 * group + jMin, ob1 * group + (n - 1) * inner + jMax + 1];
}

/** For elements [b, e) of a row-major [outer, G, inner] tensor: the g they touch, [gMin, gMax]. */
export function channelRange(b: number, e: number, G: number, inner: number): [number, number] {
  if (e - b >= G * inner) return [0, G - 1];
  const g0 = Math.floor(b / inner) % G;
  const g1 = Math.floor((e - 1) / inner) % G;
  return g0 <= g1 && Math.floor((e - 1) / (G * inner)) === Math.floor(b / (G * inner)) ? [g0, g1] : [0, G - 1];
}

/** An fp32 partial of `size` elements on `tile`, private to the op. */
export function partialOnTile(ctx: LowerContext, name: string, size: number, tile: number): BuildTensor {
  const p = ctx.addTensor(name, 'float32', [size], 'temporary');
  ctx.graph.mapToTile(p, tile);
  return p;
}

/** A partial and the flat index of `out` its element 0 stands for. */
export interface Piece {
  t: BuildTensor;
  offset: number;
}

/**
 * Partial regions one NnPartialsFinal sums at most. A tile owning a few
 * output elements that every tile contributed to (a BatchNorm channel)
 * would otherwise receive and list a partial from each of
 * ~1,500 tiles: ResNet-50 training's fullest tile held 344 KB of such vertex
 * state. Beyond this, the pieces are summed in groups first (a tree).
 *
 * Not lower: a tree sums neighbouring output elements in different groupings,
 * so their fp32 roundings differ where one vertex would round them alike. The
 * light models' constant weights make every class's logit an equal ~1e10,
 * and a few ulps of difference turn their softmax into zeros; 256 keeps
 * those sums in one vertex (SqueezeNet's pooling has ~220 per tile).
 */
export const PARTIALS_FAN_IN = 256;

/**
 * The last stages of a reduction: out = scale x the sum of every piece
 * overlapping it, on the tiles that own out (NnPartialsFinal). When some
 * output range overlaps more than PARTIALS_FAN_IN pieces, consecutive pieces
 * are first summed in groups (at most PARTIALS_FAN_IN pieces, and at most
 * TREE_GROUP_BYTES received), each on the tile of its first piece, as often
 * as needed (PopLibs' multi-stage reductions).
 */
export function reducePieces(ctx: LowerContext, pieces: readonly Piece[], out: BuildTensor, scale = 1, name = 'reduce/final'): void {
  let level = [...pieces];
  for (let stage = 0; maxOverlap(level, ctx.ranges(out)) > PARTIALS_FAN_IN; stage++) {
    ctx.computeSet(`${name.replace(/\/final$/, '')}/tree${stage}`);
    const next: Piece[] = [];
    for (const [g, group] of treeGroups(level).entries()) {
      const lo = Math.min(...group.map((q) => q.offset));
      const hi = Math.max(...group.map((q) => q.offset + q.t.size));
      const tile = group[0].t.mapping!.tile(0);
      const sum = partialOnTile(ctx, `tree${stage}.${g}`, hi - lo, tile);
      ctx.vertex(
        partialsFinalCodelet,
        tile,
        { partials: group.map((q) => ctx.onTile(q.t, 0, q.t.size, tile)), out: ctx.slice(sum) },
        { scale: 1 },
        { offsets: group.map((q) => q.offset - lo) },
      );
      next.push({ t: sum, offset: lo });
    }
    level = next;
  }
  ctx.computeSet(name);
  for (const r of ctx.ranges(out)) {
    const parts: Slice[] = [];
    const offsets: number[] = [];
    for (const p of level) {
      const lo = Math.max(r.begin, p.offset);
      const hi = Math.min(r.end, p.offset + p.t.size);
      if (hi <= lo) continue;
      parts.push(ctx.onTile(p.t, lo - p.offset, hi - p.offset, r.tile));
      offsets.push(lo - r.begin);
    }
    ctx.vertex(partialsFinalCodelet, r.tile, { partials: parts, out: ctx.slice(out, r.begin, r.end) }, { scale }, { offsets });
  }
}

/** fp32 bytes a tree group's tile may receive: wide pieces make small groups. */
const TREE_GROUP_BYTES = 64 * 1024;

/**
 * Consecutive pieces in groups of at most PARTIALS_FAN_IN whose sum tile
 * receives at most TREE_GROUP_BYTES (the group's span, 4 bytes an element,
 * from each other piece), and at least two so the tree shrinks.
 */
function treeGroups(pieces: readonly Piece[]): Piece[][] {
  const groups: Piece[][] = [];
  let cur: Piece[] = [];
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of pieces) {
    const l = Math.min(lo, p.offset);
    const h = Math.max(hi, p.offset + p.t.size);
    if (cur.length >= 2 && (cur.length >= PARTIALS_FAN_IN || cur.length * (h - l) * 4 > TREE_GROUP_BYTES)) {
      groups.push(cur);
      cur = [];
      lo = p.offset;
      hi = p.offset + p.t.size;
    } else {
      lo = l;
      hi = h;
    }
    cur.push(p);
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/** The most pieces overlapping one of `ranges`. */
function maxOverlap(pieces: readonly Piece[], ranges: readonly TileRange[]): number {
  let most = 0;
  for (const r of ranges) {
    let n = 0;
    for (const p of pieces) if (p.offset < r.end && p.offset + p.t.size > r.begin) n++;
    most = Math.max(most, n);
  }
  return most;
}

/**
 * Sum of a row-major [outer, G, inner] tensor over outer and inner into
 * `out` (G elements) times `scale`: per tile NnChannelSum partials over the
 * channels it touches, then reducePieces. `extra` adds the fields and params
 * of the centred variant (BatchNormalization's scale gradient).
 */
export function channelSum(
  ctx: LowerContext,
  x: BuildTensor,
  G: number,
  inner: number,
  out: BuildTensor,
  opts: { scale?: number; codelet?: Codelet; extra?: (tile: number, begin: number, end: number, gMin: number, gMax: number) => { fields: Record<string, Slice>; params: Record<string, number> } } = {},
): void {
  ctx.computeSet('reduce/partials');
  const pieces: Piece[] = [];
  for (const [i, r] of ctx.ranges(x).entries()) {
    const [gMin, gMax] = channelRange(r.begin, r.end, G, inner);
    const p = partialOnTile(ctx, `partial${i}`, gMax - gMin + 1, r.tile);
    pieces.push({ t: p, offset: gMin });
    const ex = opts.extra?.(r.tile, r.begin, r.end, gMin, gMax);
    // The extra fields and params are the variant's own: checked against it as the vertex is placed.
    const codelet: Codelet = opts.codelet ?? channelSumCodelet;
    ctx.vertex(
      codelet,
      r.tile,
      { in: ctx.slice(x, r.begin, r.end), out: ctx.slice(p), ...(ex?.fields ?? {}) },
      { G, inner, begin: r.begin, gMin, ...(ex?.params ?? {}) },
    );
  }
  reducePieces(ctx, pieces, out, opts.scale ?? 1);
}
