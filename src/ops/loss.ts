/**
 * Losses as IR ops, with their grad ops and lowerings (codelets in
 * sim/codelets/loss.ts). Every loss takes a `scale` (1 for ONNX nodes) and a
 * reduction: 'mean', 'sum', or 'none' (one loss per element or sample, which
 * must then be reduced by later ops before it can be the training loss).
 *
 * - L1 (ai.graphcore::L1, PopART's l1loss): scale x sum |x|, divided by the
 *   element count for 'mean'; 'none' gives scale x |x|.
 *   Grad (L1Grad): dx = scale' x sign(x) x dLoss.
 * - MSE (ai.graphcore::MSE): scale x sum (a - b)^2, divided by the element
 *   count for 'mean'. Grads for both inputs: da = 2 scale' (a - b) dLoss = -db.
 * - NegativeLogLikelihoodLoss (ai.onnx, versions 12, 13, 22): ONNX's
 *   semantics. input [N, C] or [N, C, d1, ...] of log-probabilities, target
 *   [N] or [N, d1, ...] int32 labels, optional weight [C]; a sample's loss is
 *   -weight[t] x input[n, t, d...]; ignore_index samples count 0 with weight
 *   0; 'mean' divides the sum by the sum of the samples' weights (their count
 *   without a weight input). Grad for the input only (NllGrad).
 * - Nll (ai.graphcore, PopART's nllloss): probabilities with the classes on
 *   the LAST axis ([..., C]) and labels of the other axes; loss
 *   -log(max(p[t], eps)) (eps 1e-7, 6.104e-5 for float16, as PopART), or
 *   -p[t] with inputIsLogProbability; 'mean' over the samples not ignored.
 *   Grad -1 / max(p[t], eps) (eps 1e-10, float16 6.104e-5) at the label.
 *   Beyond PopART, an optional third input of class weights, as ONNX's.
 * - SoftmaxCrossEntropyLoss (ai.onnx, versions 12, 13): NLL of
 *   log_softmax(scores) along axis 1, same weights, ignore_index and
 *   reductions; optional second output log_prob. Grad for the scores only,
 *   w[t] g (softmax - onehot(t)); as in onnxruntime's training kernels, no
 *   gradient flows back through log_prob (using log_prob on the path to the
 *   loss is an error).
 *
 * The class losses are lowered over samples: a sample's classes are one
 * contiguous row (classes last, or [N, C] input) or C elements `inner` apart
 * ([N, C, d...]). Work is split where the input lives on tiles; the reduced
 * losses go through per-vertex float32 partials (sum of weighted losses, sum
 * of weights) and one final vertex.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import { isFloat } from '../ir/dtype.js';
import { ArgGradOp, fwdIn, gradOut } from './arg-grad.js';
import { GRAPHCORE_DOMAIN, ONNX_DOMAIN, type OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type Attributes, type OpDefinition } from '../ir/registry.js';
import { gradName } from '../ir/tensor.js';
import { fmtInfo, nelms, sameInfo, type TensorInfo } from '../ir/tensorinfo.js';
import { UserError } from '../errors.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { mapElementwise } from '../lower/elementwise.js';
import { reduceLeading } from '../lower/reduce.js';
import { reduceFinalCodelet } from '../../sim/codelets/reduce.js';
import { classLossCodelet, classLossGradCodelet, classWeightSumCodelet, l1GradCodelet, lossFinalCodelet, mseGradCodelet, msePartialCodelet, l1ElementwiseCodelet, mseElementwiseCodelet } from '../../sim/codelets/loss.js';

export type Reduction = 'mean' | 'sum' | 'none';

const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];

/** A node's reduction attribute (PopART writes 'Mean', 'Sum', 'None'). */
function reductionAttr(attributes: Attributes, settings: OpSettings): Reduction {
  const r = attributes.string('reduction').toLowerCase() as Reduction;
  if (!REDUCTIONS.includes(r)) {
    throw new UserError(`op '${settings.name}': reduction must be 'mean', 'sum' or 'none', got '${attributes.string('reduction')}'`, settings.loc);
  }
  return r;
}

