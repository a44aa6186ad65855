/**
 * GatherElements (ONNX 11, 13) and ScatterElements (11, 13, 16 reduction
 * add/mul, 18 max/min), with their gradients.
 *
 *   GatherElements   out[c] = data[c with c[axis] = indices[c]]; out has the indices' shape.
 *                    dData = zeros with dOut added at the same places (GatherElementsGrad).
 *   ScatterElements  out = data, then out[c with c[axis] = indices[c]] (op)= updates[c] for every c
 *                    of the indices (none: replace, add, mul, max, min).
 *                    Gradients (reduction none, as PopART's ScatterGrad): dData = dOut with the
 *                    scattered places zeroed; dUpdates = GatherElements(dOut, indices).
 *
 * Indices may be computed at run time. Lowering (sim/codelets/elements.ts),
 * with no tensor copied whole to every tile:
 *  - GatherElements: each tile's range of the output reads, besides its
 *    indices, the window of data its elements can reach: their coordinates
 *    before the axis fixed, the rest free (see reach(); with the axis last,
 *    as ArgMax's columns, just their rows).
 *  - ScatterElements and the gradients: the output is mapped linearly; each
 *    tile's range [b, e) reads its own elements of data and the window of
 *    updates and indices whose targets can fall in [b, e), found by binary
 *    search (the reachable span grows with the index element), and applies
 *    them in order.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { ArgGradOp, fwdIn, gradOut, gradOf } from './arg-grad.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor } from '../lower/devicegraph.js';
import { rowMajorStrides } from '../lower/rearrange.js';
import { GC, describeInput, floatInput, versions } from './shape-util.js';
import { gatherElementsCodelet, scatterElementsCodelet } from '../../sim/codelets/elements.js';

const GATHER_ELEMENTS_GRAD = { domain: GC, type: 'GatherElementsGrad', version: 1 };
const SCATTER_DATA_GRAD = { domain: GC, type: 'ScatterElementsDataGrad', version: 1 };
const SCATTER_UPDATES_GRAD = { domain: GC, type: 'ScatterElementsUpdatesGrad', version: 1 };

const REDUCTIONS = ['none', 'add', 'mul', 'max', 'min'];

/** The index walk of both ops: the indices' shape, the data's strides, the axis and its size. */
export interface Walk {
  ishape: number[];
  dstrides: number[];
  axis: number;
  A: number;
}

/** The axis in [0, rank), checked: indices of the data's rank, int32, no larger than the data off the axis. */
function checkWalk(op: Op, dataIndex: number, indicesIndex: number, axisAttr: number): Walk {
  const data = op.inInfo(dataIndex);
  const ind = op.inInfo(indicesIndex);
  const r = data.shape.length;
  if (r === 0) op.fail(`needs data of rank >= 1, got ${describeInput(op, dataIndex)}`);
  if (ind.dtype !== 'int32') op.fail(`indices (${describeInput(op, indicesIndex)}) must be an integer tensor (int32, or ONNX int64)`);
  if (!Number.isInteger(axisAttr) || axisAttr < -r || axisAttr >= r) op.fail(`axis ${axisAttr} is out of range for ${describeInput(op, dataIndex)} (rank ${r}: valid axes are ${-r} to ${r - 1})`);
  const axis = axisAttr < 0 ? axisAttr + r : axisAttr;
  if (ind.shape.length !== r || ind.shape.some((d, k) => k !== axis && d > data.shape[k])) {
    op.fail(`indices ${fmtInfo(ind)} must have the rank of data ${fmtInfo(data)} and no dimension larger than it off the axis ${axis}`);
  }
  const t = op.graph.tensor(op.inId(indicesIndex));
  const A = data.shape[axis];
  if (t.kind === 'constant' && t.data) {
    const bad = Array.from(t.data).findIndex((v) => v < -A || v >= A);
    if (bad >= 0) op.fail(`index ${t.data[bad]} (element ${bad} of ${describeInput(op, indicesIndex)}) is out of range for axis ${axis} of size ${A} (valid: ${-A} to ${A - 1})`);
  }
  return { ishape: [...ind.shape], dstrides: rowMajorStrides(data.shape), axis, A };
}

/**
 * The span of data elements index element `o` can reach, [lo, hi]: its
 * coordinates before the axis are fixed; the axis and the coordinates after
 * it range over the axis and the indices' extent. Both ends grow with `o`
 * (the coordinates before the axis do, lexicographically), so a range of
 * index elements reaches from its first element's lo to its last one's hi.
 */
function reach(w: Walk, o: number, end: 'lo' | 'hi'): number {
  let flat = 0;
  for (let k = w.ishape.length - 1; k >= 0; k--) {
    const c = o % w.ishape[k];
    o = Math.floor(o / w.ishape[k]);
    if (k < w.axis) flat += c * w.dstrides[k];
    else if (end === 'hi') flat += (k === w.axis ? w.A - 1 : w.ishape[k] - 1) * w.dstrides[k];
  }
  return flat;
}

