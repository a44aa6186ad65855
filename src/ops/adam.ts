/**
 * Adam and AdamW variable updates (PyTorch semantics, see
 * sim/codelets/optimizer.ts), in place on the variable like SGDVarUpdateOp.
 * State beside the weight, mapped like it: the first and second moments
 * (float32 whatever the weight's type: in float16, (1 - beta2) g^2 flushes
 * to zero for |g| below about 5e-3 with beta2 = 0.999) and one step counter per vertex, which
 * the vertex increments, so the bias corrections are right at every step
 * without recompiling.
 *
 */
import type { AttributeValue, OpSettings } from '../ir/op.js';
import { lossScalingParam, perVertexState, stateLike, VarUpdateOp } from './var-update.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';

const ADAM = { domain: 'ai.graphcore', type: 'AdamVarUpdate', version: 1 };

export interface AdamParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: weight decay applied to the weight (decoupled), not added to the gradient. */
  decoupled: boolean;
  /** The gradient is divided by it before use (default 1). */
  lossScaling?: number;
}

export class AdamVarUpdateOp extends VarUpdateOp {
  static readonly defaultOperatorId = ADAM;
  constructor(
    readonly params: AdamParams,
    settings: OpSettings,
  ) {
    super(ADAM, settings);
  }
  override attributes(): Record<string, AttributeValue> {
    const p = this.params;
    return { lr: p.lr, beta1: p.beta1, beta2: p.beta2, eps: p.eps, weightDecay: p.weightDecay, decoupled: p.decoupled ? 1 : 0, lossScaling: p.lossScaling ?? 1 };
  }
  override flops(): number {
    // Weight decay 2, m 3, v 4, sqrt/scale/eps 3, divide and update 3.
    return nelms(this.inInfo(0).shape) * (13 + (this.params.weightDecay ? 2 : 0));
  }
}

function lowerAdam(op: AdamVarUpdateOp, ctx: LowerContext): void {
  const p = op.params;
  const w = ctx.input(0);
  const g = ctx.input(1);
  const ranges = ctx.ranges(w);
  // Moments in float32 whatever the weight's type.
  const m = stateLike(ctx, 'exp_avg', w, 'float32');
  const v = stateLike(ctx, 'exp_avg_sq', w, 'float32');
  const step = perVertexState(ctx, 'step', ranges);
  ctx.computeSet('adam');
  for (const [i, r] of ranges.entries()) {
    ctx.vertex(
      'AdamUpdate',
      r.tile,
      {
        w: ctx.slice(w, r.begin, r.end),
        g: ctx.onTile(g, r.begin, r.end, r.tile),
        m: ctx.slice(m, r.begin, r.end),
        v: ctx.slice(v, r.begin, r.end),
        step: ctx.slice(step, i, i + 1),
      },
      {
        lr: p.lr,
        beta1: p.beta1,
        beta2: p.beta2,
        eps: p.eps,
        weightDecay: p.weightDecay,
        decoupled: p.decoupled ? 1 : 0,
        ...lossScalingParam(p.lossScaling),
      },
    );
  }
}

export const adamDefinitions: OpDefinition[] = [
  defineOp({
    op: AdamVarUpdateOp,
    description: 'Adam / AdamW update with bias correction (torch.optim.Adam, torch.optim.AdamW)',
    inputs: [{ name: 'weight' }, { name: 'gradient' }],
    outputs: [],
    lower: lowerAdam,
  }),
];
