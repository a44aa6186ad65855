/**
 * Gather (ONNX 11, 13): out = data with its `axis` replaced by the indices'
 * shape, out[o, j..., c] = data[o, indices[j...], c]. With axis 0 and a 2-D
 * table this is an embedding lookup. Indices are int32 (ONNX int64), either
 * a constant initializer or a runtime input; negative indices count from the
 * end. The data gradient scatter-adds the output gradient's rows into zeros
 * (repeated indices accumulate); the indices get no gradient.
 *
 * Viewed as [outer, numIdx, inner] (out) from [outer, axisSize, inner]
 * (data), each output row p = o x numIdx + j copies data row
 * o x axisSize + indices[j].
 *
 * Lowering choices and their memory cost:
 *   - Constant indices, rows of at least COPY_MIN_RUN_BYTES: the rows are
 *     known at compile time, so the exchange copies them straight into the
 *     output (consecutive indices merge into one copy). No extra memory.
 *   - Constant indices, short rows: one GatherSlices vertex per output tile
 *     range, reading only the interval of data rows its indices name (from
 *     the lowest to the highest). Memory: that interval per tile.
 *   - Runtime indices: no tile can know which rows it needs, so each output
 *     tile range gets the whole data block of the outer positions it covers
 *     (for an embedding lookup, the whole table) and the indices it covers.
 *     Memory: up to the table's bytes on every tile holding output. This is
 *     PopLibs' multiSlice with the table broadcast rather than sharded by
 *     rows (sharding would need a second, combining stage and puts the
 *     output's bytes on every table tile instead); it suits tables up to a
 *     good fraction of one tile's memory, and larger ones fail compilation
 *     with the out-of-memory error naming the tile.
 *   - The gradient: the tiles holding the data gradient (mapped linearly)
 *     each zero their range and add every output-gradient row whose index
 *     lands in it (GatherSlicesGrad, PopLibs' multiUpdateAdd); each tile reads
 *     the output-gradient rows of its outer positions (runtime indices) or
 *     just the rows landing on it (constant indices), and the indices.
 *     Owner-computes: no two tiles write one element, so repeated indices
 *     need no combining stage.
 *   - Out-of-range runtime indices give zero rows (and add nothing to the
 *     gradient); out-of-range constant indices are a compile-time error.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import type { OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import type { LowerContext } from '../lower/context.js';
import { COPY_MIN_RUN_BYTES, copyRuns, zeroIntervals, type Run } from '../lower/rearrange.js';
import { GC, describeInput, floatInput, versions } from './shape-util.js';

const GATHER_GRAD = { domain: GC, type: 'GatherGrad', version: 1 };

/** Gather's problem as [outer, axisSize, inner] -> [outer, numIdx, inner]. */
interface GatherGeometry {
  outer: number;
  axisSize: number;
  inner: number;
  numIdx: number;
  /** Normalised constant indices, or undefined for runtime indices. */
  constant?: number[];
}

