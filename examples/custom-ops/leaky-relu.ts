/**
 * LeakyRelu as a custom op, written the PopART way (see PopART's guide
 * "Gradient operation class", ../shared/seed): the op, its grad op, their
 * shared parameter type, their lowering to vertices and their codelets.
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
  estimators,
  fieldDType,
  mapElementwise,
  regionCount,
  type AttributeValue,
  type Codelet,
  type GradInOutMapper,
  type OpModule,
  type OpSettings,
} from 'tilesim';

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

/** PopLibs' relu loop: {cyclesPerLoop 3, not vectorised, unroll 2}; the select by alpha costs one more cycle per pair. */
const LEAKY_LOOP = { cyclesPerLoop: 4, vectorised: false, unroll: 2 };

export const leakyReluCodelet: Codelet = {
  name: 'LeakyRelu',
  kind: 'multi',
  fields: { in: { direction: 'input', dtypes: ['float32'] }, out: { direction: 'output', dtypes: ['float32'] } },
  compute({ fields, params }) {
    const x = fields.in as Float32Array;
    const y = fields.out as Float32Array;
    const alpha = Math.fround(params.alpha); // a float vertex field on the device
    for (let i = 0; i < x.length; i++) y[i] = x[i] >= 0 ? x[i] : alpha * x[i];
  },
  cycles(v, device) {
    return estimators.unaryMultiVertex(regionCount(v.fields.out), fieldDType(v.fields.out), LEAKY_LOOP, device);
  },
  estimateSource: 'PopLibs UnaryOp1D MultiVertex: W x (17 + inner) + 20 with a relu-like loop of 4 cycles per 2 elements',
};

export const leakyReluGradCodelet: Codelet = {
  name: 'LeakyReluGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', dtypes: ['float32'] },
    in: { direction: 'input', dtypes: ['float32'] },
    out: { direction: 'output', dtypes: ['float32'] },
  },
  compute({ fields, params }) {
    const dy = fields.gradOut as Float32Array;
    const x = fields.in as Float32Array;
    const dx = fields.out as Float32Array;
    const alpha = Math.fround(params.alpha); // a float vertex field on the device
    for (let i = 0; i < x.length; i++) dx[i] = x[i] >= 0 ? dy[i] : alpha * dy[i];
  },
  cycles(v, device) {
    return estimators.binaryMultiVertex(regionCount(v.fields.out), fieldDType(v.fields.out), LEAKY_LOOP, device);
  },
  estimateSource: 'PopLibs BinaryOp1D MultiVertex: W x (29 + inner) + 11 with a select loop of 4 cycles per 2 elements',
};

const opModule: OpModule = {
  ops: [
    {
      id: LeakyReluOp.defaultOperatorId,
      description: 'y = x if x >= 0 else alpha * x',
      inputs: [{ name: 'input' }],
      outputs: [{ name: 'output' }],
      attributes: { alpha: { type: 'float', default: 0.01, description: 'slope for x < 0' } },
      grad: true,
      create: ({ attributes, settings }) => new LeakyReluOp({ alpha: attributes.float('alpha') }, settings),
      // The Opx: one LeakyRelu vertex per contiguous run of the output on each tile.
      lower: (op, ctx) => {
        const x = ctx.input(0);
        mapElementwise(ctx, 'LeakyRelu', { in: x }, ctx.output(0, { like: x }), { alpha: (op as LeakyReluOp).params.alpha });
      },
    },
    {
      id: LeakyReluGradOp.defaultOperatorId,
      description: "dx = y' if x >= 0 else alpha * y'",
      lower: (op, ctx) => {
        const x = ctx.input(1);
        const out = ctx.output(0, { like: x });
        mapElementwise(ctx, 'LeakyReluGrad', { gradOut: ctx.input(0), in: x }, out, { alpha: (op as LeakyReluGradOp).params.alpha });
      },
    },
  ],
  codelets: [leakyReluCodelet, leakyReluGradCodelet],
};

export default opModule;
