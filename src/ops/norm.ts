/**
 * LayerNormalization (ONNX 17) and BatchNormalization in inference form
 * (ONNX 9, 14, 15), with their grad ops.
 *
 * LayerNormalization normalises each row of the [prod(shape[:axis]),
 * prod(shape[axis:])] view in fp32 (stash_type 1), then applies Scale and
 * the optional B (both of the normalised shape). Optional outputs Mean and
 * InvStdDev (float32, shape[:axis] + 1s). Grad ops (from dY, X, Scale):
 *   dX = r (g - mean(g) - xhat mean(g xhat)), g = dY Scale, xhat = (X - mean) r
 *   dScale = sum over rows of dY xhat;  dB = sum over rows of dY.
 * Gradients through the Mean / InvStdDev outputs are not supported: an op
 * whose Mean or InvStdDev output is consumed refuses to build grad ops.
 *
 * BatchNormalization uses the given running mean and variance (inference
 * form; training_mode = 1 is the composite of src/ops/batchnorm-train.ts): Y = (X - mean) / sqrt(var + eps)
 * scale + B per channel (axis 1). Grad ops treat mean and var as constants:
 *   dX = dY scale / sqrt(var + eps);  dscale = sum dY (X - mean) / sqrt(var + eps);
 *   dB = sum dY  (sums over every axis but 1).
 *
 * Lowering: outputs mapped like X; each tile reads the whole rows (layer
 * norm) or the channel parameters (batch norm) its elements need. LayerNorm's
 * sums over rows (dScale's dY xhat terms, dB's dY) are the planned reduction
 * of a bias gradient (src/lower/reduce.ts): every tile sent a partial as wide
 * as the row to one of a few dozen summing tiles before, a third of a BERT
 * layer's training step. BatchNorm's sums over batch and space are two-stage
 * (src/lower/window.ts).
 */
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { Slice, TileRange } from '../lower/devicegraph.js';
import { splitRegions } from '../lower/split-regions.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { channelRange, channelSum } from '../lower/window.js';
import { reduceLeading } from '../lower/reduce.js';
import { floatInput, gid, normAxis, product, sameDTypeAs, versions } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOut, gradOf } from './arg-grad.js';
import { expandBatchNormTraining } from './batchnorm-train.js';
import { batchNorm2DCodelet, batchNormCodelet, batchNormGradXCodelet, layerNormCodelet, layerNormGradXCodelet, layerNormNoBiasCodelet, layerNormDyXhatCodelet, layerNormStatsCodelet } from '../../sim/codelets/norm.js';
import { batchNormScalePartialCodelet } from '../../sim/codelets/nn-util.js';

const stripOnes = (s: readonly number[]): number[] => {
  const i = s.findIndex((d) => d !== 1);
  return i < 0 ? [] : s.slice(i);
};

// ---------------------------------------------------------------------------
// LayerNormalization

export class LayerNormOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly axis: number,
    readonly epsilon: number,
    readonly stashType: number,
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
    if (this.stashType !== 1) this.fail(`stash_type ${this.stashType} is not supported; supported: 1 (statistics in float32)`);
    const x = this.inInfo(0);
    const a = normAxis(this, this.axis, x.shape.length);
    const norm = x.shape.slice(a);
    for (const i of this.hasBias ? [1, 2] : [1]) {
      const s = this.inInfo(i).shape;
      if (nelms(s) !== product(norm) || stripOnes(s).join() !== stripOnes(norm).join()) {
        this.fail(`input ${i} '${this.inId(i)}' ${fmtInfo(this.inInfo(i))} must have the normalised shape [${norm.join(', ')}] (X ${fmtInfo(x)}, axis ${this.axis})`);
      }
    }
    this.setOutInfo(0, x);
    const statShape = [...x.shape.slice(0, a), ...norm.map(() => 1)];
    for (let o = 1; o < this.outputs.length; o++) this.setOutInfo(o, { dtype: 'float32', shape: statShape });
  }
  /** Rows and row length of the [outer, n] view. */
  layout(): { outer: number; n: number } {
    const shape = this.inInfo(0).shape;
    const a = normAxis(this, this.axis, shape.length);
    return { outer: product(shape.slice(0, a)), n: product(shape.slice(a)) };
  }
  override getGradOps(): ArgGradOp[] {
    for (let o = 1; o < this.outputs.length; o++) {
      if (this.graph.tensor(this.outId(o)).consumers.length > 0) {
        this.fail(`has no gradient through its ${o === 1 ? 'Mean' : 'InvStdDev'} output '${this.outId(o)}', which is consumed; only Y's gradient is supported`);
      }
    }
    const size = () => product(this.inInfo(0).shape);
    const ops = [
      new ArgGradOp(gid('LayerNormGradX'), this, 0, [gradOut(0), fwdIn(1, 0), fwdIn(2, 1)], () => 10 * size()),
      new ArgGradOp(gid('LayerNormGradScale'), this, 1, [gradOut(0), fwdIn(1, 0)], () => 4 * size()),
    ];
    if (this.hasBias) ops.push(new ArgGradOp(gid('LayerNormGradB'), this, 2, [gradOut(0)], size));
    return ops;
  }
  override attributes() {
    return { axis: this.axis, epsilon: this.epsilon, stash_type: this.stashType };
  }
  override flops(): number {
    // mean, (x - mean)^2 and its sum, normalise, scale, bias.
    return 8 * product(this.inInfo(0).shape);
  }
}

