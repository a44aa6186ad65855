/**
 * Lowering helpers for windowed ops (softmax, norms, convolution, pooling).
 *
 * The output is mapped linearly over its elements. For each of its tile
 * ranges, the vertex on that tile needs a window of its input: the groups
 * (softmax), rows (layer norm) or spatial box (conv, pool) those output
 * elements depend on. The window is brought to the tile with onTile() and
 * its position passed to the codelet as params and `arrays`.
 *
 * Memory limit of this approach: each tile holds, besides its share of the
 * output, a copy of the input window its share depends on. For a
 * convolution, that is every input channel of the groups it touches, over
 * the input rows its output rows need (per (n, c) plane, so a range inside
 * one output channel needs Cg x (rows x W) elements); for large activations
 * with many channels (a 1x1 convolution over 1024 x 14 x 14, say) that is
 * most of the input per tile, and the weights of the covered output
 * channels on top. A real convolution planner (splitting input channels with
 * partial sums, as poplin's does) is future work. When a window does not
 * fit, tile allocation fails with the usual out-of-memory RunError naming
 * the tile and its largest tensors (src/lower/memory.ts).
 *
 * Gradients that sum over the batch or the spatial positions (dW, dB, the
 * norms' dscale) use two stages: each tile reduces what it holds into an
 * fp32 partial covering the interval of outputs it touches, then the tiles
 * owning the result add the overlapping pieces (reducePieces).
 */
import type { LowerContext } from './context.js';
import type { BuildTensor, Slice } from './devicegraph.js';

/** A box of an [N, C, D0, rest] tensor: n in [nMin, nMax], c in [cLo, cHi], rows of D0 in [iLo, iHi]. */
export interface PlaneBox {
  nMin: number;
  nMax: number;
  cLo: number;
  cHi: number;
  iLo: number;
  iHi: number;
}

/**
 * The box of `t` (viewed as [N, C, D0, rest]) on `tile`, as the list of
 * slices a codelet's PlaneWindow reads (sim/codelets/nn-util.ts) and the
 * params that describe it, named `${prefix}nMin` etc.
 */
export function planeWindowOnTile(
  ctx: LowerContext,
  t: BuildTensor,
  dims: { C: number; D0: number; rest: number },
  box: PlaneBox,
  tile: number,
  prefix: string,
): { slices: Slice[]; params: Record<string, number> } {
  const { C, D0, rest } = dims;
  const rows = box.iHi - box.iLo + 1;
  const cCount = box.cHi - box.cLo + 1;
  const nCount = box.nMax - box.nMin + 1;
  const plane = D0 * rest;
  const slices: Slice[] = [];
  let ppr = 1;
  if (rows === D0 && box.cLo === 0 && box.cHi === C - 1) {
    ppr = nCount * cCount;
    slices.push(ctx.onTile(t, box.nMin * C * plane, (box.nMax + 1) * C * plane, tile));
  } else if (rows === D0) {
    ppr = cCount;
    for (let n = box.nMin; n <= box.nMax; n++) slices.push(ctx.onTile(t, (n * C + box.cLo) * plane, (n * C + box.cHi + 1) * plane, tile));
  } else {
    for (let n = box.nMin; n <= box.nMax; n++) {
      for (let c = box.cLo; c <= box.cHi; c++) {
        const p = (n * C + c) * D0;
        slices.push(ctx.onTile(t, (p + box.iLo) * rest, (p + box.iHi + 1) * rest, tile));
      }
    }
  }
  return {
    slices,
    params: { [`${prefix}nMin`]: box.nMin, [`${prefix}cLo`]: box.cLo, [`${prefix}cCount`]: cCount, [`${prefix}iLo`]: box.iLo, [`${prefix}rows`]: rows, [`${prefix}ppr`]: ppr },
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
 * Stage 2 of a two-stage reduction: out = scale x the sum of every piece
 * overlapping it, on the tiles that own out (NnPartialsFinal).
 */
export function reducePieces(ctx: LowerContext, pieces: readonly Piece[], out: BuildTensor, scale = 1, name = 'reduce/final'): void {
  ctx.computeSet(name);
  for (const r of ctx.ranges(out)) {
    const parts: Slice[] = [];
    const offsets: number[] = [];
    for (const p of pieces) {
      const lo = Math.max(r.begin, p.offset);
      const hi = Math.min(r.end, p.offset + p.t.size);
      if (hi <= lo) continue;
      parts.push(ctx.onTile(p.t, lo - p.offset, hi - p.offset, r.tile));
      offsets.push(lo - r.begin);
    }
    ctx.vertex('NnPartialsFinal', r.tile, { partials: parts, out: ctx.slice(out, r.begin, r.end) }, { scale }, { offsets });
  }
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
  opts: { scale?: number; codelet?: string; extra?: (tile: number, begin: number, end: number, gMin: number, gMax: number) => { fields: Record<string, Slice>; params: Record<string, number> } } = {},
): void {
  ctx.computeSet('reduce/partials');
  const pieces: Piece[] = [];
  for (const [i, r] of ctx.ranges(x).entries()) {
    const [gMin, gMax] = channelRange(r.begin, r.end, G, inner);
    const p = partialOnTile(ctx, `partial${i}`, gMax - gMin + 1, r.tile);
    pieces.push({ t: p, offset: gMin });
    const ex = opts.extra?.(r.tile, r.begin, r.end, gMin, gMax);
    ctx.vertex(
      opts.codelet ?? 'NnChannelSum',
      r.tile,
      { in: ctx.slice(x, r.begin, r.end), out: ctx.slice(p), ...(ex?.fields ?? {}) },
      { G, inner, begin: r.begin, gMin, ...(ex?.params ?? {}) },
    );
  }
  reducePieces(ctx, pieces, out, opts.scale ?? 1);
}
