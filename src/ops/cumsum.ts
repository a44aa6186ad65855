/**
 * CumSum (ONNX 11, 14): the running sum along `axis` (a constant input),
 * with `exclusive` (each element left out of its own sum) and `reverse`
 * (from the end). The gradient is the CumSum of dY the other way round
 * (reverse flipped, exclusive kept), as PopART's CumSumGrad.
 *
 * Lowering: the output is mapped linearly; each tile's range [b, e) reads
 * the window of input its columns need: from the start of b's [A, inner]
 * block up to e (forward), or from b to the end of e - 1's block (reverse),
 * brought by the exchange (sim/codelets/scan.ts).
 */
import { GradOp, Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { ArgGradOp, gradOf, gradOut } from './arg-grad.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { GC, constantInts, describeInput, versions } from './shape-util.js';
import { cumSumCodelet } from '../../sim/codelets/scan.js';

const CUMSUM_GRAD = { domain: GC, type: 'CumSumGrad', version: 1 };

interface Scan {
  A: number;
  inner: number;
  exclusive: boolean;
  reverse: boolean;
}

export class CumSumOp extends Op {
  axis = 0;
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly exclusive: boolean,
    readonly reverse: boolean,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const r = x.shape.length;
    if (r === 0) this.fail(`needs an input of rank >= 1, got ${describeInput(this)}`);
    const a = constantInts(this, 1, 'axis');
    if (a.length !== 1 || a[0] < -r || a[0] >= r) this.fail(`axis [${a.join(', ')}] must be one axis in [${-r}, ${r - 1}]`);
    this.axis = a[0] < 0 ? a[0] + r : a[0];
    this.setOutInfo(0, { ...x, shape: [...x.shape] });
  }
  scan(reverse = this.reverse): Scan {
    const s = this.inInfo(0).shape;
    return { A: s[this.axis], inner: nelms(s.slice(this.axis + 1)), exclusive: this.exclusive, reverse };
  }
  override getGradOps(): GradOp[] {
    const d = this.inInfo(0).dtype;
    return d === 'float32' || d === 'float16' ? [new ArgGradOp(CUMSUM_GRAD, this, 0, [gradOut(0)])] : [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { exclusive: this.exclusive ? 1 : 0, reverse: this.reverse ? 1 : 0 };
  }
  override flops(): number {
    return nelms(this.inInfo(0).shape);
  }
}

function scanInto(ctx: LowerContext, s: Scan, x: BuildTensor, out: BuildTensor): void {
  if (out.size === 0) return;
  const block = s.A * s.inner;
  ctx.computeSet('cumsum');
  for (const r of ctx.ranges(out)) {
    const lo = s.reverse ? r.begin : Math.floor(r.begin / block) * block;
    const hi = s.reverse ? (Math.floor((r.end - 1) / block) + 1) * block : r.end;
    ctx.vertex(
      cumSumCodelet,
      r.tile,
      { in: ctx.onTile(x, lo, hi, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { A: s.A, inner: s.inner, begin: r.begin, base: lo, exclusive: s.exclusive ? 1 : 0, reverse: s.reverse ? 1 : 0 },
    );
  }
}

export const cumSumDefinitions: OpDefinition[] = [
  ...versions('CumSum', [11, 14], (id) => defineOp({
    op: CumSumOp,
    id,
    description: 'Running sum along axis (a constant input); exclusive, reverse',
    inputs: [{ name: 'x' }, { name: 'axis' }],
    outputs: [{ name: 'y' }],
    attributes: {
      exclusive: { type: 'int', default: 0, description: '1: each element is left out of its own sum' },
      reverse: { type: 'int', default: 0, description: '1: sums run from the end' },
    },
    grad: true,
    create: ({ attributes, settings }) => new CumSumOp(id, settings, attributes.int('exclusive') !== 0, attributes.int('reverse') !== 0),
    lower: (op, ctx) => scanInto(ctx, op.scan(), ctx.input(0), ctx.output(0)),
  })),
  defineOp({
    op: gradOf(CumSumOp),
    id: CUMSUM_GRAD,
    description: 'dX = CumSum of dY the other way round (reverse flipped, exclusive kept)',
    lower: (op, ctx) => {
      const fwd = op.fwd;
      scanInto(ctx, fwd.scan(!fwd.reverse), ctx.input(0), ctx.output(0));
    },
  }),
];