/** [lo, hi) of whole rows of length n covering elements [b, e). */
const rowsOf = (b: number, e: number, n: number): [number, number] => [Math.floor(b / n) * n, Math.ceil(e / n) * n];

function lowerLayerNorm(ln: LayerNormOp, ctx: LowerContext): void {
  const { n } = ln.layout();
  const eps = Math.fround(ln.epsilon);
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const bias = ln.hasBias ? ctx.input(2) : undefined;
  const y = ctx.output(0, { like: x });
  ctx.computeSet('layernorm');
  for (const r of ctx.ranges(y)) {
    const [lo, hi] = rowsOf(r.begin, r.end, n);
    const params = { n, outBegin: r.begin, inBegin: lo, eps };
    if (bias) {
      ctx.vertex(
        layerNormCodelet,
        r.tile,
        { in: ctx.onTile(x, lo, hi, r.tile), scale: ctx.onTile(scale, 0, n, r.tile), bias: ctx.onTile(bias, 0, n, r.tile), out: ctx.slice(y, r.begin, r.end) },
        params,
      );
    } else ctx.vertex(layerNormNoBiasCodelet, r.tile, { in: ctx.onTile(x, lo, hi, r.tile), scale: ctx.onTile(scale, 0, n, r.tile), out: ctx.slice(y, r.begin, r.end) }, params);
  }
  for (let o = 1; o < ln.outputs.length; o++) {
    const stat = ctx.output(o);
    for (const r of ctx.ranges(stat)) {
      ctx.vertex(layerNormStatsCodelet, r.tile, { in: ctx.onTile(x, r.begin * n, r.end * n, r.tile), out: ctx.slice(stat, r.begin, r.end) }, { n, outBegin: r.begin, inBegin: r.begin * n, eps, which: o - 1 });
    }
  }
}

function lowerLayerNormGradX(op: ArgGradOp<LayerNormOp>, ctx: LowerContext): void {
  const ln = op.fwd;
  const { n } = ln.layout();
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const scale = ctx.input(2);
  const dx = ctx.output(0, { like: x });
  ctx.computeSet('layernorm-grad-x');
  for (const r of ctx.ranges(dx)) {
    const [lo, hi] = rowsOf(r.begin, r.end, n);
    ctx.vertex(
      layerNormGradXCodelet,
      r.tile,
      { gradOut: ctx.onTile(dy, lo, hi, r.tile), in: ctx.onTile(x, lo, hi, r.tile), scale: ctx.onTile(scale, 0, n, r.tile), out: ctx.slice(dx, r.begin, r.end) },
      { n, outBegin: r.begin, inBegin: lo, eps: Math.fround(ln.epsilon) },
    );
  }
}

/**
 * dscale = sum over rows of dy xhat: the terms elementwise where dy lies (each
 * tile reading the rows its elements belong to, for their statistics), then
 * summed over rows by the planned reduction a bias gradient uses
 * (reduceLeading): partials on every tile, combined in stages over all tiles.
 */