const scaleAttr = { lambda: { type: 'float' as const, default: 1, description: 'scale' } };
const reductionAttrDef = (def: string) => ({ type: 'string' as const, default: def, description: "'mean', 'sum' or 'none'" });

// ---------------------------------------------------------------------------
// L1

const L1 = { domain: GRAPHCORE_DOMAIN, type: 'L1', version: 1 };
const L1_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'L1Grad', version: 1 };

/** L1 and MSE: scale x a sum over every element of input 0's shape (attributes lambda and reduction). */
export interface ElementLossParams {
  scale: number;
  reduction: Reduction;
}

abstract class ElementLossOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly params: ElementLossParams,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  /** The loss: a scalar, or one per element of `x` for 'none'. */
  protected setLossInfo(x: TensorInfo): void {
    this.setOutInfo(0, { dtype: x.dtype, shape: this.params.reduction === 'none' ? x.shape : [] });
  }
  override attributes(): Record<string, AttributeValue> {
    return { lambda: this.params.scale, reduction: this.params.reduction };
  }
  /** The factor on the sum: scale, over n for 'mean'. */
  factor(): number {
    const n = nelms(this.inInfo(0).shape);
    return this.params.reduction === 'mean' ? this.params.scale / n : this.params.scale;
  }
}

const elementLossAttrs = { ...scaleAttr, reduction: reductionAttrDef('mean') };
const elementLossParams = (attributes: Attributes, settings: OpSettings): ElementLossParams => ({ scale: attributes.float('lambda'), reduction: reductionAttr(attributes, settings) });

export class L1Op extends ElementLossOp {
  static readonly defaultOperatorId = L1;
  constructor(params: ElementLossParams, settings: OpSettings) {
    super(L1, params, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    if (!isFloat(x.dtype)) this.fail(`needs a float input, got ${x.dtype}`);
    this.setLossInfo(x);
  }
  override getGradOps(): GradOp[] {
    return [new L1GradOp(this)];
  }
  override flops(): number {
    return 2 * nelms(this.inInfo(0).shape);
  }
}

export class L1GradOp extends ArgGradOp<L1Op> {
  static readonly defaultOperatorId = L1_GRAD;
  constructor(fwd: L1Op) {
    super(L1_GRAD, fwd, 0, [fwdIn(0, 0), gradOut(1)], () => 2 * nelms(fwd.inInfo(0).shape));
  }
}

// ---------------------------------------------------------------------------
// MSE

const MSE = { domain: GRAPHCORE_DOMAIN, type: 'MSE', version: 1 };
const MSE_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'MSEGrad', version: 1 };

export class MseOp extends ElementLossOp {
  static readonly defaultOperatorId = MSE;
  constructor(params: ElementLossParams, settings: OpSettings) {
    super(MSE, params, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (!isFloat(a.dtype)) this.fail(`needs float inputs, got ${a.dtype}`);
    if (!sameInfo(a, b)) this.fail(`input and target must have the same shape and type, got ${fmtInfo(a)} and ${fmtInfo(b)}`);
    this.setLossInfo(a);
  }
  override getGradOps(): GradOp[] {
    return [new MseGradOp(this, 0), new MseGradOp(this, 1)];
  }
  override flops(): number {
    return 3 * nelms(this.inInfo(0).shape);
  }
}

/** The gradient of one of MSE's inputs: ±2 factor (a - b) dLoss. */
export class MseGradOp extends ArgGradOp<MseOp> {
  static readonly defaultOperatorId = MSE_GRAD;
  constructor(
    fwd: MseOp,
    readonly index: 0 | 1,
  ) {
    super(MSE_GRAD, fwd, index, [fwdIn(0, 0), fwdIn(1, 1), gradOut(2)], () => 3 * nelms(fwd.inInfo(0).shape), { name: `MSEGrad${index}(${fwd.name})`, loc: fwd.settings.loc });
  }
}

// ---------------------------------------------------------------------------
// Class losses: NLL (ONNX and PopART) and softmax cross entropy

/** mode: what the input holds (log-probabilities, probabilities, scores); classAxis: 1 (ONNX) or the last (PopART). */
export interface ClassLossParams {
  mode: 'logProb' | 'prob' | 'softmax';
  classAxis: 'second' | 'last';
  reduction: Reduction;
  ignoreIndex?: number;
  scale: number;
}

const NLL_VERSIONS = [12, 13, 22];
const SCE_VERSIONS = [12, 13];
export const NLL_POPART = { domain: GRAPHCORE_DOMAIN, type: 'Nll', version: 1 };
const NLL_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'NllGrad', version: 1 };
const SCE_GRAD = { domain: GRAPHCORE_DOMAIN, type: 'SoftmaxCrossEntropyLossGrad', version: 1 };
/** ONNX's ignore_index has no default: this value of the attribute means "none". */
export const NO_IGNORE_INDEX = -2147483648;

