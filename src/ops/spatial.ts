/**
 * Spatial geometry shared by Conv and the pools: output sizes from
 * kernel_shape, strides, dilations, pads / auto_pad and ceil_mode (ONNX
 * semantics), padded to 3 spatial dims for the codelets, and the input and
 * output-gradient boxes a tile's range of outputs (or input gradients)
 * depends on.
 */
import type { Op } from '../ir/op.js';
import { unravel, type Geometry } from '../../sim/codelets/nn-util.js';
import type { PlaneBox } from '../lower/window.js';

export type { Geometry };

export const AUTO_PADS = ['NOTSET', 'VALID', 'SAME_UPPER', 'SAME_LOWER'];

export interface WindowAttrs {
  autoPad: string;
  kernel: number[];
  strides: number[];
  dilations: number[];
  pads: number[];
  ceilMode: boolean;
}

/**
 * The geometry of an op over input [N, C, ...spatial] with kernel `attrs.kernel`
 * and M output channels; fails naming the attribute at fault.
 */
export function resolveGeometry(op: Op, xShape: readonly number[], M: number, attrs: WindowAttrs): Geometry & { rank: number } {
  const rank = xShape.length - 2;
  if (rank < 1 || rank > 3) op.fail(`supports 1 to 3 spatial dims (input rank 3 to 5), got input shape [${xShape.join(', ')}]`);
  const k = attrs.kernel;
  if (k.length !== rank) op.fail(`kernel_shape [${k.join(', ')}] must have ${rank} entries for input [${xShape.join(', ')}]`);
  const list = (name: string, v: number[], def: number, len = rank): number[] => {
    if (v.length === 0) return new Array<number>(len).fill(def);
    if (v.length !== len) op.fail(`${name} [${v.join(', ')}] must have ${len} entries for ${rank} spatial dims`);
    return v;
  };
  const s = list('strides', attrs.strides, 1);
  const d = list('dilations', attrs.dilations, 1);
  for (const [name, v] of [['kernel_shape', k], ['strides', s], ['dilations', d]] as const) {
    if (v.some((x) => !Number.isInteger(x) || x < 1)) op.fail(`${name} [${v.join(', ')}] must be positive integers`);
  }
  if (!AUTO_PADS.includes(attrs.autoPad)) op.fail(`auto_pad '${attrs.autoPad}' is not supported; supported: ${AUTO_PADS.join(', ')}`);
  let pads = list('pads', attrs.pads, 0, 2 * rank);
  if (pads.some((p) => !Number.isInteger(p) || p < 0)) op.fail(`pads [${pads.join(', ')}] must be non-negative integers`);
  const inSp = xShape.slice(2);
  const out: number[] = [];
  const pb: number[] = [];
  const pe: number[] = [];
  for (let i = 0; i < rank; i++) {
    const span = (k[i] - 1) * d[i] + 1;
    const D = inSp[i];
    let o: number;
    if (attrs.autoPad === 'SAME_UPPER' || attrs.autoPad === 'SAME_LOWER') {
      o = Math.ceil(D / s[i]);
      const total = Math.max(0, (o - 1) * s[i] + span - D);
      const lo = attrs.autoPad === 'SAME_UPPER' ? Math.floor(total / 2) : Math.ceil(total / 2);
      pb.push(lo);
      pe.push(total - lo);
    } else {
      if (attrs.autoPad === 'VALID') pads = new Array<number>(2 * rank).fill(0);
      pb.push(pads[i]);
      pe.push(pads[rank + i]);
      const room = D + pads[i] + pads[rank + i] - span;
      if (room < 0) op.fail(`the kernel (extent ${span} with dilation ${d[i]}) is larger than spatial dim ${i} of the padded input (${D + pads[i] + pads[rank + i]})`);
      o = (attrs.ceilMode ? Math.ceil(room / s[i]) : Math.floor(room / s[i])) + 1;
      // ceil_mode: a last window that would start in the end padding is dropped.
      if (attrs.ceilMode && (o - 1) * s[i] >= D + pads[i]) o--;
    }
    if (o < 1) op.fail(`output spatial dim ${i} would be ${o}`);
    out.push(o);
  }
  const pad3 = (v: number[], fill: number) => [...v, ...new Array<number>(3 - rank).fill(fill)];
  return {
    rank,
    xs: [xShape[0], xShape[1], ...pad3(inSp, 1)],
    ys: [xShape[0], M, ...pad3(out, 1)],
    k: pad3(k, 1),
    s: pad3(s, 1),
    d: pad3(d, 1),
    pb: pad3(pb, 0),
    pe: pad3(pe, 0),
  };
}