function lowerLayerNormGradScale(op: ArgGradOp<LayerNormOp>, ctx: LowerContext): void {
  const ln = op.fwd;
  const { n } = ln.layout();
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const terms = ctx.addTensor('dyXhat', 'float32', [dy.size], 'temporary');
  ctx.graph.mapLike(terms, dy);
  ctx.computeSet('layernorm-grad-scale/terms');
  for (const r of ctx.ranges(dy)) {
    const [lo, hi] = rowsOf(r.begin, r.end, n);
    ctx.vertex(
      layerNormDyXhatCodelet,
      r.tile,
      { gradOut: ctx.slice(dy, r.begin, r.end), in: ctx.onTile(x, lo, hi, r.tile), out: ctx.slice(terms, r.begin, r.end) },
      { n, begin: r.begin, inBegin: lo, eps: Math.fround(ln.epsilon) },
    );
  }
  reduceLeading(ctx, terms, ctx.output(0));
}

/** dbias = sum over rows of dy: the planned reduction of a bias gradient. */
function lowerLayerNormGradB(_op: ArgGradOp<LayerNormOp>, ctx: LowerContext): void {
  reduceLeading(ctx, ctx.input(0), ctx.output(0));
}

// ---------------------------------------------------------------------------
// BatchNormalization (inference)

export class BatchNormOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly epsilon: number,
    readonly momentum: number,
    readonly trainingMode: number,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    floatInput(this, 0);
    if (this.trainingMode !== 0) this.fail('training_mode = 1 is not supported: BatchNormalization runs in inference form (running mean and var as inputs)');
    if (this.outputs.length > 1) this.fail(`has ${this.outputs.length} outputs, but the running statistics outputs exist only in training mode (training_mode = 1); inference form has one output (Y)`);
    const x = this.inInfo(0);
    if (x.shape.length < 2) this.fail(`X must have at least 2 dims [N, C, ...], got ${fmtInfo(x)}`);
    const C = x.shape[1];
    const names = ['X', 'scale', 'B', 'input_mean', 'input_var'];
    for (let i = 1; i < 5; i++) {
      const s = this.inInfo(i).shape;
      if (s.length !== 1 || s[0] !== C) this.fail(`${names[i]} '${this.inId(i)}' must be [${C}] (the channels of X ${fmtInfo(x)}), got ${fmtInfo(this.inInfo(i))}`);
      const d = this.inInfo(i).dtype;
      if (d !== 'float32' && d !== 'float16') this.fail(`${names[i]} '${this.inId(i)}' must be float32 or float16, got ${d}`);
    }
    this.setOutInfo(0, x);
  }
  /** [N, C, S] view. */
  layout(): { C: number; S: number } {
    const shape = this.inInfo(0).shape;
    return { C: shape[1], S: product(shape.slice(2)) };
  }
  override getGradOps(): ArgGradOp[] {
    const size = () => product(this.inInfo(0).shape);
    return [
      new ArgGradOp(gid('BatchNormGradX'), this, 0, [gradOut(0), fwdIn(1, 1), fwdIn(2, 4)], size),
      new ArgGradOp(gid('BatchNormGradScale'), this, 1, [gradOut(0), fwdIn(1, 0), fwdIn(2, 3), fwdIn(3, 4)], () => 4 * size()),
      new ArgGradOp(gid('BatchNormGradB'), this, 2, [gradOut(0)], size),
    ];
  }
  override attributes() {
    return { epsilon: this.epsilon, momentum: this.momentum, ...(this.opid.version >= 14 ? { training_mode: this.trainingMode } : {}) };
  }
  override flops(): number {
    return 2 * product(this.inInfo(0).shape);
  }
}

/** Calls `f` with each tile's span of channels [lo, hi] over its ranges of an [N, C, S] tensor. */
function channelSpans(ranges: readonly TileRange[], C: number, S: number, f: (tile: number, lo: number, hi: number) => void): void {
  const spans = new Map<number, [number, number]>();
  for (const r of ranges) {
    const [lo, hi] = channelRange(r.begin, r.end, C, S);
    const s = spans.get(r.tile);
    if (s) {
      s[0] = Math.min(s[0], lo);
      s[1] = Math.max(s[1], hi);
    } else spans.set(r.tile, [lo, hi]);
  }
  for (const [tile, [lo, hi]] of spans) f(tile, lo, hi);
}

/**
 * As popops::map places an elementwise op (src/lower/elementwise.ts
 * placeByTile): a tile holding one run of the output gets one NnBatchNorm
 * MultiVertex; a tile holding several (a convolution's output) gets them
 * split among its workers, one NnBatchNorm2D per worker with the channel
 * parameters its runs touch.
 */
