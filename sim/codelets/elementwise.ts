/**
 * Elementwise codelets (popops' BinaryOp1D / UnaryOp1D MultiVertices). Add,
 * Sub, Mul and Sum are defined with the rest of the binary family in
 * ./binary.ts (flat, cyclic and general NumPy-broadcast modes) and
 * re-exported here, where the spine registered them.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { DTYPE_BYTES } from '../program.js';

export { addCodelet, mulCodelet, subCodelet, sumCodelet } from './binary.js';

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
    const bytes = regionCount(v.fields.out) * DTYPE_BYTES[fieldDType(v.fields.out)];
    return 20 + device.workersPerTile * Math.ceil(bytes / device.workersPerTile / device.storeBytesPerCycle);
  },
  estimateSource: 'store-bound copy: storeBytesPerCycle per worker slot, 20 cycles setup',
};
