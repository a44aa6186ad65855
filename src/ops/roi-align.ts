/**
 * RoiAlign (ONNX 10 and 16; PopART has it), mode `avg`, and MaxRoiPool (1),
 * each with its gradient for X. The RoIs and their batch items are data (a proposal network
 * computes them), so a vertex cannot know which batch item it reads until it
 * runs: each output run of one RoI-channel block range [r, c0..c1] is given
 * the planes of channels c0..c1 of every batch item, never the whole
 * feature map. The gradient works per run of dX within one batch item's
 * planes, over every RoI (those of other batch items add nothing).
 * Codelets: sim/codelets/roi-align.ts.
 */
import { Op, type AttributeValue, type GradOp, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice } from '../lower/devicegraph.js';
import { maxRoiPoolCodelet, maxRoiPoolGradCodelet, roiAlignCodelet, roiAlignGradCodelet } from '../../sim/codelets/roi-align.js';
import { ArgGradOp, fwdIn, gradOut } from './arg-grad.js';
import { GC, versions } from './shape-util.js';

const ROI_ALIGN_GRAD = { domain: GC, type: 'RoiAlignGrad', version: 1 };
const MAX_ROI_POOL_GRAD = { domain: GC, type: 'MaxRoiPoolGrad', version: 1 };

export interface RoiAlignParams {
  mode: string;
  outputHeight: number;
  outputWidth: number;
  samplingRatio: number;
  spatialScale: number;
  /** 16's coordinate_transformation_mode (10 behaves as output_half_pixel). */
  coordinateMode: string;
}

export class RoiAlignOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly params: RoiAlignParams,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const [x, rois, bi] = [this.inInfo(0), this.inInfo(1), this.inInfo(2)];
    const p = this.params;
    if (p.coordinateMode !== 'half_pixel' && p.coordinateMode !== 'output_half_pixel') this.fail(`coordinate_transformation_mode must be half_pixel or output_half_pixel, got '${p.coordinateMode}'`);
    if (p.mode !== 'avg') this.fail(`mode '${p.mode}' is not supported: tilesim has mode 'avg' (onnxruntime's 'max' takes the max of weighted corners, not of samples)`);
    if (x.dtype !== 'float32' && x.dtype !== 'float16') this.fail(`X must be float32 or float16, got ${fmtInfo(x)}`);
    if (x.shape.length !== 4) this.fail(`X must be [N, C, H, W], got ${fmtInfo(x)}`);
    if (rois.dtype !== x.dtype || rois.shape.length !== 2 || rois.shape[1] !== 4) this.fail(`rois must be [num_rois, 4] of X's type, got ${fmtInfo(rois)}`);
    if (bi.dtype !== 'int32' || bi.shape.length !== 1 || bi.shape[0] !== rois.shape[0]) this.fail(`batch_indices must be int32 [${rois.shape[0]}] (one per RoI), got ${fmtInfo(bi)}`);
    for (const [name, v] of [['output_height', p.outputHeight], ['output_width', p.outputWidth]] as const) if (!(Number.isInteger(v) && v >= 1)) this.fail(`${name} must be a positive integer, got ${v}`);
    if (!(Number.isInteger(p.samplingRatio) && p.samplingRatio >= 0)) this.fail(`sampling_ratio must be a non-negative integer, got ${p.samplingRatio}`);
    this.setOutInfo(0, { dtype: x.dtype, shape: [rois.shape[0], x.shape[1], p.outputHeight, p.outputWidth] });
  }
  override getGradOps(): GradOp[] {
    // dX only: the RoIs come from a proposal network whose boxes PopART does not differentiate either.
    return [new ArgGradOp(ROI_ALIGN_GRAD, this, 0, [gradOut(0), fwdIn(1, 1), fwdIn(2, 2)], () => 4 * this.outInfo(0).shape.reduce((a, b) => a * b, 1))];
  }
  override attributes(): Record<string, AttributeValue> {
    const p = this.params;
    return {
      mode: p.mode,
      output_height: p.outputHeight,
      output_width: p.outputWidth,
      sampling_ratio: p.samplingRatio,
      spatial_scale: p.spatialScale,
      ...(this.opid.version >= 16 ? { coordinate_transformation_mode: p.coordinateMode } : {}),
    };
  }
  override flops(): number {
    return 8 * this.outInfo(0).shape.reduce((a, b) => a * b, 1);
  }
  /** The params every vertex gets. */
  geometry() {
    const [N, C, H, W] = this.inInfo(0).shape;
    const p = this.params;
    return { C, H, W, N, oh: p.outputHeight, ow: p.outputWidth, samplingRatio: p.samplingRatio, spatialScale: p.spatialScale, halfPixel: p.coordinateMode === 'half_pixel' ? 1 : 0 };
  }
}

