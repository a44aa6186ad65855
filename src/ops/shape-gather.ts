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
 *   - Runtime indices: PopLibs' multiSlice on a plan (src/lower/slice-planner.ts):
 *     the table is split over tiles by rows and by columns in whole grains;
 *     tile (r, c) looks every index up in its block (MultiSlice). With one
 *     row group that is the output; with several, each group writes a
 *     partial and a combine stage (MultiSliceCombine) takes each output row
 *     from the group owning its index. The table is never copied: its
 *     createInput (createSliceableTensor) maps it as the plan reads it.
 *     Memory per tile: its block of the table, the indices, a partial of
 *     the output's rows in its columns, and (combine tiles) every group's
 *     partial of its output block.
 *   - The gradient with runtime indices: multiUpdateAdd on the same plan;
 *     dTable is mapped like the table, each tile zeroes its block and adds
 *     the output-gradient rows (its columns, brought by the exchange) whose
 *     index lands in it, in row order (MultiUpdateAdd).
 *   - The gradient with constant indices: the tiles holding the data
 *     gradient (mapped linearly) each zero their range and add the
 *     output-gradient rows landing in it (GatherSlicesGrad), reading just
 *     those rows. Owner-computes: no two tiles write one element, so
 *     repeated indices need no combining stage.
 *   - Out-of-range runtime indices give zero rows (and add nothing to the
 *     gradient); out-of-range constant indices are a compile-time error.
 */
import { GradOp, GradOpInType, Op, type AttributeValue, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { DTYPE_BYTES, type DeviceDType } from '../../sim/program.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import {
  blockOutRows,
  blockRuns,
  blockTile,
  groupOutRows,
  groupRows,
  outBlockTile,
  outputMapping,
  planC,
  planSlice,
  tableMapping,
  type SlicePlan,
} from '../lower/slice-planner.js';
import type { DeviceSpec } from '../../sim/device.js';
import { COPY_MIN_RUN_BYTES, copyRuns, zeroIntervals, type Run } from '../lower/rearrange.js';
import { GC, describeInput, floatInput, versions } from './shape-util.js';
import { gatherSlicesCodelet, gatherSlicesGradCodelet } from '../../sim/codelets/shape.js';
import { multiSliceCodelet, multiSliceCombineCodelet, multiUpdateAddCodelet } from '../../sim/codelets/multislice.js';

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

