/**
 * Conv (ONNX 1 and 11): NCHW with 1 to 3 spatial dims (the issue asks for
 * 2-D; 1-D and 3-D come free with the same geometry), group, strides, pads,
 * dilations, auto_pad NOTSET / VALID / SAME_UPPER / SAME_LOWER, optional
 * bias; and its grad ops:
 *   ConvGradX (dY, W):  dX[n, c, i] = sum over m in c's group and taps k with
 *                        i = o s - pb + k d of dY[n, m, o] W[m, c', k]
 *   ConvGradW (dY, X):  dW[m, c', k] = sum over n, o of dY[n, m, o] X[n, c, o s - pb + k d]
 *   ConvGradB (dY):     dB[m] = sum over n, o of dY[n, m, o]
 *
 * Lowering (src/lower/window.ts explains the memory limit): Y is mapped
 * linearly; each tile's vertex gets the input box its outputs read, per
 * (n, c) plane, and the weights (and bias) of the output channels it covers.
 * dX likewise over the output-gradient box; dW and dB are two-stage
 * reductions: every tile holding part of dY forms an fp32 partial of the
 * dW rows (channels) it touches, then the owners of dW add the pieces.
 * Costs: the AMP estimate of sim/codelets/nn-util.ts.
 */
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import type { OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { channelSum, partialOnTile, planeWindowOnTile, reducePieces, type Piece } from '../lower/window.js';
import { NnGradOp, floatInput, fwdInput, gid, gradOutIn, product, sameDTypeAs, versions, withoutEmpty } from './nn-util.js';
import { backwardBox, forwardBox, geometryArrays, outShape, resolveGeometry, type Geometry } from './spatial.js';

export interface ConvAttrs {
  autoPad: string;
  dilations: number[];
  group: number;
  kernelShape: number[];
  pads: number[];
  strides: number[];
}

export class ConvOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly attrs: ConvAttrs,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  get hasBias(): boolean {
    return this.hasInput(2);
  }
  setup(): void {
    floatInput(this, 0);
    sameDTypeAs(this, 0, [1, 2]);
    const x = this.inInfo(0);
    const w = this.inInfo(1);
    const { group } = this.attrs;
    if (x.shape.length < 3) this.fail(`X must be [N, C, spatial...], got ${fmtInfo(x)}`);
    if (w.shape.length !== x.shape.length) this.fail(`W ${fmtInfo(w)} must have the rank of X ${fmtInfo(x)}: [M, C / group, kernel...]`);
    const [M, Cg] = w.shape;
    const C = x.shape[1];
    if (!Number.isInteger(group) || group < 1 || C % group !== 0 || M % group !== 0) {
      this.fail(`group ${group} must divide the input channels (${C}) and the output channels (${M})`);
    }
    if (Cg * group !== C) this.fail(`W ${fmtInfo(w)} has ${Cg} input channels per group, but X has ${C} channels in ${group} group(s) (${C / group} per group)`);
    const kernel = w.shape.slice(2);
    if (this.attrs.kernelShape.length && this.attrs.kernelShape.join() !== kernel.join()) {
      this.fail(`kernel_shape [${this.attrs.kernelShape.join(', ')}] differs from W's spatial dims [${kernel.join(', ')}]`);
    }
    if (this.hasBias) {
      const b = this.inInfo(2);
      if (b.shape.length !== 1 || b.shape[0] !== M) this.fail(`B must be [${M}] (W's output channels), got ${fmtInfo(b)}`);
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: outShape(this.geometry()) });
  }
  geometry(): Geometry & { rank: number } {
    const w = this.inInfo(1).shape;
    return resolveGeometry(this, this.inInfo(0).shape, w[0], {
      autoPad: this.attrs.autoPad,
      kernel: w.slice(2),
      strides: this.attrs.strides,
      dilations: this.attrs.dilations,
      pads: this.attrs.pads,
      ceilMode: false,
    });
  }
  /** MACs of one forward pass. */
  macs(): number {
    const w = this.inInfo(1).shape;
    return product(this.outInfo(0).shape) * product(w.slice(1));
  }
  override getGradOps(): NnGradOp[] {
    const ops = [
      new NnGradOp(gid('ConvGradX'), this, 0, [gradOutIn(0), fwdInput(1, 1)], () => 2 * this.macs()),
      new NnGradOp(gid('ConvGradW'), this, 1, [gradOutIn(0), fwdInput(1, 0)], () => 2 * this.macs()),
    ];
    if (this.hasBias) ops.push(new NnGradOp(gid('ConvGradB'), this, 2, [gradOutIn(0)], () => product(this.outInfo(0).shape)));
    return ops;
  }
  override attributes() {
    const a = this.attrs;
    return withoutEmpty({ auto_pad: a.autoPad, dilations: a.dilations, group: a.group, kernel_shape: a.kernelShape, pads: a.pads, strides: a.strides });
  }
  override flops(): number {
    return 2 * this.macs() + (this.hasBias ? product(this.outInfo(0).shape) : 0);
  }
}

