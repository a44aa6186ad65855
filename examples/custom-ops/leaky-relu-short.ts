/**
 * LeakyRelu written the short way, as the built-in unary ops are
 * (src/ops/unary.ts): one UnarySpec gives the op, its grad op and both
 * lowerings. leaky-relu.ts is the same op written out in full.
 */
import { GradOpInType, defineOpModule, defineUnaryOp } from 'tilesim';
import { leakyRelu, leakyReluGrad } from './leaky-relu-short.codelets.js';

export default defineOpModule({
  ops: defineUnaryOp({
    domain: 'custom.short',
    type: 'LeakyRelu',
    versions: [1],
    description: 'y = x if x >= 0 else alpha * x',
    codelet: leakyRelu,
    flops: 2,
    attributes: { alpha: { type: 'float', default: 0.01, description: 'slope for x < 0' } },
    params: (a) => ({ alpha: a.float('alpha') }),
    // LeakyReluGrad reads y' and x (GradOpInType.In): ctx.input(0), ctx.input(1).
    grad: { type: 'LeakyReluGrad', description: "dx = y' if x >= 0 else alpha * y'", uses: GradOpInType.In, codelet: leakyReluGrad },
  }),
  codelets: './leaky-relu-short.codelets.ts',
});
