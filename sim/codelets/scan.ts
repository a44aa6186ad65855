/**
 * CumSum (src/ops/cumsum.ts): each output element o of a tensor viewed as
 * [outer, A, inner] (A the scanned axis) is the sum of its column's inputs
 * up to its own position along the axis (from it to the end with
 * params.reverse; without it with params.exclusive). `in` is a window of the
 * input starting at flat element params.base; the outputs are elements
 * [params.begin, params.begin + n). Sums are kept in float64 and stored
 * once.
 */
import { regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';

export const cumSumCodelet = defineCodelet({
  name: 'CumSum',
  kind: 'worker',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  params: { A: 'int', inner: 'int', begin: 'int', base: 'int', exclusive: 'int', reverse: 'int' },
  compute({ fields, params }) {
    const x = fields.in;
    const out = fields.out;
    const { A, inner, begin, base, exclusive, reverse } = params;
    for (let i = 0; i < out.length; i++) {
      const o = begin + i;
      const c = o % inner;
      const t = Math.floor(o / inner) % A;
      const col = (o - c - t * inner) + c - base;
      const [s0, s1] = reverse ? [exclusive ? t + 1 : t, A] : [0, exclusive ? t : t + 1];
      let acc = 0;
      for (let s = s0; s < s1; s++) acc += x[col + s * inner];
      out[i] = acc;
    }
  },
  // Per output, a load and an add per element summed (the column up to it: A / 2 on average), and a store (GUESS from §3 ALU figures).
  cycles: (v) => 10 + regionCount(v.fields.out) * (4 + (v.params.A ?? 1)),
  estimateSource: 'worker loop: per output its column summed up to it (a load and an add per element, A / 2 on average), and a store (GUESS from §3 ALU figures)',
});
