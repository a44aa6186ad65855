/**
 * Dropout codelets. The mask is a counter-based hash, not a stream of random
 * numbers: element i of the op's output is kept in a batch iff
 *
 *   dropoutBits(seed, counter, i) >= floor(ratio x 2^32)
 *
 * where `seed` is the op's seed, `counter` the number of times the op has run
 * (held on the device, one copy per vertex, advanced by the forward vertex)
 * and `i` the element's index in the whole tensor. So the mask is the same
 * however the tensor is split over tiles and workers, differs from batch to
 * batch, and the grad vertex recomputes it instead of storing it (PopART's
 * dropout recomputes its mask from the seed the same way). The hash stands in
 * for the IPU's hardware random number generator.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceDType } from '../program.js';
import { binaryMultiVertex, unaryMultiVertex, type LoopCost } from './estimators.js';

/** MurmurHash3's 32-bit finaliser: a bijection with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32 random-looking bits for element `index` of a dropout op with `seed` on its `counter`-th run. */
export function dropoutBits(seed: number, counter: number, index: number): number {
  const key = fmix32((seed + fmix32((counter + 0x9e3779b9) >>> 0)) >>> 0);
  return fmix32((key ^ fmix32((index + 0x7f4a7c15) >>> 0)) >>> 0);
}

/** Elements whose bits fall below this are dropped: P(drop) = ratio. */
export function dropoutThreshold(ratio: number): number {
  return Math.floor(Math.fround(ratio) * 4294967296);
}

/** The scale applied to kept elements, 1 / (1 - ratio), as the device holds it (float). */
export function dropoutScale(ratio: number): number {
  return Math.fround(1 / (1 - Math.fround(ratio)));
}

/**
 * DERIVED: per 64-bit vector, random bits, a compare, a select and a scale: 4 ALU ops at
 * §3's 3 cycles each (a vector is 2 floats or 4 halves). At inference (copy, mask of ones):
 * one ALU op per vector.
 */
function dropoutLoop(d: DeviceDType, training: boolean): LoopCost {
  return { cyclesPerLoop: training ? 12 : 3, vectorised: false, unroll: d === 'float16' ? 4 : 2 };
}

/**
 * Forward. Params: training (0: out = in, mask = 1), ratio, seed, offset (the index of
 * in[0] in the whole tensor). `counter` (int32, one element) is advanced before use, so the
 * n-th run uses counter n; `mask` (int32 0/1) is written when connected.
 */
export const dropoutCodelet = defineCodelet({
  name: 'Dropout',
  kind: 'multi',
  fields: {
    in: { direction: 'input', dtypes: ['float32', 'float16'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
    mask: { direction: 'inout', dtypes: ['int32'] },
    counter: { direction: 'inout', dtypes: ['int32'] },
  },
  params: { training: 'int', ratio: 'float', seed: 'int', offset: 'int' },
  compute({ fields, params }) {
    const x = fields.in;
    const y = fields.out;
    const mask = fields.mask;
    if (!params.training) {
      y.set(x);
      mask?.fill(1);
      return;
    }
    const counter = fields.counter;
    if (!counter) throw new Error('Dropout: training needs its counter field connected');
    const c = (counter[0] = counter[0] + 1);
    const threshold = dropoutThreshold(params.ratio);
    const scale = dropoutScale(params.ratio);
    const seed = params.seed >>> 0;
    for (let i = 0; i < y.length; i++) {
      const keep = dropoutBits(seed, c, params.offset + i) >= threshold;
      y[i] = keep ? x[i] * scale : 0;
      if (mask) mask[i] = keep ? 1 : 0;
    }
  },
  cycles(v, device) {
    const d = fieldDType(v.fields.out);
    return unaryMultiVertex(regionCount(v.fields.out), d, dropoutLoop(d, v.params.training !== 0), device);
  },
  estimateSource:
    'PopLibs UnaryOp1D MultiVertex: W x (17 + inner) + 20; training: random bits, compare, select, scale = 4 ALU ops, {12, no, 2}; inference {3, no, 2} (DERIVED)',
});

/**
 * Grad, in training: out = gradOut x mask x scale with the mask of the forward run, recomputed
 * from the forward's counter (already advanced by it). Params: ratio, seed, offset.
 */
export const dropoutGradCodelet = defineCodelet({
  name: 'DropoutGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', dtypes: ['float32', 'float16'] },
    counter: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { ratio: 'float', seed: 'int', offset: 'int' },
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const dx = fields.out;
    const c = fields.counter[0];
    const threshold = dropoutThreshold(params.ratio);
    const scale = dropoutScale(params.ratio);
    const seed = params.seed >>> 0;
    for (let i = 0; i < dx.length; i++) dx[i] = dropoutBits(seed, c, params.offset + i) >= threshold ? dy[i] * scale : 0;
  },
  cycles(v, device) {
    const d = fieldDType(v.fields.out);
    return binaryMultiVertex(regionCount(v.fields.out), d, dropoutLoop(d, true), device);
  },
  estimateSource: 'PopLibs BinaryOp1D MultiVertex: W x (29 + inner) + 11; the forward mask recomputed: 4 ALU ops, {12, no, 2} (DERIVED)',
});

export const dropoutCodelets: Codelet[] = [dropoutCodelet, dropoutGradCodelet];
