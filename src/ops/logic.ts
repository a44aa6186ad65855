/**
 * Comparisons, logic, the variadic Max / Min / Mean, PRelu, CastLike and
 * Shape (issue 15), with their grad ops and lowering side by side. Codelets:
 * sim/codelets/binary.ts (logicCodelets).
 *
 * Booleans are int32 0/1, tilesim's form of ONNX's bool (as Where's condition
 * and Dropout's mask): Less, LessOrEqual, Greater, GreaterOrEqual and Equal
 * write them from two inputs of one type (float32, float16 or int32); And,
 * Or, Xor and Not read and write them. None of these has a gradient.
 *
 * Max, Min and Mean take one or more inputs with NumPy broadcasting, as Sum.
 * Max's and Min's gradient for input i is y' where x_i equals the result
 * (every tied input gets it, as PopART's MaxArgGrad mask), Mean's is y' / k;
 * each summed over the axes input i was broadcast along.
 *
 * PRelu: y = slope x for x < 0, else x, the slope broadcast to x
 * (unidirectionally: y has x's shape); gradients for x and the slope.
 *
 * CastLike casts input 0 to input 1's type (float32, float16, int32), as Cast.
 *
 * Shape: tilesim fixes shapes at compile time, so its output, the input's
 * dims [start, end), is a constant written by one vertex.
 *
 * Versions: those in force from opset 11 (src/onnx/versions.ts), later ones
 * only added element types.
 */
import { GradOp, GradOpInType, Op, OutputGradOnlyGradOp, type AttributeValue, type OpSettings } from '../ir/op.js';
import { isFloat } from '../ir/dtype.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import { broadcastOutput, mapBroadcast } from '../lower/broadcast.js';
import type { LowerContext } from '../lower/context.js';
import { mapElementwise } from '../lower/elementwise.js';
import { BroadcastArgGradOp, broadcastInputs, lowerElementwiseGrad, lowerReduceGrad, operand, sameDType, versions } from './binary.js';
import { fwdIn, gradOut } from './arg-grad.js';
import { castCodelet } from '../../sim/codelets/cast.js';
import type { Codelet } from '../../sim/codelet.js';
import { isInfCodelet, isNaNCodelet, andCodelet, equalCodelet, greaterCodelet, greaterOrEqualCodelet, lessCodelet, lessOrEqualCodelet, maxCodelet, meanCodelet, minCodelet, notCodelet, orCodelet, preluCodelet, preluSlopeGradCodelet, preluXGradCodelet, selectEqualGradCodelet, xorCodelet } from '../../sim/codelets/binary.js';

const gid = (type: string): OperatorIdentifier => ({ domain: 'ai.graphcore', type, version: 1 });

// ---------------------------------------------------------------------------
// Comparisons and logic: no gradient.

/** A comparison or logical op of two broadcast inputs, writing int32 0/1. */
export class BooleanBinaryOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly logical: boolean,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const dtype = sameDType(this, [0, 1]);
    if (this.logical && dtype !== 'int32') this.fail(`inputs must be int32 0/1 (tilesim's form of ONNX's bool), got ${fmtInfo(this.inInfo(0))}`);
    this.setOutInfo(0, { dtype: 'int32', shape: broadcastInputs(this, [0, 1]) });
  }
  override flops(): number {
    return 0;
  }
}

/** IsNaN / IsInf: a float tensor in, int32 0/1 (ONNX bool) of its shape out. IsInf's detect flags as its params. */
export class FloatClassOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly detect: { positive: number; negative: number } | undefined,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  override attributes(): Record<string, AttributeValue> {
    return this.detect ? { detect_positive: this.detect.positive, detect_negative: this.detect.negative } : {};
  }
  setup(): void {
    const x = this.inInfo(0);
    if (x.dtype !== 'float32' && x.dtype !== 'float16') this.fail(`input must be float32 or float16, got ${fmtInfo(x)}`);
    this.setOutInfo(0, { dtype: 'int32', shape: [...x.shape] });
  }
  override flops(): number {
    return 0;
  }
}

export class NotOp extends Op {
  setup(): void {
    const x = this.inInfo(0);
    if (x.dtype !== 'int32') this.fail(`input must be int32 0/1 (tilesim's form of ONNX's bool), got ${fmtInfo(x)}`);
    this.setOutInfo(0, x);
  }
  override flops(): number {
    return 0;
  }
}

function lowerBoolean(codelet: Codelet) {
  return (_op: Op, ctx: LowerContext): void => {
    const a = operand(ctx, 0);
    const b = operand(ctx, 1);
    // Output int32: mapped like an int32 operand of its size when there is one (broadcastOutput prefers floats).
    mapBroadcast(ctx, codelet, { a, b }, broadcastOutput(ctx, 0, [a, b]), { inPlace: false });
  };
}

