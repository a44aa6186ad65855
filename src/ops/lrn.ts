/**
 * LRN, local response normalisation across channels (ONNX 1, 13; 13 only
 * adds bfloat16), and its grad op. For X [N, C, d1, ...], viewed as
 * [N, C, S] with S = prod(d1, ...):
 *   sq[n, c, s] = sum of X[n, i, s]^2, i in [max(0, c - lo), min(C - 1, c + hi)],
 *     lo = floor((size - 1) / 2), hi = ceil((size - 1) / 2);
 *   s = bias + alpha / size sq;   Y = X s^-beta.
 * Grad op LRNGrad (from dY and X): with t[j] = dY[j] X[j] s[j]^(-beta - 1),
 *   dX[c] = dY[c] s[c]^-beta - 2 alpha beta / size X[c] sum of t[j] over the
 *   channels j whose window holds c, j in [c - hi, c + lo] (same n and s).
 *
 * Lowering: the output is mapped like X. Each tile's range of elements reads
 * the same positions shifted by whole channels (d S elements, d in
 * [-lo, hi], clipped to the batch item's [C, S] block): a handful of
 * contiguous runs, merged where they touch, brought to the tile as one
 * gathered tensor (ctx.gather) rather than a covering window. The grad reads
 * dY at shifts [-hi, lo] and X at [-(lo + hi), lo + hi] (the windows of the
 * windows), and computes s where it needs it.
 */
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { floatInput, gid, product, versions } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOf, gradOut } from './arg-grad.js';
import { lrnCodelet, lrnGradCodelet } from '../../sim/codelets/lrn.js';

export interface LrnParams {
  alpha: number;
  beta: number;
  bias: number;
  size: number;
}

export class LrnOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly params: LrnParams,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    floatInput(this, 0);
    const x = this.inInfo(0);
    if (x.shape.length < 2) this.fail(`X must be [N, C, ...] (at least 2 dims), got ${fmtInfo(x)}`);
    const { size } = this.params;
    if (!Number.isInteger(size) || size < 1) this.fail(`size must be a positive integer (the number of channels to sum over), got ${size}`);
    this.setOutInfo(0, x);
  }
  /** The [N, C, S] view and the window's reach below (lo) and above (hi) a channel. */
  layout(): { C: number; S: number; lo: number; hi: number } {
    const shape = this.inInfo(0).shape;
    const { size } = this.params;
    return { C: shape[1], S: product(shape.slice(2)), lo: Math.floor((size - 1) / 2), hi: Math.ceil((size - 1) / 2) };
  }
  override getGradOps(): ArgGradOp[] {
    // Per element: s (2 size + 2), two powers (~4), t (2), its window sum (size), dX (4).
    const work = () => (3 * this.params.size + 12) * product(this.inInfo(0).shape);
    return [new ArgGradOp(gid('LRNGrad'), this, 0, [gradOut(0), fwdIn(1, 0)], work)];
  }
  override attributes() {
    return { ...this.params };
  }
  override flops(): number {
    // Per element: size squares and adds, scale and shift, s^-beta as exp(-beta log s) (~3), times x.
    return (2 * this.params.size + 6) * product(this.inInfo(0).shape);
  }
}

/**
 * The flat element runs of an [N, C, S] tensor that elements [b, e) read at
 * channel shifts d in [dLo, dHi]: [b, e) moved by d S within each batch
 * item's block (a shift past channel 0 or C - 1 reads nothing), sorted and
 * merged where runs overlap or touch.
 */
export function channelShiftRuns(b: number, e: number, C: number, S: number, dLo: number, dHi: number): [number, number][] {
  const block = C * S;
  const raw: [number, number][] = [];
  for (let n = Math.floor(b / block); n * block < e; n++) {
    const pb = Math.max(b, n * block);
    const pe = Math.min(e, (n + 1) * block);
    for (let d = dLo; d <= dHi; d++) {
      const lo = Math.max(n * block, pb + d * S);
      const hi = Math.min((n + 1) * block, pe + d * S);
      if (lo < hi) raw.push([lo, hi]);
    }
  }
  raw.sort((x, y) => x[0] - y[0]);
  const runs: [number, number][] = [];
  for (const [lo, hi] of raw) {
    const last = runs[runs.length - 1];
    if (last && lo <= last[1]) last[1] = Math.max(last[1], hi);
    else runs.push([lo, hi]);
  }
  return runs;
}

