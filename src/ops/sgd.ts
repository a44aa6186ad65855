/**
 * SGD variable update (PyTorch semantics, see sim/codelets/optimizer.ts):
 * an op that writes its variable in place, so the scheduler runs it after
 * every other reader of that variable. It has no grad ops. The gradient is
 * divided by the loss scaling before use (PopART). State beside the weight:
 * the velocity (the weight's type, as torch keeps momentum_buffer) and one
 * `started` flag per vertex, so the first step is PyTorch's (v = g) without
 * recompiling.
 */
import type { OpSettings } from '../ir/op.js';
import { lowerVarUpdate, perVertexState, stateLike, updateOperands, VarUpdateOp, type VarUpdateParams } from './var-update.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { Slice } from '../lower/devicegraph.js';
import type { SgdSpec } from '../config/types.js';
import { sgdCodelet } from '../../sim/codelets/optimizer.js';

const SGD = { domain: 'ai.graphcore', type: 'SGDVarUpdate', version: 1 };

export type SGDParams = Pick<SgdSpec, 'lr' | 'momentum' | 'dampening' | 'weightDecay' | 'nesterov'> & VarUpdateParams;

export class SGDVarUpdateOp extends VarUpdateOp<SGDParams> {
  static readonly defaultOperatorId = SGD;
  protected readonly hyperKeys = ['lr', 'momentum', 'dampening', 'weightDecay', 'nesterov'] as const;
  constructor(
    readonly params: SGDParams,
    settings: OpSettings,
  ) {
    super(SGD, settings);
  }
  override flops(): number {
    const p = this.params;
    return nelms(this.inInfo(0).shape) * (2 + (p.weightDecay ? 2 : 0) + (p.momentum ? 3 + (p.nesterov ? 2 : 0) : 0));
  }
}

function lowerSGD(op: SGDVarUpdateOp, ctx: LowerContext): void {
  const operands = updateOperands(op, ctx);
  const { w } = operands;
  const ranges = ctx.ranges(w);
  // Optimizer state lives beside the weights: the velocity mapped like w, one `started` flag per vertex.
  const v = op.params.momentum !== 0 ? stateLike(ctx, 'velocity', w) : undefined;
  const started = op.params.momentum !== 0 ? perVertexState(ctx, 'started', ranges) : undefined;
  lowerVarUpdate(op, ctx, sgdCodelet, 'sgd', ranges, (i, r): Record<string, Slice> => (v && started ? { v: ctx.slice(v, r.begin, r.end), started: ctx.slice(started, i, i + 1) } : {}), operands);
  operands.after();
}

export const sgdDefinitions: OpDefinition[] = [
  defineOp({
    op: SGDVarUpdateOp,
    description: 'w -= lr x g with momentum, dampening, weight decay and Nesterov (torch.optim.SGD)',
    inputs: [{ name: 'weight' }, { name: 'gradient' }],
    outputs: [],
    lower: lowerSGD,
  }),
];