export class GatherOp extends Op {
  axis = 0;
  constructor(
    readonly axisAttr: number,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const ind = this.inInfo(1);
    const r = x.shape.length;
    if (r === 0) this.fail(`cannot gather from a scalar (${describeInput(this)})`);
    if (ind.dtype !== 'int32') this.fail(`indices (${describeInput(this, 1)}) must be an integer tensor (int32, or ONNX int64)`);
    if (!Number.isInteger(this.axisAttr) || this.axisAttr < -r || this.axisAttr >= r) {
      this.fail(`axis ${this.axisAttr} is out of range for ${describeInput(this)} (rank ${r}: valid axes are ${-r} to ${r - 1})`);
    }
    const a = this.axisAttr < 0 ? this.axisAttr + r : this.axisAttr;
    this.axis = a;
    const t = this.graph.tensor(this.inId(1));
    if (t.kind === 'constant' && t.data) {
      const dim = x.shape[a];
      const bad = Array.from(t.data).findIndex((v) => v < -dim || v >= dim);
      if (bad >= 0) {
        this.fail(`index ${t.data[bad]} (element ${bad} of ${describeInput(this, 1)}) is out of range for axis ${a} of ${describeInput(this)} (valid: ${-dim} to ${dim - 1})`);
      }
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: [...x.shape.slice(0, a), ...ind.shape, ...x.shape.slice(a + 1)] });
  }
  geometry(): GatherGeometry {
    const s = this.inInfo(0).shape;
    const t = this.graph.tensor(this.inId(1));
    const axisSize = s[this.axis];
    return {
      outer: nelms(s.slice(0, this.axis)),
      axisSize,
      inner: nelms(s.slice(this.axis + 1)),
      numIdx: nelms(this.inInfo(1).shape),
      constant: t.kind === 'constant' && t.data ? Array.from(t.data, (v) => (v < 0 ? v + axisSize : v)) : undefined,
    };
  }
  override getGradOps(): GradOp[] {
    return floatInput(this, 0) ? [new GatherGradOp(this)] : [];
  }
  override attributes(): Record<string, AttributeValue> {
    return { axis: this.axis };
  }
}

export class GatherGradOp extends GradOp {
  constructor(readonly fwd: GatherOp) {
    super(GATHER_GRAD, fwd);
  }
  setup(): void {
    this.setOutInfo(0, this.fwdInInfo(0));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.GradOut },
      { gradOpInIndex: 1, fwdIndex: 1, type: GradOpInType.In },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 0]]);
  }
}

/** Indices [lo, hi) that output rows [pLo, pHi] read: the j range when they share one outer position, else all. */
function indexWindow(g: GatherGeometry, pLo: number, pHi: number): [number, number] {
  if (Math.floor(pLo / g.numIdx) !== Math.floor(pHi / g.numIdx)) return [0, g.numIdx];
  return [pLo % g.numIdx, (pHi % g.numIdx) + 1];
}

/** Data row of output row p (constant indices). */
function rowOf(g: GatherGeometry, p: number): number {
  const j = p % g.numIdx;
  return Math.floor(p / g.numIdx) * g.axisSize + g.constant![j];
}

