/**
 * Add (ONNX) with broadcasting of one operand over leading dimensions (a
 * bias: its shape a suffix of the other's), and its grad ops as in PopART:
 * AddArg0GradOp and AddArg1GradOp each take the output's gradient and reduce
 * it to their input's shape (summing over broadcast axes; an alias when the
 * shapes are equal).
 */
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms, type TensorInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { mapBinaryBroadcast } from '../lower/elementwise.js';
import { reduceLeading } from '../lower/reduce.js';

const ADD = { domain: 'ai.onnx', type: 'Add', version: 14 };
const ARG0_GRAD = { domain: 'ai.graphcore', type: 'AddArg0Grad', version: 1 };
const ARG1_GRAD = { domain: 'ai.graphcore', type: 'AddArg1Grad', version: 1 };

function isSuffix(small: readonly number[], big: readonly number[]): boolean {
  if (small.length > big.length) return false;
  const off = big.length - small.length;
  return small.every((d, i) => d === big[off + i]);
}

/** Output shape when one operand's shape is a suffix of the other's; null otherwise. */
export function suffixBroadcast(a: TensorInfo, b: TensorInfo): readonly number[] | null {
  if (isSuffix(b.shape, a.shape)) return a.shape;
  if (isSuffix(a.shape, b.shape)) return b.shape;
  return null;
}

export class AddOp extends Op {
  static readonly defaultOperatorId = ADD;
  constructor(settings: OpSettings) {
    super(ADD, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (a.dtype !== b.dtype) this.fail(`operands must have one dtype, got ${a.dtype} and ${b.dtype}`);
    const shape = suffixBroadcast(a, b);
    if (!shape) {
      this.fail(`cannot broadcast ${this.inId(0)} ${fmtInfo(a)} with ${this.inId(1)} ${fmtInfo(b)}: ` +
        `supported are equal shapes or one shape a suffix of the other (e.g. [8, 4] + [4])`);
    }
    this.setOutInfo(0, { dtype: a.dtype, shape });
  }
  override getGradOps(): GradOp[] {
    return [new AddArgGradOp(this, 0), new AddArgGradOp(this, 1)];
  }
  override flops(): number {
    return nelms(this.outInfo(0).shape);
  }
}

/** Gradient of Add's input `arg`: the output gradient summed over the axes `arg` was broadcast along. */
export class AddArgGradOp extends GradOp {
  constructor(
    fwd: AddOp,
    readonly arg: 0 | 1,
  ) {
    super(arg === 0 ? ARG0_GRAD : ARG1_GRAD, fwd);
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

function lowerAdd(_op: Op, ctx: LowerContext): void {
  const a = ctx.input(0);
  const b = ctx.input(1);
  // The larger operand fixes the output's mapping; the other is broadcast to it.
  const [big, small] = a.size >= b.size ? [a, b] : [b, a];
  const out = ctx.output(0, { like: big });
  mapBinaryBroadcast(ctx, 'Add', big, small, out);
}

function lowerAddArgGrad(_op: Op, ctx: LowerContext): void {
  const dy = ctx.input(0);
  const info = ctx.op.outInfo(0);
  if (nelms(info.shape) === dy.size) ctx.aliasOutput(0, dy);
  else reduceLeading(ctx, dy, ctx.output(0));
}

export const addDefinitions: OpDefinition[] = [
  {
    id: ADD,
    description: 'Elementwise sum; one operand may broadcast over leading dimensions',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new AddOp(settings),
    lower: lowerAdd,
  },
  { id: ARG0_GRAD, description: "Add's output gradient reduced to input 0's shape", lower: lowerAddArgGrad },
  { id: ARG1_GRAD, description: "Add's output gradient reduced to input 1's shape", lower: lowerAddArgGrad },
];
