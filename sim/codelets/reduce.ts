/**
 * Reduction codelets for the two-stage reductions of src/lower/reduce.ts.
 *
 * ReducePartial: one tile's contiguous run of a row-major [rows, cols] tensor,
 * starting at column `offset`, summed per column into a float32 partial of
 * `cols` elements (param abs = 1 sums |x|).
 * ReduceFinal: out[i] = scale x sum over partials p of p[i].
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { reduce } from './estimators.js';

export const reducePartialCodelet: Codelet = {
  name: 'ReducePartial',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  compute({ fields, params }) {
    const x = fields.in as Float32Array;
    const out = fields.out as Float32Array;
    const cols = out.length;
    const acc = new Float64Array(cols);
    let j = params.offset % cols;
    const abs = params.abs === 1;
    for (let i = 0; i < x.length; i++) {
      acc[j] += abs ? Math.abs(x[i]) : x[i];
      if (++j === cols) j = 0;
    }
    out.set(acc);
  },
  cycles(v, device) {
    return reduce(regionCount(v.fields.in), 1, fieldDType(v.fields.in), device);
  },
  estimateSource: 'PopLibs reduction: 7 + 26 start, per region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
};

export const reduceFinalCodelet: Codelet = {
  name: 'ReduceFinal',
  kind: 'multi',
  fields: { partials: { direction: 'input', vector: true }, out: { direction: 'output' } },
  compute({ fields, params }) {
    const parts = fields.partials as Float32Array[];
    const out = fields.out as Float32Array;
    const scale = params.scale ?? 1;
    for (let i = 0; i < out.length; i++) {
      let s = 0;
      for (const p of parts) s += p[i];
      out[i] = s * scale;
    }
  },
  cycles(v, device) {
    return reduce(regionCount(v.fields.partials), 1, fieldDType(v.fields.out), device);
  },
  estimateSource: 'PopLibs reduction (second stage over the partials of every tile)',
};

/** Codelets of the reduce op family (reductions over axes), beyond the two-stage pair above. */
export const reduceCodelets: Codelet[] = [];