const COMPARISONS: [string, number[], string, Codelet][] = [
  ['Less', [9, 13], 'A < B', lessCodelet],
  ['LessOrEqual', [12, 16], 'A <= B', lessOrEqualCodelet],
  ['Greater', [9, 13], 'A > B', greaterCodelet],
  ['GreaterOrEqual', [12, 16], 'A >= B', greaterOrEqualCodelet],
  ['Equal', [11, 13, 19], 'A == B', equalCodelet],
];
const LOGICAL: [string, string, Codelet][] = [
  ['And', 'A and B', andCodelet],
  ['Or', 'A or B', orCodelet],
  ['Xor', 'A xor B', xorCodelet],
];

// ---------------------------------------------------------------------------
// Max, Min, Mean.

type VariadicKind = 'Max' | 'Min' | 'Mean';
const VARIADIC_CODELET: Record<VariadicKind, Codelet> = { Max: maxCodelet, Min: minCodelet, Mean: meanCodelet };
const VARIADIC_GRAD: Record<VariadicKind, OperatorIdentifier> = { Max: gid('MaxArgGrad'), Min: gid('MinArgGrad'), Mean: gid('MeanArgGrad') };

export class VariadicOp extends Op {
  constructor(
    readonly kind: VariadicKind,
    opid: OperatorIdentifier,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const all = this.inputs.map((_, i) => i);
    if (all.length === 0) this.fail('needs at least one input');
    const dtype = sameDType(this, all);
    if (this.kind === 'Mean' && !isFloat(dtype)) this.fail(`supports float32 and float16 inputs, got ${fmtInfo(this.inInfo(0))}`);
    this.setOutInfo(0, { dtype, shape: broadcastInputs(this, all) });
  }
  override getGradOps(): GradOp[] {
    if (!isFloat(this.outInfo(0).dtype)) return [];
    return this.inputs.map((_, i) => {
      const settings = { name: `${VARIADIC_GRAD[this.kind].type}${i}(${this.name})`, loc: this.settings.loc };
      // Max / Min: y', x_i and y; Mean: y' alone.
      const mappers = this.kind === 'Mean' ? [gradOut(0)] : [gradOut(0), fwdIn(1, i), { gradOpInIndex: 2, fwdIndex: 0, type: GradOpInType.Out }];
      return new BroadcastArgGradOp(VARIADIC_GRAD[this.kind], this, i, mappers, settings);
    });
  }
  override flops(): number {
    return this.inputs.length * nelms(this.outInfo(0).shape);
  }
}

function lowerVariadic(v: VariadicOp, ctx: LowerContext): void {
  const ins = v.inputs.map((_, i) => operand(ctx, i));
  if (ins.length === 1) {
    ctx.aliasOutput(0, ins[0].t);
    return;
  }
  mapBroadcast(ctx, VARIADIC_CODELET[v.kind], { in: ins }, broadcastOutput(ctx, 0, ins), { name: v.kind.toLowerCase(), params: v.kind === 'Mean' ? { count: ins.length } : {}, inPlace: false });
}

function lowerSelectEqualGrad(op: BroadcastArgGradOp, ctx: LowerContext): void {
  const full = op.fwdOp.outInfo(0).shape;
  lowerElementwiseGrad(ctx, selectEqualGradCodelet, { g: { t: ctx.input(0), shape: full }, a: operand(ctx, 1), b: { t: ctx.input(2), shape: full } });
}

// ---------------------------------------------------------------------------
// PRelu.

const PRELU_X_GRAD = gid('PReluArg0Grad');
const PRELU_SLOPE_GRAD = gid('PReluArg1Grad');

export class PReluOp extends Op {
  setup(): void {
    const x = this.inInfo(0);
    const dtype = sameDType(this, [0, 1]);
    if (!isFloat(dtype)) this.fail(`supports float32 and float16 inputs, got ${fmtInfo(x)}`);
    const shape = broadcastInputs(this, [0, 1]);
    if (shape.length !== x.shape.length || shape.some((d, k) => d !== x.shape[k]))
      this.fail(`slope '${this.inId(1)}' ${fmtInfo(this.inInfo(1))} must broadcast to X ${fmtInfo(x)} (unidirectional broadcasting: the output has X's shape)`);
    this.setOutInfo(0, x);
  }
  override getGradOps(): GradOp[] {
    return [new BroadcastArgGradOp(PRELU_X_GRAD, this, 0, [gradOut(0), fwdIn(1, 0), fwdIn(2, 1)]), new BroadcastArgGradOp(PRELU_SLOPE_GRAD, this, 1, [gradOut(0), fwdIn(1, 0)])];
  }
  override flops(): number {
    return 2 * nelms(this.outInfo(0).shape);
  }
}

