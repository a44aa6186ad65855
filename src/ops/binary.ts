/**
 * The binary op family: elementwise ops with NumPy broadcasting (Sub, Div, Mod,
 * Where, Expand here; Add, Mul and Sum in their own files, built on the
 * helpers here), their grad ops and their lowering side by side.
 *
 * Every gradient of a broadcast operand is the elementwise gradient at the
 * output's shape, summed over the axes the operand was broadcast along
 * (src/lower/reduce-axes.ts); when nothing was broadcast it is an alias of
 * (or computed straight into) the result.
 *
 * Versions: every ONNX version in opsets 11..18 is registered (their
 * semantics here are the same; later versions only add types we do not
 * have): Sub/Div 7, 13, 14; Where 9, 16; Expand 8, 13.
 */
import { GradOp, Op, isGradOp, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { ArgGradOp, fwdIn, gradOut } from './arg-grad.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import { broadcastConflict, broadcastOutput, broadcastShapes, mapBroadcast, type MapBroadcastOptions, type Operand } from '../lower/broadcast.js';
import type { LowerContext } from '../lower/context.js';
import { reduceAxes, reducedAxes, reduceToOutput, needsReduction } from '../lower/reduce-axes.js';
import type { Codelet } from '../../sim/codelet.js';
import { modCodelet, modRhsGradCodelet, broadcastCopyCodelet, divCodelet, divRhsGradCodelet, subCodelet, whereCodelet, whereGradCodelet } from '../../sim/codelets/binary.js';

const ONNX = 'ai.onnx';
const GC = 'ai.graphcore';

// ---------------------------------------------------------------------------
// Shape and dtype checks shared by the family.

/** The broadcast shape of inputs `indices`; fails naming the two inputs (and shapes) that conflict. */
export function broadcastInputs(op: Op, indices: readonly number[]): number[] {
  let shape: number[] = [];
  for (const [n, i] of indices.entries()) {
    const s = op.inInfo(i).shape;
    const b = broadcastShapes([shape, s]);
    if (b) {
      shape = b;
      continue;
    }
    const j = indices.slice(0, n).find((j) => broadcastConflict(op.inInfo(j).shape, s) !== null)!;
    const sj = op.inInfo(j).shape;
    const [axis, dj, di] = broadcastConflict(sj, s)!;
    const rank = Math.max(sj.length, s.length);
    op.fail(
      `cannot broadcast input ${j} '${op.inId(j)}' ${fmtInfo(op.inInfo(j))} with input ${i} '${op.inId(i)}' ${fmtInfo(op.inInfo(i))}: ` +
        `aligned from the right, axis ${axis - (rank - sj.length)} of '${op.inId(j)}' (${dj}) meets axis ${axis - (rank - s.length)} of '${op.inId(i)}' (${di}); ` +
        `NumPy broadcasting needs equal sizes or 1`,
    );
  }
  return shape;
}

/** Inputs `indices` must share one dtype; returns it. */
export function sameDType(op: Op, indices: readonly number[]): ReturnType<Op['inInfo']>['dtype'] {
  const d = op.inInfo(indices[0]).dtype;
  for (const i of indices.slice(1)) {
    const e = op.inInfo(i).dtype;
    if (e !== d) op.fail(`inputs '${op.inId(indices[0])}' and '${op.inId(i)}' must have one dtype, got ${d} and ${e}`);
  }
  return d;
}

/** Input `i` of the op being lowered, with its IR shape. */
export function operand(ctx: LowerContext, i: number): Operand {
  return { t: ctx.input(i), shape: ctx.op.inInfo(i).shape };
}

// ---------------------------------------------------------------------------
// Op and grad op shapes shared by the family.

/** A two-input elementwise op with NumPy broadcasting; output dtype = inputs'. */
export abstract class BroadcastBinaryOp extends Op {
  setup(): void {
    const dtype = sameDType(this, [0, 1]);
    this.setOutInfo(0, { dtype, shape: broadcastInputs(this, [0, 1]) });
  }
  override flops(): number {
    return nelms(this.outInfo(0).shape);
  }
}

/** The gradient of one input of a broadcasting op: its work is one pass over the forward output. */
export class BroadcastArgGradOp extends ArgGradOp {
  constructor(opid: OperatorIdentifier, fwd: Op, arg: number, mappers: GradInOutMapper[], settings?: OpSettings) {
    super(opid, fwd, arg, mappers, () => nelms(fwd.outInfo(0).shape), settings);
  }
}

/** Grad op output 0 = grad op input 0 (shaped like the forward output), summed over the broadcast axes, times `scale`. */
export function lowerReduceGrad(op: GradOp, ctx: LowerContext, scale = 1): void {
  const full = op.fwdOp.outInfo(0).shape;
  const target = op.outInfo(0).shape;
  reduceToOutput(ctx, 0, { t: ctx.input(0), shape: full }, reducedAxes(full, target), { scale });
}

/**
 * Grad op output 0 = `codelet` over `inputs` at the forward output's shape,
 * summed over the axes the forward input was broadcast along: computed
 * straight into the output when there is nothing to sum.
 */
export function lowerElementwiseGrad(ctx: LowerContext, codelet: Codelet, inputs: Record<string, Operand>, opts: MapBroadcastOptions = {}): void {
  const g = ctx.op;
  if (!isGradOp(g)) throw new Error(`internal: lowerElementwiseGrad lowers grad ops, and ${g.name} is not one`);
  const full = g.fwdOp.outInfo(0).shape;
  const target = ctx.op.outInfo(0).shape;
  const axes = reducedAxes(full, target);
  const n = nelms(full);
  const like = Object.values(inputs).find((o) => o.t.size === n && o.t.dtype !== 'int32');
  if (!needsReduction(full, axes)) {
    mapBroadcast(ctx, codelet, inputs, { t: ctx.output(0, like ? { like: like.t } : {}), shape: full }, opts);
    return;
  }
  const tmp = ctx.addTensor('full', ctx.op.outInfo(0).dtype as 'float32', [...full]);
  if (like) ctx.graph.mapLike(tmp, like.t);
  else ctx.graph.mapLinearly(tmp);
  mapBroadcast(ctx, codelet, inputs, { t: tmp, shape: full }, opts);
  reduceAxes(ctx, { t: tmp, shape: full }, axes, ctx.output(0));
}

/** A forward lowering: `codelet` over inputs 0..k-1 (as `fields`) into output 0. */
function lowerMap(codelet: Codelet, fields: string[], opts: MapBroadcastOptions = {}) {
  return (_op: Op, ctx: LowerContext): void => {
    const ins = fields.map((_, i) => operand(ctx, i));
    const out = broadcastOutput(ctx, 0, ins);
    mapBroadcast(ctx, codelet, Object.fromEntries(fields.map((f, i) => [f, ins[i]])), out, opts);
  };
}

/** Definitions of one forward op at several ONNX versions. */
export function versions(type: string, vs: number[], def: (id: OperatorIdentifier) => Omit<OpDefinition, 'id'>): OpDefinition[] {
  return vs.map((version) => ({ id: { domain: ONNX, type, version }, ...def({ domain: ONNX, type, version }) }));
}

const gid = (type: string): OperatorIdentifier => ({ domain: GC, type, version: 1 });

// ---------------------------------------------------------------------------
// Sub

const SUB = { domain: ONNX, type: 'Sub', version: 14 };
const SUB_ARG0_GRAD = gid('SubArg0Grad');
const SUB_ARG1_GRAD = gid('SubArg1Grad');

export class SubOp extends BroadcastBinaryOp {
  static readonly defaultOperatorId = SUB;
  constructor(settings: OpSettings, opid: OperatorIdentifier = SUB) {
    super(opid, settings);
  }
  override getGradOps(): GradOp[] {
    return [new BroadcastArgGradOp(SUB_ARG0_GRAD, this, 0, [gradOut(0)]), new BroadcastArgGradOp(SUB_ARG1_GRAD, this, 1, [gradOut(0)])];
  }
}

// ---------------------------------------------------------------------------
// Div

const DIV = { domain: ONNX, type: 'Div', version: 14 };
const DIV_ARG0_GRAD = gid('DivArg0Grad');
const DIV_ARG1_GRAD = gid('DivArg1Grad');

export class DivOp extends BroadcastBinaryOp {
  static readonly defaultOperatorId = DIV;
  constructor(settings: OpSettings, opid: OperatorIdentifier = DIV) {
    super(opid, settings);
  }
  override getGradOps(): GradOp[] {
    return [
      // dA = dC / B
      new BroadcastArgGradOp(DIV_ARG0_GRAD, this, 0, [gradOut(0), fwdIn(1, 1)]),
      // dB = -dC x A / B^2
      new BroadcastArgGradOp(DIV_ARG1_GRAD, this, 1, [gradOut(0), fwdIn(1, 0), fwdIn(2, 1)]),
    ];
  }
}

// ---------------------------------------------------------------------------
// Mod

const MOD_ARG0_GRAD = gid('ModArg0Grad');
const MOD_ARG1_GRAD = gid('ModArg1Grad');

/** Mod(A, B): `fmod` 1 is C's fmod (the sign of A), 0 Python's (the sign of B; integers only, as ONNX says). */
export class ModOp extends BroadcastBinaryOp {
  constructor(
    opid: OperatorIdentifier,
    readonly fmod: number,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  override setup(): void {
    super.setup();
    if (this.fmod !== 0 && this.fmod !== 1) this.fail(`fmod must be 0 or 1, got ${this.fmod}`);
    if (this.fmod === 0 && this.outInfo(0).dtype !== 'int32') this.fail(`fmod = 0 (the sign of the divisor) is for integers; a float Mod needs fmod = 1, as ONNX requires`);
  }
  override attributes(): Record<string, number> {
    return { fmod: this.fmod };
  }
  override getGradOps(): GradOp[] {
    if (this.outInfo(0).dtype === 'int32') return [];
    return [
      // dA = dC (fmod(a, b) = a - trunc(a / b) b, with trunc's derivative 0 almost everywhere)
      new BroadcastArgGradOp(MOD_ARG0_GRAD, this, 0, [gradOut(0)]),
      // dB = -dC x trunc(A / B)
      new BroadcastArgGradOp(MOD_ARG1_GRAD, this, 1, [gradOut(0), fwdIn(1, 0), fwdIn(2, 1)]),
    ];
  }
}

// ---------------------------------------------------------------------------
// Where

const WHERE = { domain: ONNX, type: 'Where', version: 16 };
const WHERE_X_GRAD = gid('WhereXGrad');
const WHERE_Y_GRAD = gid('WhereYGrad');

/** Where(condition, X, Y): condition is int32 0/1 in tilesim's IR (ONNX's bool). Gradients for X and Y only. */
export class WhereOp extends Op {
  static readonly defaultOperatorId = WHERE;
  constructor(settings: OpSettings, opid: OperatorIdentifier = WHERE) {
    super(opid, settings);
  }
  setup(): void {
    const c = this.inInfo(0);
    if (c.dtype !== 'int32') this.fail(`condition '${this.inId(0)}' must be int32 (0 or 1; tilesim's form of ONNX's bool), got ${fmtInfo(c)}`);
    const dtype = sameDType(this, [1, 2]);
    this.setOutInfo(0, { dtype, shape: broadcastInputs(this, [0, 1, 2]) });
  }
  override getGradOps(): GradOp[] {
    return [new BroadcastArgGradOp(WHERE_X_GRAD, this, 1, [gradOut(0), fwdIn(1, 0)]), new BroadcastArgGradOp(WHERE_Y_GRAD, this, 2, [gradOut(0), fwdIn(1, 0)])];
  }
}

// ---------------------------------------------------------------------------
// Expand

const EXPAND = { domain: ONNX, type: 'Expand', version: 13 };
const EXPAND_GRAD = gid('ExpandGrad');

/** The int values of constant input `i` (an initializer); a clear error for anything computed or streamed. */
export function constantInts(op: Op, i: number, what: string): number[] {
  const t = op.graph.tensor(op.inId(i));
  if (t.kind !== 'constant' || !t.data) {
    const why = t.producer ? `it is computed by op '${t.producer.name}'` : t.kind === 'stream' ? 'it is a streamed graph input' : `it is a ${t.kind}`;
    op.fail(`${what} (input ${i} '${t.id}') must be a constant initializer, because tilesim fixes shapes at compile time; ${why}`);
  }
  if (t.info.dtype !== 'int32') op.fail(`${what} (input ${i} '${t.id}') must be int32 (ONNX int64), got ${fmtInfo(t.info)}`);
  if (t.info.shape.length !== 1) op.fail(`${what} (input ${i} '${t.id}') must be 1-D, got ${fmtInfo(t.info)}`);
  return Array.from(t.data);
}

export class ExpandOp extends Op {
  static readonly defaultOperatorId = EXPAND;
  constructor(settings: OpSettings, opid: OperatorIdentifier = EXPAND) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const shape = constantInts(this, 1, 'the shape');
    if (shape.some((d) => d < 0)) this.fail(`the shape [${shape.join(', ')}] has a negative dimension`);
    const out = broadcastShapes([x.shape, shape]);
    if (!out) {
      const [axis, dx, ds] = broadcastConflict(x.shape, shape)!;
      const rank = Math.max(x.shape.length, shape.length);
      this.fail(
        `cannot expand input 0 '${this.inId(0)}' ${fmtInfo(x)} to shape [${shape.join(', ')}] (input 1 '${this.inId(1)}'): ` +
          `aligned from the right, axis ${axis - (rank - x.shape.length)} of '${this.inId(0)}' (${dx}) meets ${ds}; NumPy broadcasting needs equal sizes or 1`,
      );
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: out });
  }
  override getGradOps(): GradOp[] {
    return [new BroadcastArgGradOp(EXPAND_GRAD, this, 0, [gradOut(0)])];
  }
}

