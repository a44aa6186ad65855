/**
 * Pooling codelets (MaxPool, AveragePool, their grads; GlobalAveragePool's
 * grad), NCHW with 1 to 3 spatial dims padded to 3. Geometry as in
 * ./conv.ts with M = C (one input channel per output channel).
 *
 * Windows: position o covers input i = o s - pb + a d (a < k) per dim;
 * positions outside [0, D) are padding: never the max, and in an average
 * counted only with count_include_pad, and then only inside [-pb, D + pe)
 * (a window that ceil_mode lets run past the end pad does not count the
 * overhang, as onnxruntime and the ONNX reference do).
 *
 * MaxPool's gradient goes to the first maximum of each window in scan
 * order (row-major over the kernel); on ties the other equal elements get
 * nothing (PyTorch and onnxruntime pick the first too). Sums in fp32.
 */
import type { Codelet } from '../codelet.js';
import type { FieldValue } from '../program.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import { addLoop, binaryMultiVertex, vectorWidth } from './estimators.js';
import { GEOMETRY_ARRAYS, POOL_SOURCE, geometryForCycles, geometryOf, planeWindow, poolCycles, unravel, windowArrays, windowParams, type Geometry, type PlaneWindow, type WindowArgs } from './nn-util.js';
import type { DeviceSpec } from '../device.js';

/** Divisor of an average window at o per dim: in-bounds positions (or in-padded-bounds with includePad). */
function divisor(g: Geometry, o: number[], includePad: boolean): number {
  let n = 1;
  for (let dim = 0; dim < 3; dim++) {
    const D = g.xs[2 + dim];
    const lo = includePad ? -g.pb[dim] : 0;
    const hi = includePad ? D + g.pe[dim] : D;
    let c = 0;
    for (let a = 0; a < g.k[dim]; a++) {
      const i = o[dim] * g.s[dim] - g.pb[dim] + a * g.d[dim];
      if (i >= lo && i < hi) c++;
    }
    n *= c;
  }
  return n;
}

/**
 * The first maximum of window o of plane (n, c): [flat spatial index
 * (i0 D1 + i1) D2 + i2, value], or [-1, -Infinity] for a window of padding only.
 */
function argmax(g: Geometry, win: PlaneWindow, n: number, c: number, o0: number, o1: number, o2: number): [number, number] {
  const [, , D0, D1, D2] = g.xs;
  let best = -Infinity;
  let at = -1;
  for (let a = 0; a < g.k[0]; a++) {
    const i0 = o0 * g.s[0] - g.pb[0] + a * g.d[0];
    if (i0 < 0 || i0 >= D0) continue;
    const [arr, base] = win.row(n, c, i0);
    for (let b = 0; b < g.k[1]; b++) {
      const i1 = o1 * g.s[1] - g.pb[1] + b * g.d[1];
      if (i1 < 0 || i1 >= D1) continue;
      for (let e = 0; e < g.k[2]; e++) {
        const i2 = o2 * g.s[2] - g.pb[2] + e * g.d[2];
        if (i2 < 0 || i2 >= D2) continue;
        const v = arr[base + i1 * D2 + i2];
        if (at < 0 || v > best) {
          best = v;
          at = (i0 * D1 + i1) * D2 + i2;
        }
      }
    }
  }
  return [at, best];
}

/** What the pooling routines read: the windows' params and arrays by key, and the vertex's own params. */
interface PoolArgs extends WindowArgs {
  params: WindowArgs['params'] & { outBegin: number; countIncludePad: number };
}

function poolForward(args: PoolArgs, x: Float32Array[], out: Float32Array, max: boolean): void {
  const { params } = args;
  const g = geometryOf(args.arrays);
  const [, , D0, D1, D2] = g.xs;
  const xw = planeWindow(args, x, 'x', D1, D2);
  const includePad = params.countIncludePad === 1;
  const ix: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const [n, c, o0, o1, o2] = unravel(params.outBegin + i, g.ys, ix);
    if (max) {
      out[i] = argmax(g, xw, n, c, o0, o1, o2)[1];
      continue;
    }
    let s = 0;
    for (let a = 0; a < g.k[0]; a++) {
      const i0 = o0 * g.s[0] - g.pb[0] + a * g.d[0];
      if (i0 < 0 || i0 >= D0) continue;
      const [arr, base] = xw.row(n, c, i0);
      for (let b = 0; b < g.k[1]; b++) {
        const i1 = o1 * g.s[1] - g.pb[1] + b * g.d[1];
        if (i1 < 0 || i1 >= D1) continue;
        for (let e = 0; e < g.k[2]; e++) {
          const i2 = o2 * g.s[2] - g.pb[2] + e * g.d[2];
          if (i2 < 0 || i2 >= D2) continue;
          s = Math.fround(s + arr[base + i1 * D2 + i2]);
        }
      }
    }
    out[i] = s / divisor(g, [o0, o1, o2], includePad);
  }
}

