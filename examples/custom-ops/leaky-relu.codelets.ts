/**
 * The codelets of the LeakyRelu custom op (leaky-relu.ts): what a vertex
 * computes and what it costs, Poplar's codelet file. A codelet module
 * imports only 'tilesim/device'; it is the one file of the op that pool
 * workers load (the op module names it in its `codelets`).
 */
import { defineCodelet, estimators, fieldDType, regionCount } from 'tilesim/device';

/** PopLibs' relu loop: {cyclesPerLoop 3, not vectorised, unroll 2}; the select by alpha costs one more cycle per pair. */
const LEAKY_LOOP = { cyclesPerLoop: 4, vectorised: false, unroll: 2 };

export const leakyRelu = defineCodelet({
  domain: 'custom.ops',
  name: 'LeakyRelu',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ['float32'] }, out: { direction: 'output', dtypes: ['float32'] } },
  params: { alpha: 'float' },
  compute({ fields, params }) {
    const x = fields.in;
    const y = fields.out;
    const alpha = Math.fround(params.alpha); // a float vertex field on the device
    for (let i = 0; i < x.length; i++) y[i] = x[i] >= 0 ? x[i] : alpha * x[i];
  },
  cycles(v, device) {
    return estimators.unaryMultiVertex(regionCount(v.fields.out), fieldDType(v.fields.out), LEAKY_LOOP, device);
  },
  estimateSource: 'PopLibs UnaryOp1D MultiVertex: W x (17 + inner) + 20 with a relu-like loop of 4 cycles per 2 elements',
});

export const leakyReluGrad = defineCodelet({
  domain: 'custom.ops',
  name: 'LeakyReluGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', dtypes: ['float32'] },
    in: { direction: 'input', dtypes: ['float32'] },
    out: { direction: 'output', dtypes: ['float32'] },
  },
  params: { alpha: 'float' },
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const x = fields.in;
    const dx = fields.out;
    const alpha = Math.fround(params.alpha); // a float vertex field on the device
    for (let i = 0; i < x.length; i++) dx[i] = x[i] >= 0 ? dy[i] : alpha * dy[i];
  },
  cycles(v, device) {
    return estimators.binaryMultiVertex(regionCount(v.fields.out), fieldDType(v.fields.out), LEAKY_LOOP, device);
  },
  estimateSource: 'PopLibs BinaryOp1D MultiVertex: W x (29 + inner) + 11 with a select loop of 4 cycles per 2 elements',
});

export default [leakyRelu, leakyReluGrad];
