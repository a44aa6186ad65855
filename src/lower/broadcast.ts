/**
 * NumPy broadcasting for elementwise ops (popops::map over broadcast operands,
 * in spirit).
 *
 * The output is mapped like an operand of its own size, else linearly. For
 * each tile range of the output, each operand's needed elements are brought
 * to that tile as one slice: the minimal interval of the operand's flat
 * indices covering that range (through the broadcast strides). The codelet
 * gets the output's axis-merged shape and each operand's strides as vertex
 * `arrays`, and the interval's start as a param, so it maps every output
 * element to its operand element (sim/codelets/binary.ts, "general" mode).
 *
 * Two cheaper shapes of the problem keep PopLibs' 1-D vertices:
 *   - every operand the output's size ("flat"): BinaryOp1D, no arrays; on a
 *     tile holding several ranges of the output, BinaryOp2D vertices, one per
 *     worker (placeByTile in ./elementwise.ts);
 *   - all but one operand flat, that one a trailing block of the output's
 *     shape (a bias or a scalar) and the codelet allows it ("cyclic"): the
 *     block is read at (offset + i) mod its length; a scalar block on a
 *     tile holding several ranges takes the 2-D vertices too.
 *
 * Shapes passed here are IR shapes (the op's tensor infos): a device tensor
 * may be an alias of another shape with the same elements.
 */
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from './context.js';
import type { BuildTensor, Slice } from './devicegraph.js';
import { inPlaceInput, placeByTile } from './elementwise.js';
import type { Codelet } from '../../sim/codelet.js';
import { shortCodeletName } from '../../sim/define.js';

/** A device tensor with the IR shape it stands for. */
export interface Operand {
  t: BuildTensor;
  shape: readonly number[];
}

/** NumPy's broadcast of several shapes, or null when two of them conflict. */
export function broadcastShapes(shapes: readonly (readonly number[])[]): number[] | null {
  const rank = shapes.reduce((r, s) => Math.max(r, s.length), 0);
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    const off = rank - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i];
      const o = out[off + i];
      if (d === o || d === 1) continue;
      if (o === 1) out[off + i] = d;
      else return null;
    }
  }
  return out;
}

/**
 * The first axis (of the right-aligned output) where `a` and `b` conflict, as
 * [axis, dim of a, dim of b], or null when they broadcast.
 */
export function broadcastConflict(a: readonly number[], b: readonly number[]): [number, number, number] | null {
  const rank = Math.max(a.length, b.length);
  for (let k = 0; k < rank; k++) {
    const da = a[a.length - rank + k] ?? 1;
    const db = b[b.length - rank + k] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return [k, da, db];
  }
  return null;
}

/** Row-major strides of `shape`. */
export function rowMajorStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    s[k] = acc;
    acc *= shape[k];
  }
  return s;
}

/**
 * For each axis of `outShape`, the stride in `inShape`'s flat index (0 where
 * `inShape` is broadcast: absent or 1). `inShape` must broadcast to `outShape`.
 */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const own = rowMajorStrides(inShape);
  const off = outShape.length - inShape.length;
  return outShape.map((d, k) => {
    const j = k - off;
    if (j < 0) return 0;
    return inShape[j] === 1 && d !== 1 ? 0 : own[j];
  });
}

/**
 * Drops size-1 axes and merges neighbouring axes that every stride list
 * treats as one (stride[k] = stride[k + 1] x shape[k + 1] for all, or all 0):
 * the smallest equivalent index space.
 */
export function mergeAxes(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const keep = shape.map((d, k) => k).filter((k) => shape[k] !== 1);
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  for (const k of keep) {
    const last = outShape.length - 1;
    const mergeable = last >= 0 && strides.every((s, i) => outStrides[i][last] === s[k] * shape[k]);
    if (mergeable) {
      outShape[last] *= shape[k];
      for (const [i, s] of strides.entries()) outStrides[i][last] = s[k];
    } else {
      outShape.push(shape[k]);
      for (const [i, s] of strides.entries()) outStrides[i].push(s[k]);
    }
  }
  return { shape: outShape, strides: outStrides };
}

