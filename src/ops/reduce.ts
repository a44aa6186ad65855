/**
 * The reduce family: ReduceSum, ReduceMean, ReduceMax, ReduceMin and
 * ReduceProd over any axes, with keepdims, their grad ops and their lowering
 * side by side.
 *
 * Axes come from the `axes` attribute (ReduceSum before opset 13,
 * ReduceMean/ReduceMax before 18) or from an optional second input, which
 * must be a constant initializer (shapes are fixed at compile time). With no
 * axes (or an empty list) every axis is reduced, unless
 * noop_with_empty_axes = 1 (input versions), which makes the op an identity.
 * Registered versions, so opsets 11..18 resolve: ReduceSum 11, 13;
 * ReduceMean 11, 13, 18; ReduceMax and ReduceMin 11, 12, 13, 18; ReduceProd
 * 11, 13, 18.
 *
 * Gradients: ReduceSum and ReduceMean broadcast the output gradient back (times
 * 1/N for the mean). ReduceMax routes it to the elements equal to the max;
 * when several elements tie for the max, the gradient is split equally among
 * them (PyTorch's amax rule; at a two-way tie this is exactly the central
 * finite difference); ReduceMin likewise. ReduceProd's is dY x Y / X, the
 * product of the other elements where X is not 0 (not finite where it is).
 */
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { broadcastOutput, mapBroadcast, type Operand } from '../lower/broadcast.js';
import type { LowerContext } from '../lower/context.js';
import { keepDimsShape, needsReduction, reduceAxes, reduceToOutput, reductionSize } from '../lower/reduce-axes.js';
import { BroadcastArgGradOp, constantInts, operand } from './binary.js';
import { fwdIn, gradOut } from './arg-grad.js';
import { broadcastCopyCodelet, divCodelet, isEqualMaskCodelet, mulCodelet } from '../../sim/codelets/binary.js';

export type ReduceOpKind = 'sum' | 'mean' | 'max' | 'min' | 'prod';

export interface ReduceParams {
  kind: ReduceOpKind;
  keepdims: boolean;
  /** Axes from the attribute (attribute versions); undefined for input versions. */
  axesAttr?: number[];
  /** The axes come from optional input 1. */
  axesInput: boolean;
  noopWithEmptyAxes: boolean;
}

const TYPE: Record<ReduceOpKind, string> = { sum: 'ReduceSum', mean: 'ReduceMean', max: 'ReduceMax', min: 'ReduceMin', prod: 'ReduceProd' };
const GRAD_ID: Record<ReduceOpKind, OperatorIdentifier> = {
  sum: { domain: 'ai.graphcore', type: 'ReduceSumGrad', version: 1 },
  mean: { domain: 'ai.graphcore', type: 'ReduceMeanGrad', version: 1 },
  max: { domain: 'ai.graphcore', type: 'ReduceMaxGrad', version: 1 },
  min: { domain: 'ai.graphcore', type: 'ReduceMinGrad', version: 1 },
  prod: { domain: 'ai.graphcore', type: 'ReduceProdGrad', version: 1 },
};

export class ReduceOp extends Op {
  /** The reduced axes, normalized (0 <= a < rank) and sorted; set by setup(). */
  axes: number[] = [];

  constructor(
    readonly params: ReduceParams,
    opid: OperatorIdentifier,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }

  setup(): void {
    const x = this.inInfo(0);
    const rank = x.shape.length;
    let given: number[] = [];
    if (this.params.axesInput) {
      if (this.inputs.length > 1) given = constantInts(this, 1, 'axes');
    } else given = this.params.axesAttr ?? [];
    let axes: number[];
    if (given.length === 0) axes = this.params.axesInput && this.params.noopWithEmptyAxes ? [] : x.shape.map((_, k) => k);
    else {
      axes = given.map((a) => {
        if (a < -rank || a >= rank) this.fail(`axis ${a} is out of range for input '${this.inId(0)}' of rank ${rank} (axes must be in [${-rank}, ${rank - 1}])`);
        return a < 0 ? a + rank : a;
      });
      const seen = new Set<number>();
      for (const a of axes) {
        if (seen.has(a)) this.fail(`axes [${given.join(', ')}] name axis ${a} twice`);
        seen.add(a);
      }
      axes.sort((a, b) => a - b);
    }
    this.axes = axes;
    const red = new Set(axes);
    const shape = this.params.keepdims ? keepDimsShape(x.shape, axes) : x.shape.filter((_, k) => !red.has(k));
    this.setOutInfo(0, { dtype: x.dtype, shape });
  }