/** [begin, end) cut where `unit`-sized blocks start. */
function cutAt(begin: number, end: number, unit: number): [number, number][] {
  const out: [number, number][] = [];
  for (let b = begin; b < end; ) {
    const e = Math.min(end, (Math.floor(b / unit) + 1) * unit);
    out.push([b, e]);
    b = e;
  }
  return out;
}

/** The geometry the walks below need. */
interface Planes {
  N: number;
  C: number;
  H: number;
  W: number;
  oh: number;
  ow: number;
}

/**
 * The forward's vertices: for each tile range of the output [R, C, oh, ow], one vertex per RoI r it
 * touches, whose channels c0..c1 are then one window; `place` gets the planes of those channels of every
 * batch item (the RoI's item is data), gathered to the tile.
 */
function forEachRoiBlock(ctx: LowerContext, x: BuildTensor, out: BuildTensor, g: Planes, place: (tile: number, xs: Slice[], b: number, e: number, r: number, c0: number, c1: number) => void): void {
  const bins = g.oh * g.ow;
  const plane = g.H * g.W;
  for (const range of ctx.ranges(out)) {
    for (const [b, e] of cutAt(range.begin, range.end, g.C * bins)) {
      const r = Math.floor(b / (g.C * bins));
      const c0 = Math.floor(b / bins) % g.C;
      const c1 = Math.floor((e - 1) / bins) % g.C;
      const runs = Array.from({ length: g.N }, (_, n) => [(n * g.C + c0) * plane, (n * g.C + c1 + 1) * plane] as const);
      place(range.tile, ctx.gather(x, runs, range.tile), b, e, r, c0, c1);
    }
  }
}

/**
 * The gradient's vertices: for each tile range of dX [N, C, H, W], one vertex per batch item n it touches
 * (channels c0..c1 of it), given dY[r, c0..c1] of every RoI r gathered to the tile; `offset` is where the
 * range starts in item n's planes of those channels.
 */
function forEachItemBlock(ctx: LowerContext, dy: BuildTensor, dx: BuildTensor, g: Planes, R: number, place: (tile: number, dys: Slice[], b: number, e: number, n: number, c0: number, c1: number, offset: number) => void): void {
  const bins = g.oh * g.ow;
  const plane = g.H * g.W;
  for (const range of ctx.ranges(dx)) {
    for (const [b, e] of cutAt(range.begin, range.end, g.C * plane)) {
      const n = Math.floor(b / (g.C * plane));
      const c0 = Math.floor(b / plane) % g.C;
      const c1 = Math.floor((e - 1) / plane) % g.C;
      const runs = Array.from({ length: R }, (_, r) => [(r * g.C + c0) * bins, (r * g.C + c1 + 1) * bins] as const);
      place(range.tile, ctx.gather(dy, runs, range.tile), b, e, n, c0, c1, b - (n * g.C + c0) * plane);
    }
  }
}