// ---------------------------------------------------------------------------
// CastLike.

const CASTLIKE_GRAD = gid('CastLikeGrad');

export class CastLikeOp extends Op {
  setup(): void {
    this.setOutInfo(0, { dtype: this.inInfo(1).dtype, shape: this.inInfo(0).shape });
  }
  override getGradOps(): GradOp[] {
    return isFloat(this.inInfo(0).dtype) && isFloat(this.inInfo(1).dtype) ? [new OutputGradOnlyGradOp(CASTLIKE_GRAD, this)] : [];
  }
  override flops(): number {
    return 0;
  }
}

/** Cast input 0 to output 0's type (an alias when they agree); CastLike and its grad. */
function lowerCastTo(_op: Op, ctx: LowerContext): void {
  const x = ctx.input(0);
  if (x.dtype === ctx.op.outInfo(0).dtype) {
    ctx.aliasOutput(0, x);
    return;
  }
  mapElementwise(ctx, castCodelet, { in: x }, ctx.output(0, { like: x }));
}

// ---------------------------------------------------------------------------
// Shape.

/** ONNX Shape-15's dims: [start, end) of `shape`, each clamped to [0, rank] (negative counts from the end). */
function shapeDims(shape: readonly number[], start: number, end: number | undefined): number[] {
  const r = shape.length;
  const clamp = (v: number) => Math.min(r, Math.max(0, v < 0 ? v + r : v));
  return shape.slice(clamp(start), clamp(end ?? r));
}

// ---------------------------------------------------------------------------
// Definitions.