function lowerBatchNorm(bn: BatchNormOp, ctx: LowerContext): void {
  const { C, S } = bn.layout();
  const x = ctx.input(0);
  const y = ctx.output(0, { like: x });
  ctx.computeSet('batchnorm');
  const ranges = ctx.ranges(y);
  // Each tile's channel parameters come over once, for all its ranges (a convolution's output has many per tile).
  channelSpans(ranges, C, S, (tile, lo, hi) => {
    for (let i = 1; i < 5; i++) ctx.onTile(ctx.input(i), lo, hi + 1, tile);
  });
  const eps = Math.fround(bn.epsilon);
  const byTile = new Map<number, { r: TileRange; x: Slice }[]>();
  for (const r of ranges) {
    const run = { r, x: ctx.onTile(x, r.begin, r.end, r.tile) };
    const list = byTile.get(r.tile);
    if (list) list.push(run);
    else byTile.set(r.tile, [run]);
  }
  const grain = vectorWidth(y.dtype, ctx.device);
  for (const [tile, runs] of byTile) {
    const ch = (i: number, lo: number, hi: number) => ctx.onTile(ctx.input(i), lo, hi + 1, tile);
    if (runs.length === 1) {
      const { r } = runs[0];
      const [cMin, cMax] = channelRange(r.begin, r.end, C, S);
      const p = (i: number) => ch(i, cMin, cMax);
      ctx.vertex(batchNormCodelet, tile, { in: runs[0].x, scale: p(1), bias: p(2), mean: p(3), var: p(4), out: ctx.slice(y, r.begin, r.end) }, { C, S, begin: r.begin, cMin, eps });
      continue;
    }
    for (const part of splitRegions(runs.map((e) => e.r.end - e.r.begin), grain, ctx.device.workersPerTile, 2 * grain)) {
      const ins: Slice[] = [];
      const outs: Slice[] = [];
      const begin: number[] = [];
      let cMin = C;
      let cMax = -1;
      for (const [j, offset, n] of part) {
        const { r, x: xs } = runs[j];
        const b = r.begin + offset;
        ins.push(offset === 0 && n === r.end - r.begin ? xs : { tensor: xs.tensor, begin: xs.begin + offset, end: xs.begin + offset + n });
        outs.push(ctx.slice(y, b, b + n));
        begin.push(b);
        const [lo, hi] = channelRange(b, b + n, C, S);
        cMin = Math.min(cMin, lo);
        cMax = Math.max(cMax, hi);
      }
      const p = (i: number) => ch(i, cMin, cMax);
      ctx.vertex(batchNorm2DCodelet, tile, { in: ins, scale: p(1), bias: p(2), mean: p(3), var: p(4), out: outs }, { C, S, cMin, eps }, { begin });
    }
  }
}

function lowerBatchNormGradX(op: ArgGradOp<BatchNormOp>, ctx: LowerContext): void {
  const bn = op.fwd;
  const { C, S } = bn.layout();
  const dy = ctx.input(0);
  const dx = ctx.output(0, { like: dy });
  ctx.computeSet('batchnorm-grad-x');
  const ranges = ctx.ranges(dx);
  channelSpans(ranges, C, S, (tile, lo, hi) => {
    ctx.onTile(ctx.input(1), lo, hi + 1, tile);
    ctx.onTile(ctx.input(2), lo, hi + 1, tile);
  });
  for (const r of ranges) {
    const [cMin, cMax] = channelRange(r.begin, r.end, C, S);
    ctx.vertex(
      batchNormGradXCodelet,
      r.tile,
      { gradOut: ctx.onTile(dy, r.begin, r.end, r.tile), scale: ctx.onTile(ctx.input(1), cMin, cMax + 1, r.tile), var: ctx.onTile(ctx.input(2), cMin, cMax + 1, r.tile), out: ctx.slice(dx, r.begin, r.end) },
      { C, S, begin: r.begin, cMin, eps: Math.fround(bn.epsilon) },
    );
  }
}