/** The geometry as vertex arrays. */
export function geometryArrays(g: Geometry) {
  return { xs: g.xs, ys: g.ys, k: g.k, s: g.s, d: g.d, pb: g.pb, pe: g.pe };
}

/** Output spatial shape (unpadded) of a geometry. */
export function outShape(g: Geometry & { rank: number }): number[] {
  return [g.ys[0], g.ys[1], ...g.ys.slice(2, 2 + g.rank)];
}

/** Marks the input rows of dim 0 that output row o0 reads (inside the input). */
function markInRows(g: Geometry, o0: number, rows: Uint8Array): void {
  for (let a = 0; a < g.k[0]; a++) {
    const i0 = o0 * g.s[0] - g.pb[0] + a * g.d[0];
    if (i0 >= 0 && i0 < g.xs[2]) rows[i0] = 1;
  }
}

/**
 * For outputs [b, e) of [N, M, O0, O1, O2]: the box of the input [N, C, D0, ...]
 * they read (input channels of output channel m: chans(m) = [lo, hi]; the
 * input rows of dim 0 their windows touch) and the output channels they
 * cover [mMin, mMax].
 */
export function forwardBox(g: Geometry, b: number, e: number, chans: (m: number) => [number, number]): PlaneBox & { mMin: number; mMax: number } {
  const [N, M, O0, O1, O2] = g.ys;
  const { own, ...box } = rowsBox([N, M, O0], O1 * O2, b, e, chans, new Uint8Array(g.xs[2]), (o0, rows) => markInRows(g, o0, rows));
  return { ...box, mMin: own[0], mMax: own[1] };
}

/**
 * For elements [b, e) of an input gradient [N, C, D0, D1, D2]: the box of the
 * output gradient [N, M, O0, ...] they read (output channels of input channel
 * c: chans(c); the output rows whose windows cover their rows), and the input
 * channels they cover [cMin, cMax].
 */
export function backwardBox(g: Geometry, b: number, e: number, chans: (c: number) => [number, number]): PlaneBox & { cMin: number; cMax: number } {
  const [N, C, D0, D1, D2] = g.xs;
  const O0 = g.ys[2];
  const { own, ...box } = rowsBox([N, C, D0], D1 * D2, b, e, chans, new Uint8Array(O0), (i0, rows) => {
    for (let a = 0; a < g.k[0]; a++) {
      const t0 = i0 + g.pb[0] - a * g.d[0];
      if (t0 >= 0 && t0 % g.s[0] === 0 && t0 / g.s[0] < O0) rows[t0 / g.s[0]] = 1;
    }
  });
  return { ...box, cMin: own[0], cMax: own[1] };
}

/**
 * What elements [b, e) of a [N, X, R, ...] tensor (perRow elements a row of
 * R) span: samples, their own channels `own`, the other side's channels
 * (`chans` of each of theirs) as cLo..cHi, and the other side's rows, which
 * `markRows` sets once per distinct row r.
 */
function rowsBox(
  shape: [number, number, number],
  perRow: number,
  b: number,
  e: number,
  chans: (x: number) => [number, number],
  rows: Uint8Array,
  markRows: (r: number, rows: Uint8Array) => void,
): PlaneBox & { own: [number, number] } {
  const box = { nMin: Infinity, nMax: -Infinity, cLo: Infinity, cHi: -Infinity, rows, own: [Infinity, -Infinity] as [number, number] };
  const seen = new Uint8Array(shape[2]);
  const ix: number[] = [];
  for (let flat = Math.floor(b / perRow); flat <= Math.floor((e - 1) / perRow); flat++) {
    const [n, x, r] = unravel(flat, shape, ix);
    box.nMin = Math.min(box.nMin, n);
    box.nMax = Math.max(box.nMax, n);
    box.own[0] = Math.min(box.own[0], x);
    box.own[1] = Math.max(box.own[1], x);
    const [lo, hi] = chans(x);
    box.cLo = Math.min(box.cLo, lo);
    box.cHi = Math.max(box.cHi, hi);
    if (seen[r]) continue;
    seen[r] = 1;
    markRows(r, rows);
  }
  return box;
}

/** The input rows of dim 0 that the output rows marked in `outRows` read (for re-deriving a max pool's windows). */
export function inputRowsOf(g: Geometry, outRows: Uint8Array): Uint8Array {
  const rows = new Uint8Array(g.xs[2]);
  for (let o0 = 0; o0 < outRows.length; o0++) if (outRows[o0]) markInRows(g, o0, rows);
  return rows;
}
