/**
 * Codelets of the shape op family (src/ops/shape*.ts, src/ops/gather.ts,
 * src/lower/rearrange.ts). They move elements without arithmetic, so they
 * work on every element type: int32 fields are Int32Arrays and float16
 * fields arrive as Float32Arrays holding exact float16 values, which survive
 * the copy bit for bit.
 *
 * Rearrange         out[j] = in[offset + sum_k i_k strides[k] - base], i the
 *                   multi-index of (begin + j) over arrays.shape; `in` is a
 *                   list of regions read back to back
 * RearrangeScatter  out = 0, then out[offset + sum_k i_k strides[k] - begin] =
 *                   in[q - base] for each q of the covering interval
 * ZeroRegions       every region of `out` (a list) set to 0
 * GatherSlices      out row p = (o, j) of [outer, numIdx] x inner takes
 *                   data row o * axisSize + indices[j] (0 when out of range)
 * GatherSlicesGrad  out (a range of the data gradient) = 0, then each row of
 *                   gradOut added to the data row its index names
 *
 * Cycle estimates follow PopLibs' estimators for the vertices that do the
 * same work (graphcore/poplibs lib/popops/popopsCycleEstimators.cpp and
 * lib/popops/PerformanceEstimation.cpp); each says which.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { DTYPE_BYTES } from '../program.js';

type Elems = Float32Array | Int32Array;

const ANY = ['float32', 'float16', 'int32'] as const;

/** Walk the odometer over `shape` from flat index `begin`, calling f(j, src) for j in [0, n). */
function walk(shape: number[], strides: number[], offset: number, begin: number, n: number, f: (j: number, src: number) => void): void {
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  let rem = begin;
  let src = offset;
  for (let k = rank - 1; k >= 0; k--) {
    idx[k] = rem % shape[k];
    rem = Math.floor(rem / shape[k]);
    src += idx[k] * strides[k];
  }
  for (let j = 0; j < n; j++) {
    f(j, src);
    let k = rank - 1;
    while (k >= 0) {
      idx[k]++;
      src += strides[k];
      if (idx[k] < shape[k]) break;
      src -= shape[k] * strides[k];
      idx[k] = 0;
      k--;
    }
  }
}

/** Innermost rows of `shape` (its last dim) that flat indices [begin, begin + n) touch. */
function rowsTouched(shape: number[] | undefined, begin: number, n: number): number {
  if (n === 0) return 0;
  const inner = shape && shape.length > 0 ? shape[shape.length - 1] : 1;
  return Math.floor((begin + n - 1) / inner) - Math.floor(begin / inner) + 1;
}

/**
 * PopLibs Transpose2d, slow path (any shape), per worker:
 *   4-byte types 13 + matrices x (8 + cols x (5 + 2 rows)),
 *   2-byte types 15 + matrices x (8 + cols x (5 + 2.5 rows)),
 * i.e. about 2 (2.5) cycles per element plus 5 per output row. Here a worker
 * takes ceil(n / W) elements and ceil(rows / W) rows of one "matrix", and the
 * MultiVertex adds TransposeSupervisor's 7 supervisor cycles: 7 + W x worker.
 */
export function transposeLikeCycles(n: number, rows: number, dtype: DeviceDType, device: DeviceSpec): number {
  const W = device.workersPerTile;
  const two = DTYPE_BYTES[dtype] === 2;
  const perElem = two ? 2.5 : 2;
  const worker = (two ? 15 : 13) + 8 + 5 * Math.ceil(rows / W) + Math.ceil(perElem * Math.ceil(n / W));
  return 7 + W * worker;
}

/**
 * PopLibs Fill (PerformanceEstimation.cpp _fillCycleEstimate), one worker:
 *   float/int 16 + n/2 + 6 + (n odd) + 1;  half n = 1: 15, n = 2: 21, else 26 + n/4.
 */
export function fillCycles(n: number, dtype: DeviceDType): number {
  if (DTYPE_BYTES[dtype] === 2) return n === 1 ? 15 : n === 2 ? 21 : 26 + Math.floor(n / 4);
  return 16 + Math.floor(n / 2) + 6 + (n % 2) + 1;
}

/** PopLibs Fill2D: 5 + sum of Fill per region + (half ? 0 : 1) - (half ? 2 : 3) per region. */
export function fill2dCycles(counts: number[], dtype: DeviceDType): number {
  const half = DTYPE_BYTES[dtype] === 2;
  let c = 5 + (half ? 0 : 1);
  for (const n of counts) c += fillCycles(n, dtype) - (half ? 2 : 3);
  return c;
}

