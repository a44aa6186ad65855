/**
 * Elementwise codelets (popops' BinaryOp1D / UnaryOp1D MultiVertices). Add,
 * Sub, Mul and Sum are defined with the rest of the binary family in
 * ./binary.ts (flat, cyclic and general NumPy-broadcast modes) and
 * re-exported here, where the spine registered them.
 */
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { DTYPE_BYTES } from '../program.js';

export { addCodelet, mulCodelet, subCodelet, sumCodelet } from './binary.js';

/** Every device dtype: a copy moves any. */
const ALL = ['float32', 'float16', 'int32', 'uint8'] as const;

/** out = in (a copy that stays on one tile). */
export const copyCodelet = defineCodelet({
  name: 'Copy',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ALL }, out: { direction: 'output', dtypes: ALL } },
  compute({ fields }) {
    fields.out.set(fields.in);
  },
  cycles(v, device) {
    // A memcpy moves 8 bytes per cycle per worker: store-bound (ipu-architecture.md §1).
    const bytes = regionCount(v.fields.out) * DTYPE_BYTES[fieldDType(v.fields.out)];
    return 20 + device.workersPerTile * Math.ceil(bytes / device.workersPerTile / device.storeBytesPerCycle);
  },
  estimateSource: 'store-bound copy: storeBytesPerCycle per worker slot, 20 cycles setup',
});
