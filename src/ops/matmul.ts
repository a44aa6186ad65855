/**
 * MatMul (ONNX, 2-D): C[m, n] = A[m, k] x B[k, n], and its two grad ops:
 *   dA = dC x B^T   (MatMulLhsGradOp: GradOut 0, In 1 -> grad of In 0)
 *   dB = A^T x dC   (MatMulRhsGradOp: In 0, GradOut 0 -> grad of In 1)
 * All three lower to MatMul block vertices: the output is mapped by whole
 * rows, and each tile computes its rows from its rows of op(A) and all of B.
 */
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { fmtInfo } from '../ir/tensorinfo.js';

const MATMUL = { domain: 'ai.onnx', type: 'MatMul', version: 13 };
const LHS_GRAD = { domain: 'ai.graphcore', type: 'MatMulLhsGrad', version: 1 };
const RHS_GRAD = { domain: 'ai.graphcore', type: 'MatMulRhsGrad', version: 1 };

export class MatMulOp extends Op {
  static readonly defaultOperatorId = MATMUL;
  constructor(settings: OpSettings) {
    super(MATMUL, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (a.shape.length !== 2 || b.shape.length !== 2) {
      this.fail(`supports 2-D operands for now, got ${fmtInfo(a)} x ${fmtInfo(b)}`);
    }
    if (a.shape[1] !== b.shape[0]) {
      this.fail(`inner dimensions differ: ${this.inId(0)} is ${fmtInfo(a)}, ${this.inId(1)} is ${fmtInfo(b)}; ` +
        `${this.inId(1)} needs ${a.shape[1]} rows`);
    }
    if (a.dtype !== b.dtype) this.fail(`operands must have one dtype, got ${a.dtype} and ${b.dtype}`);
    this.setOutInfo(0, { dtype: a.dtype, shape: [a.shape[0], b.shape[1]] });
  }
  override getGradOps(): GradOp[] {
    return [new MatMulLhsGradOp(this), new MatMulRhsGradOp(this)];
  }
  override flops(): number {
    const [m, k] = this.inInfo(0).shape;
    return 2 * m * k * this.inInfo(1).shape[1];
  }
}

export class MatMulLhsGradOp extends GradOp {
  static readonly defaultOperatorId = LHS_GRAD;
  constructor(fwd: MatMulOp) {
    super(LHS_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut },
      { gradOpInIndex: 1, fwdIndex: 1, type: GradOpInType.In },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
  override flops(): number {
    return this.fwdOp.flops();
  }
}

export class MatMulRhsGradOp extends GradOp {
  static readonly defaultOperatorId = RHS_GRAD;
  constructor(fwd: MatMulOp) {
    super(RHS_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(1));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.In },
      { gradOpInIndex: 1, fwdIndex: 0, type: GradOpInType.GradOut },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 1]]);
  }
  override flops(): number {
    return this.fwdOp.flops();
  }
}

/** out[m, n] = op(a) x op(b), op = transpose when the flag is set; a and b as stored. */
export function lowerMatMul(ctx: LowerContext, a: BuildTensor, b: BuildTensor, transA: boolean, transB: boolean): void {
  const m = transA ? a.shape[1] : a.shape[0];
  const k = transA ? a.shape[0] : a.shape[1];
  const n = transB ? b.shape[0] : b.shape[1];
  const out = ctx.output(0, { grain: n });
  ctx.computeSet('matmul');
  for (const r of ctx.ranges(out)) {
    const rowBegin = r.begin / n;
    const rows = (r.end - r.begin) / n;
    const aSlice = transA ? ctx.onTile(a, 0, a.size, r.tile) : ctx.onTile(a, rowBegin * k, (rowBegin + rows) * k, r.tile);
    ctx.vertex(
      'MatMul',
      r.tile,
      { a: aSlice, b: ctx.onTile(b, 0, b.size, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { rows, k, n, m, rowBegin, transA: transA ? 1 : 0, transB: transB ? 1 : 0 },
    );
  }
}

export const matMulDefinitions: OpDefinition[] = [
  {
    id: MATMUL,
    description: 'Matrix product of two 2-D tensors',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'Y' }],
    grad: true,
    create: ({ settings }) => new MatMulOp(settings),
    lower: (op, ctx) => lowerMatMul(ctx, ctx.input(0), ctx.input(1), false, false),
  },
  { id: LHS_GRAD, description: 'dA = dY x B^T', lower: (op, ctx) => lowerMatMul(ctx, ctx.input(0), ctx.input(1), false, true) },
  { id: RHS_GRAD, description: 'dB = A^T x dY', lower: (op, ctx) => lowerMatMul(ctx, ctx.input(0), ctx.input(1), true, false) },
];