/** Channel bookkeeping of a convolution geometry. */
function channels(g: Geometry, group: number) {
  const C = g.xs[1];
  const M = g.ys[1];
  const Cg = C / group;
  const Mg = M / group;
  const K = g.k[0] * g.k[1] * g.k[2];
  return {
    C,
    M,
    Cg,
    Mg,
    K,
    /** Input channels read by output channel m. */
    inOf: (m: number): [number, number] => {
      const gi = Math.floor(m / Mg);
      return [gi * Cg, (gi + 1) * Cg - 1];
    },
    /** Output channels fed by input channel c. */
    outOf: (c: number): [number, number] => {
      const gi = Math.floor(c / Cg);
      return [gi * Mg, (gi + 1) * Mg - 1];
    },
  };
}

function lowerConv(op: Op, ctx: LowerContext): void {
  const conv = op as ConvOp;
  const g = conv.geometry();
  const group = conv.attrs.group;
  const ch = channels(g, group);
  const x = ctx.input(0);
  const w = ctx.input(1);
  const bias = conv.hasBias ? ctx.input(2) : undefined;
  const y = ctx.output(0);
  ctx.computeSet('conv');
  const arrays = geometryArrays(g);
  for (const r of ctx.ranges(y)) {
    const box = forwardBox(g, r.begin, r.end, ch.inOf);
    const win = planeWindowOnTile(ctx, x, { C: ch.C, D0: g.xs[2], rest: g.xs[3] * g.xs[4] }, box, r.tile, 'x');
    ctx.vertex(
      bias ? 'NnConvBias' : 'NnConv',
      r.tile,
      {
        in: win.slices,
        weights: ctx.onTile(w, box.mMin * ch.Cg * ch.K, (box.mMax + 1) * ch.Cg * ch.K, r.tile),
        ...(bias ? { bias: ctx.onTile(bias, box.mMin, box.mMax + 1, r.tile) } : {}),
        out: ctx.slice(y, r.begin, r.end),
      },
      { ...win.params, group, outBegin: r.begin, mMin: box.mMin },
      { ...arrays, ...win.arrays },
    );
  }
}

