/**
 * Shape ops that move data: Transpose, Concat, Slice, with their grad ops.
 * Each is an affine view of its source (src/lower/rearrange.ts), lowered to
 * an alias, exchange copies of contiguous runs, or Rearrange vertices for
 * per-element addressing.
 *
 *   Transpose  y = x with axes permuted;        dX = dY transposed back.
 *   Concat     y = inputs joined along axis;     dX_k = dY sliced along axis.
 *   Slice      y = x[starts:ends:steps] on axes; dX = zeros with dY scattered in.
 *
 * Versions registered (opsets 11..18 resolve to one of them): Transpose 1,
 * 13; Concat 11, 13; Slice 10, 11 (negative axes), 13.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import {
  copyRuns,
  isContiguous,
  mergeView,
  numElements,
  rearrangeToOutput,
  scatterInto,
  sliceView,
  transposeView,
  type AffineView,
  type Run,
} from '../lower/rearrange.js';
import type { TileRange } from '../lower/devicegraph.js';
import { GC, constantInts, describeInput, floatInput, normAxes, versions } from './shape-util.js';

const gradOut0: GradInOutMapper = { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut };

// ---------------------------------------------------------------------------
// Transpose

const TRANSPOSE_GRAD = { domain: GC, type: 'TransposeGrad', version: 1 };

export class TransposeOp extends Op {
  /** The permutation in force (the attribute, or the axes reversed when it is empty). */
  perm: number[] = [];
  constructor(
    readonly permAttr: number[],
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const r = x.shape.length;
    const perm = this.permAttr.length > 0 ? this.permAttr : x.shape.map((_, k) => r - 1 - k);
    const ok = perm.length === r && perm.every((p, k) => Number.isInteger(p) && p >= 0 && p < r && perm.indexOf(p) === k);
    if (!ok) this.fail(`perm [${perm.join(', ')}] is not a permutation of the axes of ${describeInput(this)} (each of 0 to ${r - 1} once)`);
    this.perm = perm;
    this.setOutInfo(0, { dtype: x.dtype, shape: perm.map((p) => x.shape[p]) });
  }
  override getGradOps(): GradOp[] {
    return floatInput(this, 0) ? [new TransposeGradOp(this)] : [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { perm: this.perm };
  }
}

export class TransposeGradOp extends GradOp {
  constructor(readonly fwd: TransposeOp) {
    super(TRANSPOSE_GRAD, fwd);
  }
  /** The inverse permutation: dX axis p is dY axis k where perm[k] = p. */
  get inverse(): number[] {
    const inv = new Array<number>(this.fwd.perm.length);
    this.fwd.perm.forEach((p, k) => (inv[p] = k));
    return inv;
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [gradOut0];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
}

// ---------------------------------------------------------------------------
// Concat

const CONCAT_GRAD = { domain: GC, type: 'ConcatGrad', version: 1 };

export class ConcatOp extends Op {
  /** The axis in force (non-negative). */
  axis = 0;
  constructor(
    readonly axisAttr: number,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const first = this.inInfo(0);
    const r = first.shape.length;
    if (r === 0) this.fail(`cannot concatenate scalars (${describeInput(this)})`);
    if (!Number.isInteger(this.axisAttr) || this.axisAttr < -r || this.axisAttr >= r) {
      this.fail(`axis ${this.axisAttr} is out of range for ${describeInput(this)} (rank ${r}: valid axes are ${-r} to ${r - 1})`);
    }
    const a = this.axisAttr < 0 ? this.axisAttr + r : this.axisAttr;
    let total = 0;
    for (let i = 0; i < this.inputs.length; i++) {
      const info = this.inInfo(i);
      if (info.dtype !== first.dtype) this.fail(`inputs must share one dtype: ${describeInput(this, 0)} and ${describeInput(this, i)}`);
      const same = info.shape.length === r && info.shape.every((d, k) => k === a || d === first.shape[k]);
      if (!same) {
        this.fail(`cannot concatenate ${describeInput(this, 0)} and ${describeInput(this, i)} along axis ${a}: every other dimension must match`);
      }
      total += info.shape[a];
    }
    this.axis = a;
    this.setOutInfo(0, { dtype: first.dtype, shape: first.shape.map((d, k) => (k === a ? total : d)) });
  }
  /** Where input i starts along the axis. */
  offsetOf(i: number): number {
    let off = 0;
    for (let k = 0; k < i; k++) off += this.inInfo(k).shape[this.axis];
    return off;
  }
  override getGradOps(): GradOp[] {
    return this.inputs.flatMap((_, i) => (floatInput(this, i) ? [new ConcatGradOp(this, i)] : []));
  }
  override attributes(): Record<string, AttributeValue> {
    return { axis: this.axis };
  }
}

/** The gradient of Concat input `index`: its slice of dY along the axis. */
export class ConcatGradOp extends GradOp {
  constructor(
    readonly fwd: ConcatOp,
    readonly index: number,
  ) {
    super(CONCAT_GRAD, fwd, { name: `ConcatGrad${index}(${fwd.name})`, loc: fwd.settings.loc });
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(this.index));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [gradOut0];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.index]]);
  }
}