/** A Fill of n elements shared by the W workers of a MultiVertex: W x Fill(ceil(n / W)). */
function multiFill(n: number, dtype: DeviceDType, device: DeviceSpec): number {
  return n === 0 ? 0 : device.workersPerTile * fillCycles(Math.ceil(n / device.workersPerTile), dtype);
}

/** The regions of a vector field read as one array (in order). */
function joined(parts: Elems[]): Elems {
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = parts[0] instanceof Int32Array ? new Int32Array(total) : new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export const rearrangeCodelet = defineCodelet({
  name: 'Rearrange',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true, dtypes: ANY }, out: { direction: 'output', dtypes: ANY } },
  params: { base: 'int', offset: 'int', begin: 'int' },
  arrays: { shape: 'ints', strides: 'ints' },
  compute({ fields, params, arrays }) {
    const x = joined(fields.in);
    const y = fields.out;
    const base = params.base;
    walk(arrays.shape, arrays.strides, params.offset, params.begin, y.length, (j, s) => {
      y[j] = x[s - base];
    });
  },
  cycles(v, device) {
    const n = regionCount(v.fields.out);
    return transposeLikeCycles(n, rowsTouched(v.arrays?.shape, v.params.begin ?? 0, n), fieldDType(v.fields.out), device);
  },
  estimateSource: 'PopLibs Transpose2d slow path (13 + 8 + cols x (5 + 2 rows) per worker; half 15, 2.5) shared by W workers, + 7 as TransposeSupervisor',
});

export const rearrangeScatterCodelet = defineCodelet({
  name: 'RearrangeScatter',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ANY }, out: { direction: 'output', dtypes: ANY } },
  params: { base: 'int', offset: 'int', begin: 'int' },
  arrays: { shape: 'ints', strides: 'ints' },
  compute({ fields, params, arrays }) {
    const x = fields.in;
    const y = fields.out;
    y.fill(0);
    const begin = params.begin;
    walk(arrays.shape, arrays.strides, params.offset, params.base, x.length, (q, p) => {
      const at = p - begin;
      if (at >= 0 && at < y.length) y[at] = x[q];
    });
  },
  cycles(v, device) {
    const nIn = regionCount(v.fields.in);
    const dtype = fieldDType(v.fields.out);
    return multiFill(regionCount(v.fields.out), dtype, device) + transposeLikeCycles(nIn, rowsTouched(v.arrays?.shape, v.params.base ?? 0, nIn), dtype, device);
  },
  estimateSource: 'PopLibs Fill of the range (W workers) + Transpose2d slow path over the elements read (as Rearrange)',
});

export const zeroRegionsCodelet = defineCodelet({
  name: 'ZeroRegions',
  kind: 'worker',
  fields: { out: { direction: 'output', vector: true, dtypes: ANY } },
  params: { value: 'float?' },
  // params.value: the fill (default 0; a reduction over no elements writes its identity).
  compute({ fields, params }) {
    const v = params.value ?? 0;
    for (const r of fields.out) r.fill(v);
  },
  cycles(v) {
    const regions = v.fields.out;
    return fill2dCycles(regions.map((r) => r.count), fieldDType(regions));
  },
  estimateSource: 'PopLibs Fill2D (PerformanceEstimation.cpp): 5 + sum over regions of Fill(n) + (half ? 0 : 1) - (half ? 2 : 3) per region',
});

/**
 * Shared by GatherSlices and GatherSlicesGrad: the row p = o x numIdx + j of
 * the gathered tensor [outer, numIdx, inner] names data row
 * o x axisSize + indices[j] (negative indices count from the end), or -1 when
 * the index is out of range.
 */
function dataRow(p: number, idx: Int32Array, params: { numIdx: number; axisSize: number; idxBase: number }): number {
  const { numIdx, axisSize, idxBase } = params;
  const j = p % numIdx;
  const o = (p - j) / numIdx;
  let r = idx[j - idxBase];
  if (r < 0) r += axisSize;
  if (r < 0 || r >= axisSize) return -1;
  return o * axisSize + r;
}

/**
 * PopLibs MultiSlice (PerformanceEstimation.cpp getMultiSliceCycleEstimate):
 * (30 + offsets x (19 + ceil(elemsPerSlice / 2) x 2)) x W, 64-bit data path
 * (2 elements of 4 bytes, or 2 of 2 bytes, per 2-cycle vector). PopLibs
 * charges one worker with every offset (its worst case); here the offsets
 * of the vertex are shared by the W workers.
 */
