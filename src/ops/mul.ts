/**
 * Mul (ONNX) with the same broadcasting as Add (one operand's shape a suffix
 * of the other's), and its grad ops: d(arg) = dC x (the other operand),
 * summed over the axes `arg` was broadcast along.
 */
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { mapBinaryBroadcast } from '../lower/elementwise.js';
import { reduceLeading } from '../lower/reduce.js';
import { suffixBroadcast } from './add.js';

const MUL = { domain: 'ai.onnx', type: 'Mul', version: 14 };
const ARG0_GRAD = { domain: 'ai.graphcore', type: 'MulArg0Grad', version: 1 };
const ARG1_GRAD = { domain: 'ai.graphcore', type: 'MulArg1Grad', version: 1 };

export class MulOp extends Op {
  static readonly defaultOperatorId = MUL;
  constructor(settings: OpSettings) {
    super(MUL, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (a.dtype !== b.dtype) this.fail(`operands must have one dtype, got ${a.dtype} and ${b.dtype}`);
    const shape = suffixBroadcast(a, b);
    if (!shape) {
      this.fail(`cannot broadcast ${this.inId(0)} ${fmtInfo(a)} with ${this.inId(1)} ${fmtInfo(b)}: ` +
        `supported are equal shapes or one shape a suffix of the other (e.g. [8, 4] * [4])`);
    }
    this.setOutInfo(0, { dtype: a.dtype, shape });
  }
  override getGradOps(): GradOp[] {
    return [new MulArgGradOp(this, 0), new MulArgGradOp(this, 1)];
  }
  override flops(): number {
    return nelms(this.outInfo(0).shape);
  }
}

/** Gradient of Mul's input `arg`: inputs are the output's gradient and the other operand. */
export class MulArgGradOp extends GradOp {
  constructor(
    fwd: MulOp,
    readonly arg: 0 | 1,
  ) {
    super(arg === 0 ? ARG0_GRAD : ARG1_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(this.arg));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut },
      { gradOpInIndex: 1, fwdIndex: 1 - this.arg, type: GradOpInType.In },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.arg]]);
  }
  override flops(): number {
    return nelms(this.fwdOp.outInfo(0).shape);
  }
}

function lowerMul(_op: Op, ctx: LowerContext): void {
  const a = ctx.input(0);
  const b = ctx.input(1);
  const [big, small] = a.size >= b.size ? [a, b] : [b, a];
  mapBinaryBroadcast(ctx, 'Mul', big, small, ctx.output(0, { like: big }));
}

function lowerMulArgGrad(_op: Op, ctx: LowerContext): void {
  const dy = ctx.input(0);
  const other = ctx.input(1);
  const n = nelms(ctx.op.outInfo(0).shape);
  if (n === dy.size) {
    mapBinaryBroadcast(ctx, 'Mul', dy, other, ctx.output(0, { like: dy }));
    return;
  }
  // The argument was broadcast: multiply at full size, then sum over the broadcast axes.
  const full = ctx.addTensor('product', dy.dtype, dy.shape);
  ctx.graph.mapLike(full, dy);
  ctx.computeSet('mul');
  for (const r of ctx.ranges(full)) {
    ctx.vertex('Mul', r.tile, { a: ctx.onTile(dy, r.begin, r.end, r.tile), b: ctx.onTile(other, r.begin, r.end, r.tile), out: ctx.slice(full, r.begin, r.end) }, { offset: 0 });
  }
  reduceLeading(ctx, full, ctx.output(0));
}

export const mulDefinitions: OpDefinition[] = [
  {
    id: MUL,
    description: 'Elementwise product; one operand may broadcast over leading dimensions',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new MulOp(settings),
    lower: lowerMul,
  },
  { id: ARG0_GRAD, description: "dA = dC x B, reduced to A's shape", lower: lowerMulArgGrad },
  { id: ARG1_GRAD, description: "dB = dC x A, reduced to B's shape", lower: lowerMulArgGrad },
];