const MODE_CODE = { logProb: 0, prob: 1, softmax: 2 } as const;

export class ClassLossOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly params: ClassLossParams,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }

  /** The input seen as [outer, C, inner]. */
  layout(): { outer: number; C: number; inner: number; axis: number } {
    const shape = this.inInfo(0).shape;
    const axis = this.params.classAxis === 'second' ? 1 : shape.length - 1;
    return { outer: nelms(shape.slice(0, axis)), C: shape[axis], inner: nelms(shape.slice(axis + 1)), axis };
  }

  setup(): void {
    const x = this.inInfo(0);
    const what = this.params.mode === 'softmax' ? 'scores' : this.params.mode === 'prob' ? 'probabilities' : 'input';
    if (!isFloat(x.dtype)) this.fail(`${what} must be float, got ${fmtInfo(x)}`);
    const minRank = this.params.classAxis === 'second' ? 2 : 1;
    if (x.shape.length < minRank) {
      this.fail(`${what} must have rank >= ${minRank} (${this.params.classAxis === 'second' ? '[N, C, d1, ...]' : '[..., C]'}), got ${fmtInfo(x)}`);
    }
    const { axis, C } = this.layout();
    const labels = this.inInfo(1);
    const want = x.shape.filter((_, i) => i !== axis);
    if (labels.dtype !== 'int32') this.fail(`labels must be int32 class indices, got ${fmtInfo(labels)}`);
    if (!sameInfo(labels, { dtype: 'int32', shape: want })) {
      this.fail(`labels must have shape [${want.join(', ')}] (${what} ${fmtInfo(x)} without its class axis ${axis}), got ${fmtInfo(labels)}`);
    }
    if (this.hasInput(2)) {
      const w = this.inInfo(2);
      if (!isFloat(w.dtype) || w.shape.length !== 1 || w.shape[0] !== C) this.fail(`weights must be a float tensor of shape [${C}] (one per class), got ${fmtInfo(w)}`);
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: this.params.reduction === 'none' ? want : [] });
    if (this.outputs.length > 1) {
      if (this.params.mode !== 'softmax') this.fail('has one output');
      this.setOutInfo(1, x);
    }
  }

  override getGradOps(): GradOp[] {
    if (this.outputs.length > 1 && this.graph.hasTensor(gradName(this.outputs[1]))) {
      this.fail(`its log_prob output '${this.outputs[1]}' is on the path to the loss, but gradients flow back through the loss output only`);
    }
    return [new ClassLossGradOp(this)];
  }

  override attributes(): Record<string, AttributeValue> {
    const p = this.params;
    const out: Record<string, AttributeValue> = { reduction: p.reduction };
    const popart = this.opid.domain === GRAPHCORE_DOMAIN;
    if (p.ignoreIndex !== undefined) out[popart ? 'ignoreIndex' : 'ignore_index'] = p.ignoreIndex;
    if (popart) out.inputIsLogProbability = p.mode === 'logProb' ? 1 : 0;
    return out;
  }

  override flops(): number {
    const n = nelms(this.inInfo(0).shape);
    return this.params.mode === 'softmax' ? 5 * n : 2 * n;
  }

  /** Vertex params shared by the forward and grad vertices. */
  vertexParams() {
    const p = this.params;
    return {
      C: this.layout().C,
      layout: this.layout().inner === 1 ? 0 : 1,
      mode: MODE_CODE[p.mode],
      hasIgnore: p.ignoreIndex !== undefined ? 1 : 0,
      ignoreIndex: p.ignoreIndex ?? 0,
      scale: p.scale,
    };
  }
}