  override getGradOps(): GradOp[] {
    const kind = this.params.kind;
    const mappers = kind === 'max' || kind === 'min' || kind === 'prod' ? [gradOut(0), fwdIn(1, 0), { gradOpInIndex: 2, fwdIndex: 0, type: GradOpInType.Out }] : [gradOut(0)];
    return [new ReduceGradOp(this, mappers)];
  }

  override attributes() {
    const a: Record<string, number | number[]> = { keepdims: this.params.keepdims ? 1 : 0 };
    if (this.params.axesInput) a.noop_with_empty_axes = this.params.noopWithEmptyAxes ? 1 : 0;
    else a.axes = this.axes;
    return a;
  }

  override flops(): number {
    return nelms(this.inInfo(0).shape);
  }
}

/** The gradient of a reduction: inputs dY (and for ReduceMax, X and Y). */
export class ReduceGradOp extends BroadcastArgGradOp {
  constructor(
    override readonly fwd: ReduceOp,
    mappers: GradInOutMapper[],
  ) {
    super(GRAD_ID[fwd.params.kind], fwd, 0, mappers);
  }
}

function lowerReduce(r: ReduceOp, ctx: LowerContext): void {
  const x = operand(ctx, 0);
  const kind = r.params.kind;
  const scale = kind === 'mean' ? 1 / reductionSize(x.shape, r.axes) : 1;
  reduceToOutput(ctx, 0, x, r.axes, { kind: kind === 'mean' ? 'sum' : kind, scale });
}

/** dY seen with the forward input's rank (the reduced axes kept as 1s). */
function gradIn(ctx: LowerContext, fwd: ReduceOp): Operand {
  return { t: ctx.input(0), shape: keepDimsShape(fwd.inInfo(0).shape, fwd.axes) };
}

function lowerSumMeanGrad(op: ReduceGradOp, ctx: LowerContext): void {
  const fwd = op.fwd;
  const xShape = fwd.inInfo(0).shape;
  const scale = fwd.params.kind === 'mean' ? 1 / reductionSize(xShape, fwd.axes) : 1;
  const dy = gradIn(ctx, fwd);
  if (!needsReduction(xShape, fwd.axes) && scale === 1) {
    ctx.aliasOutput(0, dy.t);
    return;
  }
  mapBroadcast(ctx, broadcastCopyCodelet, { in: dy }, broadcastOutput(ctx, 0, [dy]), { cyclic: 'in', params: { scale }, name: 'broadcast' });
}

/**
 * dX = mask x dY / count, with mask = (X == Y broadcast) and count the number
 * of maxima of each reduced group: ties share the gradient equally.
 */
/**
 * What the gradients reading X and Y (ReduceMax/Min, ReduceProd) start from:
 * dY, X and Y as operands; undefined (dX is dY itself, aliased) when no axis
 * is reduced.
 */
function gradOperands(op: ReduceGradOp, ctx: LowerContext): { fwd: ReduceOp; xShape: readonly number[]; dy: Operand; x: Operand; y: Operand } | undefined {
  const fwd = op.fwd;
  const xShape = fwd.inInfo(0).shape;
  const dy = gradIn(ctx, fwd);
  if (!needsReduction(xShape, fwd.axes)) {
    ctx.aliasOutput(0, dy.t);
    return undefined;
  }
  return { fwd, xShape, dy, x: operand(ctx, 1), y: { t: ctx.input(2), shape: dy.shape } };
}

function lowerMaxGrad(op: ReduceGradOp, ctx: LowerContext): void {
  const g = gradOperands(op, ctx);
  if (!g) return;
  const { fwd, xShape, dy, x, y } = g;
  const mask = ctx.addTensor('mask', 'float32', [...xShape]);
  ctx.graph.mapLike(mask, x.t);
  mapBroadcast(ctx, isEqualMaskCodelet, { a: x, b: y }, { t: mask, shape: xShape }, { cyclic: 'b', name: 'mask' });
  const count = ctx.addTensor('count', 'float32', [...dy.shape]);
  ctx.graph.mapLinearly(count);
  reduceAxes(ctx, { t: mask, shape: xShape }, fwd.axes, count);
  const share = ctx.addTensor('share', 'float32', [...dy.shape]);
  ctx.graph.mapLike(share, count);
  mapBroadcast(ctx, divCodelet, { a: dy, b: { t: count, shape: dy.shape } }, { t: share, shape: dy.shape }, { name: 'share' });
  const out = ctx.output(0, { like: mask });
  mapBroadcast(ctx, mulCodelet, { a: { t: mask, shape: xShape }, b: { t: share, shape: dy.shape } }, { t: out, shape: xShape }, { cyclic: 'b', name: 'route' });
}

