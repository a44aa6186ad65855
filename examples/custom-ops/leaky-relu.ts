/**
 * LeakyRelu as a custom op, written the PopART way (see PopART's guide
 * "Gradient operation class", ../shared/seed): the op, its grad op, their
 * shared parameter type and their lowering to vertices. Their codelets are
 * in leaky-relu.codelets.ts, the device side's own file.
 *
 *   y = x            if x >= 0, else alpha * x
 *   LeakyReluGrad(y', x) = y'  if x >= 0, else alpha * y'
 *
 * Load it from a config with `model.customOps: [path/to/leaky-relu.ts]`.
 */
import {
  GradOp,
  GradOpInType,
  Op,
  defineOp,
  defineOpModule,
  mapElementwise,
  type AttributeValue,
  type GradInOutMapper,
  type OpSettings,
} from 'tilesim';
import { leakyRelu, leakyReluGrad } from './leaky-relu.codelets.js';

/** Shared by the op and its grad op, as LeakyReluParams is in PopART. */
export interface LeakyReluParams {
  alpha: number;
}

export class LeakyReluOp extends Op {
  static readonly defaultOperatorId = { domain: 'custom.ops', type: 'LeakyRelu', version: 1 };

  constructor(
    readonly params: LeakyReluParams,
    settings: OpSettings,
  ) {
    super(LeakyReluOp.defaultOperatorId, settings);
  }

  /** The output has the input's shape and type. */
  setup(): void {
    const x = this.inInfo(0);
    if (x.dtype !== 'float32') this.fail(`supports float32 inputs, got ${x.dtype}`);
    this.setOutInfo(0, x);
  }

  override getGradOps(): GradOp[] {
    return [new LeakyReluGradOp(this)];
  }

  override attributes(): Record<string, AttributeValue> {
    return { alpha: this.params.alpha };
  }

  override flops(): number {
    return this.inInfo(0).shape.reduce((a, b) => a * b, 1);
  }
}

export class LeakyReluGradOp extends GradOp {
  static readonly defaultOperatorId = { domain: 'custom.ops', type: 'LeakyReluGrad', version: 1 };
  readonly params: LeakyReluParams;

  constructor(fwd: LeakyReluOp) {
    super(LeakyReluGradOp.defaultOperatorId, fwd);
    this.params = fwd.params;
  }

  /** dx has the shape and type of the forward input x. */
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }

  /** Input 0 is the gradient of the forward output 0 (y'); input 1 is the forward input 0 (x). */
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut },
      { gradOpInIndex: 1, fwdIndex: 0, type: GradOpInType.In },
    ];
  }

  /** Output 0 is the gradient of the forward input 0. */
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }

  override attributes(): Record<string, AttributeValue> {
    return { alpha: this.params.alpha };
  }
}

export default defineOpModule({
  ops: [
    defineOp({
      op: LeakyReluOp, // the id is LeakyReluOp.defaultOperatorId; lower() gets a LeakyReluOp, checked
      description: 'y = x if x >= 0 else alpha * x',
      inputs: [{ name: 'input' }],
      outputs: [{ name: 'output' }],
      attributes: { alpha: { type: 'float', default: 0.01, description: 'slope for x < 0' } },
      grad: true,
      create: ({ attributes, settings }) => new LeakyReluOp({ alpha: attributes.float('alpha') }, settings),
      // The Opx: one LeakyRelu vertex per contiguous run of the output on each tile. The output is
      // mapped like x, so onTile() finds x in place and the op moves no data.
      lower: (op, ctx) => {
        const x = ctx.input(0);
        const y = ctx.output(0, { like: x });
        ctx.computeSet('LeakyRelu');
        for (const r of ctx.ranges(y)) {
          ctx.vertex(leakyRelu, r.tile, { in: ctx.onTile(x, r.begin, r.end, r.tile), out: ctx.slice(y, r.begin, r.end) }, { alpha: op.params.alpha });
        }
      },
    }),
    defineOp({
      op: LeakyReluGradOp,
      description: "dx = y' if x >= 0 else alpha * y'",
      // The same with the elementwise helper: inputs in gradInputInfo() order, y' (0) and x (1).
      lower: (op, ctx) => {
        const x = ctx.input(1);
        mapElementwise(ctx, leakyReluGrad, { gradOut: ctx.input(0), in: x }, ctx.output(0, { like: x }), { alpha: op.params.alpha });
      },
    }),
  ],
  // The codelet module, relative to this file: the only file of the op that pool workers load.
  codelets: './leaky-relu.codelets.ts',
});