function lowerRoiAlign(op: RoiAlignOp, ctx: LowerContext): void {
  const [x, rois, bi] = [ctx.input(0), ctx.input(1), ctx.input(2)];
  const out = ctx.output(0);
  if (out.size === 0) return;
  const g = op.geometry();
  ctx.computeSet('roi-align');
  forEachRoiBlock(ctx, x, out, g, (tile, xs, b, e, r, c0, c1) => {
    const fields = { in: xs, rois: ctx.onTile(rois, 4 * r, 4 * r + 4, tile), batchIndices: ctx.onTile(bi, r, r + 1, tile), out: ctx.slice(out, b, e) };
    ctx.vertex(roiAlignCodelet, tile, fields, { ...g, begin: b, r0: r, c0, nch: c1 - c0 + 1 });
  });
}

function lowerRoiAlignGrad(op: ArgGradOp<RoiAlignOp>, ctx: LowerContext): void {
  const [dy, rois, bi] = [ctx.input(0), ctx.input(1), ctx.input(2)];
  const dx = ctx.output(0);
  const g = op.fwd.geometry();
  const R = op.fwd.inInfo(1).shape[0];
  ctx.computeSet('roi-align-grad');
  forEachItemBlock(ctx, dy, dx, g, R, (tile, dys, b, e, n, c0, c1, offset) => {
    const fields = { gradOut: dys, rois: ctx.onTile(rois, 0, 4 * R, tile), batchIndices: ctx.onTile(bi, 0, R, tile), out: ctx.slice(dx, b, e) };
    ctx.vertex(roiAlignGradCodelet, tile, fields, { ...g, R, n, c0, nch: c1 - c0 + 1, offset });
  });
}

/** MaxRoiPool (1): Fast R-CNN's RoI max pooling; each RoI is (batch index, x1, y1, x2, y2), data like RoiAlign's. */
export class MaxRoiPoolOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly pooledShape: number[],
    readonly spatialScale: number,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const [x, rois] = [this.inInfo(0), this.inInfo(1)];
    if (x.dtype !== 'float32' && x.dtype !== 'float16') this.fail(`X must be float32 or float16, got ${fmtInfo(x)}`);
    if (x.shape.length !== 4) this.fail(`X must be [N, C, H, W], got ${fmtInfo(x)}`);
    if (rois.dtype !== x.dtype || rois.shape.length !== 2 || rois.shape[1] !== 5) this.fail(`rois must be [num_rois, 5] (batch index, x1, y1, x2, y2) of X's type, got ${fmtInfo(rois)}`);
    if (this.pooledShape.length !== 2 || this.pooledShape.some((d) => !(Number.isInteger(d) && d >= 1))) this.fail(`pooled_shape must be two positive integers, got [${this.pooledShape.join(', ')}]`);
    this.setOutInfo(0, { dtype: x.dtype, shape: [rois.shape[0], x.shape[1], ...this.pooledShape] });
  }
  override getGradOps(): GradOp[] {
    return [new ArgGradOp(MAX_ROI_POOL_GRAD, this, 0, [gradOut(0), fwdIn(1, 0), fwdIn(2, 1)], () => this.outInfo(0).shape.reduce((a, b) => a * b, 1))];
  }
  override attributes(): Record<string, AttributeValue> {
    return { pooled_shape: this.pooledShape, spatial_scale: this.spatialScale };
  }
  override flops(): number {
    return this.inInfo(0).shape.reduce((a, b) => a * b, 1);
  }
  geometry() {
    const [N, C, H, W] = this.inInfo(0).shape;
    return { C, H, W, N, oh: this.pooledShape[0], ow: this.pooledShape[1], spatialScale: this.spatialScale };
  }
}

function lowerMaxRoiPool(op: MaxRoiPoolOp, ctx: LowerContext): void {
  const [x, rois] = [ctx.input(0), ctx.input(1)];
  const out = ctx.output(0);
  if (out.size === 0) return;
  const g = op.geometry();
  ctx.computeSet('max-roi-pool');
  forEachRoiBlock(ctx, x, out, g, (tile, xs, b, e, r, c0, c1) => {
    ctx.vertex(maxRoiPoolCodelet, tile, { in: xs, rois: ctx.onTile(rois, 5 * r, 5 * r + 5, tile), out: ctx.slice(out, b, e) }, { ...g, begin: b, r0: r, c0, nch: c1 - c0 + 1 });
  });
}