function lowerConvGradX(op: Op, ctx: LowerContext): void {
  const conv = (op as NnGradOp<ConvOp>).fwd;
  const g = conv.geometry();
  const group = conv.attrs.group;
  const ch = channels(g, group);
  const dy = ctx.input(0);
  const w = ctx.input(1);
  const dx = ctx.output(0);
  ctx.computeSet('conv-grad-x');
  const arrays = geometryArrays(g);
  for (const r of ctx.ranges(dx)) {
    const box = backwardBox(g, r.begin, r.end, ch.outOf);
    const gMin = Math.floor(box.cMin / ch.Cg);
    const gMax = Math.floor(box.cMax / ch.Cg);
    const win = planeWindowOnTile(ctx, dy, { C: ch.M, D0: g.ys[2], rest: g.ys[3] * g.ys[4] }, box, r.tile, 'y');
    const wPerGroup = ch.Mg * ch.Cg * ch.K;
    ctx.vertex(
      'NnConvGradX',
      r.tile,
      { gradOut: win.slices, weights: ctx.onTile(w, gMin * wPerGroup, (gMax + 1) * wPerGroup, r.tile), out: ctx.slice(dx, r.begin, r.end) },
      { ...win.params, group, outBegin: r.begin, gMin },
      { ...arrays, ...win.arrays },
    );
  }
}

function lowerConvGradW(op: Op, ctx: LowerContext): void {
  const conv = (op as NnGradOp<ConvOp>).fwd;
  const g = conv.geometry();
  const group = conv.attrs.group;
  const ch = channels(g, group);
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const dw = ctx.output(0);
  ctx.computeSet('conv-grad-w/partials');
  const arrays = geometryArrays(g);
  const pieces: Piece[] = [];
  for (const [i, r] of ctx.ranges(dy).entries()) {
    const box = forwardBox(g, r.begin, r.end, ch.inOf);
    const win = planeWindowOnTile(ctx, x, { C: ch.C, D0: g.xs[2], rest: g.xs[3] * g.xs[4] }, box, r.tile, 'x');
    const rowSize = ch.Cg * ch.K;
    const p = partialOnTile(ctx, `partial${i}`, (box.mMax - box.mMin + 1) * rowSize, r.tile);
    pieces.push({ t: p, offset: box.mMin * rowSize });
    ctx.vertex('NnConvGradWPartial', r.tile, { gradOut: ctx.slice(dy, r.begin, r.end), in: win.slices, out: ctx.slice(p) }, { ...win.params, group, begin: r.begin, mMin: box.mMin }, { ...arrays, ...win.arrays });
  }
  reducePieces(ctx, pieces, dw);
}

function lowerConvGradB(op: Op, ctx: LowerContext): void {
  const g = (op as NnGradOp<ConvOp>).fwd.geometry();
  channelSum(ctx, ctx.input(0), g.ys[1], g.ys[2] * g.ys[3] * g.ys[4], ctx.output(0));
}

export const convDefinitions: OpDefinition[] = [
  ...versions('Conv', [1, 11], (_v, id) => ({
    description: 'convolution, NCHW, 1-3 spatial dims: group, strides, pads, dilations, auto_pad; optional bias',
    inputs: [{ name: 'X' }, { name: 'W' }, { name: 'B', optional: true }],
    outputs: [{ name: 'Y' }],
    attributes: {
      auto_pad: { type: 'string', default: 'NOTSET', description: 'NOTSET, VALID, SAME_UPPER or SAME_LOWER' },
      dilations: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
      group: { type: 'int', default: 1 },
      kernel_shape: { type: 'ints', default: [], description: "W's spatial dims (inferred)" },
      pads: { type: 'ints', default: [], description: 'begin pads then end pads (default 0)' },
      strides: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new ConvOp(
        id,
        {
          autoPad: attributes.string('auto_pad'),
          dilations: attributes.ints('dilations'),
          group: attributes.int('group'),
          kernelShape: attributes.ints('kernel_shape'),
          pads: attributes.ints('pads'),
          strides: attributes.ints('strides'),
        },
        settings,
      ),
    lower: lowerConv,
  })),
  { id: gid('ConvGradX'), description: "dX: dY convolved with the weights transposed (taps that land between strides skipped)", lower: lowerConvGradX },
  { id: gid('ConvGradW'), description: 'dW = sum over batch and output positions of dY x the input window (two-stage)', lower: lowerConvGradW },
  { id: gid('ConvGradB'), description: 'dB = sum of dY over all axes but 1 (two-stage)', lower: lowerConvGradB },
];
