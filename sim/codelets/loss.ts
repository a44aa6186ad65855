/**
 * L1 loss gradient (PopART's L1GradOp): dx = scale x sign(x) x dLoss, where
 * `scale` already holds 1/n for reduction 'mean'. sign(0) = 0, as in PopART.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { binaryMultiVertex, addLoop } from './estimators.js';

export const l1GradCodelet: Codelet = {
  name: 'L1Grad',
  kind: 'multi',
  fields: { x: { direction: 'input' }, gradLoss: { direction: 'input' }, out: { direction: 'output' } },
  compute({ fields, params }) {
    const x = fields.x as Float32Array;
    const g = (fields.gradLoss as Float32Array)[0] * params.scale;
    const out = fields.out as Float32Array;
    for (let i = 0; i < x.length; i++) out[i] = x[i] > 0 ? g : x[i] < 0 ? -g : 0;
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    // A compare-select and a multiply per element: two binary-op passes.
    return 2 * binaryMultiVertex(regionCount(v.fields.out), dtype, addLoop(dtype), device);
  },
  estimateSource: '2 x PopLibs BinaryOp1D (sign select, scale)',
};
