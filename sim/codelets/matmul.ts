/**
 * MatMul block vertex: out[rows, n] = op(A)[rows, k] x op(B)[k, n] with fp32
 * accumulation. It runs on the AMP (accumulating matrix product) units, so it
 * is costed by the preset's AMP MACs per cycle, plus the weight loads and the
 * setup of a ConvPartial1x1Out-style vertex (ipu-architecture.md §3). The
 * planner of issue 4 replaces this single-stage vertex with split plans.
 *
 * Fields: a: the rows [rowBegin, rowBegin + rows) of op(A) when transA = 0
 * (a [rows, k] block), or all of A ([k, m]) when transA = 1; b: all of B
 * ([k, n], or [n, k] when transB = 1); out: [rows, n].
 */
import type { Codelet } from '../codelet.js';
import { fieldDType } from '../codelet.js';

export const matMulCodelet: Codelet = {
  name: 'MatMul',
  kind: 'multi',
  fields: { a: { direction: 'input' }, b: { direction: 'input' }, out: { direction: 'output' } },
  compute({ fields, params }) {
    const a = fields.a as Float32Array;
    const b = fields.b as Float32Array;
    const out = fields.out as Float32Array;
    const { rows, k, n, m, rowBegin, transA, transB } = params;
    const acc = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      acc.fill(0);
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * m + rowBegin + r] : a[r * k + p];
        if (av === 0) continue;
        if (transB) for (let j = 0; j < n; j++) acc[j] += av * b[j * k + p];
        else {
          const base = p * n;
          for (let j = 0; j < n; j++) acc[j] += av * b[base + j];
        }
      }
      // fp32 partials: round the accumulator to fp32 on store, as the AMP does.
      for (let j = 0; j < n; j++) out[r * n + j] = acc[j];
    }
  },
  cycles(v, device) {
    const { rows, k, n } = v.params;
    const dtype = fieldDType(v.fields.a);
    const macsPerCycle = dtype === 'float16' ? device.ampMacsPerCycle.float16 : device.ampMacsPerCycle.float32;
    const macs = rows * k * n;
    // Weights are loaded into the AMP 16 bytes per cycle, once per pass over the rows.
    const weightBytes = k * n * (dtype === 'float16' ? 2 : 4);
    const weightLoad = Math.ceil(weightBytes / 16);
    const setup = 50;
    return setup + weightLoad + Math.ceil(macs / macsPerCycle);
  },
  estimateSource:
    'AMP throughput: MACs / ampMacsPerCycle + weight loads at 16 B/cycle + ~50 cycles setup (ConvPartial1x1Out, ipu-architecture.md §3)',
};