/**
 * Concat along the outermost axis keeps each input's tile mapping (PopART
 * clones the concatenated view's mapping) only while no tile holds more than
 * this many pieces of the output. Every piece on a tile is one more vertex in
 * every later elementwise op there. On a DenseNet-like chain on mk2 (12
 * concats of [1, 32, 28, 28] onto a growing [1, C, 28, 28], each followed by
 * Relu), exchange cycles of the concats + compute cycles of the Relus:
 * always linear 1932 + 4314; always the inputs' mapping 0 + 15972 (10802
 * pieces in the last output instead of 1464); with this cap 1110 + 5226.
 */
export const MAX_CONCAT_PIECES_PER_TILE = 2;

function maxPiecesPerTile(pieces: readonly TileRange[]): number {
  const n = new Map<number, number>();
  let max = 0;
  for (const p of pieces) {
    const c = (n.get(p.tile) ?? 0) + 1;
    n.set(p.tile, c);
    max = Math.max(max, c);
  }
  return max;
}

function lowerConcat(c: ConcatOp, ctx: LowerContext): void {
  if (c.inputs.length === 1) {
    ctx.aliasOutput(0, ctx.input(0));
    return;
  }
  const shape = c.outInfo(0).shape;
  const outer = nelms(shape.slice(0, c.axis));
  const inner = nelms(shape.slice(c.axis + 1));
  const total = shape[c.axis];
  const out = ctx.output(0);
  const runs: Run[] = [];
  const pieces: TileRange[] = [];
  for (let i = 0; i < c.inputs.length; i++) {
    const x = ctx.input(i);
    const len = c.inInfo(i).shape[c.axis] * inner;
    const off = c.offsetOf(i) * inner;
    for (let o = 0; o < outer; o++) runs.push({ src: x, srcBegin: o * len, dst: out, dstBegin: o * total * inner + off, n: len });
    if (outer === 1) for (const r of ctx.ranges(x)) pieces.push({ tile: r.tile, begin: r.begin + off, end: r.end + off });
  }
  if (outer === 1 && out.size > 0 && maxPiecesPerTile(pieces) <= MAX_CONCAT_PIECES_PER_TILE) {
    // Joined along the outermost axis: each piece stays on the tiles of its input (on-tile copies).
    ctx.graph.setTileMapping(out, pieces);
    ctx.note('concat', `joined along the outermost axis: the output keeps its inputs' tile mapping (no exchange traffic)`);
  }
  copyRuns(ctx, 'concat', runs);
}

function lowerConcatGrad(g: ConcatGradOp, ctx: LowerContext): void {
  const shape = g.fwd.outInfo(0).shape;
  const xs = g.fwd.inInfo(g.index).shape;
  const starts = shape.map((_, k) => (k === g.fwd.axis ? g.fwd.offsetOf(g.index) : 0));
  rearrangeToOutput(ctx, 0, ctx.input(0), sliceView(shape, starts, shape.map(() => 1), [...xs]), 'concat-grad');
}

// ---------------------------------------------------------------------------
// Slice

const SLICE_GRAD = { domain: GC, type: 'SliceGrad', version: 1 };

