/**
 * SGD variable update (PyTorch semantics, see sim/codelets/optimizer.ts):
 * an op that writes its variable in place, so the scheduler runs it after
 * every other reader of that variable. It has no grad ops. The gradient is
 * divided by the loss scaling before use (PopART). State beside the weight:
 * the velocity (the weight's type, as torch keeps momentum_buffer) and one
 * `started` flag per vertex, so the first step is PyTorch's (v = g) without
 * recompiling.
 */
import type { AttributeValue, OpSettings } from '../ir/op.js';
import { lossScalingParam, perVertexState, stateLike, VarUpdateOp } from './var-update.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';

const SGD = { domain: 'ai.graphcore', type: 'SGDVarUpdate', version: 1 };

export interface SGDParams {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** Loss scaling: the gradient is divided by it before use (default 1). */
  lossScaling?: number;
}

export class SGDVarUpdateOp extends VarUpdateOp {
  static readonly defaultOperatorId = SGD;
  constructor(
    readonly params: SGDParams,
    settings: OpSettings,
  ) {
    super(SGD, settings);
  }
  override attributes(): Record<string, AttributeValue> {
    const p = this.params;
    return {
      lr: p.lr,
      momentum: p.momentum,
      dampening: p.dampening,
      weightDecay: p.weightDecay,
      nesterov: p.nesterov ? 1 : 0,
      lossScaling: p.lossScaling ?? 1,
    };
  }
  override flops(): number {
    const p = this.params;
    return nelms(this.inInfo(0).shape) * (2 + (p.weightDecay ? 2 : 0) + (p.momentum ? 3 + (p.nesterov ? 2 : 0) : 0));
  }
}

function lowerSGD(op: SGDVarUpdateOp, ctx: LowerContext): void {
  const p = op.params;
  const w = ctx.input(0);
  const g = ctx.input(1);
  const ranges = ctx.ranges(w);
  // Optimizer state lives beside the weights: the velocity mapped like w, one `started` flag per vertex.
  const v = p.momentum !== 0 ? stateLike(ctx, 'velocity', w) : undefined;
  const started = p.momentum !== 0 ? perVertexState(ctx, 'started', ranges) : undefined;
  ctx.computeSet('sgd');
  for (const [i, r] of ranges.entries()) {
    const fields = {
      w: ctx.slice(w, r.begin, r.end),
      g: ctx.onTile(g, r.begin, r.end, r.tile),
      ...(v && started ? { v: ctx.slice(v, r.begin, r.end), started: ctx.slice(started, i, i + 1) } : {}),
    };
    ctx.vertex('SGDUpdate', r.tile, fields, {
      lr: p.lr,
      momentum: p.momentum,
      dampening: p.dampening,
      weightDecay: p.weightDecay,
      nesterov: p.nesterov ? 1 : 0,
      ...lossScalingParam(p.lossScaling),
    });
  }
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