export function multiSliceCycles(offsets: number, elemsPerSlice: number, device: DeviceSpec): number {
  const W = device.workersPerTile;
  return (30 + Math.ceil(offsets / W) * (19 + Math.ceil(elemsPerSlice / 2) * 2)) * W;
}

/**
 * PopLibs MultiUpdateOp (add, unscaled; getMultiUpdateOpCycleEstimate):
 * (3 + (4-byte ? 29 : 30) + offsets x ((4-byte ? 11 : 12) + 3 x (elemsPerSlice / elemsPerAtom - 1))) x W,
 * every offset in range for one worker (PopLibs' worst case); elemsPerAtom =
 * lcm(4-byte atomic store, element size) / element size.
 */
export function multiUpdateAddCycles(offsets: number, elemsPerSlice: number, dtype: DeviceDType, device: DeviceSpec): number {
  const four = DTYPE_BYTES[dtype] === 4;
  const perAtom = four ? 1 : 2;
  const perOffset = (four ? 11 : 12) + 3 * Math.max(0, Math.ceil(elemsPerSlice / perAtom) - 1);
  return (3 + (four ? 29 : 30) + offsets * perOffset) * device.workersPerTile;
}

export const gatherSlicesCodelet = defineCodelet({
  name: 'GatherSlices',
  kind: 'multi',
  fields: {
    data: { direction: 'input', dtypes: ANY },
    indices: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ANY },
  },
  params: { inner: 'int', begin: 'int', dataBase: 'int', numIdx: 'int', axisSize: 'int', idxBase: 'int' },
  compute({ fields, params }) {
    const data = fields.data;
    const idx = fields.indices;
    const out = fields.out;
    const { inner, begin, dataBase } = params;
    let t = 0;
    while (t < out.length) {
      const q = begin + t;
      const c = q % inner;
      const p = (q - c) / inner;
      const len = Math.min(inner - c, out.length - t);
      const row = dataRow(p, idx, params);
      if (row < 0) out.fill(0, t, t + len);
      else {
        const from = row * inner + c - dataBase;
        for (let e = 0; e < len; e++) out[t + e] = data[from + e];
      }
      t += len;
    }
  },
  cycles(v, device) {
    const n = regionCount(v.fields.out);
    const inner = v.params.inner ?? 1;
    const offsets = rowsTouched([inner], v.params.begin ?? 0, n);
    return multiSliceCycles(offsets, Math.min(inner, n), device);
  },
  estimateSource: 'PopLibs MultiSlice: (30 + offsets x (19 + 2 ceil(elemsPerSlice / 2))) x W, offsets shared by the W workers',
});

export const gatherSlicesGradCodelet = defineCodelet({
  name: 'GatherSlicesGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', dtypes: ['float32', 'float16'] },
    indices: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { inner: 'int', begin: 'int', gradBase: 'int', numIdx: 'int', axisSize: 'int', idxBase: 'int' },
  compute({ fields, params }) {
    const g = fields.gradOut;
    const idx = fields.indices;
    const out = fields.out;
    const { inner, begin, gradBase } = params;
    out.fill(0);
    const end = begin + out.length;
    // gradOut covers whole rows: gradBase is a multiple of inner.
    const firstRow = gradBase / inner;
    const rows = g.length / inner;
    for (let k = 0; k < rows; k++) {
      const row = dataRow(firstRow + k, idx, params);
      if (row < 0) continue;
      const d0 = row * inner;
      const lo = Math.max(d0, begin);
      const hi = Math.min(d0 + inner, end);
      for (let p = lo; p < hi; p++) out[p - begin] += g[k * inner + (p - d0)];
    }
  },
  cycles(v, device) {
    const inner = v.params.inner ?? 1;
    const rows = Math.ceil(regionCount(v.fields.gradOut) / inner);
    const dtype = fieldDType(v.fields.out);
    return multiFill(regionCount(v.fields.out), dtype, device) + multiUpdateAddCycles(rows, inner, dtype, device);
  },
  estimateSource: 'PopLibs Fill of the range (W workers) + MultiUpdateOp add: (3 + 29 + offsets x (11 + 3 (elemsPerSlice - 1))) x W (half: 30, 12, pairs)',
});

export const shapeCodelets: Codelet[] = [rearrangeCodelet, rearrangeScatterCodelet, zeroRegionsCodelet, gatherSlicesCodelet, gatherSlicesGradCodelet];