/** The innermost spatial extent above 1 of [D0, D1, D2] (a row of PopLibs' pooling work list), or 1. */
function rowOf(dims: number[]): number {
  for (let i = dims.length - 1; i >= 0; i--) if (dims[i] > 1) return dims[i];
  return 1;
}

/**
 * PopLibs' pooling vertices vectorise across channels (one rpt step is one
 * output position for a vector of vw channels), so a vertex's work is
 * (outputs / vw) positions in rows of the innermost output dim.
 */
/** What the pooling estimates read. */
interface PoolShape {
  fields: { out: FieldValue; in?: FieldValue };
  arrays?: WindowArgs['arrays'];
}

function fwdCycles(kind: 'max' | 'avg') {
  return (v: PoolShape, device: DeviceSpec): number => {
    const a = geometryForCycles(v);
    const row = rowOf(a.ys.slice(2));
    const vw = vectorWidth(fieldDType(v.fields.in ?? v.fields.out), device);
    return poolCycles({ rows: Math.ceil(regionCount(v.fields.out) / (row * vw)), rowLength: row, kernelPositions: a.k[0] * a.k[1] * a.k[2], kind }, device);
  };
}

/**
 * Visits every output window o that covers input element (i0, i1, i2):
 * fn(o0, o1, o2) with o in range.
 */
function forEachCover(g: Geometry, i0: number, i1: number, i2: number, fn: (o0: number, o1: number, o2: number) => void): void {
  const [, , O0, O1, O2] = g.ys;
  for (let a = 0; a < g.k[0]; a++) {
    const t0 = i0 + g.pb[0] - a * g.d[0];
    if (t0 < 0 || t0 % g.s[0] !== 0 || t0 / g.s[0] >= O0) continue;
    for (let b = 0; b < g.k[1]; b++) {
      const t1 = i1 + g.pb[1] - b * g.d[1];
      if (t1 < 0 || t1 % g.s[1] !== 0 || t1 / g.s[1] >= O1) continue;
      for (let e = 0; e < g.k[2]; e++) {
        const t2 = i2 + g.pb[2] - e * g.d[2];
        if (t2 < 0 || t2 % g.s[2] !== 0 || t2 / g.s[2] >= O2) continue;
        fn(t0 / g.s[0], t1 / g.s[1], t2 / g.s[2]);
      }
    }
  }
}

function poolGrad(args: PoolArgs, dyRegions: Float32Array[], x: Float32Array[] | undefined, out: Float32Array, max: boolean): void {
  const { params } = args;
  const g = geometryOf(args.arrays);
  const [, C, , D1, D2] = g.xs;
  const [, , , O1, O2] = g.ys;
  const yw = planeWindow(args, dyRegions, 'y', O1, O2);
  const xw = max && x ? planeWindow(args, x, 'x', D1, D2) : undefined;
  const includePad = params.countIncludePad === 1;
  // The first max of each window, computed once per (plane, window).
  const memo = new Map<number, number>();
  const ix: number[] = [];
  for (let i = 0; i < out.length; i++) {
    const [n, c, i0, i1, i2] = unravel(params.outBegin + i, g.xs, ix);
    const here = (i0 * D1 + i1) * D2 + i2;
    let s = 0;
    forEachCover(g, i0, i1, i2, (o0, o1, o2) => {
      const [dy, yb] = yw.row(n, c, o0);
      const dyv = dy[yb + o1 * O2 + o2];
      if (max) {
        const key = ((n * C + c) * g.ys[2] + o0) * O1 * O2 + o1 * O2 + o2;
        let at = memo.get(key);
        if (at === undefined) {
          at = argmax(g, xw!, n, c, o0, o1, o2)[0];
          memo.set(key, at);
        }
        if (at === here) s = Math.fround(s + dyv);
      } else {
        s = Math.fround(s + Math.fround(dyv / divisor(g, [o0, o1, o2], includePad)));
      }
    });
    out[i] = s;
  }
}

/** The backward passes over dX rows: each input row gathers from ceil(row / stride) output positions per kernel position. */
function gradCycles(kind: 'avg' | 'maxGrad') {
  return (v: PoolShape, device: DeviceSpec): number => {
    const a = geometryForCycles(v);
    const dims = a.xs.slice(2);
    const row = rowOf(dims);
    const inner = dims.lastIndexOf(row);
    const vw = vectorWidth(fieldDType(v.fields.out), device);
    return poolCycles(
      { rows: Math.ceil(regionCount(v.fields.out) / (row * vw)), rowLength: Math.ceil(row / (a.s[inner] ?? 1)), kernelPositions: a.k[0] * a.k[1] * a.k[2], kind },
      device,
    );
  };
}

const X_WINDOW = windowParams('x');
const Y_WINDOW = windowParams('y');
const FWD_PARAMS = { ...X_WINDOW, outBegin: 'int', countIncludePad: 'int' } as const;
const FWD_ARRAYS = { ...GEOMETRY_ARRAYS, ...windowArrays('x') };

