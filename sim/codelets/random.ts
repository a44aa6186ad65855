/**
 * RandomUniform / RandomNormal (and their Like forms) and Multinomial: element i of the op's
 * output on its n-th run comes from the same counter-based hash as Dropout's
 * mask (sim/codelets/dropout.ts), so the values do not depend on how the
 * tensor is split over tiles and workers, and differ from run to run.
 *
 *   uniform: low + (high - low) u,          u = (bits(seed, n, i) + 0.5) / 2^32 in (0, 1)
 *            (rounded to the output type, a value within half an ulp of high becomes high)
 *   normal:  mean + scale sqrt(-2 ln u1) cos(2 pi u2)   (Box-Muller; u1 from the seed,
 *            u2 from the seed's second stream), computed in double, rounded once on the store
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceDType } from '../program.js';
import { dropoutBits } from './dropout.js';
import { unaryMultiVertex, type LoopCost } from './estimators.js';

const TWO_32 = 4294967296;
/** The seed of u2's stream: the seed mixed with a constant (golden-ratio bits), so the two streams differ. */
const SECOND_STREAM = 0x9e3779b9;

/**
 * DERIVED: uniform: random bits and a multiply-add, 2 ALU ops at §3's 3 cycles, {6, no, 2};
 * normal: two draws, a log and a cos (as tanh, 12 each), a square root (as divide, 10) and 4 ALU ops: {46, no, 2}.
 */
function randomLoop(d: DeviceDType, normal: boolean): LoopCost {
  return { cyclesPerLoop: normal ? 46 : 6, vectorised: false, unroll: d === 'float16' ? 4 : 2 };
}

export const randomCodelet = defineCodelet({
  name: 'RandomDraw',
  kind: 'multi',
  fields: {
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
    counter: { direction: 'inout', required: true, dtypes: ['int32'] },
  },
  // normal 0: uniform over [a, b); 1: normal with mean a and standard deviation b.
  params: { normal: 'int', a: 'float', b: 'float', seed: 'int', offset: 'int' },
  compute({ fields, params }) {
    const y = fields.out;
    const c = (fields.counter[0] = fields.counter[0] + 1);
    const seed = params.seed >>> 0;
    const { a, b, offset } = params;
    const u = (s: number, i: number) => (dropoutBits(s, c, offset + i) + 0.5) / TWO_32;
    if (!params.normal) {
      for (let i = 0; i < y.length; i++) y[i] = a + (b - a) * u(seed, i);
      return;
    }
    const seed2 = (seed ^ SECOND_STREAM) >>> 0;
    for (let i = 0; i < y.length; i++) y[i] = a + b * Math.sqrt(-2 * Math.log(u(seed, i))) * Math.cos(2 * Math.PI * u(seed2, i));
  },
  cycles(v, device) {
    const d = fieldDType(v.fields.out);
    return unaryMultiVertex(regionCount(v.fields.out), d, randomLoop(d, v.params.normal !== 0), device);
  },
  estimateSource: 'PopLibs UnaryOp1D MultiVertex: W x (17 + inner) + 20; uniform: random bits and a multiply-add {6, no, 2}; normal (Box-Muller): {46, no, 2} (DERIVED)',
});

/**
 * Multinomial: out[i] (element begin + i of [batch, samples]) is a class of row floor((begin + i) / samples)
 * of `in` (unnormalised log-probabilities, rows [row0, ...)), drawn by inverting its softmax's cumulative
 * sum at u = (bits + 0.5) / 2^32 (the same hash as the others, indexed by the output element).
 */
export const multinomialCodelet = defineCodelet({
  name: 'Multinomial',
  kind: 'multi',
  fields: {
    in: { direction: 'input', dtypes: ['float32', 'float16'] },
    out: { direction: 'output', dtypes: ['int32'] },
    counter: { direction: 'inout', required: true, dtypes: ['int32'] },
  },
  params: { classes: 'int', samples: 'int', row0: 'int', begin: 'int', seed: 'int' },
  compute({ fields, params }) {
    const { classes, samples, row0, begin } = params;
    const x = fields.in;
    const y = fields.out;
    const c = (fields.counter[0] = fields.counter[0] + 1);
    const seed = params.seed >>> 0;
    const cdf = new Float64Array(classes);
    let row = -1;
    for (let i = 0; i < y.length; i++) {
      const r = Math.floor((begin + i) / samples);
      if (r !== row) {
        row = r;
        const at = (r - row0) * classes;
        let max = -Infinity;
        for (let k = 0; k < classes; k++) max = Math.max(max, x[at + k]);
        let sum = 0;
        for (let k = 0; k < classes; k++) cdf[k] = sum += Math.exp(x[at + k] - max);
        for (let k = 0; k < classes; k++) cdf[k] /= sum;
      }
      const u = (dropoutBits(seed, c, begin + i) + 0.5) / TWO_32;
      let k = 0;
      while (k < classes - 1 && cdf[k] < u) k++;
      y[i] = k;
    }
  },
  cycles(v, device) {
    const { classes, samples } = v.params;
    const outs = regionCount(v.fields.out);
    // GUESS: a softmax of the row (exp as §3's {6, no, 2} per element, a sum and a divide) per row, then a draw and a linear search per sample.
    const rows = Math.ceil(outs / Math.max(1, samples)) + 1;
    return device.workersPerTile * (10 + Math.ceil((rows * classes * 12 + outs * (6 + 2 * classes)) / device.workersPerTile));
  },
  estimateSource: 'per row a softmax (~12 cycles an element), per sample a draw and a linear search of the cumulative sum (~2 a class), shared among the workers (GUESS)',
});

export const randomCodelets: Codelet[] = [randomCodelet, multinomialCodelet];