/** dX = dY x Y / X broadcast over the reduced axes: the product of the other elements, when X is not 0. */
function lowerProdGrad(op: ReduceGradOp, ctx: LowerContext): void {
  const g = gradOperands(op, ctx);
  if (!g) return;
  const { xShape, dy, x, y } = g;
  const dyy = ctx.addTensor('dyy', ctx.input(2).dtype, [...dy.shape]);
  ctx.graph.mapLike(dyy, dy.t);
  mapBroadcast(ctx, mulCodelet, { a: dy, b: y }, { t: dyy, shape: dy.shape }, { name: 'dy-y' });
  const out = ctx.output(0, { like: x.t });
  mapBroadcast(ctx, divCodelet, { a: { t: dyy, shape: dy.shape }, b: x }, { t: out, shape: xShape }, { cyclic: 'a', name: 'over-x' });
}

function attributeVersion(kind: ReduceOpKind, version: number): OpDefinition {
  const id = { domain: 'ai.onnx', type: TYPE[kind], version };
  return defineOp({
    op: ReduceOp,
    id,
    description: DESCRIPTION[kind],
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'reduced' }],
    attributes: {
      axes: { type: 'ints', default: [], description: 'axes to reduce (negative counts from the end); empty: all' },
      keepdims: { type: 'int', default: 1, description: '1 keeps reduced axes as size 1' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new ReduceOp({ kind, keepdims: attributes.int('keepdims') !== 0, axesAttr: attributes.ints('axes'), axesInput: false, noopWithEmptyAxes: false }, id, settings),
    lower: lowerReduce,
  });
}

function inputVersion(kind: ReduceOpKind, version: number): OpDefinition {
  const id = { domain: 'ai.onnx', type: TYPE[kind], version };
  return defineOp({
    op: ReduceOp,
    id,
    description: `${DESCRIPTION[kind]}; axes as a constant input`,
    inputs: [{ name: 'data' }, { name: 'axes', optional: true }],
    outputs: [{ name: 'reduced' }],
    attributes: {
      keepdims: { type: 'int', default: 1, description: '1 keeps reduced axes as size 1' },
      noop_with_empty_axes: { type: 'int', default: 0, description: '1: no axes means identity, not a full reduction' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new ReduceOp({ kind, keepdims: attributes.int('keepdims') !== 0, axesInput: true, noopWithEmptyAxes: attributes.int('noop_with_empty_axes') !== 0 }, id, settings),
    lower: lowerReduce,
  });
}

const DESCRIPTION: Record<ReduceOpKind, string> = {
  sum: 'Sum over axes',
  mean: 'Mean over axes',
  max: 'Max over axes (gradient split equally among tied maxima)',
  min: 'Min over axes (gradient split equally among tied minima)',
  prod: 'Product over axes (gradient dY x Y / X: not finite where X is 0)',
};

export const reduceDefinitions: OpDefinition[] = [
  attributeVersion('sum', 11),
  inputVersion('sum', 13),
  attributeVersion('mean', 11),
  attributeVersion('mean', 13),
  inputVersion('mean', 18),
  attributeVersion('max', 11),
  attributeVersion('max', 12),
  attributeVersion('max', 13),
  inputVersion('max', 18),
  attributeVersion('min', 11),
  attributeVersion('min', 12),
  attributeVersion('min', 13),
  inputVersion('min', 18),
  attributeVersion('prod', 11),
  attributeVersion('prod', 13),
  inputVersion('prod', 18),
  defineOp({ op: ReduceGradOp, id: GRAD_ID.sum, description: 'dX = dY broadcast over the reduced axes', lower: lowerSumMeanGrad }),
  defineOp({ op: ReduceGradOp, id: GRAD_ID.mean, description: 'dX = dY / N broadcast over the reduced axes', lower: lowerSumMeanGrad }),
  defineOp({ op: ReduceGradOp, id: GRAD_ID.max, description: 'dX = dY routed to the maxima, split equally among ties', lower: lowerMaxGrad }),
  defineOp({ op: ReduceGradOp, id: GRAD_ID.min, description: 'dX = dY routed to the minima, split equally among ties', lower: lowerMaxGrad }),
  defineOp({ op: ReduceGradOp, id: GRAD_ID.prod, description: 'dX = dY x Y / X (the product of the other elements where X is not 0)', lower: lowerProdGrad }),
];