/** Index elements whose reachable span meets data elements [b, e): an interval, since both ends of the span grow with the element. */
function sourcesOf(w: Walk, b: number, e: number): [number, number] {
  const n = nelms(w.ishape);
  const search = (ok: (o: number) => boolean) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (ok(m)) hi = m;
      else lo = m + 1;
    }
    return lo;
  };
  return [search((o) => reach(w, o, 'hi') >= b), search((o) => reach(w, o, 'lo') >= e)];
}

// ---------------------------------------------------------------------------
// GatherElements

export class GatherElementsOp extends Op {
  walk!: Walk;
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly axisAttr: number,
  ) {
    super(opid, settings);
  }
  setup(): void {
    this.walk = checkWalk(this, 0, 1, this.axisAttr);
    this.setOutInfo(0, { dtype: this.inInfo(0).dtype, shape: [...this.inInfo(1).shape] });
  }
  override getGradOps(): GradOp[] {
    return floatInput(this, 0) ? [new ArgGradOp(GATHER_ELEMENTS_GRAD, this, 0, [gradOut(0), fwdIn(1, 1)])] : [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { axis: this.walk.axis };
  }
  override flops(): number {
    return 0;
  }
}

function walkArrays(w: Walk) {
  return { ishape: w.ishape, dstrides: w.dstrides };
}

/** out[c] = data[c with the axis at indices[c]]: `indices` and `out` share a shape; `data` is walked by `w`. */
function gatherElements(ctx: LowerContext, w: Walk, data: BuildTensor, indices: BuildTensor, out: BuildTensor): void {
  ctx.computeSet('gather-elements');
  for (const r of ctx.ranges(out)) {
    const lo = reach(w, r.begin, 'lo');
    const hi = reach(w, r.end - 1, 'hi') + 1;
    ctx.vertex(
      gatherElementsCodelet,
      r.tile,
      { data: ctx.onTile(data, lo, hi, r.tile), indices: ctx.onTile(indices, r.begin, r.end, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { begin: r.begin, base: lo, axis: w.axis, A: w.A },
      walkArrays(w),
    );
  }
}

function lowerGatherElements(g: GatherElementsOp, ctx: LowerContext): void {
  gatherElements(ctx, g.walk, ctx.input(0), ctx.input(1), ctx.output(0));
}

/**
 * out (mapped linearly) = `data` (or zeros when data is undefined) with `updates` combined in at the places
 * `indices` name; `updates` and `indices` share a shape, walked by `w`.
 */
export function scatterElements(ctx: LowerContext, w: Walk, data: BuildTensor | undefined, updates: BuildTensor, indices: BuildTensor, out: BuildTensor, reduction: number, label: string): void {
  ctx.computeSet(label);
  for (const r of ctx.ranges(out)) {
    const [s0, s1] = sourcesOf(w, r.begin, r.end);
    // With no update reaching the range, the vertex still reads one (count 0) so its fields are never empty.
    const [u0, u1] = s1 > s0 ? [s0, s1] : [0, 1];
    ctx.vertex(
      scatterElementsCodelet,
      r.tile,
      {
        data: data ? ctx.onTile(data, r.begin, r.end, r.tile) : ctx.onTile(updates, u0, u1, r.tile),
        updates: ctx.onTile(updates, u0, u1, r.tile),
        indices: ctx.onTile(indices, u0, u1, r.tile),
        out: ctx.slice(out, r.begin, r.end),
      },
      { begin: u0, base: r.begin, count: s1 > s0 ? s1 - s0 : 0, zero: data ? 0 : 1, reduction, axis: w.axis, A: w.A },
      walkArrays(w),
    );
  }
}

function lowerGatherElementsGrad(op: ArgGradOp<GatherElementsOp>, ctx: LowerContext): void {
  const fwd = op.fwd;
  scatterElements(ctx, fwd.walk, undefined, ctx.input(0), ctx.input(1), ctx.output(0), 1, 'gather-elements-grad');
}

// ---------------------------------------------------------------------------
// ScatterElements

export class ScatterElementsOp extends Op {
  walk!: Walk;
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly axisAttr: number,
    readonly reduction: string,
  ) {
    super(opid, settings);
  }
  setup(): void {
    if (!REDUCTIONS.includes(this.reduction)) this.fail(`reduction '${this.reduction}' is not one of ${REDUCTIONS.join(', ')}`);
    if (this.reduction !== 'none' && this.opid.version < (this.reduction === 'max' || this.reduction === 'min' ? 18 : 16)) this.fail(`reduction '${this.reduction}' needs a newer version`);
    this.walk = checkWalk(this, 0, 1, this.axisAttr);
    const u = this.inInfo(2);
    const ind = this.inInfo(1);
    if (u.dtype !== this.inInfo(0).dtype || u.shape.length !== ind.shape.length || u.shape.some((d, k) => d !== ind.shape[k])) {
      this.fail(`updates ${fmtInfo(u)} must have the indices' shape ${fmtInfo(ind)} and the data's type ${this.inInfo(0).dtype}`);
    }
    this.setOutInfo(0, { ...this.inInfo(0), shape: [...this.inInfo(0).shape] });
  }
  override getGradOps(): GradOp[] {
    if (this.reduction !== 'none' || !floatInput(this, 0)) return [];
    return [new ScatterElementsGradOp(SCATTER_DATA_GRAD, this, 0), new ScatterElementsGradOp(SCATTER_UPDATES_GRAD, this, 2)];
  }
  override attributes(): Record<string, AttributeValue> {
    return this.opid.version >= 16 ? { axis: this.walk.axis, reduction: this.reduction } : { axis: this.walk.axis };
  }
  override flops(): number {
    return 0;
  }
}

/** dData (of input 0) or dUpdates (of input 2); inputs dOut and the indices. */
export class ScatterElementsGradOp extends GradOp {
  constructor(
    opid: OperatorIdentifier,
    readonly fwd: ScatterElementsOp,
    readonly of: number,
  ) {
    super(opid, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(this.of));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut },
      { gradOpInIndex: 1, fwdIndex: 1, type: GradOpInType.In },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, this.of]]);
  }
}

