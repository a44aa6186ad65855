/**
 * Mul (ONNX) with NumPy broadcasting, and its grad ops: d(arg) = dC x (the
 * other operand), summed over the axes `arg` was broadcast along.
 * Versions 7, 13 and 14 are registered (opsets 11..18 resolve).
 */
import { GradOp, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import type { LowerContext } from '../lower/context.js';
import { lowerCommutative } from './add.js';
import { BroadcastArgGradOp, BroadcastBinaryOp, lowerElementwiseGrad, operand, versions } from './binary.js';
import { fwdIn, gradOut } from './arg-grad.js';
import { mulCodelet } from '../../sim/codelets/binary.js';

const MUL = { domain: 'ai.onnx', type: 'Mul', version: 14 };
const ARG0_GRAD = { domain: 'ai.graphcore', type: 'MulArg0Grad', version: 1 };
const ARG1_GRAD = { domain: 'ai.graphcore', type: 'MulArg1Grad', version: 1 };

export class MulOp extends BroadcastBinaryOp {
  static readonly defaultOperatorId = MUL;
  constructor(settings: OpSettings, opid: OperatorIdentifier = MUL) {
    super(opid, settings);
  }
  override getGradOps(): GradOp[] {
    return [new MulArgGradOp(this, 0), new MulArgGradOp(this, 1)];
  }
}

/** Gradient of Mul's input `arg`: inputs are the output's gradient and the other operand. */
export class MulArgGradOp extends BroadcastArgGradOp {
  constructor(fwd: MulOp, arg: 0 | 1) {
    super(arg === 0 ? ARG0_GRAD : ARG1_GRAD, fwd, arg, [gradOut(0), fwdIn(1, 1 - arg)]);
  }
}

function lowerMulArgGrad(op: MulArgGradOp, ctx: LowerContext): void {
  const full = op.fwdOp.outInfo(0).shape;
  // dC x other at the output's shape (the other operand broadcast; cyclic when a bias), then summed.
  lowerElementwiseGrad(ctx, mulCodelet, { a: { t: ctx.input(0), shape: full }, b: operand(ctx, 1) }, { cyclic: 'b' });
}

export const mulDefinitions: OpDefinition[] = [
  ...versions('Mul', [7, 13, 14], (id) => defineOp({
    op: MulOp,
    id,
    description: 'Elementwise product A x B, NumPy broadcasting',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new MulOp(settings, id),
    lower: lowerCommutative(mulCodelet),
  })),
  defineOp({ op: MulArgGradOp, id: ARG0_GRAD, description: "dA = dC x B, summed to A's shape", lower: lowerMulArgGrad }),
  defineOp({ op: MulArgGradOp, id: ARG1_GRAD, description: "dB = dC x A, summed to B's shape", lower: lowerMulArgGrad }),
];