function lowerGather(op: Op, ctx: LowerContext): void {
  const g = (op as GatherOp).geometry();
  const data = ctx.input(0);
  const indices = ctx.input(1);
  const out = ctx.output(0);
  if (out.size === 0) return;
  if (g.constant && g.inner * DTYPE_BYTES[data.dtype] >= COPY_MIN_RUN_BYTES) {
    const runs: Run[] = [];
    for (let p = 0; p < g.outer * g.numIdx; p++) runs.push({ src: data, srcBegin: rowOf(g, p) * g.inner, dst: out, dstBegin: p * g.inner, n: g.inner });
    ctx.note('gather', `constant indices: ${runs.length} rows of ${g.inner} elements copied by the exchange`);
    copyRuns(ctx, 'gather', runs);
    return;
  }
  ctx.computeSet('gather');
  let broughtMax = 0;
  for (const r of ctx.ranges(out)) {
    const pLo = Math.floor(r.begin / g.inner);
    const pHi = Math.floor((r.end - 1) / g.inner);
    let lo: number;
    let hi: number;
    if (g.constant) {
      let rmin = Infinity;
      let rmax = -Infinity;
      for (let p = pLo; p <= pHi; p++) {
        const row = rowOf(g, p);
        rmin = Math.min(rmin, row);
        rmax = Math.max(rmax, row);
      }
      lo = rmin * g.inner;
      hi = (rmax + 1) * g.inner;
    } else {
      lo = Math.floor(pLo / g.numIdx) * g.axisSize * g.inner;
      hi = (Math.floor(pHi / g.numIdx) + 1) * g.axisSize * g.inner;
    }
    broughtMax = Math.max(broughtMax, hi - lo);
    const [jLo, jHi] = indexWindow(g, pLo, pHi);
    ctx.vertex(
      'GatherSlices',
      r.tile,
      { data: ctx.onTile(data, lo, hi, r.tile), indices: ctx.onTile(indices, jLo, jHi, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { inner: g.inner, begin: r.begin, dataBase: lo, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: jLo },
    );
  }
  ctx.note(
    'gather',
    `${g.constant ? 'constant' : 'runtime'} indices: each output tile reads up to ${broughtMax} of the ${data.size} data elements ` +
      `(${broughtMax * DTYPE_BYTES[data.dtype]} bytes per tile)`,
  );
}

function lowerGatherGrad(op: Op, ctx: LowerContext): void {
  const g = (op as GatherGradOp).fwd.geometry();
  const dy = ctx.input(0);
  const indices = ctx.input(1);
  const out = ctx.output(0);
  const ranges = ctx.ranges(out);
  const block = g.axisSize * g.inner;
  // Output-gradient rows [pLo, pHi] each range reads: those of its outer positions (runtime
  // indices), or only the rows whose data row overlaps it (constant indices).
  const lo = new Array<number>(ranges.length).fill(Infinity);
  const hi = new Array<number>(ranges.length).fill(-Infinity);
  if (g.constant) {
    const rangeAt = (e: number) => {
      let a = 0;
      let b = ranges.length - 1;
      while (a < b) {
        const mid = (a + b + 1) >> 1;
        if (ranges[mid].begin <= e) a = mid;
        else b = mid - 1;
      }
      return a;
    };
    for (let p = 0; p < g.outer * g.numIdx; p++) {
      const d0 = rowOf(g, p) * g.inner;
      for (let k = rangeAt(d0); k < ranges.length && ranges[k].begin < d0 + g.inner; k++) {
        if (ranges[k].end <= d0) continue;
        lo[k] = Math.min(lo[k], p);
        hi[k] = Math.max(hi[k], p);
      }
    }
  } else if (g.numIdx > 0) {
    for (const [k, r] of ranges.entries()) {
      lo[k] = Math.floor(r.begin / block) * g.numIdx;
      hi[k] = (Math.floor((r.end - 1) / block) + 1) * g.numIdx - 1;
    }
  }
  const empty: [number, number][] = [];
  const used = [...ranges.keys()].filter((k) => {
    if (lo[k] <= hi[k]) return true;
    empty.push([ranges[k].begin, ranges[k].end]);
    return false;
  });
  if (used.length > 0) ctx.computeSet('gather-grad');
  for (const k of used) {
    const r = ranges[k];
    const [jLo, jHi] = indexWindow(g, lo[k], hi[k]);
    ctx.vertex(
      'GatherSlicesGrad',
      r.tile,
      {
        gradOut: ctx.onTile(dy, lo[k] * g.inner, (hi[k] + 1) * g.inner, r.tile),
        indices: ctx.onTile(indices, jLo, jHi, r.tile),
        out: ctx.slice(out, r.begin, r.end),
      },
      { inner: g.inner, begin: r.begin, gradBase: lo[k] * g.inner, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: jLo },
    );
  }
  zeroIntervals(ctx, out, empty, 'gather-grad/zero', used.length > 0);
}

export const gatherDefinitions: OpDefinition[] = [
  ...versions('Gather', [11, 13], (id) => ({
    description: 'out = data with axis indexed by indices (constant or runtime int32, any shape; an embedding lookup on axis 0); gradient for data only',
    inputs: [{ name: 'data' }, { name: 'indices' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: 0, description: 'axis to gather on, in [-r, r-1]' } },
    grad: true,
    create: ({ attributes, settings }) => new GatherOp(attributes.int('axis'), settings, id),
    lower: lowerGather,
  })),
  { id: GATHER_GRAD, description: 'dData = zeros with the rows of dOut added at their indices (repeated indices accumulate)', lower: lowerGatherGrad },
];

