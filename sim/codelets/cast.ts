/**
 * Cast between float32, float16 and int32. Codelets see float16 as floats;
 * storing into a float16 field rounds to nearest even (sim/execute.ts), and
 * storing a float into an Int32Array truncates toward zero, as ONNX Cast does
 * for in-range values.
 */
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';

/**
 * PopLibs Cast 1-D (ipu-architecture.md §3): 12 + W x (castWorker(ceil(N/W)) + 18),
 * castWorker(n) = 19 + cyclesPerVector x n / opVW: float -> half 2 cycles per 4
 * elements, half -> float 1 per 2. Casts involving int32 use the float -> half
 * loop as an approximation (no published estimate).
 */
export function castCycles(n: number, from: string, to: string, W: number): number {
  const perWorker = Math.ceil(n / W);
  const [cyclesPerVector, opVW] = from === 'float16' && to === 'float32' ? [1, 2] : [2, 4];
  const worker = 19 + cyclesPerVector * Math.ceil(perWorker / opVW);
  return 12 + W * (worker + 18);
}

/** Every device dtype: a cast goes from any to any. */
const ALL = ['float32', 'float16', 'int32', 'uint8'] as const;

export const castCodelet = defineCodelet({
  name: 'Cast',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ALL }, out: { direction: 'output', dtypes: ALL } },
  compute({ fields }) {
    const x = fields.in;
    const y = fields.out;
    for (let i = 0; i < y.length; i++) y[i] = x[i];
  },
  cycles(v, device) {
    return castCycles(regionCount(v.fields.out), fieldDType(v.fields.in), fieldDType(v.fields.out), device.workersPerTile);
  },
  estimateSource: 'PopLibs Cast 1-D: 12 + W x (19 + cyclesPerVector x n/opVW + 18)',
});

/**
 * Cast to ONNX bool, int32 0/1 in tilesim: 1 where the input is nonzero (NaN
 * included, as ONNX casts it), else 0. The same loop as Cast.
 */
export const castBoolCodelet = defineCodelet({
  name: 'CastBool',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ALL }, out: { direction: 'output', dtypes: ['int32'] } },
  compute({ fields }) {
    const x = fields.in;
    const y = fields.out;
    for (let i = 0; i < y.length; i++) y[i] = x[i] !== 0 ? 1 : 0;
  },
  cycles(v, device) {
    return castCycles(regionCount(v.fields.out), fieldDType(v.fields.in), 'int32', device.workersPerTile);
  },
  estimateSource: 'as Cast: PopLibs Cast 1-D: 12 + W x (19 + cyclesPerVector x n/opVW + 18)',
});