export const logicDefinitions: OpDefinition[] = [
  ...COMPARISONS.flatMap(([type, vs, what, codelet]) =>
    versions(type, vs, (id) => defineOp({
      op: BooleanBinaryOp,
      id,
      description: `${what} elementwise, NumPy broadcasting; int32 0/1 out (ONNX bool); no gradient`,
      inputs: [{ name: 'A' }, { name: 'B' }],
      outputs: [{ name: 'C' }],
      grad: false,
      create: ({ settings }) => new BooleanBinaryOp(id, settings, false),
      lower: lowerBoolean(codelet),
    })),
  ),
  ...LOGICAL.flatMap(([type, what, codelet]) =>
    versions(type, [7], (id) => defineOp({
      op: BooleanBinaryOp,
      id,
      description: `${what} elementwise on int32 0/1 (ONNX bool), NumPy broadcasting; no gradient`,
      inputs: [{ name: 'A' }, { name: 'B' }],
      outputs: [{ name: 'C' }],
      grad: false,
      create: ({ settings }) => new BooleanBinaryOp(id, settings, true),
      lower: lowerBoolean(codelet),
    })),
  ),
  ...versions('Not', [1], (id) => defineOp({
    op: NotOp,
    id,
    description: 'not X elementwise on int32 0/1 (ONNX bool); no gradient',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    grad: false,
    create: ({ settings }) => new NotOp(id, settings),
    lower: (_op, ctx) => {
      const x = operand(ctx, 0);
      mapBroadcast(ctx, notCodelet, { in: x }, broadcastOutput(ctx, 0, [x]), { inPlace: false });
    },
  })),
  ...versions('IsNaN', [9, 13, 20], (id) => defineOp({
    op: FloatClassOp,
    id,
    description: '1 where X is NaN, else 0: int32 0/1 (ONNX bool); no gradient',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    grad: false,
    create: ({ settings }) => new FloatClassOp(id, undefined, settings),
    lower: (_op, ctx) => mapBroadcast(ctx, isNaNCodelet, { in: operand(ctx, 0) }, { t: ctx.output(0), shape: ctx.op.outInfo(0).shape }, { inPlace: false }),
  })),
  ...versions('IsInf', [10, 20], (id) => defineOp({
    op: FloatClassOp,
    id,
    description: '1 where X is +inf (detect_positive) or -inf (detect_negative), else 0: int32 0/1 (ONNX bool); no gradient',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      detect_negative: { type: 'int', default: 1, description: '1: -inf counts' },
      detect_positive: { type: 'int', default: 1, description: '1: +inf counts' },
    },
    grad: false,
    create: ({ settings, attributes }) => new FloatClassOp(id, { positive: attributes.int('detect_positive'), negative: attributes.int('detect_negative') }, settings),
    lower: (op, ctx) => mapBroadcast(ctx, isInfCodelet, { in: operand(ctx, 0) }, { t: ctx.output(0), shape: ctx.op.outInfo(0).shape }, { inPlace: false, params: op.detect }),
  })),
  ...(['Max', 'Min', 'Mean'] as const).flatMap((kind) =>
    versions(kind, kind === 'Mean' ? [8, 13] : [8, 12, 13], (id) => defineOp({
      op: VariadicOp,
      id,
      description: `Elementwise ${kind === 'Mean' ? 'mean' : kind === 'Max' ? 'maximum' : 'minimum'} of one or more inputs, NumPy broadcasting`,
      inputs: [{ name: 'data_0', variadic: true }],
      outputs: [{ name: kind.toLowerCase() }],
      grad: true,
      create: ({ settings }) => new VariadicOp(kind, id, settings),
      lower: lowerVariadic,
    })),
  ),
  defineOp({ op: BroadcastArgGradOp, id: VARIADIC_GRAD.Max, description: "dX_i = Y' where X_i == Y, else 0, summed to X_i's shape", lower: lowerSelectEqualGrad }),
  defineOp({ op: BroadcastArgGradOp, id: VARIADIC_GRAD.Min, description: "dX_i = Y' where X_i == Y, else 0, summed to X_i's shape", lower: lowerSelectEqualGrad }),
  defineOp({ op: BroadcastArgGradOp, id: VARIADIC_GRAD.Mean, description: "dX_i = Y' / k summed to X_i's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx, 1 / op.fwdOp.inputs.length) }),
  ...versions('PRelu', [7, 9, 16], (id) => defineOp({
    op: PReluOp,
    id,
    description: 'Y = slope X for X < 0, else X; slope broadcast to X',
    inputs: [{ name: 'X' }, { name: 'slope' }],
    outputs: [{ name: 'Y' }],
    grad: true,
    create: ({ settings }) => new PReluOp(id, settings),
    lower: (_op, ctx) => {
      const x = operand(ctx, 0);
      const s = operand(ctx, 1);
      mapBroadcast(ctx, preluCodelet, { x, slope: s }, broadcastOutput(ctx, 0, [x, s]), { cyclic: 'slope' });
    },
  })),
  defineOp({
    op: BroadcastArgGradOp,
    id: PRELU_X_GRAD,
    description: "dX = slope Y' for X < 0, else Y'",
    lower: (op, ctx) => {
      const full = op.outInfo(0).shape;
      lowerElementwiseGrad(ctx, preluXGradCodelet, { g: { t: ctx.input(0), shape: full }, x: operand(ctx, 1), slope: operand(ctx, 2) });
    },
  }),
  defineOp({
    op: BroadcastArgGradOp,
    id: PRELU_SLOPE_GRAD,
    description: "dslope = X Y' for X < 0, else 0, summed to slope's shape",
    lower: (op, ctx) => {
      const full = op.fwdOp.outInfo(0).shape;
      lowerElementwiseGrad(ctx, preluSlopeGradCodelet, { g: { t: ctx.input(0), shape: full }, x: operand(ctx, 1) });
    },
  }),
  ...versions('CastLike', [15, 19], (id) => defineOp({
    op: CastLikeOp,
    id,
    description: "Cast input to target_type's element type (float32, float16, int32)",
    inputs: [{ name: 'input' }, { name: 'target_type' }],
    outputs: [{ name: 'output' }],
    attributes: id.version >= 19 ? { saturate: { type: 'int', default: 1, description: 'float8 saturation (no float8 here: ignored)' } } : undefined,
    grad: true,
    create: ({ settings }) => new CastLikeOp(id, settings),
    lower: lowerCastTo,
  })),
  defineOp({ op: OutputGradOnlyGradOp, id: CASTLIKE_GRAD, description: "CastLike's output gradient cast back to the input type", lower: lowerCastTo }),
  ...versions('Shape', [13, 15, 19], (id) => ({
    description: "The input's dims [start, end) as int32 (ONNX int64): folded into a constant at import, since shapes are fixed at compile time",
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'shape' }],
    attributes: id.version >= 15 ? { start: { type: 'int', default: 0, description: 'first axis' }, end: { type: 'int', default: 2 ** 31 - 1, description: 'one past the last axis (default: the rank)' } } : undefined,
    grad: false,
    // Folded where it stands: its output becomes a constant, so a Reshape, Expand or ConstantOfShape fed by
    // it sees constant dims (ONNX's expanded functions write Shape -> Reshape).
    expand: ({ node, attributes, inputInfos }) => {
      const dims = shapeDims(inputInfos[0]!.shape, id.version >= 15 ? attributes.int('start') : 0, id.version >= 15 ? attributes.int('end') : undefined);
      return { nodes: [], constants: [{ name: node.outputs[0], dtype: 'int32', shape: [dims.length], data: Int32Array.from(dims) }] };
    },
  })),
];