/**
 * [lo, hi): the smallest interval holding sum_k c_k x strides[k] for every
 * flat index in [begin, end) of `shape` (strides >= 0). The range is cut into
 * at most about 2 x rank slabs, each a run along one axis with the axes after
 * it complete, whose extremes are known in closed form.
 */
export function indexExtent(shape: readonly number[], strides: readonly number[], begin: number, end: number): [number, number] {
  const r = shape.length;
  if (end <= begin) return [0, 0];
  if (r === 0) return [0, 1];
  const trailing = new Array<number>(r + 1);
  const span = new Array<number>(r + 1);
  trailing[r] = 1;
  span[r] = 0;
  for (let k = r - 1; k >= 0; k--) {
    trailing[k] = trailing[k + 1] * shape[k];
    span[k] = span[k + 1] + (shape[k] - 1) * strides[k];
  }
  const at = (flat: number) => {
    let v = 0;
    for (let k = 0; k < r; k++) v += (Math.floor(flat / trailing[k + 1]) % shape[k]) * strides[k];
    return v;
  };
  let lo = Infinity;
  let hi = -Infinity;
  let pos = begin;
  while (pos < end) {
    for (let k = 0; k < r; k++) {
      const block = trailing[k + 1];
      if (pos % block !== 0 || pos + block > end) continue;
      const c = Math.floor(pos / block) % shape[k];
      const m = Math.min(Math.floor((end - pos) / block), shape[k] - c);
      const base = at(pos);
      lo = Math.min(lo, base);
      hi = Math.max(hi, base + (m - 1) * strides[k] + span[k + 1]);
      pos += m * block;
      break;
    }
  }
  return [lo, hi + 1];
}

/** True when `inShape` (leading 1s dropped) equals the trailing axes of `outShape`: its flat index is out's mod its size. */
export function isTrailingBlock(inShape: readonly number[], outShape: readonly number[]): boolean {
  let s = 0;
  while (s < inShape.length && inShape[s] === 1) s++;
  const tail = inShape.slice(s);
  if (tail.length > outShape.length) return false;
  const off = outShape.length - tail.length;
  return tail.every((d, i) => d === outShape[off + i]);
}

/**
 * Create op output i for a broadcast result of `shape`: mapped like the first
 * operand of the same size (no exchange for it), else linearly.
 */
export function broadcastOutput(ctx: LowerContext, i: number, operands: readonly Operand[]): Operand {
  const shape = ctx.op.outInfo(i).shape;
  const n = nelms(shape);
  const like = operands.find((o) => o.t.size === n && o.t.dtype !== 'int32') ?? operands.find((o) => o.t.size === n);
  return { t: ctx.output(i, like ? { like: like.t } : {}), shape };
}

export interface MapBroadcastOptions {
  /** Scalar params for the codelet (e.g. scale). */
  params?: Record<string, number>;
  /** The input field the codelet may read cyclically (a trailing block); none by default. */
  cyclic?: string;
  /** Compute set name (default: the codelet's). */
  name?: string;
  /**
   * Write into an operand of the output's size when that is safe (default
   * true; see inPlaceInput in ./elementwise.ts): out[i] reads that operand at
   * i only, so overwriting it changes nothing. Only for op output 0.
   */
  inPlace?: boolean;
}

/**
 * out = f(inputs...) with NumPy broadcasting. `inputs` maps codelet field
 * names to operands, or to a list of operands for a vector field (its
 * per-operand arrays and params then named `<field><j>`, declared as
 * `'<field><j>'` and `'<field><j>Base'`).
 */
