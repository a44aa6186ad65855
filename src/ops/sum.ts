/**
 * Sum (ONNX) of equally shaped inputs. Autodiff uses it as the GradSum that
 * adds the edge gradients of a tensor with several consumers. Its grad ops
 * hand the output's gradient to every input unchanged (aliases).
 */
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms, sameInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { Slice } from '../lower/devicegraph.js';

const SUM = { domain: 'ai.onnx', type: 'Sum', version: 13 };
const SUM_ARG_GRAD = { domain: 'ai.graphcore', type: 'SumArgGrad', version: 1 };

export class SumOp extends Op {
  static readonly defaultOperatorId = SUM;
  constructor(settings: OpSettings) {
    super(SUM, settings);
  }
  setup(): void {
    const first = this.inInfo(0);
    for (let i = 1; i < this.inputs.length; i++) {
      if (!sameInfo(first, this.inInfo(i))) {
        this.fail(`inputs must have one shape and dtype: ${this.inId(0)} is ${fmtInfo(first)}, ${this.inId(i)} is ${fmtInfo(this.inInfo(i))}`);
      }
    }
    this.setOutInfo(0, first);
  }
  override getGradOps(): GradOp[] {
    return this.inputs.map((_, i) => new SumArgGradOp(this, i));
  }
  override flops(): number {
    return (this.inputs.length - 1) * nelms(this.outInfo(0).shape);
  }
}

export class SumArgGradOp extends GradOp {
  constructor(
    fwd: SumOp,
    readonly arg: number,
  ) {
    super(SUM_ARG_GRAD, fwd, { name: `SumArgGrad${arg}(${fwd.name})`, loc: fwd.settings.loc });
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(this.arg));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [{ gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut }];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.arg]]);
  }
}

function lowerSum(op: Op, ctx: LowerContext): void {
  const ins = op.inputs.map((_, i) => ctx.input(i));
  const out = ctx.output(0, { like: ins[0] });
  ctx.computeSet('sum');
  for (const r of ctx.ranges(out)) {
    const parts: Slice[] = ins.map((t) => ctx.onTile(t, r.begin, r.end, r.tile));
    ctx.vertex('Sum', r.tile, { in: parts, out: ctx.slice(out, r.begin, r.end) });
  }
}

export const sumDefinitions: OpDefinition[] = [
  {
    id: SUM,
    description: 'Elementwise sum of equally shaped inputs (also the GradSum of autodiff)',
    inputs: [{ name: 'data_0', variadic: true }],
    outputs: [{ name: 'sum' }],
    grad: true,
    create: ({ settings }) => new SumOp(settings),
    lower: lowerSum,
  },
  { id: SUM_ARG_GRAD, description: "Sum's output gradient passed to one input", lower: (_op, ctx) => ctx.aliasOutput(0, ctx.input(0)) },
];
