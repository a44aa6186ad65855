/**
 * Codelets of GatherElements and ScatterElements (src/ops/elements.ts), and
 * NdIndexFlatten (GatherND, ScatterND: src/ops/nd.ts).
 *
 * Both walk elements of an index tensor of shape arrays.ishape (row-major,
 * starting at element params.begin): element c of it names the element of a
 * tensor of strides arrays.dstrides (the data's) whose coordinates are c with
 * axis params.axis replaced by the index (negative counts from params.A, the
 * data's size along the axis). The data side is a window starting at flat
 * element params.base.
 *
 * GatherElements: out[i] = data[target(i) - base]. An index outside [-A, A)
 * gives 0 (popops' multiSlice leaves such rows alone; ONNX calls it an
 * error).
 *
 * ScatterElementsRange: out holds data elements [params.base, params.base + n)
 * (copied from `data`, or zeros when params.zero is 1); every element i <
 * params.count of `updates` whose target falls in that range is combined into
 * it, in order: params.reduction 0 replaces (the last index wins, as
 * onnxruntime), 1 adds, 2 multiplies, 3 max, 4 min, 5 writes 0 (the
 * updates' values are not read: ScatterElements' data gradient). Sums are kept in float64
 * and stored once.
 */
import { regionCount, type Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';

/** Every device dtype: these codelets move elements of any type. */
const ALL = ['float32', 'float16', 'int32', 'uint8'] as const;
/** The walk of the index tensor (see above). */
const WALK_PARAMS = { begin: 'int', base: 'int', axis: 'int', A: 'int' } as const;
const WALK_ARRAYS = { ishape: 'ints', dstrides: 'ints' } as const;

/** The data index each index element [begin, begin + n) points at (before its own index is put in), and a callback per element. */
function forEachTarget(args: { params: { begin: number; axis: number; A: number }; arrays: { ishape: number[]; dstrides: number[] } }, n: number, indices: Int32Array, f: (i: number, target: number) => void): void {
  const { begin, axis, A } = args.params;
  const shape = args.arrays.ishape;
  const strides = args.arrays.dstrides;
  const r = shape.length;
  const c = new Array<number>(r).fill(0);
  let rem = begin;
  for (let k = r - 1; k >= 0; k--) {
    c[k] = rem % shape[k];
    rem = Math.floor(rem / shape[k]);
  }
  for (let i = 0; i < n; i++) {
    let flat = 0;
    for (let k = 0; k < r; k++) if (k !== axis) flat += c[k] * strides[k];
    let j = indices[i];
    if (j < 0) j += A;
    f(i, j >= 0 && j < A ? flat + j * strides[axis] : -1);
    for (let k = r - 1; k >= 0; k--) {
      if (++c[k] < shape[k]) break;
      c[k] = 0;
    }
  }
}

export const gatherElementsCodelet = defineCodelet({
  name: 'GatherElements',
  kind: 'worker',
  fields: { data: { direction: 'input', dtypes: ALL }, indices: { direction: 'input', dtypes: ['int32'] }, out: { direction: 'output', dtypes: ALL } },
  params: WALK_PARAMS,
  arrays: WALK_ARRAYS,
  compute(args) {
    const data = args.fields.data;
    const out = args.fields.out;
    const base = args.params.base;
    forEachTarget(args, out.length, args.fields.indices, (i, t) => (out[i] = t < 0 ? 0 : data[t - base]));
  },
  // Per element: the index load, the address (a multiply-add per axis) and a load and a store (GUESS from §3's ALU figures).
  cycles: (v) => 10 + regionCount(v.fields.out) * (6 + 2 * (v.arrays?.ishape?.length ?? 1)),
  estimateSource: 'worker loop: index load, address arithmetic per axis, load and store (GUESS from §3 ALU figures)',
});

export const scatterElementsCodelet = defineCodelet({
  name: 'ScatterElementsRange',
  kind: 'worker',
  fields: {
    data: { direction: 'input', dtypes: ALL },
    updates: { direction: 'input', dtypes: ALL },
    indices: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ALL },
  },
  params: { ...WALK_PARAMS, count: 'int', zero: 'int', reduction: 'int' },
  arrays: WALK_ARRAYS,
  compute(args) {
    const out = args.fields.out;
    const { base, count, zero, reduction } = args.params;
    const acc = new Float64Array(out.length);
    if (zero !== 1) acc.set(args.fields.data);
    const upd = args.fields.updates;
    const end = base + out.length;
    forEachTarget(args, count, args.fields.indices, (i, t) => {
      if (t < base || t >= end) return;
      const o = t - base;
      const u = reduction === 5 ? 0 : upd[i];
      if (reduction === 0) acc[o] = u;
      else if (reduction === 1) acc[o] += u;
      else if (reduction === 2) acc[o] *= u;
      else if (reduction === 3) acc[o] = Math.max(acc[o], u);
      else if (reduction === 4) acc[o] = Math.min(acc[o], u);
      else acc[o] = 0;
    });
    for (let i = 0; i < out.length; i++) out[i] = acc[i];
  },
  // The copy of the range, then per update read: the index load, address arithmetic, a range test and a read-modify-write (GUESS).
  cycles: (v) => 10 + regionCount(v.fields.out) + (v.params.count ?? 0) * (8 + 2 * (v.arrays?.ishape?.length ?? 1)),
  estimateSource: 'worker loop: copy of the range, then per update the index load, address arithmetic, a range test and a read-modify-write (GUESS from §3 ALU figures)',
});


/**
 * NdIndexFlatten (GatherND, ScatterND): each row of params.k indices (row
 * params.begin + i of the indices) becomes the row number it names in data
 * viewed as [batches x rows per batch, inner]: batch (row / params.rowsPerBatch)
 * x params.perBatch + sum_j index_j x arrays.strides[j], an index_j below 0
 * counting from arrays.dims[j]. A row with an index out of range gives
 * 2^31 - 1, which the Gather and Scatter codelets skip as out of range.
 */
export const ndIndexFlattenCodelet = defineCodelet({
  name: 'NdIndexFlatten',
  kind: 'worker',
  fields: { indices: { direction: 'input', dtypes: ['int32'] }, out: { direction: 'output', dtypes: ['int32'] } },
  params: { k: 'int', begin: 'int', rowsPerBatch: 'int', perBatch: 'int' },
  arrays: { dims: 'ints', strides: 'ints' },
  compute({ fields, params, arrays }) {
    const ind = fields.indices;
    const out = fields.out;
    const { k, begin, rowsPerBatch, perBatch } = params;
    const { dims, strides } = arrays;
    for (let i = 0; i < out.length; i++) {
      let flat = Math.floor((begin + i) / rowsPerBatch) * perBatch;
      for (let j = 0; j < k; j++) {
        let v = ind[i * k + j];
        if (v < 0) v += dims[j];
        if (v < 0 || v >= dims[j]) {
          flat = 2 ** 31 - 1;
          break;
        }
        flat += v * strides[j];
      }
      out[i] = flat;
    }
  },
  cycles: (v) => 10 + regionCount(v.fields.out) * (4 + 4 * (v.params.k ?? 1)),
  estimateSource: 'worker loop: per index a load, a range test and a multiply-add, 4 per row for the batch offset and the store (GUESS from §3 ALU figures)',
});

export const elementsCodelets: Codelet[] = [gatherElementsCodelet, scatterElementsCodelet, ndIndexFlattenCodelet];
