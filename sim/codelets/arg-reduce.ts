/**
 * ArgMax / ArgMin: for each output element, the index along the reduced axis
 * of the largest (smallest) input, the first one on ties or the last with
 * `last` (ONNX select_last_index). The vertex holds a contiguous window of
 * the input covering its outputs' columns (base: the window's first flat
 * element). Cycles: PopLibs has no arg-reduce vertex of this form (popnn's
 * MaxIndex is per row); modelled as a worker loop of a compare and a select
 * per element read, 2 cycles each, plus entry and exit (GUESS from §3's
 * ALU figures).
 */
import { regionCount, type Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';

function argCodelet(name: string, better: (v: number, best: number) => boolean) {
  return defineCodelet({
    name,
    kind: 'worker',
    fields: { in: { direction: 'input' }, out: { direction: 'output', dtypes: ['int32'] } },
    params: { A: 'int', inner: 'int', begin: 'int', base: 'int', last: 'int' },
    compute({ fields, params }) {
      const x = fields.in;
      const out = fields.out;
      const { A, inner, begin, base, last } = params;
      for (let i = 0; i < out.length; i++) {
        const o = begin + i;
        const start = Math.floor(o / inner) * A * inner + (o % inner) - base;
        let best = x[start];
        let idx = 0;
        for (let k = 1; k < A; k++) {
          const v = x[start + k * inner];
          if (better(v, best) || (last && v === best)) {
            best = v;
            idx = k;
          }
        }
        out[i] = idx;
      }
    },
    cycles: (v) => 10 + regionCount(v.fields.out) * (4 + 4 * (v.params.A ?? 1)),
    estimateSource: 'worker loop: a compare and a select per element read (2 cycles each, §3 ALU), 4 per output, 10 entry and exit (GUESS)',
  });
}

export const argMaxCodelet = argCodelet('ArgMax', (v, b) => v > b);
export const argMinCodelet = argCodelet('ArgMin', (v, b) => v < b);
/** By op type, for the lowering that serves both. */
export const ARG_REDUCE_CODELETS = { ArgMax: argMaxCodelet, ArgMin: argMinCodelet };
export const argReduceCodelets: Codelet[] = [argMaxCodelet, argMinCodelet];
