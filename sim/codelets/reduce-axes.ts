/**
 * Codelets for reductions over arbitrary axes (src/lower/reduce-axes.ts).
 *
 * ReduceAxesPartial (stage 1, or the only stage): `in` holds elements
 * [begin, begin + n) of a row-major tensor of the axis-merged shape
 * arrays.shape; element c goes to output element sum_k c_k x arrays.out[k]
 * (0 for reduced axes), minus params.outBase, of `out`. `out` starts at the
 * identity (0 for sum, -Infinity for max, Infinity for min, 1 for prod),
 * accumulates in float64, and is written times params.scale. params.kind:
 * 0 sum, 1 max, 2 min, 3 prod (a NaN wins max and min).
 *
 * ReduceAxesFinal (stage 2): `partials` is a list of pieces; piece j covers
 * out[arrays.offsets[j] ...]. out = scale x combine(identity, pieces).
 */
import type { Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import { reduce } from './estimators.js';
import { cachedIndex } from './binary.js';

const KIND_SUM = 0;
const IDENTITY = [0, -Infinity, Infinity, 1];

/** acc[o] combined with v, for kind k. */
function combiner(k: number): (acc: Float64Array, o: number, v: number) => void {
  switch (k) {
    case 1:
      return (acc, o, v) => {
        if (v > acc[o] || Number.isNaN(v)) acc[o] = v;
      };
    case 2:
      return (acc, o, v) => {
        if (v < acc[o] || Number.isNaN(v)) acc[o] = v;
      };
    case 3:
      return (acc, o, v) => {
        acc[o] *= v;
      };
    default:
      return (acc, o, v) => {
        acc[o] += v;
      };
  }
}

export const reduceAxesPartialCodelet = defineCodelet({
  name: 'ReduceAxesPartial',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ['float32', 'float16', 'int32'] }, out: { direction: 'output', dtypes: ['float32', 'float16', 'int32'] } },
  params: { begin: 'int', outBase: 'int', kind: 'int?', scale: 'float?' },
  arrays: { shape: 'ints', out: 'ints' },
  compute(args) {
    const x = args.fields.in;
    const out = args.fields.out;
    const idx = cachedIndex(args, 'out', x.length, 'out', 'outBase');
    const kind = args.params.kind ?? KIND_SUM;
    const acc = new Float64Array(out.length).fill(IDENTITY[kind]);
    if (kind === KIND_SUM) for (let i = 0; i < x.length; i++) acc[idx[i]] += x[i];
    else {
      const f = combiner(kind);
      for (let i = 0; i < x.length; i++) f(acc, idx[i], x[i]);
    }
    const scale = args.params.scale ?? 1;
    for (let j = 0; j < out.length; j++) out[j] = acc[j] * scale;
  },
  cycles(v, device) {
    const nIn = regionCount(v.fields.in);
    const nOut = regionCount(v.fields.out);
    // Output regions: when the innermost merged axis is kept, each run of it is one
    // vector region accumulated over the reduced rows; when it is reduced, every output
    // element is its own region (a contiguous run of the input summed to a scalar).
    const shape = v.arrays?.shape ?? [];
    const outStrides = v.arrays?.out ?? [];
    const last = shape.length - 1;
    const innerKept = last >= 0 && outStrides[last] !== 0;
    const regions = innerKept ? Math.ceil(nOut / shape[last]) : nOut;
    return reduce(nIn, Math.max(1, regions), fieldDType(v.fields.in), device);
  },
  estimateSource: 'PopLibs reduction: 7 + 26 start, per output region 16 + 6 + 2 log2(vw) + 2, per partial vector 2 + 2 + 1 + 3',
});

export const reduceAxesFinalCodelet = defineCodelet({
  name: 'ReduceAxesFinal',
  kind: 'multi',
  fields: { partials: { direction: 'input', vector: true, dtypes: ['float32'] }, out: { direction: 'output', dtypes: ['float32', 'float16', 'int32'] } },
  params: { kind: 'int?', scale: 'float?' },
  arrays: { offsets: 'ints' },
  compute(args) {
    const parts = args.fields.partials;
    const out = args.fields.out;
    const offsets = args.arrays.offsets;
    const kind = args.params.kind ?? KIND_SUM;
    const acc = new Float64Array(out.length).fill(IDENTITY[kind]);
    const f = combiner(kind);
    for (let j = 0; j < parts.length; j++) {
      const p = parts[j];
      const off = offsets[j];
      for (let i = 0; i < p.length; i++) f(acc, off + i, p[i]);
    }
    const scale = args.params.scale ?? 1;
    for (let i = 0; i < out.length; i++) out[i] = acc[i] * scale;
  },
  cycles(v, device) {
    return reduce(regionCount(v.fields.partials), 1, fieldDType(v.fields.out), device);
  },
  estimateSource: 'PopLibs reduction, second stage: the fp32 partials of every tile into one output region',
});

export const reduceAxesCodelets: Codelet[] = [reduceAxesPartialCodelet, reduceAxesFinalCodelet];