// ---------------------------------------------------------------------------
// Lowerings and definitions.

function lowerDivArg0Grad(op: BroadcastArgGradOp, ctx: LowerContext): void {
  const full = op.fwdOp.outInfo(0).shape;
  lowerElementwiseGrad(ctx, divCodelet, { a: { t: ctx.input(0), shape: full }, b: operand(ctx, 1) }, { cyclic: 'b' });
}

function lowerDivArg1Grad(op: BroadcastArgGradOp, ctx: LowerContext): void {
  const full = op.fwdOp.outInfo(0).shape;
  lowerElementwiseGrad(ctx, divRhsGradCodelet, { g: { t: ctx.input(0), shape: full }, a: operand(ctx, 1), b: operand(ctx, 2) });
}

function lowerWhereGrad(side: 0 | 1) {
  return (op: BroadcastArgGradOp, ctx: LowerContext): void => {
    const full = op.fwdOp.outInfo(0).shape;
    lowerElementwiseGrad(ctx, whereGradCodelet, { cond: operand(ctx, 1), g: { t: ctx.input(0), shape: full } }, { params: { side }, cyclic: 'cond' });
  };
}

export const binaryDefinitions: OpDefinition[] = [
  ...versions('Sub', [7, 13, 14], (id) => defineOp({
    op: SubOp,
    id,
    description: 'Elementwise difference A - B, NumPy broadcasting',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new SubOp(settings, id),
    lower: lowerMap(subCodelet, ['a', 'b'], { cyclic: 'b' }),
  })),
  defineOp({ op: BroadcastArgGradOp, id: SUB_ARG0_GRAD, description: "dA = dC summed to A's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
  defineOp({ op: BroadcastArgGradOp, id: SUB_ARG1_GRAD, description: "dB = -dC summed to B's shape", lower: (op, ctx) => lowerReduceGrad(op, ctx, -1) }),

  ...versions('Div', [7, 13, 14], (id) => defineOp({
    op: DivOp,
    id,
    description: 'Elementwise quotient A / B, NumPy broadcasting (int32: truncated toward zero)',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    grad: true,
    create: ({ settings }) => new DivOp(settings, id),
    lower: lowerMap(divCodelet, ['a', 'b'], { cyclic: 'b' }),
  })),
  defineOp({ op: BroadcastArgGradOp, id: DIV_ARG0_GRAD, description: "dA = dC / B summed to A's shape", lower: lowerDivArg0Grad }),
  defineOp({ op: BroadcastArgGradOp, id: DIV_ARG1_GRAD, description: "dB = -dC x A / B^2 summed to B's shape", lower: lowerDivArg1Grad }),

  ...versions('Mod', [10, 13], (id) => defineOp({
    op: ModOp,
    id,
    description: 'Elementwise remainder of A / B, NumPy broadcasting: fmod = 1 the sign of A (C fmod; floats and ints), fmod = 0 the sign of B (ints)',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'C' }],
    attributes: { fmod: { type: 'int', default: 0, description: '1: C fmod (sign of A); 0: sign of B, integers only' } },
    grad: true,
    create: ({ settings, attributes }) => new ModOp(id, attributes.int('fmod'), settings),
    lower: (op, ctx) => {
      const a = operand(ctx, 0);
      const b = operand(ctx, 1);
      mapBroadcast(ctx, modCodelet, { a, b }, broadcastOutput(ctx, 0, [a, b]), { cyclic: 'b', params: { fmod: op.fmod } });
    },
  })),
  defineOp({ op: BroadcastArgGradOp, id: MOD_ARG0_GRAD, description: "dA = dC summed to A's shape (fmod)", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
  defineOp({
    op: BroadcastArgGradOp,
    id: MOD_ARG1_GRAD,
    description: "dB = -dC x trunc(A / B) summed to B's shape (fmod)",
    lower: (op, ctx) => lowerElementwiseGrad(ctx, modRhsGradCodelet, { g: { t: ctx.input(0), shape: op.fwdOp.outInfo(0).shape }, a: operand(ctx, 1), b: operand(ctx, 2) }),
  }),

  ...versions('Where', [9, 16], (id) => defineOp({
    op: WhereOp,
    id,
    description: 'condition ? X : Y elementwise, NumPy broadcasting of all three; condition int32 0/1 (ONNX bool); gradients for X and Y',
    inputs: [{ name: 'condition' }, { name: 'X' }, { name: 'Y' }],
    outputs: [{ name: 'output' }],
    grad: true,
    create: ({ settings }) => new WhereOp(settings, id),
    lower: lowerMap(whereCodelet, ['cond', 'a', 'b']),
  })),
  defineOp({ op: BroadcastArgGradOp, id: WHERE_X_GRAD, description: "dX = condition ? dOut : 0, summed to X's shape", lower: lowerWhereGrad(0) }),
  defineOp({ op: BroadcastArgGradOp, id: WHERE_Y_GRAD, description: "dY = condition ? 0 : dOut, summed to Y's shape", lower: lowerWhereGrad(1) }),

  ...versions('Expand', [8, 13], (id) => defineOp({
    op: ExpandOp,
    id,
    description: 'Broadcast input to a shape (a constant int input), NumPy rules in both directions',
    inputs: [{ name: 'input' }, { name: 'shape' }],
    outputs: [{ name: 'output' }],
    grad: true,
    create: ({ settings }) => new ExpandOp(settings, id),
    lower: (_op, ctx) => {
      const x = operand(ctx, 0);
      mapBroadcast(ctx, broadcastCopyCodelet, { in: x }, broadcastOutput(ctx, 0, [x]), { cyclic: 'in', params: { scale: 1 }, name: 'expand' });
    },
  })),
  defineOp({ op: BroadcastArgGradOp, id: EXPAND_GRAD, description: "dX = dOut summed over the expanded axes", lower: (op, ctx) => lowerReduceGrad(op, ctx) }),
];