/** The runs of `t` on `tile` as a vector field, with the arrays the codelet reads them by (`${prefix}Begin`, `${prefix}lens`). */
function runsOnTile<P extends string>(ctx: LowerContext, t: BuildTensor, runs: [number, number][], tile: number, prefix: P) {
  // Computed keys widen to an index signature: these are the codelet's <prefix>Begin and <prefix>lens arrays.
  const arrays = { [`${prefix}Begin`]: runs.map(([lo]) => lo), [`${prefix}lens`]: runs.map(([lo, hi]) => hi - lo) } as Record<`${P}Begin` | `${P}lens`, number[]>;
  return { slices: ctx.gather(t, runs, tile), arrays };
}

function lrnParams(op: LrnOp) {
  const { C, S, lo, hi } = op.layout();
  const p = op.params;
  return { C, S, lo, hi, size: p.size, alpha: Math.fround(p.alpha), beta: Math.fround(p.beta), bias: Math.fround(p.bias) };
}

function lowerLrn(lrn: LrnOp, ctx: LowerContext): void {
  const { C, S, lo, hi } = lrn.layout();
  const x = ctx.input(0);
  const y = ctx.output(0, { like: x });
  ctx.computeSet('lrn');
  for (const r of ctx.ranges(y)) {
    const xin = runsOnTile(ctx, x, channelShiftRuns(r.begin, r.end, C, S, -lo, hi), r.tile, 'x');
    ctx.vertex(lrnCodelet, r.tile, { in: xin.slices, out: ctx.slice(y, r.begin, r.end) }, { ...lrnParams(lrn), outBegin: r.begin }, xin.arrays);
  }
}

function lowerLrnGrad(op: ArgGradOp<LrnOp>, ctx: LowerContext): void {
  const lrn = op.fwd;
  const { C, S, lo, hi } = lrn.layout();
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const dx = ctx.output(0, { like: x });
  ctx.computeSet('lrn-grad');
  for (const r of ctx.ranges(dx)) {
    const g = runsOnTile(ctx, dy, channelShiftRuns(r.begin, r.end, C, S, -hi, lo), r.tile, 'g');
    const xin = runsOnTile(ctx, x, channelShiftRuns(r.begin, r.end, C, S, -(lo + hi), lo + hi), r.tile, 'x');
    ctx.vertex(
      lrnGradCodelet,
      r.tile,
      { gradOut: g.slices, in: xin.slices, out: ctx.slice(dx, r.begin, r.end) },
      { ...lrnParams(lrn), outBegin: r.begin },
      { ...g.arrays, ...xin.arrays },
    );
  }
}

export const lrnDefinitions: OpDefinition[] = [
  ...versions('LRN', [1, 13], (_v, id) => defineOp({
    op: LrnOp,
    id,
    description: 'local response normalisation across channels: Y = X / (bias + alpha / size sum of X^2 over size channels)^beta',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      alpha: { type: 'float', default: 1e-4, description: 'scale of the sum of squares (divided by size)' },
      beta: { type: 'float', default: 0.75, description: 'exponent' },
      bias: { type: 'float', default: 1.0 },
      size: { type: 'int', description: 'channels summed over (required)' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new LrnOp(id, { alpha: attributes.float('alpha'), beta: attributes.float('beta'), bias: attributes.float('bias'), size: attributes.int('size') }, settings),
    lower: lowerLrn,
  })),
  defineOp({ op: gradOf(LrnOp), id: gid('LRNGrad'), description: 'dX = dY s^-beta - 2 alpha beta / size X sum over windows holding c of dY X s^(-beta-1)', lower: lowerLrnGrad }),
];
