/** The short form's codelets (leaky-relu-short.ts): the arithmetic and the loop cost; the unary family's shapes do the rest. */
import { defineUnaryCodelet, defineUnaryGradCodelet } from 'tilesim/device';

const domain = 'custom.short';
/** PopLibs' relu loop plus one select: 4 cycles per 2 elements, not vectorised. */
const loop = { cyclesPerLoop: 4, vectorised: false, unroll: 2 };

export const leakyRelu = defineUnaryCodelet({
  domain,
  name: 'LeakyRelu',
  params: { alpha: 'float' },
  f: ({ alpha }) => (x) => (x >= 0 ? x : Math.fround(alpha) * x),
  loop,
  estimateSource: 'PopLibs UnaryOp1D MultiVertex: W x (17 + inner) + 20 with a relu-like loop of 4 cycles per 2 elements',
});

export const leakyReluGrad = defineUnaryGradCodelet({
  domain,
  name: 'LeakyReluGrad',
  reads: 'in',
  params: { alpha: 'float' },
  g: ({ alpha }) => (dy, x) => (x >= 0 ? dy : Math.fround(alpha) * dy),
  loop,
  estimateSource: 'PopLibs BinaryOp1D MultiVertex: W x (29 + inner) + 11 with a select loop of 4 cycles per 2 elements',
});

export default [leakyRelu, leakyReluGrad];