export class ClassLossGradOp extends GradOp {
  constructor(readonly fwd: ClassLossOp) {
    super(fwd.params.mode === 'softmax' ? SCE_GRAD : NLL_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    const m: GradInOutMapper[] = [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.In },
      { gradOpInIndex: 1, fwdIndex: 1, type: GradOpInType.In },
      { gradOpInIndex: 2, fwdIndex: 0, type: GradOpInType.GradOut },
    ];
    if (this.fwd.hasInput(2)) m.push({ gradOpInIndex: 3, fwdIndex: 2, type: GradOpInType.In });
    return m;
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
  override flops(): number {
    const n = nelms(this.fwdInInfo(0).shape);
    return this.fwd.params.mode === 'softmax' ? 6 * n : 2 * n;
  }
}

// ---------------------------------------------------------------------------
// Lowering

/** A vertex's share of a class loss: samples [s0, s1) on `tile`, and the input elements they read. */
interface WorkItem {
  tile: number;
  s0: number;
  s1: number;
  /** Flat [begin, end) ranges of the input: one (rows of C) or one per class (C planes). */
  x: [number, number][];
}

/**
 * Split the samples where the input lives: with inner = 1, runs of whole rows
 * whose first element is on one tile; otherwise, for each n, the pieces of
 * its class-0 plane on each tile, reading the same piece of every class plane.
 */
function workItems(ctx: LowerContext, x: BuildTensor, outer: number, C: number, inner: number): WorkItem[] {
  const items: WorkItem[] = [];
  if (inner === 1) {
    for (const m of ctx.ranges(x)) {
      const r0 = Math.ceil(m.begin / C);
      const r1 = Math.ceil(m.end / C);
      if (r1 <= r0) continue;
      const last = items[items.length - 1];
      if (last && last.tile === m.tile && last.s1 === r0) {
        last.s1 = r1;
        last.x[0][1] = r1 * C;
      } else items.push({ tile: m.tile, s0: r0, s1: r1, x: [[r0 * C, r1 * C]] });
    }
    return items;
  }
  for (let o = 0; o < outer; o++) {
    const base = o * C * inner;
    for (const r of ctx.ranges(x, base, base + inner)) {
      const i0 = r.begin - base;
      const i1 = r.end - base;
      const xr: [number, number][] = [];
      for (let c = 0; c < C; c++) xr.push([base + c * inner + i0, base + c * inner + i1]);
      items.push({ tile: r.tile, s0: o * inner + i0, s1: o * inner + i1, x: xr });
    }
  }
  return items;
}

/** Map an output shaped like the labels (one per sample) as the work items. */
function mapPerSample(ctx: LowerContext, t: BuildTensor, items: WorkItem[]): void {
  ctx.graph.setTileMapping(t, items.map((it) => ({ tile: it.tile, begin: it.s0, end: it.s1 })));
}

/** Map an output shaped like the input as the work items. */
function mapLikeInput(ctx: LowerContext, t: BuildTensor, items: WorkItem[]): void {
  ctx.graph.setTileMapping(t, items.flatMap((it) => it.x.map(([begin, end]) => ({ tile: it.tile, begin, end }))));
}

/** PopART's epsilons: forward log(max(p, eps)), grad -1 / max(p, eps). */
function probEps(dtype: string, grad: boolean): number {
  if (dtype === 'float16') return 6.104e-5;
  return grad ? 1e-10 : 1e-7;
}

function lowerClassLoss(o: ClassLossOp, ctx: LowerContext): void {
  const { outer, C, inner } = o.layout();
  const x = ctx.input(0);
  const labels = ctx.input(1);
  const weights = o.hasInput(2) ? ctx.input(2) : undefined;
  const items = workItems(ctx, x, outer, C, inner);
  const reduce = o.params.reduction !== 'none';
  const base = { ...o.vertexParams(), eps: probEps(x.dtype, false), reduce: reduce ? 1 : 0 };

  const logProb = o.outputs.length > 1 ? ctx.output(1) : undefined;
  if (logProb) mapLikeInput(ctx, logProb, items);
  let perSample: BuildTensor | undefined;
  let partials: BuildTensor | undefined;
  if (reduce) {
    partials = ctx.addTensor('partials', 'float32', [2 * items.length]);
    ctx.graph.setTileMapping(partials, items.map((it, i) => ({ tile: it.tile, begin: 2 * i, end: 2 * i + 2 })));
  } else {
    perSample = ctx.output(0);
    mapPerSample(ctx, perSample, items);
  }

  ctx.computeSet('loss');
  items.forEach((it, i) => {
    const fields = {
      x: it.x.map(([b, e]) => ctx.onTile(x, b, e, it.tile)),
      labels: ctx.onTile(labels, it.s0, it.s1, it.tile),
      out: partials ? ctx.slice(partials, 2 * i, 2 * i + 2) : ctx.slice(perSample!, it.s0, it.s1),
      ...(weights ? { weights: ctx.onTile(weights, 0, C, it.tile) } : {}),
      ...(logProb ? { logProb: it.x.map(([b, e]) => ctx.slice(logProb, b, e)) } : {}),
    };
    ctx.vertex(classLossCodelet, it.tile, fields, { ...base, sampleOffset: it.s0 });
  });

  if (partials) {
    const out = ctx.output(0);
    const tile = ctx.ranges(out)[0].tile;
    ctx.computeSet('loss/final');
    ctx.vertex(
      lossFinalCodelet,
      tile,
      { partials: items.map((_, i) => ctx.onTile(partials, 2 * i, 2 * i + 2, tile)), out: ctx.slice(out) },
      { scale: o.params.scale, mean: o.params.reduction === 'mean' ? 1 : 0 },
    );
  }
}

function lowerClassLossGrad(g: ClassLossGradOp, ctx: LowerContext): void {
  const fwd = g.fwd;
  const { outer, C, inner } = fwd.layout();
  const x = ctx.input(0);
  const labels = ctx.input(1);
  const dLoss = ctx.input(2);
  const weights = fwd.hasInput(2) ? ctx.input(3) : undefined;
  const items = workItems(ctx, x, outer, C, inner);
  const base = { ...fwd.vertexParams(), eps: probEps(x.dtype, true), perSample: fwd.params.reduction === 'none' ? 1 : 0 };

  // 'mean': the denominator (sum of the samples' weights) again, as PopART's NllGradOpx does.
  let denom: BuildTensor | undefined;
  if (fwd.params.reduction === 'mean') {
    const partials = ctx.addTensor('weightPartials', 'float32', [items.length]);
    ctx.graph.setTileMapping(partials, items.map((it, i) => ({ tile: it.tile, begin: i, end: i + 1 })));
    ctx.computeSet('grad/weights');
    items.forEach((it, i) => {
      const fields = {
        labels: ctx.onTile(labels, it.s0, it.s1, it.tile),
        out: ctx.slice(partials, i, i + 1),
        ...(weights ? { weights: ctx.onTile(weights, 0, C, it.tile) } : {}),
      };
      ctx.vertex(classWeightSumCodelet, it.tile, fields, { ...base, sampleOffset: it.s0 });
    });
    denom = ctx.addTensor('denominator', 'float32', [1]);
    const tile = ctx.ranges(dLoss)[0].tile;
    ctx.graph.mapToTile(denom, tile);
    ctx.computeSet('grad/denominator');
    ctx.vertex(reduceFinalCodelet, tile, { partials: items.map((_, i) => ctx.onTile(partials, i, i + 1, tile)), out: ctx.slice(denom) }, { scale: 1 });
  }

  const out = ctx.output(0);
  mapLikeInput(ctx, out, items);
  ctx.computeSet('grad');
  for (const it of items) {
    const fields = {
      x: it.x.map(([b, e]) => ctx.onTile(x, b, e, it.tile)),
      labels: ctx.onTile(labels, it.s0, it.s1, it.tile),
      gradLoss: base.perSample ? ctx.onTile(dLoss, it.s0, it.s1, it.tile) : ctx.onTile(dLoss, 0, 1, it.tile),
      out: it.x.map(([b, e]) => ctx.slice(out, b, e)),
      ...(weights ? { weights: ctx.onTile(weights, 0, C, it.tile) } : {}),
      ...(denom ? { denom: ctx.onTile(denom, 0, 1, it.tile) } : {}),
    };
    ctx.vertex(classLossGradCodelet, it.tile, fields, { ...base, sampleOffset: it.s0 });
  }
}

function lowerL1(l1: L1Op, ctx: LowerContext): void {
  const x = ctx.input(0);
  if (l1.params.reduction === 'none') {
    mapElementwise(ctx, l1ElementwiseCodelet, { x }, ctx.output(0, { like: x }), { scale: l1.params.scale });
    return;
  }
  reduceLeading(ctx, x, ctx.output(0), { abs: true, scale: l1.factor() });
}

function lowerL1Grad(op: L1GradOp, ctx: LowerContext): void {
  const x = ctx.input(0);
  const dLoss = ctx.input(1);
  const out = ctx.output(0, { like: x });
  const fwd = op.fwd;
  const perElement = fwd.params.reduction === 'none';
  ctx.computeSet('l1grad');
  for (const r of ctx.ranges(out)) {
    ctx.vertex(
      l1GradCodelet,
      r.tile,
      {
        x: ctx.onTile(x, r.begin, r.end, r.tile),
        gradLoss: perElement ? ctx.onTile(dLoss, r.begin, r.end, r.tile) : ctx.onTile(dLoss, 0, 1, r.tile),
        out: ctx.slice(out, r.begin, r.end),
      },
      { scale: fwd.factor() },
    );
  }
}

function lowerMse(m: MseOp, ctx: LowerContext): void {
  const a = ctx.input(0);
  const b = ctx.input(1);
  if (m.params.reduction === 'none') {
    mapElementwise(ctx, mseElementwiseCodelet, { a, b }, ctx.output(0, { like: a }), { scale: m.params.scale });
    return;
  }
  const ranges = ctx.ranges(a);
  const partials = ctx.addTensor('partials', 'float32', [ranges.length]);
  ctx.graph.setTileMapping(partials, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  ctx.computeSet('mse/partials');
  ranges.forEach((r, i) => {
    ctx.vertex(msePartialCodelet, r.tile, { a: ctx.slice(a, r.begin, r.end), b: ctx.onTile(b, r.begin, r.end, r.tile), out: ctx.slice(partials, i, i + 1) });
  });
  const out = ctx.output(0);
  const tile = ctx.ranges(out)[0].tile;
  ctx.computeSet('mse/final');
  ctx.vertex(reduceFinalCodelet, tile, { partials: ranges.map((_, i) => ctx.onTile(partials, i, i + 1, tile)), out: ctx.slice(out) }, { scale: m.factor() });
}

function lowerMseGrad(g: MseGradOp, ctx: LowerContext): void {
  const a = ctx.input(0);
  const b = ctx.input(1);
  const dLoss = ctx.input(2);
  const out = ctx.output(0, { like: g.index === 0 ? a : b });
  const perElement = g.fwd.params.reduction === 'none';
  const factor = (g.index === 0 ? 2 : -2) * g.fwd.factor();
  ctx.computeSet('msegrad');
  for (const r of ctx.ranges(out)) {
    ctx.vertex(
      mseGradCodelet,
      r.tile,
      {
        a: ctx.onTile(a, r.begin, r.end, r.tile),
        b: ctx.onTile(b, r.begin, r.end, r.tile),
        gradLoss: perElement ? ctx.onTile(dLoss, r.begin, r.end, r.tile) : ctx.onTile(dLoss, 0, 1, r.tile),
        out: ctx.slice(out, r.begin, r.end),
      },
      { factor },
    );
  }
}

// ---------------------------------------------------------------------------
// Definitions

const ignoreAttr = (name: string) => ({
  [name]: { type: 'int' as const, default: NO_IGNORE_INDEX, description: `label whose samples are ignored (${NO_IGNORE_INDEX}: none)` },
});
const optIgnore = (v: number): number | undefined => (v === NO_IGNORE_INDEX ? undefined : v);

function onnxNll(version: number): OpDefinition {
  const id = { domain: ONNX_DOMAIN, type: 'NegativeLogLikelihoodLoss', version };
  return defineOp({
    op: ClassLossOp,
    id,
    description: 'ONNX NLL: -weight[t] x input[n, t, d...] over log-probabilities [N, C, d...], ignore_index, mean | sum | none',
    inputs: [{ name: 'input' }, { name: 'target' }, { name: 'weight', optional: true }],
    outputs: [{ name: 'loss' }],
    attributes: { reduction: reductionAttrDef('mean'), ...ignoreAttr('ignore_index') },
    grad: true,
    create: ({ attributes, settings }) =>
      new ClassLossOp(id, { mode: 'logProb', classAxis: 'second', reduction: reductionAttr(attributes, settings), ignoreIndex: optIgnore(attributes.int('ignore_index')), scale: 1 }, settings),
    lower: lowerClassLoss,
  });
}

function onnxSce(version: number): OpDefinition {
  const id = { domain: ONNX_DOMAIN, type: 'SoftmaxCrossEntropyLoss', version };
  return defineOp({
    op: ClassLossOp,
    id,
    description: 'ONNX softmax cross entropy: NLL of log_softmax(scores) along axis 1, weights, ignore_index, optional log_prob',
    inputs: [{ name: 'scores' }, { name: 'labels' }, { name: 'weights', optional: true }],
    outputs: [{ name: 'output' }, { name: 'log_prob', optional: true }],
    attributes: { reduction: reductionAttrDef('mean'), ...ignoreAttr('ignore_index') },
    grad: true,
    create: ({ attributes, settings }) =>
      new ClassLossOp(id, { mode: 'softmax', classAxis: 'second', reduction: reductionAttr(attributes, settings), ignoreIndex: optIgnore(attributes.int('ignore_index')), scale: 1 }, settings),
    lower: lowerClassLoss,
  });
}

export const lossDefinitions: OpDefinition[] = [
  defineOp({
    op: L1Op,
    description: 'L1 loss: scale x sum|x| (mean divides by the element count; none: scale x |x|)',
    inputs: [{ name: 'x' }],
    outputs: [{ name: 'loss' }],
    attributes: elementLossAttrs,
    grad: true,
    create: ({ attributes, settings }) => new L1Op(elementLossParams(attributes, settings), settings),
    lower: lowerL1,
  }),
  defineOp({ op: L1GradOp, description: 'dx = scale x sign(x) x dLoss', lower: lowerL1Grad }),
  defineOp({
    op: MseOp,
    description: 'mean squared error: scale x sum (a - b)^2 (mean divides by the element count; none: elementwise)',
    inputs: [{ name: 'input' }, { name: 'target' }],
    outputs: [{ name: 'loss' }],
    attributes: elementLossAttrs,
    grad: true,
    create: ({ attributes, settings }) => new MseOp(elementLossParams(attributes, settings), settings),
    lower: lowerMse,
  }),
  defineOp({ op: MseGradOp, description: 'da = 2 scale (a - b) dLoss, db = -da', lower: lowerMseGrad }),
  ...NLL_VERSIONS.map(onnxNll),
  ...SCE_VERSIONS.map(onnxSce),
  defineOp({
    op: ClassLossOp,
    id: NLL_POPART,
    description: "PopART's nllloss: -log(max(p[t], eps)) (or -p[t] for log-probabilities), classes on the last axis, ignoreIndex",
    inputs: [{ name: 'probs' }, { name: 'label' }, { name: 'weights', optional: true }],
    outputs: [{ name: 'loss' }],
    attributes: {
      reduction: reductionAttrDef('mean'),
      ...ignoreAttr('ignoreIndex'),
      inputIsLogProbability: { type: 'int', default: 0, description: '1: the input holds log-probabilities' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new ClassLossOp(
        NLL_POPART,
        {
          mode: attributes.int('inputIsLogProbability') ? 'logProb' : 'prob',
          classAxis: 'last',
          reduction: reductionAttr(attributes, settings),
          ignoreIndex: optIgnore(attributes.int('ignoreIndex')),
          scale: 1,
        },
        settings,
      ),
    lower: lowerClassLoss,
  }),
  defineOp({ op: ClassLossGradOp, id: NLL_GRAD, description: 'd input: -w g at the label (-w g / max(p, eps) for probabilities)', lower: lowerClassLossGrad }),
  defineOp({ op: ClassLossGradOp, id: SCE_GRAD, description: 'd scores = w g (softmax(scores) - onehot(label))', lower: lowerClassLossGrad }),
];