function lowerMaxRoiPoolGrad(op: ArgGradOp<MaxRoiPoolOp>, ctx: LowerContext): void {
  const [dy, x, rois] = [ctx.input(0), ctx.input(1), ctx.input(2)];
  const dx = ctx.output(0);
  const g = op.fwd.geometry();
  const R = op.fwd.inInfo(1).shape[0];
  const plane = g.H * g.W;
  ctx.computeSet('max-roi-pool-grad');
  forEachItemBlock(ctx, dy, dx, g, R, (tile, dys, b, e, n, c0, c1, offset) => {
    // The maxima are found again in X's planes of the same item and channels.
    const xs = [ctx.onTile(x, (n * g.C + c0) * plane, (n * g.C + c1 + 1) * plane, tile)];
    ctx.vertex(maxRoiPoolGradCodelet, tile, { gradOut: dys, in: xs, rois: ctx.onTile(rois, 0, 5 * R, tile), out: ctx.slice(dx, b, e) }, { ...g, R, n, c0, nch: c1 - c0 + 1, offset });
  });
}

export const roiAlignDefinitions: OpDefinition[] = [
  ...versions('RoiAlign', [10, 16], (id, version) => defineOp({
    op: RoiAlignOp,
    id,
    description: "Mask R-CNN's RoI align, mode avg: each output bin the mean of bilinear samples of its RoI's batch item; gradient for X",
    inputs: [{ name: 'X' }, { name: 'rois' }, { name: 'batch_indices' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      mode: { type: 'string', default: 'avg', description: "pooling: 'avg' ('max' is refused)" },
      output_height: { type: 'int', default: 1, description: 'output bins per column' },
      output_width: { type: 'int', default: 1, description: 'output bins per row' },
      sampling_ratio: { type: 'int', default: 0, description: 'samples per bin side; 0: ceil(roi size / output size)' },
      spatial_scale: { type: 'float', default: 1, description: 'RoI coordinates to feature-map pixels' },
      ...(version >= 16 ? { coordinate_transformation_mode: { type: 'string' as const, default: 'half_pixel', description: "half_pixel (pixel centres shifted by -0.5) or output_half_pixel (10's)" } } : {}),
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new RoiAlignOp(
        id,
        {
          mode: attributes.string('mode'),
          outputHeight: attributes.int('output_height'),
          outputWidth: attributes.int('output_width'),
          samplingRatio: attributes.int('sampling_ratio'),
          spatialScale: attributes.float('spatial_scale'),
          coordinateMode: version >= 16 ? attributes.string('coordinate_transformation_mode') : 'output_half_pixel',
        },
        settings,
      ),
    lower: lowerRoiAlign,
  })),
  ...versions('MaxRoiPool', [1], (id) => defineOp({
    op: MaxRoiPoolOp,
    id,
    description: "Fast R-CNN's RoI max pooling (RoIs as batch index, x1, y1, x2, y2); gradient for X to each bin's first maximum",
    inputs: [{ name: 'X' }, { name: 'rois' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      pooled_shape: { type: 'ints', description: 'output bins [height, width]' },
      spatial_scale: { type: 'float', default: 1, description: 'RoI coordinates to feature-map pixels' },
    },
    grad: true,
    create: ({ attributes, settings }) => new MaxRoiPoolOp(id, attributes.ints('pooled_shape'), attributes.float('spatial_scale'), settings),
    lower: lowerMaxRoiPool,
  })),
  defineOp({ op: ArgGradOp<MaxRoiPoolOp>, id: MAX_ROI_POOL_GRAD, description: "dX: each bin's gradient added at the first maximum of the pixels it covers", lower: lowerMaxRoiPoolGrad }),
  defineOp({ op: ArgGradOp<RoiAlignOp>, id: ROI_ALIGN_GRAD, description: "dX: each output bin's gradient spread over its samples' corners by their bilinear weights", lower: lowerRoiAlignGrad }),
];