export function mapBroadcast(ctx: LowerContext, codelet: Codelet, inputs: Record<string, Operand | Operand[]>, out: Operand, opts: MapBroadcastOptions = {}): void {
  const params = opts.params ?? {};
  const n = nelms(out.shape);
  // Flatten to (key, field, operand) entries; vector fields keep their list order.
  const entries: { key: string; field: string; vector: boolean; op: Operand }[] = [];
  for (const [field, v] of Object.entries(inputs)) {
    if (Array.isArray(v)) v.forEach((op, j) => entries.push({ key: `${field}${j}`, field, vector: true, op }));
    else entries.push({ key: field, field, vector: false, op: v });
  }
  const flat = entries.map((e) => nelms(e.op.shape) === n);
  const candidates = entries.filter((e, i) => flat[i] && !e.vector).map((e) => e.op.t);
  const into = opts.inPlace === false ? undefined : inPlaceInput(ctx, candidates, out.t);
  const dst = into ?? out.t;
  ctx.computeSet(opts.name ?? shortCodeletName(codelet));
  const ranges = ctx.ranges(dst);

  const fieldsOf = (slices: Slice[], outSlice: Slice) => {
    const fields: Record<string, Slice | Slice[]> = { out: outSlice };
    entries.forEach((e, i) => {
      if (!e.vector) fields[e.field] = slices[i];
      else ((fields[e.field] ??= []) as Slice[]).push(slices[i]);
    });
    return fields;
  };
  const place = (tile: number, slices: Slice[], outSlice: Slice, p: Record<string, number>, arrays?: Record<string, number[]>) => {
    ctx.vertex(codelet, tile, fieldsOf(slices, outSlice), { ...params, ...p }, arrays);
  };

  const cyc = opts.cyclic !== undefined ? entries.findIndex((e) => e.key === opts.cyclic) : -1;
  // The cyclic operand when it is a scalar (popops' BroadcastScalar1D / 2D): every range reads its one element.
  const scalar = cyc >= 0 && !flat[cyc] && entries[cyc].op.t.size === 1 ? cyc : -1;
  if (entries.every((_, i) => flat[i] || i === scalar)) {
    // One 1-D vertex per tile holding one range, else multi-region vertices per worker (placeByTile): a batched
    // matmul's output in 16-element blocks gave a scale by 1/sqrt(d) one vertex per block.
    placeByTile(ctx, codelet, ranges, dst.dtype, { ...params, offset: 0 }, (r) =>
      fieldsOf(entries.map((e, i) => (i === scalar ? ctx.onTile(e.op.t, 0, 1, r.tile) : ctx.onTile(e.op.t, r.begin, r.end, r.tile))), ctx.slice(dst, r.begin, r.end)),
    );
    if (into) ctx.aliasOutput(0, into);
    return;
  }

  if (cyc >= 0 && entries.every((_, i) => i === cyc || flat[i]) && isTrailingBlock(entries[cyc].op.shape, out.shape)) {
    const b = entries[cyc].op.t;
    const len = b.size;
    for (const r of ranges) {
      const count = r.end - r.begin;
      const start = r.begin % len;
      // The whole block when the range wraps around it, else just the part it reads.
      const whole = start + count > len;
      const slices = entries.map((e, i) => (i === cyc ? (whole ? ctx.onTile(b, 0, len, r.tile) : ctx.onTile(b, start, start + count, r.tile)) : ctx.onTile(e.op.t, r.begin, r.end, r.tile)));
      place(r.tile, slices, ctx.slice(dst, r.begin, r.end), { offset: whole ? start : 0 });
    }
    if (into) ctx.aliasOutput(0, into);
    return;
  }

  const merged = mergeAxes(out.shape, entries.map((e) => broadcastStrides(e.op.shape, out.shape)));
  for (const r of ranges) {
    const p: Record<string, number> = { begin: r.begin };
    const arrays: Record<string, number[]> = { shape: merged.shape };
    const slices = entries.map((e, i) => {
      const [lo, hi] = indexExtent(merged.shape, merged.strides[i], r.begin, r.end);
      p[`${e.key}Base`] = lo;
      arrays[e.key] = merged.strides[i];
      return ctx.onTile(e.op.t, lo, hi, r.tile);
    });
    place(r.tile, slices, ctx.slice(dst, r.begin, r.end), p, arrays);
  }
  if (into) ctx.aliasOutput(0, into);
}
