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
import type { OpSettings } from '../ir/op.js';
import { lowerVarUpdate, perVertexState, stateLike, updateOperands, VarUpdateOp, type VarUpdateParams } from './var-update.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { AdamSpec } from '../config/types.js';
import { adamCodelet } from '../../sim/codelets/optimizer.js';

const ADAM = { domain: 'ai.graphcore', type: 'AdamVarUpdate', version: 1 };

export interface AdamParams extends Pick<AdamSpec, 'lr' | 'beta1' | 'beta2' | 'eps' | 'weightDecay'>, VarUpdateParams {
  /** AdamW: weight decay applied to the weight (decoupled), not added to the gradient. */
  decoupled: boolean;
}

export class AdamVarUpdateOp extends VarUpdateOp<AdamParams> {
  static readonly defaultOperatorId = ADAM;
  protected readonly hyperKeys = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'decoupled'] as const;
  constructor(
    readonly params: AdamParams,
    settings: OpSettings,
  ) {
    super(ADAM, settings);
  }
  override flops(): number {
    // Weight decay 2, m 3, v 4, sqrt/scale/eps 3, divide and update 3.
    return nelms(this.inInfo(0).shape) * (13 + (this.params.weightDecay ? 2 : 0));
  }
}

function lowerAdam(op: AdamVarUpdateOp, ctx: LowerContext): void {
  const operands = updateOperands(op, ctx);
  const { w } = operands;
  const ranges = ctx.ranges(w);
  // Moments in float32 whatever the weight's type.
  const m = stateLike(ctx, 'exp_avg', w, 'float32');
  const v = stateLike(ctx, 'exp_avg_sq', w, 'float32');
  const step = perVertexState(ctx, 'step', ranges);
  lowerVarUpdate(op, ctx, adamCodelet, 'adam', ranges, (i, r) => ({ m: ctx.slice(m, r.begin, r.end), v: ctx.slice(v, r.begin, r.end), step: ctx.slice(step, i, i + 1) }), operands);
  operands.after();
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
