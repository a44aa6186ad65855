/**
 * Add (ONNX) with NumPy broadcasting, and its grad ops as in PopART:
 * AddArg0GradOp and AddArg1GradOp each take the output's gradient and sum it
 * over the axes their input was broadcast along (an alias when none was).
 * Versions 7, 13 and 14 are registered (opsets 11..18 resolve).
 */
import { GradOp, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { broadcastOutput, mapBroadcast } from '../lower/broadcast.js';
import type { LowerContext } from '../lower/context.js';
import { BroadcastArgGradOp, BroadcastBinaryOp, lowerReduceGrad, operand, versions } from './binary.js';
import { gradOut } from './arg-grad.js';
import type { Codelet } from '../../sim/codelet.js';
import { addCodelet } from '../../sim/codelets/binary.js';

const ADD = { domain: 'ai.onnx', type: 'Add', version: 14 };
const ARG0_GRAD = { domain: 'ai.graphcore', type: 'AddArg0Grad', version: 1 };
const ARG1_GRAD = { domain: 'ai.graphcore', type: 'AddArg1Grad', version: 1 };

export class AddOp extends BroadcastBinaryOp {
  static readonly defaultOperatorId = ADD;
  constructor(settings: OpSettings, opid: OperatorIdentifier = ADD) {
    super(opid, settings);
  }
  override getGradOps(): GradOp[] {
    return [new AddArgGradOp(this, 0), new AddArgGradOp(this, 1)];
  }
}

/** Gradient of Add's input `arg`: the output gradient summed over the axes `arg` was broadcast along. */
export class AddArgGradOp extends BroadcastArgGradOp {
  constructor(fwd: AddOp, arg: 0 | 1) {
    super(arg === 0 ? ARG0_GRAD : ARG1_GRAD, fwd, arg, [gradOut(0)]);
  }
}

/**
 * A commutative op: the operand of the output's size goes first, so the
 * other may be read cyclically when it is a trailing block (a bias).
 */
export function lowerCommutative(codelet: Codelet) {
  return (_op: unknown, ctx: LowerContext): void => {
    const a = operand(ctx, 0);
    const b = operand(ctx, 1);
    const n = nelms(ctx.op.outInfo(0).shape);
    const [x, y] = nelms(a.shape) !== n && nelms(b.shape) === n ? [b, a] : [a, b];
    mapBroadcast(ctx, codelet, { a: x, b: y }, broadcastOutput(ctx, 0, [x, y]), { cyclic: 'b' });
  };
}

export const addDefinitions: OpDefinition[] = [
  ...versions('Add', [7, 13, 14], (id) => defineOp({
    op: AddOp,
    id,
    description: 'Elementwise sum A + B, NumPy broadcasting',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new AddOp(settings, id),
    lower: lowerCommutative(addCodelet),
  })),
  defineOp({ op: AddArgGradOp, id: ARG0_GRAD, description: "Add's output gradient summed to input 0's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
  defineOp({ op: AddArgGradOp, id: ARG1_GRAD, description: "Add's output gradient summed to input 1's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
];
