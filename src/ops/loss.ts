/**
 * L1 loss as PopART defines it (l1loss): loss = scale x sum |x|, divided by
 * the element count for reduction 'mean'. Its grad op L1GradOp takes the
 * forward input and the loss's gradient: dx = scale' x sign(x) x dLoss.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { UserError } from '../errors.js';
import type { LowerContext } from '../lower/context.js';
import { reduceLeading } from '../lower/reduce.js';

const L1 = { domain: 'ai.graphcore', type: 'L1', version: 1 };
const L1_GRAD = { domain: 'ai.graphcore', type: 'L1Grad', version: 1 };

export type Reduction = 'mean' | 'sum';

export interface L1Params {
  scale: number;
  reduction: Reduction;
}

export class L1Op extends Op {
  static readonly defaultOperatorId = L1;
  constructor(
    readonly params: L1Params,
    settings: OpSettings,
  ) {
    super(L1, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    if (x.dtype === 'int32') this.fail(`needs a float input, got ${x.dtype}`);
    this.setOutInfo(0, { dtype: x.dtype, shape: [] });
  }
  override getGradOps(): GradOp[] {
    return [new L1GradOp(this)];
  }
  override attributes(): Record<string, AttributeValue> {
    return { lambda: this.params.scale, reduction: this.params.reduction };
  }
  /** The factor on sum |x|: scale, over n for 'mean'. */
  factor(): number {
    const n = nelms(this.inInfo(0).shape);
    return this.params.reduction === 'mean' ? this.params.scale / n : this.params.scale;
  }
  override flops(): number {
    return 2 * nelms(this.inInfo(0).shape);
  }
}

export class L1GradOp extends GradOp {
  static readonly defaultOperatorId = L1_GRAD;
  constructor(readonly fwd: L1Op) {
    super(L1_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.In },
      { gradOpInIndex: 1, fwdIndex: 0, type: GradOpInType.GradOut },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
  override flops(): number {
    return 2 * nelms(this.fwdInInfo(0).shape);
  }
}

export const lossDefinitions: OpDefinition[] = [
  {
    id: L1,
    description: 'L1 loss: scale x sum|x| (mean divides by the element count)',
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'loss' }],
    attributes: {
      lambda: { type: 'float', default: 1, description: 'scale' },
      reduction: { type: 'string', default: 'mean', description: "'mean' or 'sum'" },
    },
    grad: true,
    create: ({ attributes, settings }) => {
      const reduction = attributes.string('reduction');
      if (reduction !== 'mean' && reduction !== 'sum') {
        throw new UserError(`op '${settings.name}': reduction must be 'mean' or 'sum', got '${reduction}'`, settings.loc);
      }
      return new L1Op({ scale: attributes.float('lambda'), reduction }, settings);
    },
    lower: (op, ctx: LowerContext) => {
      const x = ctx.input(0);
      reduceLeading(ctx, x, ctx.output(0), { abs: true, scale: (op as L1Op).factor() });
    },
  },
  {
    id: L1_GRAD,
    description: 'dx = scale x sign(x) x dLoss',
    lower: (op, ctx) => {
      const x = ctx.input(0);
      const dLoss = ctx.input(1);
      const out = ctx.output(0, { like: x });
      const factor = (op as L1GradOp).fwd.factor();
      ctx.computeSet('l1grad');
      for (const r of ctx.ranges(out)) {
        ctx.vertex(
          'L1Grad',
          r.tile,
          { x: ctx.onTile(x, r.begin, r.end, r.tile), gradLoss: ctx.onTile(dLoss, 0, 1, r.tile), out: ctx.slice(out, r.begin, r.end) },
          { scale: factor },
        );
      }
    },
  },
];
