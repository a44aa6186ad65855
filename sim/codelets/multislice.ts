/**
 * Codelets of the embedding lookup plan (src/lower/slice-planner.ts, used by
 * Gather and GatherGrad with runtime indices in src/ops/shape-gather.ts):
 * PopLibs' popops::multiSlice and multiUpdateAdd on a table split over tiles
 * by rows (the sliced dimension) and columns (the embedding dimension).
 *
 * The table is viewed as rows of `inner` elements, [outer x axisSize] rows;
 * output row p = o x numIdx + j reads table row o x axisSize + indices[j]
 * (negative indices count from the end; out of range: a zero row, and nothing
 * added to the gradient). A vertex sees its column block of `cols` elements.
 *
 * MultiSlice         base = table rows [rowBase, rowBase + rows) (its column
 *                    block, rows back to back, possibly one region per row);
 *                    out = output rows [outRowBase, ...) of the block. Each
 *                    output row whose table row is in base gets it copied;
 *                    with zeroMissing, every other row is zeroed (the
 *                    unsplit case, where out is the Gather's output), else
 *                    left alone (a partial that MultiSliceCombine reads only
 *                    where this tile owns the row).
 * MultiSliceCombine  out = output rows [outRowBase, ...), one column block;
 *                    parts[k] = the partial of row group partGroup[k] for
 *                    output rows from partRow[k]; each output row takes its
 *                    row from the part of the group owning its table row
 *                    (rowsPer rows a group), zeros when out of range.
 * MultiUpdateAdd     out (a block of the table gradient, like base) = 0, then
 *                    each gradient row, in order, added to the row its index
 *                    names when this block holds it (repeated indices
 *                    accumulate in float32, one rounding at the end).
 *
 * Cycle estimates: graphcore/poplibs lib/popops/PerformanceEstimation.cpp,
 * getMultiSliceCycleEstimate and getMultiUpdateOpCycleEstimate, which
 * assume the worst case, every offset in range for the vertex (the cost may
 * not depend on index values: sim/cost.ts reads only the program).
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { DTYPE_BYTES } from '../program.js';
import { fillCycles } from './shape.js';

type Elems = Float32Array | Int32Array;
const ANY = ['float32', 'float16', 'int32'] as const;

/** A vector field's regions read as one array. */
function joined<T extends Elems>(parts: T[]): T {
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = like(parts[0], total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Write `flat` back over a vector field's regions, in order. */
function scatter(flat: Elems, parts: Elems[]): void {
  if (parts.length === 1 && parts[0] === flat) return;
  let at = 0;
  for (const p of parts) {
    p.set(flat.subarray(at, at + p.length));
    at += p.length;
  }
}

/** A scratch array shaped like a vector field's regions back to back (the field itself when it is one region). */
function scratch<T extends Elems>(parts: T[]): T {
  if (parts.length === 1) return parts[0];
  return like(parts[0], parts.reduce((s, p) => s + p.length, 0));
}

/** A fresh array of n elements of x's kind. */
function like<T extends Elems>(x: T, n: number): T {
  // T is one of the two kinds: the constructor matching x's makes a T.
  return (x instanceof Int32Array ? new Int32Array(n) : new Float32Array(n)) as T;
}

/** Table row of output row p (o x numIdx + j), or -1 when its index is out of range. */
export function tableRow(p: number, idx: Int32Array, numIdx: number, axisSize: number, idxBase: number): number {
  const j = p % numIdx;
  const o = (p - j) / numIdx;
  let r = idx[j - idxBase];
  if (r < 0) r += axisSize;
  if (r < 0 || r >= axisSize) return -1;
  return o * axisSize + r;
}

/**
 * PopLibs getMultiSliceCycleEstimate, per worker: 13 (prologue and
 * epilogue) + per offset in range 19 + ceil(elemsPerSlice / vectorWidth) x
 * cyclesPerVector (2- and 4-byte types: 2 elements per 2-cycle vector on the
 * 64-bit data path), every offset in range (PopLibs' multiSlicer assumes the
 * same). The MultiVertex shares the offsets among its W workers:
 * W x (13 + ceil(offsets / W) x (19 + 2 ceil(elems / 2))).
 */
export function multiSliceVertexCycles(offsets: number, elemsPerSlice: number, dtype: DeviceDType, device: DeviceSpec): number {
  const W = device.workersPerTile;
  const vw = DTYPE_BYTES[dtype] === 4 ? Math.max(1, device.vectorWidthBits / 32) : 2;
  const perOffset = 19 + Math.ceil(elemsPerSlice / vw) * 2;
  return W * (13 + Math.ceil(offsets / W) * perOffset);
}

/**
 * PopLibs getMultiUpdateOpCycleEstimate (add, unscaled), one-point
 * distribution (every offset in range of one worker, the worst case: its
 * workers split the table rows, so each scans every offset):
 *   (3 + (float ? 24 : 25) + offsets x ((float ? 11 : 12) + 3 (elemsPerSlice / elemsPerAtom - 1))) x W + 25,
 * elemsPerAtom = 4-byte atomic store / element size; a half slice of odd
 * length needs sub-word writes: + 20 cycles per element (PopLibs' figure).
 */
export function multiUpdateAddVertexCycles(offsets: number, elemsPerSlice: number, dtype: DeviceDType, device: DeviceSpec): number {
  const four = DTYPE_BYTES[dtype] === 4;
  if (offsets === 0) return 3 * device.workersPerTile + 25;
  const perAtom = four ? 1 : 2;
  let perOffset = four ? 11 : 12;
  if (!four && elemsPerSlice % 2 === 1) perOffset += elemsPerSlice * 20;
  else perOffset += 3 * Math.max(0, elemsPerSlice / perAtom - 1);
  return (3 + (four ? 24 : 25) + offsets * perOffset) * device.workersPerTile + 25;
}

export const multiSliceCodelet = defineCodelet({
  name: 'MultiSlice',
  kind: 'multi',
  fields: {
    base: { direction: 'input', vector: true, dtypes: ANY },
    offsets: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', vector: true, dtypes: ANY },
  },
  params: { cols: 'int', rowBase: 'int', rows: 'int', numIdx: 'int', axisSize: 'int', idxBase: 'int', outRowBase: 'int', zeroMissing: 'int' },
  compute({ fields, params }) {
    const base = joined(fields.base);
    const idx = fields.offsets;
    const out = scratch(fields.out);
    const { cols, rowBase, rows, numIdx, axisSize, idxBase, outRowBase, zeroMissing } = params;
    const n = out.length / cols;
    for (let k = 0; k < n; k++) {
      const row = tableRow(outRowBase + k, idx, numIdx, axisSize, idxBase);
      if (row >= rowBase && row < rowBase + rows) out.set(base.subarray((row - rowBase) * cols, (row - rowBase + 1) * cols), k * cols);
      else if (zeroMissing) out.fill(0, k * cols, (k + 1) * cols);
    }
    scatter(out, fields.out);
  },
  cycles(v, device) {
    const cols = v.params.cols ?? 1;
    return multiSliceVertexCycles(Math.ceil(regionCount(v.fields.out) / cols), cols, fieldDType(v.fields.out), device);
  },
  estimateSource: 'PopLibs getMultiSliceCycleEstimate: 13 + offsets x (19 + ceil(elems / 2) x 2) per worker, every offset in range, offsets shared by the W workers',
});

export const multiSliceCombineCodelet = defineCodelet({
  name: 'MultiSliceCombine',
  kind: 'multi',
  fields: {
    parts: { direction: 'input', vector: true, dtypes: ANY },
    offsets: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', vector: true, dtypes: ANY },
  },
  params: { cols: 'int', rowsPer: 'int', numIdx: 'int', axisSize: 'int', idxBase: 'int', outRowBase: 'int' },
  arrays: { partGroup: 'ints', partRow: 'ints' },
  compute({ fields, params, arrays }) {
    const parts = fields.parts;
    const idx = fields.offsets;
    const out = scratch(fields.out);
    const { cols, rowsPer, numIdx, axisSize, idxBase, outRowBase } = params;
    const { partGroup, partRow } = arrays;
    const n = out.length / cols;
    for (let k = 0; k < n; k++) {
      const p = outRowBase + k;
      const row = tableRow(p, idx, numIdx, axisSize, idxBase);
      const group = row < 0 ? -1 : Math.floor(row / rowsPer);
      const at = row < 0 ? -1 : partGroup.findIndex((g, i) => g === group && partRow[i] <= p && p < partRow[i] + parts[i].length / cols);
      if (at < 0) out.fill(0, k * cols, (k + 1) * cols);
      else out.set(parts[at].subarray((p - partRow[at]) * cols, (p - partRow[at] + 1) * cols), k * cols);
    }
    scatter(out, fields.out);
  },
  cycles(v, device) {
    const cols = v.params.cols ?? 1;
    return multiSliceVertexCycles(Math.ceil(regionCount(v.fields.out) / cols), cols, fieldDType(v.fields.out), device);
  },
  estimateSource: 'as MultiSlice over the output rows (each picks the partial of the row group owning its index, then copies the row): 13 + rows x (19 + ceil(cols / 2) x 2) per worker, rows shared by the W workers',
});

export const multiUpdateAddCodelet = defineCodelet({
  name: 'MultiUpdateAdd',
  kind: 'multi',
  fields: {
    grads: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    offsets: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', vector: true, dtypes: ['float32', 'float16'] },
  },
  params: { cols: 'int', rowBase: 'int', rows: 'int', numIdx: 'int', axisSize: 'int', idxBase: 'int', gradRowBase: 'int' },
  compute({ fields, params }) {
    const g = joined(fields.grads);
    const idx = fields.offsets;
    const out = scratch(fields.out);
    const { cols, rowBase, rows, numIdx, axisSize, idxBase, gradRowBase } = params;
    out.fill(0);
    const n = g.length / cols;
    for (let k = 0; k < n; k++) {
      const row = tableRow(gradRowBase + k, idx, numIdx, axisSize, idxBase);
      if (row < rowBase || row >= rowBase + rows) continue;
      const d = (row - rowBase) * cols;
      for (let e = 0; e < cols; e++) out[d + e] += g[k * cols + e];
    }
    scatter(out, fields.out);
  },
  cycles(v, device) {
    const cols = v.params.cols ?? 1;
    const dtype = fieldDType(v.fields.out);
    const n = regionCount(v.fields.out);
    const W = device.workersPerTile;
    const fill = n === 0 ? 0 : W * fillCycles(Math.ceil(n / W), dtype);
    return fill + multiUpdateAddVertexCycles(Math.ceil(regionCount(v.fields.grads) / cols), cols, dtype, device);
  },
  estimateSource:
    'PopLibs Fill of the block (W workers) + getMultiUpdateOpCycleEstimate (add): (3 + 24 + offsets x (11 + 3 (elems / atom - 1))) x W + 25, half 25 and 12, one-point distribution',
});

export const multiSliceCodelets: Codelet[] = [multiSliceCodelet, multiSliceCombineCodelet, multiUpdateAddCodelet];