function lowerGather(op: GatherOp, ctx: LowerContext): void {
  const g = op.geometry();
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
  if (!g.constant) {
    lowerLookup(ctx, g, data, indices, out);
    return;
  }
  ctx.computeSet('gather');
  let broughtMax = 0;
  for (const r of ctx.ranges(out)) {
    const pLo = Math.floor(r.begin / g.inner);
    const pHi = Math.floor((r.end - 1) / g.inner);
    let rmin = Infinity;
    let rmax = -Infinity;
    for (let p = pLo; p <= pHi; p++) {
      const row = rowOf(g, p);
      rmin = Math.min(rmin, row);
      rmax = Math.max(rmax, row);
    }
    const lo = rmin * g.inner;
    const hi = (rmax + 1) * g.inner;
    broughtMax = Math.max(broughtMax, hi - lo);
    const [jLo, jHi] = indexWindow(g, pLo, pHi);
    ctx.vertex(
      gatherSlicesCodelet,
      r.tile,
      { data: ctx.onTile(data, lo, hi, r.tile), indices: ctx.onTile(indices, jLo, jHi, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { inner: g.inner, begin: r.begin, dataBase: lo, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: jLo },
    );
  }
  ctx.note('gather', `constant indices: each output tile reads up to ${broughtMax} of the ${data.size} data elements (${broughtMax * DTYPE_BYTES[data.dtype]} bytes per tile)`);
}

/** The lookup plan of a Gather (or its grad) with runtime indices. */
function planOf(g: GatherGeometry, dtype: DeviceDType, device: DeviceSpec): SlicePlan {
  return planSlice({ outer: g.outer, axisSize: g.axisSize, inner: g.inner, numIdx: g.numIdx, dtype }, device);
}

/** The slices of `t` ([rows, inner]) for rows [lo, hi) x columns [c0, c1) on `tile`: in place, or gathered there by the exchange. */
function block(ctx: LowerContext, t: BuildTensor, inner: number, lo: number, hi: number, c0: number, c1: number, tile: number): Slice[] {
  return ctx.gather(t, blockRuns(inner, lo, hi, c0, c1), tile);
}

function planNote(p: SlicePlan): string {
  const C = planC(p);
  return (
    `runtime indices: multiSlice plan, table ${p.rows} x ${p.inner} split into ${p.R} row group(s) of ${p.rowsPer} and ${C} column group(s) of ` +
    `${p.colBounds[1] - p.colBounds[0]} on ${p.R * C} tiles; ${p.R > 1 ? `a combine stage over ${p.B * C} tiles picks each row from its owner's partial` : 'no combine stage'}` +
    ` (estimate ${p.cycles} cycles, ${Math.ceil(p.bytesPerTile)} bytes per tile)`
  );
}

/**
 * popops::multiSlice (src/lower/slice-planner.ts): tile (r, c) looks every
 * index up in its block of the table (rows of group r, columns of group c);
 * with one row group that is the output, else a partial that the combine
 * stage reads where the index's row lives.
 */
function lowerLookup(ctx: LowerContext, g: GatherGeometry, data: BuildTensor, indices: BuildTensor, out: BuildTensor): void {
  if (data.size === 0) {
    // Every index is out of range of an empty axis: zero rows.
    zeroIntervals(ctx, out, [[0, out.size]], 'gather/zero');
    return;
  }
  const p = planOf(g, data.dtype, ctx.device);
  const C = planC(p);
  ctx.graph.setTileMapping(out, outputMapping(p), ctx.op.name);
  const nOut = g.outer * g.numIdx;
  ctx.computeSet('lookup');
  const partials: BuildTensor[] = [];
  for (let r = 0; r < p.R; r++) {
    const [lo, hi] = groupRows(p, r);
    const [pLo, pHi] = p.R === 1 ? [0, nOut] : groupOutRows(p, r);
    const nP = pHi - pLo;
    let partial: BuildTensor | undefined;
    if (p.R > 1) {
      // [C][nP][cols]: each column group's block contiguous on its tile.
      partial = ctx.addTensor(`partial${r}`, out.dtype, [nP * g.inner]);
      ctx.graph.setTileMapping(
        partial,
        Array.from({ length: C }, (_, c) => ({ tile: blockTile(p, r, c), begin: nP * p.colBounds[c], end: nP * p.colBounds[c + 1] })),
        ctx.op.name,
      );
      partials.push(partial);
    }
    if (nP === 0 || hi <= lo) continue;
    for (let c = 0; c < C; c++) {
      const [c0, c1] = [p.colBounds[c], p.colBounds[c + 1]];
      if (c1 <= c0) continue;
      const tile = blockTile(p, r, c);
      const outField = partial ? [ctx.slice(partial, nP * c0, nP * c1)] : blockRuns(g.inner, 0, nOut, c0, c1).map(([b, e]) => ctx.slice(out, b, e));
      ctx.vertex(
        multiSliceCodelet,
        tile,
        { base: block(ctx, data, g.inner, lo, hi, c0, c1, tile), offsets: ctx.onTile(indices, 0, g.numIdx, tile), out: outField },
        { cols: c1 - c0, rowBase: lo, rows: hi - lo, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: 0, outRowBase: pLo, zeroMissing: partial ? 0 : 1 },
      );
    }
  }
  ctx.note('gather', planNote(p));
  if (p.R === 1) return;
  ctx.computeSet('combine');
  for (let b = 0; b < p.B; b++) {
    const [qLo, qHi] = blockOutRows(p, b);
    if (qHi <= qLo) continue;
    const [jLo, jHi] = indexWindow(g, qLo, qHi - 1);
    for (let c = 0; c < C; c++) {
      const [c0, c1] = [p.colBounds[c], p.colBounds[c + 1]];
      if (c1 <= c0) continue;
      const tile = outBlockTile(p, b, c);
      const parts: Slice[] = [];
      const partGroup: number[] = [];
      const partRow: number[] = [];
      for (let r = 0; r < p.R; r++) {
        const [pLo, pHi] = groupOutRows(p, r);
        const a = Math.max(qLo, pLo);
        const e = Math.min(qHi, pHi);
        if (e <= a || groupRows(p, r)[1] <= groupRows(p, r)[0]) continue;
        const nP = pHi - pLo;
        const at = nP * c0 + (a - pLo) * (c1 - c0);
        parts.push(ctx.onTile(partials[r], at, at + (e - a) * (c1 - c0), tile));
        partGroup.push(r);
        partRow.push(a);
      }
      ctx.vertex(
        multiSliceCombineCodelet,
        tile,
        { parts, offsets: ctx.onTile(indices, jLo, jHi, tile), out: blockRuns(g.inner, qLo, qHi, c0, c1).map(([s, e]) => ctx.slice(out, s, e)) },
        { cols: c1 - c0, rowsPer: p.rowsPer, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: jLo, outRowBase: qLo },
        { partGroup, partRow },
      );
    }
  }
}

function lowerGatherGrad(op: GatherGradOp, ctx: LowerContext): void {
  const g = op.fwd.geometry();
  const dy = ctx.input(0);
  const indices = ctx.input(1);
  const out = ctx.output(0);
  if (!g.constant) {
    lowerUpdateAdd(ctx, g, dy, indices, out);
    return;
  }
  const ranges = ctx.ranges(out);
  // Output-gradient rows [pLo, pHi] each range reads: only the rows whose data row overlaps it.
  const lo = new Array<number>(ranges.length).fill(Infinity);
  const hi = new Array<number>(ranges.length).fill(-Infinity);
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
      gatherSlicesGradCodelet,
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

/**
 * popops::multiUpdateAdd on the lookup plan: dTable is mapped like the table;
 * tile (r, c) zeroes its block and adds the output-gradient rows (columns of
 * group c, brought by the exchange) whose index lands in it, in row order.
 * Owner-computes: no two tiles write one element, so no combining stage.
 */
function lowerUpdateAdd(ctx: LowerContext, g: GatherGeometry, dy: BuildTensor, indices: BuildTensor, out: BuildTensor): void {
  if (out.size === 0) return;
  const p = planOf(g, out.dtype, ctx.device);
  const C = planC(p);
  ctx.graph.setTileMapping(out, tableMapping(p), ctx.op.name);
  if (g.numIdx === 0 || g.inner === 0) {
    zeroIntervals(ctx, out, [[0, out.size]], 'gather-grad/zero');
    return;
  }
  ctx.computeSet('update');
  for (let r = 0; r < p.R; r++) {
    const [lo, hi] = groupRows(p, r);
    if (hi <= lo) continue;
    const [pLo, pHi] = p.R === 1 ? [0, g.outer * g.numIdx] : groupOutRows(p, r);
    for (let c = 0; c < C; c++) {
      const [c0, c1] = [p.colBounds[c], p.colBounds[c + 1]];
      if (c1 <= c0) continue;
      const tile = blockTile(p, r, c);
      ctx.vertex(
        multiUpdateAddCodelet,
        tile,
        {
          grads: block(ctx, dy, g.inner, pLo, pHi, c0, c1, tile),
          offsets: ctx.onTile(indices, 0, g.numIdx, tile),
          out: blockRuns(g.inner, lo, hi, c0, c1).map(([b, e]) => ctx.slice(out, b, e)),
        },
        { cols: c1 - c0, rowBase: lo, rows: hi - lo, numIdx: g.numIdx, axisSize: g.axisSize, idxBase: 0, gradRowBase: pLo },
      );
    }
  }
  ctx.note('gather-grad', `runtime indices: multiUpdateAdd on the lookup's plan, dTable mapped like the table (${p.R} row group(s) x ${C} column group(s))`);
}

/**
 * createSliceableTensor: a table read with runtime indices is created where
 * the lookup plan reads it (and its gradient is mapped the same way); the
 * indices and constant-index tables have no preference.
 */
function gatherInputLayout(op: GatherOp, index: number, device: DeviceSpec): TileRange[] | undefined {
  const g = op.geometry();
  if (index !== 0 || g.constant || g.outer * g.numIdx * g.inner === 0 || g.outer * g.axisSize * g.inner === 0) return undefined;
  return tableMapping(planOf(g, op.inInfo(0).dtype as DeviceDType, device));
}

export const gatherDefinitions: OpDefinition[] = [
  ...versions('Gather', [11, 13], (id) => defineOp({
    op: GatherOp,
    id,
    description: 'out = data with axis indexed by indices (constant or runtime int32, any shape; an embedding lookup on axis 0); gradient for data only',
    inputs: [{ name: 'data' }, { name: 'indices' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: 0, description: 'axis to gather on, in [-r, r-1]' } },
    grad: true,
    create: ({ attributes, settings }) => new GatherOp(attributes.int('axis'), settings, id),
    createInput: gatherInputLayout,
    lower: lowerGather,
  })),
  defineOp({ op: GatherGradOp, id: GATHER_GRAD, description: 'dData = zeros with the rows of dOut added at their indices (repeated indices accumulate)', lower: lowerGatherGrad }),
];