export class SliceOp extends Op {
  /** Per input axis: first element, step and count taken (every axis, the unsliced ones whole). */
  starts: number[] = [];
  steps: number[] = [];
  counts: number[] = [];
  constructor(settings: OpSettings, opid: OperatorIdentifier) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const r = x.shape.length;
    const starts = constantInts(this, 1, 'starts');
    const ends = constantInts(this, 2, 'ends');
    const axesGiven = this.hasInput(3) ? constantInts(this, 3, 'axes') : undefined;
    const steps = this.hasInput(4) ? constantInts(this, 4, 'steps') : starts.map(() => 1);
    const axesList = axesGiven ?? starts.map((_, k) => k);
    const lens = { starts: starts.length, ends: ends.length, axes: axesList.length, steps: steps.length };
    if (new Set(Object.values(lens)).size !== 1) {
      this.fail(`starts, ends, axes and steps must have one length, got ${Object.entries(lens).map(([k, n]) => `${k} ${n}`).join(', ')}`);
    }
    const axes = normAxes(this, axesList, r, 'axes', describeInput(this));
    this.starts = x.shape.map(() => 0);
    this.steps = x.shape.map(() => 1);
    this.counts = [...x.shape];
    for (const [i, a] of axes.entries()) {
      const dim = x.shape[a];
      const step = steps[i];
      if (step === 0) this.fail(`steps [${steps.join(', ')}]: step for axis ${a} is 0`);
      let s = starts[i] < 0 ? starts[i] + dim : starts[i];
      let e = ends[i] < 0 ? ends[i] + dim : ends[i];
      if (step > 0) {
        s = Math.min(Math.max(s, 0), dim);
        e = Math.min(Math.max(e, 0), dim);
      } else {
        s = Math.min(Math.max(s, 0), dim - 1);
        e = Math.min(Math.max(e, -1), dim - 1);
      }
      this.starts[a] = s;
      this.steps[a] = step;
      this.counts[a] = Math.max(0, Math.ceil((e - s) / step));
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: this.counts });
  }
  /** Output element i = input element view(i). */
  view(): AffineView {
    return sliceView(this.inInfo(0).shape, this.starts, this.steps, this.counts);
  }
  override getGradOps(): GradOp[] {
    return floatInput(this, 0) ? [new SliceGradOp(this)] : [];
  }
}

export class SliceGradOp extends GradOp {
  constructor(readonly fwd: SliceOp) {
    super(SLICE_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [gradOut0];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
}

function lowerSliceGrad(g: SliceGradOp, ctx: LowerContext): void {
  const view = g.fwd.view();
  const m = mergeView(view);
  const dy = ctx.input(0);
  if (isContiguous(m) && m.offset === 0 && numElements(view.shape) === nelms(g.outInfo(0).shape)) {
    ctx.aliasOutput(0, dy);
    return;
  }
  scatterInto(ctx, dy, view, ctx.output(0), 'slice-grad');
}

// ---------------------------------------------------------------------------
// Definitions

export const moveDefinitions: OpDefinition[] = [
  ...versions('Transpose', [1, 13], (id) => defineOp({
    op: TransposeOp,
    id,
    description: 'Permute the axes (perm; default reversed): copies of contiguous runs, else per-element Rearrange vertices',
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'transposed' }],
    attributes: { perm: { type: 'ints', default: [], description: 'output axis k is input axis perm[k]; empty: reversed' } },
    grad: true,
    create: ({ attributes, settings }) => new TransposeOp(attributes.ints('perm'), settings, id),
    lower: (op, ctx) => rearrangeToOutput(ctx, 0, ctx.input(0), transposeView(op.inInfo(0).shape, op.perm), 'transpose'),
  })),
  defineOp({
    op: TransposeGradOp,
    id: TRANSPOSE_GRAD,
    description: 'dX = dY transposed by the inverse permutation',
    lower: (op, ctx) => rearrangeToOutput(ctx, 0, ctx.input(0), transposeView(op.inInfo(0).shape, op.inverse), 'transpose-grad'),
  }),
  ...versions('Concat', [11, 13], (id) => defineOp({
    op: ConcatOp,
    id,
    description: 'Join the inputs along axis: exchange copies of contiguous runs into the output',
    inputs: [{ name: 'inputs', variadic: true }],
    outputs: [{ name: 'concat_result' }],
    attributes: { axis: { type: 'int', description: 'axis to join along, in [-r, r-1]' } },
    grad: true,
    create: ({ attributes, settings }) => new ConcatOp(attributes.int('axis'), settings, id),
    lower: lowerConcat,
  })),
  defineOp({ op: ConcatGradOp, id: CONCAT_GRAD, description: "dX_k = dY's slice along the axis where input k sits", lower: lowerConcatGrad }),
  ...versions('Slice', [10, 11, 13], (id) => defineOp({
    op: SliceOp,
    id,
    description: 'x[starts:ends:steps] on the given axes (constant inputs; negative indices and steps): copies of runs or Rearrange vertices',
    inputs: [{ name: 'data' }, { name: 'starts' }, { name: 'ends' }, { name: 'axes', optional: true }, { name: 'steps', optional: true }],
    outputs: [{ name: 'output' }],
    grad: true,
    create: ({ settings }) => new SliceOp(settings, id),
    lower: (op, ctx) => rearrangeToOutput(ctx, 0, ctx.input(0), op.view(), 'slice'),
  })),
  defineOp({ op: SliceGradOp, id: SLICE_GRAD, description: 'dX = zeros with dY scattered into the sliced positions', lower: lowerSliceGrad }),
];
