/**
 * TopK: for each output element, the value and index of the rank-th largest
 * (smallest) element of its column along the axis. Order is onnxruntime's:
 * by value, and on equal values the lower index first (its comparators
 * break ties by index), so indices compare exactly. The vertex holds a
 * contiguous window of the input covering its outputs' columns (base: the
 * window's first flat element); each column it touches is ranked once.
 *
 * Cycles: PopLibs' popops::topK sorts with a bitonic network; modelled as a
 * worker keeping a K-entry heap per column: per element read, a compare
 * and, for log2(K + 1) levels, a compare and a move (2 cycles each), plus
 * 4 per output and 10 entry and exit (GUESS from §3's ALU figures).
 */
import { defineCodelet } from '../define.js';
import { regionCount } from '../codelet.js';

export const topKCodelet = defineCodelet({
  name: 'TopK',
  kind: 'worker',
  fields: {
    in: { direction: 'input', dtypes: ['float32', 'float16', 'int32'] },
    values: { direction: 'output', dtypes: ['float32', 'float16', 'int32'] },
    indices: { direction: 'output', dtypes: ['int32'] },
  },
  params: { A: 'int', K: 'int', inner: 'int', begin: 'int', base: 'int', largest: 'int' },
  compute({ fields, params }) {
    const { in: x, values, indices } = fields;
    const { A, K, inner, begin, base, largest } = params;
    const ranked = new Map<number, number[]>();
    for (let i = 0; i < values.length; i++) {
      const o = begin + i;
      const rank = Math.floor(o / inner) % K;
      const column = Math.floor(o / (K * inner)) * inner + (o % inner);
      let order = ranked.get(column);
      if (!order) {
        const start = Math.floor(column / inner) * A * inner + (column % inner) - base;
        const at = (k: number) => x[start + k * inner];
        order = Array.from({ length: A }, (_, k) => k);
        order.sort(largest ? (a, b) => at(b) - at(a) || a - b : (a, b) => at(a) - at(b) || a - b);
        order.length = K;
        ranked.set(column, order);
      }
      indices[i] = order[rank];
      values[i] = x[Math.floor(column / inner) * A * inner + (column % inner) - base + order[rank] * inner];
    }
  },
  cycles: (v) => {
    const { A, K } = v.params;
    const outs = regionCount(v.fields.values);
    const columns = Math.ceil(outs / Math.max(1, K));
    return 10 + 4 * outs + columns * A * (2 + 4 * Math.ceil(Math.log2(K + 1)));
  },
  estimateSource: 'worker keeping a K-entry heap per column: a compare per element read and a compare and move per heap level (2 cycles each, §3 ALU), 4 per output, 10 entry and exit (GUESS; PopLibs sorts with a bitonic network)',
});
