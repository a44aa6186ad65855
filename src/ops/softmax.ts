/**
 * Softmax and LogSoftmax (ONNX), numerically stable (the max is subtracted
 * first), and their grad ops:
 *   softmax      dx = y (dy - sum_axis(dy y))
 *   log-softmax  dx = dy - exp(y) sum_axis(dy)
 * both from the forward output y (GradOpInType.Out) and dy.
 *
 * Axis semantics differ by version, so both are registered:
 *   versions 1 and 11: the input is coerced to 2-D [prod(shape[:axis]),
 *     prod(shape[axis:])] and normalised over the second dimension (default axis 1);
 *   version 13: normalised over `axis` alone (default -1).
 * Either way the op is a row-major [outer, n, inner] view normalised over n.
 *
 * Lowering: the output is mapped like the input; each tile's vertex reads
 * the window of the input covering every group its elements belong to
 * (src/lower/window.ts, groupWindow). When those windows would read the input
 * more than twice over (an input in short blocks, such as a batched matmul's
 * output: each group cut among several tiles, each of which would read and
 * normalise the whole group), the output is mapped in whole groups instead,
 * linearly, so each group is brought to one tile once (when that loads no
 * tile more: see outputLayout).
 */
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { linearLayout } from '../lower/linear.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import { groupWindow } from '../lower/window.js';
import { floatInput, gid, normAxis, product, versions } from './nn-util.js';
import { ArgGradOp, fwdOut, gradOf, gradOut } from './arg-grad.js';
import { softmaxCodelet, softmaxGradCodelet } from '../../sim/codelets/softmax.js';

export class SoftmaxOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly axis: number,
    readonly log: boolean,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  /** Versions before 13 flatten to 2-D at the axis. */
  get flattens(): boolean {
    return this.opid.version < 13;
  }
  setup(): void {
    floatInput(this, 0);
    const x = this.inInfo(0);
    normAxis(this, this.axis, x.shape.length);
    this.setOutInfo(0, x);
  }
  /** The [outer, n, inner] view. */
  layout(): { outer: number; n: number; inner: number } {
    const shape = this.inInfo(0).shape;
    const a = normAxis(this, this.axis, shape.length);
    const outer = product(shape.slice(0, a));
    if (this.flattens) return { outer, n: product(shape.slice(a)), inner: 1 };
    return { outer, n: shape[a], inner: product(shape.slice(a + 1)) };
  }
  override getGradOps(): ArgGradOp[] {
    const size = () => product(this.outInfo(0).shape);
    return [new ArgGradOp(gid(this.log ? 'LogSoftmaxGrad' : 'SoftmaxGrad'), this, 0, [gradOut(0, 0), fwdOut(1, 0)], () => 4 * size())];
  }
  override attributes() {
    return { axis: this.axis };
  }
  override flops(): number {
    // max, subtract, exp, sum, divide (or subtract log): 5 per element.
    return 5 * product(this.inInfo(0).shape);
  }
}

/** Windows reading the input more than this many times over in all may map the output in whole groups. */
const MAX_WINDOW_READS = 2;

/**
 * The output's layout: like the input, unless its ranges' group windows would
 * read it over MAX_WINDOW_READS times and whole groups would not load the
 * busiest tile more. A tile's work is about its windows (max, exp and sum run
 * over them) plus its outputs: like the input, the sum of both over its
 * ranges; in whole groups, twice its share of groups. So a few large groups
 * (a classifier's 1000 scores) stay spread, each tile normalising its part.
 */
function outputLayout(ctx: LowerContext, x: BuildTensor, n: number, inner: number): { like: BuildTensor } | { grain: number } {
  const group = n * inner;
  let read = 0;
  const work = new Map<number, number>();
  for (const r of ctx.ranges(x)) {
    const [lo, hi] = groupWindow(r.begin, r.end, n, inner);
    read += hi - lo;
    work.set(r.tile, (work.get(r.tile) ?? 0) + hi - lo + r.end - r.begin);
  }
  if (read <= MAX_WINDOW_READS * x.size) return { like: x };
  const share = linearLayout(x.size, DTYPE_BYTES[x.dtype], group, ctx.device.minBytesPerTile, ctx.graph.numTiles).perTile;
  return 2 * share <= Math.max(...work.values()) ? { grain: group } : { like: x };
}

function lowerSoftmax(s: SoftmaxOp, ctx: LowerContext): void {
  const { n, inner } = s.layout();
  const x = ctx.input(0);
  const out = ctx.output(0, outputLayout(ctx, x, n, inner));
  ctx.computeSet(s.log ? 'logsoftmax' : 'softmax');
  for (const r of ctx.ranges(out)) {
    const [lo, hi] = groupWindow(r.begin, r.end, n, inner);
    ctx.vertex(softmaxCodelet, r.tile, { in: ctx.onTile(x, lo, hi, r.tile), out: ctx.slice(out, r.begin, r.end) }, { n, inner, outBegin: r.begin, inBegin: lo, log: s.log ? 1 : 0 });
  }
}

function lowerSoftmaxGrad(op: ArgGradOp<SoftmaxOp>, ctx: LowerContext): void {
  const s = op.fwd;
  const { n, inner } = s.layout();
  const dy = ctx.input(0);
  const y = ctx.input(1);
  const out = ctx.output(0, { like: y });
  ctx.computeSet(s.log ? 'logsoftmax-grad' : 'softmax-grad');
  for (const r of ctx.ranges(out)) {
    const [lo, hi] = groupWindow(r.begin, r.end, n, inner);
    ctx.vertex(
      softmaxGradCodelet,
      r.tile,
      { gradOut: ctx.onTile(dy, lo, hi, r.tile), y: ctx.onTile(y, lo, hi, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { n, inner, outBegin: r.begin, inBegin: lo, log: s.log ? 1 : 0 },
    );
  }
}

function family(type: 'Softmax' | 'LogSoftmax'): OpDefinition[] {
  const log = type === 'LogSoftmax';
  return versions(type, [1, 11, 13], (version, id) => defineOp({
    op: SoftmaxOp,
    id,
    description:
      `${log ? 'log(softmax(x))' : 'exp(x) / sum(exp(x))'}, stable; ` +
      (version < 13 ? 'over the 2-D coercion at axis (dims axis.. flattened)' : 'over one axis'),
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: version < 13 ? 1 : -1, description: version < 13 ? 'first dim of the flattened inner block' : 'the normalised axis' } },
    grad: true,
    create: ({ attributes, settings }) => new SoftmaxOp(id, attributes.int('axis'), log, settings),
    lower: lowerSoftmax,
  }));
}

export const softmaxDefinitions: OpDefinition[] = [
  ...family('Softmax'),
  ...family('LogSoftmax'),
  defineOp({ op: gradOf(SoftmaxOp), id: gid('SoftmaxGrad'), description: "dx = y (dy - sum_axis(dy y))", lower: lowerSoftmaxGrad }),
  defineOp({ op: gradOf(SoftmaxOp), id: gid('LogSoftmaxGrad'), description: "dx = dy - exp(y) sum_axis(dy)", lower: lowerSoftmaxGrad }),
];