function lowerBatchNormGradScale(op: ArgGradOp<BatchNormOp>, ctx: LowerContext): void {
  const bn = op.fwd;
  const { C, S } = bn.layout();
  const [dy, x, mean, variance] = [0, 1, 2, 3].map((i) => ctx.input(i));
  channelSum(ctx, dy, C, S, ctx.output(0), {
    codelet: batchNormScalePartialCodelet,
    extra: (tile, b, e, gMin, gMax) => ({
      fields: { x: ctx.onTile(x, b, e, tile), mean: ctx.onTile(mean, gMin, gMax + 1, tile), var: ctx.onTile(variance, gMin, gMax + 1, tile) },
      params: { eps: Math.fround(bn.epsilon) },
    }),
  });
}

function lowerBatchNormGradB(op: ArgGradOp<BatchNormOp>, ctx: LowerContext): void {
  const { C, S } = op.fwd.layout();
  channelSum(ctx, ctx.input(0), C, S, ctx.output(0));
}

export const normDefinitions: OpDefinition[] = [
  ...versions('LayerNormalization', [17], (_v, id) => defineOp({
    op: LayerNormOp,
    id,
    description: 'normalise over dims axis.. in fp32, then Scale and optional B; optional Mean and InvStdDev outputs',
    inputs: [{ name: 'X' }, { name: 'Scale' }, { name: 'B', optional: true }],
    outputs: [{ name: 'Y' }, { name: 'Mean', optional: true }, { name: 'InvStdDev', optional: true }],
    attributes: {
      axis: { type: 'int', default: -1, description: 'first normalised dim' },
      epsilon: { type: 'float', default: 1e-5 },
      stash_type: { type: 'int', default: 1, description: 'statistics type: 1 (float32) only' },
    },
    grad: true,
    create: ({ attributes, settings }) => new LayerNormOp(id, attributes.int('axis'), attributes.float('epsilon'), attributes.int('stash_type'), settings),
    lower: lowerLayerNorm,
  })),
  defineOp({ op: gradOf(LayerNormOp), id: gid('LayerNormGradX'), description: 'dX = r (g - mean(g) - xhat mean(g xhat)), g = dY Scale', lower: lowerLayerNormGradX }),
  defineOp({ op: gradOf(LayerNormOp), id: gid('LayerNormGradScale'), description: 'dScale = sum over rows of dY xhat', lower: lowerLayerNormGradScale }),
  defineOp({ op: gradOf(LayerNormOp), id: gid('LayerNormGradB'), description: 'dB = sum over rows of dY', lower: lowerLayerNormGradB }),
  ...versions('BatchNormalization', [9, 14, 15], (version, id) => defineOp({
    op: BatchNormOp,
    id,
    description: `inference form: Y = (X - mean) / sqrt(var + epsilon) scale + B per channel, running mean and var as inputs; ${version >= 14 ? 'training_mode = 1' : 'with more than one output (training)'}: a composite normalising with the batch statistics and updating the running ones (src/ops/batchnorm-train.ts)`,
    inputs: [{ name: 'X' }, { name: 'scale' }, { name: 'B' }, { name: 'input_mean' }, { name: 'input_var' }],
    outputs: [{ name: 'Y' }, { name: 'running_mean', optional: true }, { name: 'running_var', optional: true }, ...(version < 14 ? [{ name: 'saved_mean', optional: true }, { name: 'saved_var', optional: true }] : [])],
    attributes: {
      epsilon: { type: 'float', default: 1e-5 },
      momentum: { type: 'float', default: 0.9, description: 'running = input momentum + batch (1 - momentum), in training mode' },
      ...(version >= 14 ? { training_mode: { type: 'int' as const, default: 0, description: '1: batch statistics, running ones updated' } } : {}),
    },
    grad: true,
    expand: (args) => expandBatchNormTraining(args, version),
    create: ({ attributes, settings }) =>
      new BatchNormOp(id, attributes.float('epsilon'), attributes.float('momentum'), version >= 14 ? attributes.int('training_mode') : 0, settings),
    lower: lowerBatchNorm,
  })),
  defineOp({ op: gradOf(BatchNormOp), id: gid('BatchNormGradX'), description: 'dX = dY scale / sqrt(var + eps) (mean, var constant)', lower: lowerBatchNormGradX }),
  defineOp({ op: gradOf(BatchNormOp), id: gid('BatchNormGradScale'), description: 'dscale = sum dY (X - mean) / sqrt(var + eps) over all axes but 1', lower: lowerBatchNormGradScale }),
  defineOp({ op: gradOf(BatchNormOp), id: gid('BatchNormGradB'), description: 'dB = sum dY over all axes but 1', lower: lowerBatchNormGradB }),
];
