/**
 * Cast between float32, float16 and int32. Codelets see float16 as floats;
 * storing into a float16 field rounds to nearest even (sim/execute.ts), and
 * storing a float into an Int32Array truncates toward zero, as ONNX Cast does
 * for in-range values.
 */
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { regionCounts, withMultiRegion } from './multi-region.js';

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

export const castCodelet = withMultiRegion(defineCodelet({
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
}), (v) => cast2DCycles(regionCounts(v.fields.out)), 'PopLibs Cast2d worker vertex: 5 + (6 + ceil(n / 2)) per region');

/** PopLibs Cast2d: 5 + per region 6 cycles of loop overhead and one cycle per 2 elements (the float vector width). */
export function cast2DCycles(counts: readonly number[]): number {
  let c = 5;
  for (const n of counts) c += 6 + Math.ceil(n / 2);
  return c;
}

/**
 * Cast to ONNX bool, int32 0/1 in tilesim: 1 where the input is nonzero (NaN
 * included, as ONNX casts it), else 0. The same loop as Cast.
 */
export const castBoolCodelet = withMultiRegion(defineCodelet({
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
}), (v) => cast2DCycles(regionCounts(v.fields.out)), 'as Cast: PopLibs Cast2d worker vertex: 5 + (6 + ceil(n / 2)) per region');