function lowerScatterElements(s: ScatterElementsOp, ctx: LowerContext): void {
  scatterElements(ctx, s.walk, ctx.input(0), ctx.input(2), ctx.input(1), ctx.output(0), REDUCTIONS.indexOf(s.reduction), 'scatter-elements');
}

/** dData = dOut with every scattered place set to 0 (reduction code 5: the updates' values are not read, so the indices stand in for them). */
function lowerScatterDataGrad(g: ScatterElementsGradOp, ctx: LowerContext): void {
  const ind = ctx.input(1);
  scatterElements(ctx, g.fwd.walk, ctx.input(0), ind, ind, ctx.output(0), 5, 'scatter-elements-data-grad');
}

/** dUpdates = dOut gathered at the scattered places. */
function lowerScatterUpdatesGrad(g: ScatterElementsGradOp, ctx: LowerContext): void {
  gatherElements(ctx, g.fwd.walk, ctx.input(0), ctx.input(1), ctx.output(0));
}

export const elementsDefinitions: OpDefinition[] = [
  ...versions('GatherElements', [11, 13], (id) => defineOp({
    op: GatherElementsOp,
    id,
    description: 'out[c] = data[c with c[axis] = indices[c]] (indices may be computed); each tile reads the window of data its outputs reach',
    inputs: [{ name: 'data' }, { name: 'indices' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: 0, description: 'the axis indexed, in [-r, r-1]' } },
    grad: true,
    create: ({ attributes, settings }) => new GatherElementsOp(id, settings, attributes.int('axis')),
    lower: lowerGatherElements,
  })),
  defineOp({ op: gradOf(GatherElementsOp), id: GATHER_ELEMENTS_GRAD, description: 'dData = zeros with dOut added at the places the indices name (repeats accumulate)', lower: lowerGatherElementsGrad }),
  ...versions('ScatterElements', [11, 13, 16, 18], (id) => defineOp({
    op: ScatterElementsOp,
    id,
    description: `out = data with updates written at c with c[axis] = indices[c]${id.version >= 16 ? ` (reduction none, add, mul${id.version >= 18 ? ', max, min' : ''})` : ''}; each tile applies the updates that reach its range`,
    inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'updates' }],
    outputs: [{ name: 'output' }],
    attributes: {
      axis: { type: 'int', default: 0, description: 'the axis indexed, in [-r, r-1]' },
      ...(id.version >= 16 ? { reduction: { type: 'string' as const, default: 'none', description: 'how updates combine with data: none (replace), add, mul, max, min' } } : {}),
    },
    grad: true,
    create: ({ attributes, settings }) => new ScatterElementsOp(id, settings, attributes.int('axis'), id.version >= 16 ? attributes.string('reduction') : 'none'),
    lower: lowerScatterElements,
  })),
  // Scatter (9; deprecated at 11): ScatterElements under its older name, the same semantics (reduction none).
  ...versions('Scatter', [9], (id) => defineOp({
    op: ScatterElementsOp,
    id,
    description: 'ScatterElements under its opset-9 name (deprecated at 11): out = data with updates written at c with c[axis] = indices[c]',
    inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'updates' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: 0, description: 'the axis indexed, in [-r, r-1]' } },
    grad: true,
    create: ({ attributes, settings }) => new ScatterElementsOp(id, settings, attributes.int('axis'), 'none'),
    lower: lowerScatterElements,
  })),
  defineOp({ op: ScatterElementsGradOp, id: SCATTER_DATA_GRAD, description: 'dData = dOut with the scattered places zeroed', lower: lowerScatterDataGrad }),
  defineOp({ op: ScatterElementsGradOp, id: SCATTER_UPDATES_GRAD, description: 'dUpdates = dOut gathered at the scattered places', lower: lowerScatterUpdatesGrad }),
];
