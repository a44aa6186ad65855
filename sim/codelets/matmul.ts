/**
 * Matmul codelets besides the AMP vertex (amp.ts):
 *
 * MatMulReduce: the second stage of a matmul whose contraction is split over
 * tiles: out[i] = sum over partials p of p[i] (out: a list of regions read
 * back to back, each partial as long as all of them), the partials fp32 and summed in
 * fp32 (Math.fround after every add, as a float reduction vertex does), the
 * result stored in the output's dtype (on the WebAssembly kernel over tile
 * memory when it can, the same additions in the same order). Costed as a PopLibs reduction (§3,
 * estimators.ts reduce()) over all the partial elements.
 *
 * MatMul: the one-stage block vertex of the spine, out[rows, n] = op(A)[rows, k]
 * x op(B)[k, n], kept for lowerings written against it; costed as the AMP
 * vertex on its block. The matmul planner (src/lower/matmul-planner.ts) uses
 * AmpMatMul and MatMulReduce instead.
 * Fields: a: the rows [rowBegin, rowBegin + rows) of op(A) when transA = 0
 * (a [rows, k] block), or all of A ([k, m]) when transA = 1; b: all of B
 * ([k, n], or [n, k] when transB = 1); out: [rows, n].
 */
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import { ampVertexCycles } from './amp.js';
import { reduce } from './estimators.js';
import { kernelsFor } from '../wasm/kernels.js';

/**
 * MatMulReduce on the kernel: per output region, the partials summed in
 * order from zero (sum_parts), the same fp32 additions as the reference.
 */
export function matMulReduceWasm(parts: Float32Array[], outs: Float32Array[]): boolean {
  const total = outs.reduce((s, o) => s + o.length, 0);
  if (parts.length === 0 || parts.some((p) => p.length < total)) return false;
  const K = kernelsFor(parts[0]);
  if (!K || parts.some((p) => K.address(p) < 0) || outs.some((o) => K.address(o) < 0)) return false;
  const ptrs = K.arena.alloc(4 * parts.length);
  if (ptrs < 0) return false;
  parts.forEach((p, i) => (K.i32[(ptrs >> 2) + i] = p.byteOffset));
  let at = 0;
  for (const o of outs) {
    K.x.sum_parts(ptrs, parts.length, 4 * at, o.byteOffset, o.length);
    at += o.length;
  }
  return true;
}

export const matMulReduceCodelet = defineCodelet({
  name: 'MatMulReduce',
  kind: 'multi',
  fields: {
    partials: { direction: 'input', vector: true, dtypes: ['float32'] },
    out: { direction: 'output', vector: true, dtypes: ['float16', 'float32'] },
  },
  compute({ fields }) {
    const parts = fields.partials;
    const outs = fields.out;
    if (matMulReduceWasm(parts, outs)) return;
    let i = 0;
    for (const out of outs)
      for (let o = 0; o < out.length; o++, i++) {
        let s = 0;
        for (const p of parts) s = Math.fround(s + p[i]);
        out[o] = s;
      }
  },
  cycles(v, device) {
    return reduce(regionCount(v.fields.partials), 1, fieldDType(v.fields.partials), device);
  },
  estimateSource: 'PopLibs reduction over every partial element: 7 + 26 start, per region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
});

export const matMulCodelet = defineCodelet({
  name: 'MatMul',
  kind: 'multi',
  fields: { a: { direction: 'input' }, b: { direction: 'input' }, out: { direction: 'output' } },
  params: { rows: 'int', k: 'int', n: 'int', m: 'int', rowBegin: 'int', transA: 'int', transB: 'int' },
  compute({ fields, params }) {
    const a = fields.a;
    const b = fields.b;
    const out = fields.out;
    const { rows, k, n, m, rowBegin, transA, transB } = params;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[p * m + rowBegin + r] : a[r * k + p];
          const bv = transB ? b[j * k + p] : b[p * n + j];
          acc = Math.fround(acc + Math.fround(av * bv));
        }
        out[r * n + j] = acc;
      }
    }
  },
  cycles(v, device) {
    const { rows, k, n } = v.params;
    return ampVertexCycles({ groups: 1, rows, k, n }, fieldDType(v.fields.a), device);
  },
  estimateSource: 'the AMP vertex (amp.ts, PopLibs ConvPartial1x1Out) on its [rows, k] x [k, n] block',
});
