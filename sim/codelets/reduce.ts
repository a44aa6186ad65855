/**
 * Reduction codelets for the two-stage reductions of src/lower/reduce.ts.
 *
 * ReducePartial: one tile's contiguous run of a row-major [rows, cols] tensor,
 * starting at column `offset`, summed per column into a float32 partial of
 * `cols` elements (param abs = 1 sums |x|). A run shorter than a row uses a
 * partial of its own length and offset 0 (each element is its column's sum).
 * ReduceFinal: out[i] = scale x sum over partials p of p[i]; the later stages
 * (intermediate and final) of a reduction.
 * Both run WebAssembly kernels over tile memory (reduce_partial,
 * reduce_final): the same double sums in the same order as the code here,
 * which stays the reference.
 */
import type { Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType, FieldValue } from '../program.js';
import { reduce, vectorWidth } from './estimators.js';
import { separate } from '../wasm/kernels.js';

/** ReducePartial over n input elements (PopLibs reduction, one output region). */
export function reducePartialCycles(n: number, dtype: DeviceDType, device: DeviceSpec): number {
  return reduce(n, 1, dtype, device);
}

/**
 * ReduceFinal over partials of the given lengths: the PopLibs reduction with
 * one output region, each partial loaded in whole vectors of its own
 * (ceil(length / vw) vectors each; a partial does not share a vector with the next).
 */
export function reduceFinalCycles(partialLengths: readonly number[], dtype: DeviceDType, device: DeviceSpec): number {
  const vw = vectorWidth(dtype, device);
  const n = partialLengths.reduce((s, len) => s + Math.ceil(len / vw) * vw, 0);
  return reduce(n, 1, dtype, device);
}

function lengths(f: FieldValue | undefined): number[] {
  if (!f) return [];
  return Array.isArray(f) ? f.map((r) => r.count) : [f.count];
}

export const reducePartialCodelet = defineCodelet({
  name: 'ReducePartial',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  params: { offset: 'int', abs: 'int' },
  compute({ fields, params }) {
    const x = fields.in;
    const out = fields.out;
    const cols = out.length;
    const w = cols > 0 ? separate(out, [x]) : undefined;
    const acc64 = w ? w.K.arena.alloc(8 * cols) : -1;
    if (w && acc64 >= 0) return w.K.x.reduce_partial(w.ins[0], x.length, acc64, cols, params.offset % cols, params.abs === 1 ? 1 : 0, w.out);
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
    return reducePartialCycles(regionCount(v.fields.in), fieldDType(v.fields.in), device);
  },
  estimateSource: 'PopLibs reduction: 7 + 26 start, per region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
});

/** ReduceFinal on the kernel (reduce_final): the same double sums in partial order; false when it cannot run. */
function reduceFinalWasm(parts: Float32Array[], out: Float32Array, scale: number): boolean {
  if (parts.length === 0 || parts.some((p) => p.length < out.length)) return false;
  const w = separate(out, parts);
  const ptrs = w ? w.K.arena.alloc(4 * parts.length) : -1;
  if (!w || ptrs < 0) return false;
  w.K.i32.set(w.ins, ptrs >> 2);
  w.K.x.reduce_final(ptrs, parts.length, w.out, out.length, scale);
  return true;
}

export const reduceFinalCodelet = defineCodelet({
  name: 'ReduceFinal',
  kind: 'multi',
  fields: { partials: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: { scale: 'float?' },
  compute({ fields, params }) {
    const parts = fields.partials;
    const out = fields.out;
    const scale = params.scale ?? 1;
    if (reduceFinalWasm(parts, out, scale)) return;
    for (let i = 0; i < out.length; i++) {
      let s = 0;
      for (const p of parts) s += p[i];
      out[i] = s * scale;
    }
  },
  cycles(v, device) {
    const parts = v.fields.partials;
    return reduceFinalCycles(lengths(parts), parts && (!Array.isArray(parts) || parts.length) ? fieldDType(parts) : fieldDType(v.fields.out), device);
  },
  estimateSource: 'PopLibs reduction over the partials (whole vectors per partial): 7 + 26 start, per region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
});

/** Codelets of the reduce op family (reductions over axes), beyond the two-stage pair above. */
export const reduceCodelets: Codelet[] = [];