export const maxPoolCodelet = defineCodelet({
  name: 'NnMaxPool',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: FWD_PARAMS,
  arrays: FWD_ARRAYS,
  compute: (args) => poolForward(args, args.fields.in, args.fields.out, true),
  cycles: fwdCycles('max'),
  estimateSource: POOL_SOURCE,
});

/**
 * MaxPool's Indices: the flat index in X of each window's first maximum:
 * ((n C + c) D0 + i0) D1 D2 + i1 D2 + i2 (storageOrder 0), or with the
 * spatial dims column-major, (n C + c) D0 D1 D2 + i0 + i1 D0 + i2 D0 D1 (1).
 */
export const maxPoolIndicesCodelet = defineCodelet({
  name: 'NnMaxPoolIndices',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true }, out: { direction: 'output', dtypes: ['int32'] } },
  params: { ...X_WINDOW, outBegin: 'int', storageOrder: 'int' },
  arrays: FWD_ARRAYS,
  compute(args) {
    const { fields, params } = args;
    const g = geometryOf(args.arrays);
    const [, C, D0, D1, D2] = g.xs;
    const xw = planeWindow(args, fields.in, 'x', D1, D2);
    const out = fields.out;
    const ix: number[] = [];
    const inIx: number[] = [];
    const planeShape = [D0, D1, D2];
    for (let i = 0; i < out.length; i++) {
      const [n, c, o0, o1, o2] = unravel(params.outBegin + i, g.ys, ix);
      const [at] = argmax(g, xw, n, c, o0, o1, o2);
      if (at < 0) {
        out[i] = -1;
        continue;
      }
      const [i0, i1, i2] = unravel(at, planeShape, inIx);
      out[i] = (n * C + c) * D0 * D1 * D2 + (params.storageOrder === 1 ? i0 + i1 * D0 + i2 * D0 * D1 : at);
    }
  },
  cycles: fwdCycles('max'),
  estimateSource: `${POOL_SOURCE} (max with the argmax kept)`,
});

export const averagePoolCodelet = defineCodelet({
  name: 'NnAveragePool',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: FWD_PARAMS,
  arrays: FWD_ARRAYS,
  compute: (args) => poolForward(args, args.fields.in, args.fields.out, false),
  cycles: fwdCycles('avg'),
  estimateSource: POOL_SOURCE,
});

export const maxPoolGradCodelet = defineCodelet({
  name: 'NnMaxPoolGrad',
  kind: 'multi',
  fields: { gradOut: { direction: 'input', vector: true }, in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: { ...Y_WINDOW, ...X_WINDOW, outBegin: 'int', countIncludePad: 'int' },
  arrays: { ...GEOMETRY_ARRAYS, ...windowArrays('y'), ...windowArrays('x') },
  compute: (args) => poolGrad(args, args.fields.gradOut, args.fields.in, args.fields.out, true),
  cycles: gradCycles('maxGrad'),
  estimateSource: `${POOL_SOURCE} (backward pass of max: rpt 7 + 5n over dX rows)`,
});

export const averagePoolGradCodelet = defineCodelet({
  name: 'NnAveragePoolGrad',
  kind: 'multi',
  fields: { gradOut: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: { ...Y_WINDOW, outBegin: 'int', countIncludePad: 'int' },
  arrays: { ...GEOMETRY_ARRAYS, ...windowArrays('y') },
  compute: (args) => poolGrad(args, args.fields.gradOut, undefined, args.fields.out, false),
  cycles: gradCycles('avg'),
  estimateSource: `${POOL_SOURCE} (average backward as a sum pooling of the scaled dY over dX rows)`,
});

/** out[i] = scale x in[floor((begin + i) / S) - pMin]: a per-plane value spread over its S elements. */
export const broadcastPlanesCodelet = defineCodelet({
  name: 'NnBroadcastPlanes',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  params: { S: 'int', begin: 'int', pMin: 'int', scale: 'float' },
  compute({ fields, params }) {
    const x = fields.in;
    const out = fields.out;
    const { S, begin, pMin, scale } = params;
    let p = Math.floor(begin / S);
    let j = begin % S;
    let v = Math.fround(x[p - pMin] * scale);
    for (let i = 0; i < out.length; i++) {
      out[i] = v;
      if (++j === S) {
        j = 0;
        p++;
        if (p - pMin < x.length) v = Math.fround(x[p - pMin] * scale);
      }
    }
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    return binaryMultiVertex(regionCount(v.fields.out), dtype, addLoop(dtype), device);
  },
  estimateSource: 'one broadcast multiply per element: §3 binary 1-D MultiVertex',
});

export const poolCodelets: Codelet[] = [maxPoolCodelet, maxPoolIndicesCodelet, averagePoolCodelet, maxPoolGradCodelet, averagePoolGradCodelet, broadcastPlanesCodelet];
