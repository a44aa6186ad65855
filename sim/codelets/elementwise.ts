/**
 * Elementwise codelets (popops' BinaryOp1D / UnaryOp1D MultiVertices). The
 * binary ones broadcast their second operand cyclically: out[i] = a[i] op
 * b[(offset + i) mod len(b)], which covers equal shapes (len(b) = len(a),
 * offset 0) and a trailing-dimension broadcast such as a bias row.
 */
import type { Codelet } from '../codelet.js';
import { regionCount, fieldDType } from '../codelet.js';
import { binaryMultiVertex, addLoop } from './estimators.js';

type BinFn = (a: number, b: number) => number;

function binaryCodelet(name: string, fn: BinFn): Codelet {
  return {
    name,
    kind: 'multi',
    fields: { a: { direction: 'input' }, b: { direction: 'input' }, out: { direction: 'output' } },
    compute({ fields, params }) {
      const a = fields.a as Float32Array;
      const b = fields.b as Float32Array;
      const out = fields.out as Float32Array;
      const len = b.length;
      let j = params.offset % len;
      for (let i = 0; i < out.length; i++) {
        out[i] = fn(a[i], b[j]);
        if (++j === len) j = 0;
      }
    },
    cycles(v, device) {
      const out = v.fields.out;
      return binaryMultiVertex(regionCount(out), fieldDType(out), addLoop(fieldDType(out)), device);
    },
    estimateSource: 'PopLibs BinaryOp1D MultiVertex: W x (29 + inner) + 11, add about 3 cycles per 64-bit vector',
  };
}

export const addCodelet = binaryCodelet('Add', (a, b) => a + b);
export const subCodelet = binaryCodelet('Sub', (a, b) => a - b);
export const mulCodelet = binaryCodelet('Mul', (a, b) => a * b);

/** out = sum of k inputs of equal length (the GradSum of autodiff). */
export const sumCodelet: Codelet = {
  name: 'Sum',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  compute({ fields }) {
    const ins = fields.in as Float32Array[];
    const out = fields.out as Float32Array;
    out.set(ins[0]);
    for (let k = 1; k < ins.length; k++) {
      const x = ins[k];
      for (let i = 0; i < out.length; i++) out[i] += x[i];
    }
  },
  cycles(v, device) {
    const out = v.fields.out;
    const k = Array.isArray(v.fields.in) ? v.fields.in.length : 1;
    const dtype = fieldDType(out);
    // k - 1 binary adds over the same n elements, the first not in place.
    const n = regionCount(out);
    let c = binaryMultiVertex(n, dtype, addLoop(dtype), device);
    for (let i = 2; i < k; i++) c += binaryMultiVertex(n, dtype, addLoop(dtype), device, true);
    return c;
  },
  estimateSource: '(k - 1) x PopLibs BinaryOp1D add (first out of place, the rest in place)',
};

/** out = in (a copy that stays on one tile). */
export const copyCodelet: Codelet = {
  name: 'Copy',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  compute({ fields }) {
    (fields.out as Float32Array).set(fields.in as Float32Array);
  },
  cycles(v, device) {
    // A memcpy moves 8 bytes per cycle per worker: store-bound (ipu-architecture.md §1).
    const bytes = regionCount(v.fields.out) * 4;
    return 20 + device.workersPerTile * Math.ceil(bytes / device.workersPerTile / device.storeBytesPerCycle);
  },
  estimateSource: 'store-bound copy: storeBytesPerCycle per worker slot, 20 cycles setup',
};
