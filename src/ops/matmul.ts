/**
 * MatMul (ONNX, versions 1, 9 and 13: one semantics, NumPy's matmul):
 * operands [..., M, K] x [..., K, N] -> [...batch, M, N], the batch dimensions
 * broadcast against each other; a 1-D first operand is a row [1, K] and a 1-D
 * second operand a column [K, 1], the added dimension removed from the result.
 *
 * Grad ops (PopART's MatMulLhsGradOp / MatMulRhsGradOp):
 *   dA = dY x B^T   (GradOut 0, In 1 -> grad of In 0)
 *   dB = A^T x dY   (In 0, GradOut 0 -> grad of In 1)
 * each summed over the batch dimensions its operand was broadcast along.
 *
 * All three lower to one problem for the matmul planner
 * (src/lower/matmul-planner.ts): output groups g, each
 *   out[g] (m x n) = sum over terms t of opA(A[aBatch(g, t)]) x opB(B[bBatch(g, t)]),
 * with a contraction of terms x K per group. The forward has one term per
 * group; a grad sums the terms of every batch element its operand fed, so a
 * broadcast reduction is just a longer contraction, split over tiles and
 * reduced in fp32 like any other. Stage 1 runs one AMP vertex per tile on the
 * operand blocks the exchange brings it; stage 2 (when the contraction is
 * split) sums the fp32 partials on the tiles owning the output.
 */
import type { PlanOverrides } from '../lower/plan-overrides.js';
import { GradOp, GradOpInType, Op, type GradInOutMapper, type OpSettings } from '../ir/op.js';
import { defineOp, type InputUse, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms, type TensorInfo } from '../ir/tensorinfo.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import { TileMappingBuilder } from '../lower/tile-mapping.js';
import { layoutFromReads, pushRun, RunList, type ReadGroup } from '../lower/layout.js';
import { layoutTile } from '../lower/linear.js';
import { DeviceMemo } from '../lower/plan-memo.js';
import { describePlan, linearMapping, planMatMul, type MatMulDType, type MatMulPlan, type MatMulShape, type PlanResult } from '../lower/matmul-planner.js';
import { ampMatMulCodelet } from '../../sim/codelets/amp.js';
import { matMulReduceCodelet } from '../../sim/codelets/matmul.js';

const MATMUL = { domain: 'ai.onnx', type: 'MatMul', version: 13 };
const LHS_GRAD = { domain: 'ai.graphcore', type: 'MatMulLhsGrad', version: 1 };
const RHS_GRAD = { domain: 'ai.graphcore', type: 'MatMulRhsGrad', version: 1 };

/** The matmul a pair of operand shapes describes. */
export interface MatMulDims {
  /** Batch shapes of A and B (before broadcasting) and of the output. */
  aBatch: number[];
  bBatch: number[];
  batch: number[];
  m: number;
  k: number;
  n: number;
  /** 1-D operands (their added dimension is dropped from the output). */
  aVector: boolean;
  bVector: boolean;
  outShape: number[];
}

/** NumPy broadcast of two batch shapes, or null. */
function broadcastShapes(a: readonly number[], b: readonly number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return null;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Shapes of a matmul of `a` by `b`, or a message saying why they do not multiply. */
export function matMulDims(a: readonly number[], b: readonly number[]): MatMulDims | string {
  if (a.length === 0 || b.length === 0) return 'operands must have at least one dimension (ONNX MatMul does not take scalars)';
  const aVector = a.length === 1;
  const bVector = b.length === 1;
  const a2 = aVector ? [1, a[0]] : [...a];
  const b2 = bVector ? [b[0], 1] : [...b];
  const m = a2[a2.length - 2];
  const k = a2[a2.length - 1];
  const kb = b2[b2.length - 2];
  const n = b2[b2.length - 1];
  if (k !== kb) return `inner dimensions differ`;
  const aBatch = a2.slice(0, -2);
  const bBatch = b2.slice(0, -2);
  const batch = broadcastShapes(aBatch, bBatch);
  if (!batch) return `batch dimensions [${aBatch.join(', ')}] and [${bBatch.join(', ')}] do not broadcast (each pair must be equal or one of them 1)`;
  const outShape = [...batch, ...(aVector ? [] : [m]), ...(bVector ? [] : [n])];
  return { aBatch, bBatch, batch, m, k, n, aVector, bVector, outShape };
}

export class MatMulOp extends Op {
  static readonly defaultOperatorId = MATMUL;
  constructor(settings: OpSettings, version = MATMUL.version) {
    super({ ...MATMUL, version }, settings);
  }
  dims(): MatMulDims {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    const d = matMulDims(a.shape, b.shape);
    if (typeof d === 'string') {
      if (d === 'inner dimensions differ') {
        const k = a.shape[a.shape.length - 1];
        this.fail(
          `inner dimensions differ: ${this.inId(0)} is ${fmtInfo(a)}, ${this.inId(1)} is ${fmtInfo(b)}; ` +
            `${this.inId(1)} needs ${k} ${b.shape.length === 1 ? 'elements' : 'rows'}`,
        );
      }
      this.fail(`${d}: ${this.inId(0)} is ${fmtInfo(a)}, ${this.inId(1)} is ${fmtInfo(b)}`);
    }
    return d;
  }
  setup(): void {
    const a = this.inInfo(0);
    const b = this.inInfo(1);
    if (a.dtype !== b.dtype) this.fail(`operands must have one dtype, got ${a.dtype} and ${b.dtype}`);
    if (a.dtype !== 'float32' && a.dtype !== 'float16') this.fail(`supports float32 and float16 operands (the AMP's), got ${a.dtype}`);
    this.setOutInfo(0, { dtype: a.dtype, shape: this.dims().outShape });
  }
  override getGradOps(): GradOp[] {
    return [new MatMulLhsGradOp(this), new MatMulRhsGradOp(this)];
  }
  override flops(): number {
    const d = this.dims();
    return 2 * nelms(d.batch) * d.m * d.k * d.n;
  }
}

/** dA = dY x B^T, summed over the batch dimensions A was broadcast along. */
export class MatMulLhsGradOp extends GradOp {
  static readonly defaultOperatorId = LHS_GRAD;
  /** The forward matmul's shapes, fixed at setup. */
  dims!: MatMulDims;
  constructor(fwd: MatMulOp) {
    super(LHS_GRAD, fwd);
  }
  setup(): void {
    this.dims = dimsOf(this.fwdInInfo(0), this.fwdInInfo(1));
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
  override flops(): number {
    return this.fwdOp.flops();
  }
}

/** dB = A^T x dY, summed over the batch dimensions B was broadcast along. */
export class MatMulRhsGradOp extends GradOp {
  static readonly defaultOperatorId = RHS_GRAD;
  /** The forward matmul's shapes, fixed at setup. */
  dims!: MatMulDims;
  constructor(fwd: MatMulOp) {
    super(RHS_GRAD, fwd);
  }
  setup(): void {
    this.dims = dimsOf(this.fwdInInfo(0), this.fwdInInfo(1));
    this.setOutInfo(0, this.fwdInInfo(1));
  }
  gradInputInfo(): GradInOutMapper[] {
    return [
      { gradOpInIndex: 0, fwdIndex: 0, type: GradOpInType.In },
      { gradOpInIndex: 1, fwdIndex: 0, type: GradOpInType.GradOut },
    ];
  }
  gradOutToNonGradIn(): Map<number, number> {
    return new Map([[0, 1]]);
  }
  override flops(): number {
    return this.fwdOp.flops();
  }
}

// ---------------------------------------------------------------------------
// The lowering problem

/**
 * out[g] (m x n) = sum over t < terms of opA(A[termA[g, t]]) x opB(B[termB[g, t]]),
 * each term contracting kPerTerm. A is stored batch-major, each batch [m, k]
 * (transA: [k, m]); B likewise [k, n] (transB: [n, k]); out [groups, m, n].
 */
export interface MatMulProblem {
  groups: number;
  m: number;
  n: number;
  kPerTerm: number;
  terms: number;
  termA: Int32Array;
  termB: Int32Array;
  transA: boolean;
  transB: boolean;
}

/** For each flat index g over `batch`, the flat index into `sub` (right-aligned, size-1 dimensions broadcast). */
function batchIndexMap(batch: readonly number[], sub: readonly number[]): Int32Array {
  const total = nelms(batch);
  const out = new Int32Array(total);
  const off = batch.length - sub.length;
  const subStrides = new Array<number>(sub.length).fill(1);
  for (let d = sub.length - 2; d >= 0; d--) subStrides[d] = subStrides[d + 1] * sub[d + 1];
  for (let g = 0; g < total; g++) {
    let rem = g;
    let idx = 0;
    for (let d = batch.length - 1; d >= 0; d--) {
      const i = rem % batch[d];
      rem = Math.floor(rem / batch[d]);
      const s = d - off;
      if (s >= 0 && sub[s] !== 1) idx += i * subStrides[s];
    }
    out[g] = idx;
  }
  return out;
}

/** Group the batch elements g by key[g] (0..groups-1), in order: the terms of each output group. */
function termsByGroup(key: Int32Array, groups: number): Int32Array[] {
  const lists: number[][] = Array.from({ length: groups }, () => []);
  for (let g = 0; g < key.length; g++) lists[key[g]].push(g);
  return lists.map((l) => Int32Array.from(l));
}

export function forwardProblem(d: MatMulDims): MatMulProblem {
  const groups = nelms(d.batch);
  return {
    groups,
    m: d.m,
    n: d.n,
    kPerTerm: d.k,
    terms: 1,
    termA: batchIndexMap(d.batch, d.aBatch),
    termB: batchIndexMap(d.batch, d.bBatch),
    transA: false,
    transB: false,
  };
}

/** dA[ga] = sum over g with aIdx(g) = ga of dY[g] x B[bIdx(g)]^T: A operand dY, B operand B transposed. */
export function lhsGradProblem(d: MatMulDims): MatMulProblem {
  const aIdx = batchIndexMap(d.batch, d.aBatch);
  const bIdx = batchIndexMap(d.batch, d.bBatch);
  const groups = nelms(d.aBatch);
  const lists = termsByGroup(aIdx, groups);
  const terms = lists[0].length;
  const termA = new Int32Array(groups * terms);
  const termB = new Int32Array(groups * terms);
  lists.forEach((l, ga) => l.forEach((g, t) => ((termA[ga * terms + t] = g), (termB[ga * terms + t] = bIdx[g]))));
  return { groups, m: d.m, n: d.k, kPerTerm: d.n, terms, termA, termB, transA: false, transB: true };
}

/** dB[gb] = sum over g with bIdx(g) = gb of A[aIdx(g)]^T x dY[g]: A operand A transposed, B operand dY. */
export function rhsGradProblem(d: MatMulDims): MatMulProblem {
  const aIdx = batchIndexMap(d.batch, d.aBatch);
  const bIdx = batchIndexMap(d.batch, d.bBatch);
  const groups = nelms(d.bBatch);
  const lists = termsByGroup(bIdx, groups);
  const terms = lists[0].length;
  const termA = new Int32Array(groups * terms);
  const termB = new Int32Array(groups * terms);
  lists.forEach((l, gb) => l.forEach((g, t) => ((termA[gb * terms + t] = aIdx[g]), (termB[gb * terms + t] = g))));
  return { groups, m: d.k, n: d.n, kPerTerm: d.m, terms, termA, termB, transA: true, transB: false };
}

/** The planner's view of a problem. */
export function problemShape(p: MatMulProblem, inDtype: MatMulDType, outDtype: MatMulDType): MatMulShape {
  return { groups: p.groups, m: p.m, n: p.n, k: p.terms * p.kPerTerm, inDtype, outDtype };
}

type Range = [number, number];

/**
 * The pieces of the contraction range [c0, c1) over terms of length K, as
 * flat triples (term, k0, k1): asked per tile block, an object per piece was
 * much of a matmul's garbage.
 */
function segments(c0: number, c1: number, K: number): number[] {
  const out: number[] = [];
  for (let t = Math.floor(c0 / K); t * K < c1; t++) out.push(t, Math.max(c0, t * K) - t * K, Math.min(c1, (t + 1) * K) - t * K);
  return out;
}

/**
 * The runs of A holding, per group of [g0, g1), op(A)[r0:r1, c0:c1] in the
 * order the AMP vertex reads it, as one RunList (a pair per row was most of
 * a matmul's garbage: a BERT layer's gathers read millions of rows).
 */
function aRanges(p: MatMulProblem, g0: number, g1: number, r0: number, r1: number, c0: number, c1: number): RunList {
  const K = p.kPerTerm;
  const segs = segments(c0, c1, K);
  const out = new RunList();
  for (let g = g0; g < g1; g++) {
    if (!p.transA) {
      // stored [m, K]: row r is [r K, r K + K); layout [rows, contraction]
      for (let r = r0; r < r1; r++)
        for (let i = 0; i < segs.length; i += 3) {
          const at = p.termA[g * p.terms + segs[i]] * p.m * K + r * K;
          out.push(at + segs[i + 1], at + segs[i + 2]);
        }
    } else {
      // stored [K, m]: layout [contraction, rows]
      for (let i = 0; i < segs.length; i += 3) {
        const base = p.termA[g * p.terms + segs[i]] * p.m * K;
        for (let k = segs[i + 1]; k < segs[i + 2]; k++) out.push(base + k * p.m + r0, base + k * p.m + r1);
      }
    }
  }
  return out;
}

/** The runs of B holding, per group, op(B)[c0:c1, j0:j1] in the order the AMP vertex reads it (as aRanges). */
function bRanges(p: MatMulProblem, g0: number, g1: number, c0: number, c1: number, j0: number, j1: number): RunList {
  const K = p.kPerTerm;
  const segs = segments(c0, c1, K);
  const out = new RunList();
  for (let g = g0; g < g1; g++) {
    if (!p.transB) {
      // stored [K, n]: layout [contraction, cols]
      for (let i = 0; i < segs.length; i += 3) {
        const base = p.termB[g * p.terms + segs[i]] * K * p.n;
        for (let k = segs[i + 1]; k < segs[i + 2]; k++) out.push(base + k * p.n + j0, base + k * p.n + j1);
      }
    } else {
      // stored [n, K]: layout [cols, contraction]
      for (let j = j0; j < j1; j++)
        for (let i = 0; i < segs.length; i += 3) {
          const at = p.termB[g * p.terms + segs[i]] * K * p.n + j * K;
          out.push(at + segs[i + 1], at + segs[i + 2]);
        }
    }
  }
  return out;
}

/** A serial step's window of the output: rows r and columns j of every group. */
interface Window {
  r: Range;
  j: Range;
}

/**
 * Element runs as a flat list [b0, e0, b1, e1, ...]: a block's runs are
 * listed once and read by its output mapping, its vertex and the
 * reduction's, without an array per run (most of a matmul's garbage).
 */
type Runs = number[];

/** Append [b, e) to `runs`, merged into the last run when adjacent and that run is at or after index `from`. */
function pushFlat(runs: Runs, b: number, e: number, from = 0): void {
  if (e <= b) return;
  const n = runs.length;
  if (n > from && runs[n - 1] === b) runs[n - 1] = e;
  else runs.push(b, e);
}

/** A block of the window in window-local row-major coordinates (adjacent rows merged). */
function blockLocalRuns(w: Window, bl: Block): Runs {
  const rows = w.r[1] - w.r[0];
  const cols = w.j[1] - w.j[0];
  const out: Runs = [];
  for (let gi = bl.g[0]; gi < bl.g[1]; gi++)
    for (let ri = bl.r[0]; ri < bl.r[1]; ri++) {
      const base = (gi * rows + ri - w.r[0]) * cols - w.j[0];
      pushFlat(out, base + bl.j[0], base + bl.j[1]);
    }
  return out;
}

/** Append the runs of out [groups, m, n] holding window-local elements [c0, c1) (merged among themselves only). */
function windowToOut(p: MatMulProblem, w: Window, c0: number, c1: number, out: Runs): void {
  const rows = w.r[1] - w.r[0];
  const cols = w.j[1] - w.j[0];
  const from = out.length;
  for (let c = c0; c < c1; ) {
    const q = Math.floor(c / cols);
    const col = c - q * cols;
    const len = Math.min(c1 - c, cols - col);
    const g = Math.floor(q / rows);
    const r = w.r[0] + (q - g * rows);
    const at = (g * p.m + r) * p.n + w.j[0] + col;
    pushFlat(out, at, at + len, from);
    c += len;
  }
}

/** Window-local runs mapped into out, each run's pieces merged among themselves. */
function localToOut(p: MatMulProblem, w: Window, local: Runs): Runs {
  const out: Runs = [];
  for (let i = 0; i < local.length; i += 2) windowToOut(p, w, local[i], local[i + 1], out);
  return out;
}

function holders(ctx: LowerContext, t: BuildTensor): number {
  const seen = new Uint8Array(ctx.graph.numTiles);
  let n = 0;
  const m = t.mapping;
  for (let i = 0; m && i < m.length; i++)
    if (m.end(i) > m.begin(i) && seen[m.tile(i)] === 0) {
      seen[m.tile(i)] = 1;
      n++;
    }
  return n;
}

interface Block {
  tile: number;
  g: Range;
  r: Range;
  j: Range;
  c: Range;
  kk: number;
}

function blockSize(bl: Block): number {
  return (bl.g[1] - bl.g[0]) * (bl.r[1] - bl.r[0]) * (bl.j[1] - bl.j[0]);
}

/**
 * Where a split contraction's partials live in the window's partials tensor [gK, elems]: each block's
 * partial contiguous (its [groups, rows, cols] row-major, as the AMP writes it), the blocks of partial kk
 * after one another in kk x elems. One run per block: laid out in the window's order, a block was a run
 * per row on its tile (a mapping range, a tile interval and an output region each), the most intervals
 * of a BERT layer. `begin[i]`: block i's first element; `order`: the blocks by begin; `runs(kk, c0, c1,
 * out)` appends the runs of partial kk holding window-local elements [c0, c1), in that order.
 */
function partialBlocks(p: MatMulProblem, plan: MatMulPlan, w: Window, blocks: readonly Block[]): { begin: Int32Array; order: number[]; runs: (kk: number, c0: number, c1: number, out: RunList) => void } {
  const { gM, gN, gK, bBlock, mBlock, nBlock } = plan;
  const rows = w.r[1] - w.r[0];
  const cols = w.j[1] - w.j[0];
  const elems = p.groups * rows * cols;
  const cell = (g: number, ri: number, ci: number, kk: number) => ((Math.floor(g / bBlock) * gM + Math.floor(ri / mBlock)) * gN + Math.floor(ci / nBlock)) * gK + kk;
  const begin = new Int32Array(blocks.length);
  const byCell = new Int32Array(plan.gB * gM * gN * gK).fill(-1);
  const order: number[] = [];
  for (let kk = 0; kk < gK; kk++) {
    let at = kk * elems;
    blocks.forEach((bl, i) => {
      if (bl.kk !== kk) return;
      begin[i] = at;
      at += blockSize(bl);
      byCell[cell(bl.g[0], bl.r[0] - w.r[0], bl.j[0] - w.j[0], kk)] = i;
      order.push(i);
    });
  }
  const runs = (kk: number, c0: number, c1: number, out: RunList) => {
    for (let c = c0; c < c1; ) {
      const g = Math.floor(c / (rows * cols));
      const ri = Math.floor((c - g * rows * cols) / cols);
      const ci = c - (g * rows + ri) * cols;
      const bl = blocks[byCell[cell(g, ri, ci, kk)]];
      const bj0 = bl.j[0] - w.j[0];
      const len = Math.min(c1 - c, bl.j[1] - w.j[0] - ci);
      const local = ((g - bl.g[0]) * (bl.r[1] - bl.r[0]) + (ri - (bl.r[0] - w.r[0]))) * (bl.j[1] - bl.j[0]) + (ci - bj0);
      const b = begin[byCell[cell(g, ri, ci, kk)]] + local;
      out.push(b, b + len);
      c += len;
    }
  };
  return { begin, order, runs };
}

/** The tile blocks of one window, numbered as the plan says (bus-mates share the larger operand block). */
function windowBlocks(p: MatMulProblem, plan: MatMulPlan, w: Window): Block[] {
  const { gB, gM, gN, gK, bBlock, mBlock, nBlock, kBlock } = plan;
  const tileOf = (ib: number, im: number, jn: number, kk: number) =>
    plan.shareA ? (((ib * gK + kk) * gM + im) * gN + jn) : (((ib * gK + kk) * gN + jn) * gM + im);
  const span = (i: number, block: number, lo: number, hi: number): Range => [lo + i * block, Math.min(hi, lo + (i + 1) * block)];
  const blocks: Block[] = [];
  for (let ib = 0; ib < gB; ib++)
    for (let im = 0; im < gM; im++)
      for (let jn = 0; jn < gN; jn++)
        for (let kk = 0; kk < gK; kk++) {
          const bl = {
            tile: tileOf(ib, im, jn, kk),
            g: span(ib, bBlock, 0, p.groups),
            r: span(im, mBlock, w.r[0], w.r[1]),
            j: span(jn, nBlock, w.j[0], w.j[1]),
            c: span(kk, kBlock, 0, p.terms * p.kPerTerm),
            kk,
          };
          if (bl.g[0] < bl.g[1] && bl.r[0] < bl.r[1] && bl.j[0] < bl.j[1] && bl.c[0] < bl.c[1]) blocks.push(bl);
        }
  return blocks;
}

/** The serial steps' windows of the output, in the order they run. */
function planWindows(p: MatMulProblem, plan: MatMulPlan): Window[] {
  const windows: Window[] = [];
  for (let sm = 0; sm < plan.serialM; sm++)
    for (let sn = 0; sn < plan.serialN; sn++)
      windows.push({ r: [sm * plan.stepM, Math.min(p.m, (sm + 1) * plan.stepM)], j: [sn * plan.stepN, Math.min(p.n, (sn + 1) * plan.stepN)] });
  return windows;
}

/** What a problem's plan depends on besides its shapes and the device: its operands' sizes and the dtypes. */
export interface MatMulOperands {
  aElems: number;
  bElems: number;
  inDtype: MatMulDType;
  outDtype: MatMulDType;
}

/**
 * The plan lowerMatMulProblem follows. With `holders` (tiles holding each
 * operand as mapped) the planner costs the operands' exchange from them;
 * without, from the shapes and the device alone, as createInput plans before
 * anything is mapped: an op that created an operand plans that way in both,
 * so the layout and the lowering see one plan.
 */
export function matMulPlan(p: MatMulProblem, o: MatMulOperands, device: DeviceSpec, plans: PlanOverrides, holders?: { a: number; b: number }): PlanResult {
  const plan = () => planMatMul(problemShape(p, o.inDtype, o.outDtype), device, { aElems: o.aElems, bElems: o.bElems, ...(holders ? { aHolders: holders.a, bHolders: holders.b } : {}), force: plans.matmul });
  // A forced split is the user's function: planned afresh each time.
  if (plans.matmul) return plan();
  const key = `${p.groups},${p.m},${p.n},${p.terms * p.kPerTerm},${o.inDtype},${o.outDtype},${o.aElems},${o.bElems},${holders ? `${holders.a},${holders.b}` : '-'}`;
  return plansMade.get(device, key, plan);
}

const plansMade = new DeviceMemo<PlanResult>();
const layoutsMade = new DeviceMemo<TileRange[] | undefined>();

/**
 * createMatMulInputLHS / RHS: a mapping of operand A or B of problem p that
 * puts each block the plan reads on the tiles reading it
 * (src/lower/layout.ts): a block one tile reads wholly on that tile, a block
 * broadcast over the other operand's split in equal shares over its readers;
 * undefined when that leaves a tile too many intervals (strided blocks).
 */
export function matMulInputLayout(p: MatMulProblem, which: 'a' | 'b', o: MatMulOperands, device: DeviceSpec, plans: PlanOverrides, maxIntervalsPerTile?: number): TileRange[] | undefined {
  if (plans.matmul) return inputLayout(p, which, o, device, plans, maxIntervalsPerTile);
  const key = `${which},${p.groups},${p.m},${p.n},${p.kPerTerm},${p.terms},${+p.transA},${+p.transB},${o.inDtype},${o.outDtype},${o.aElems},${o.bElems},${maxIntervalsPerTile ?? '-'}|${p.termA.join()}|${p.termB.join()}`;
  // Each tensor gets its own ranges (a mapping is the tensor's own).
  return layoutsMade.get(device, key, () => inputLayout(p, which, o, device, plans, maxIntervalsPerTile))?.map((r) => ({ ...r }));
}

/**
 * A block broadcast to several readers, shared among them in whole runs (rows
 * of the operand as stored) when it has about a run per reader, a reader's
 * share then one piece: equal shares of its elements (layoutFromReads' rule)
 * cut rows in two, so every reader gathered twice the pieces, and a column
 * strip of the operand (a weight gradient's read) split the same way. Else
 * the group as it is, its readers turned so that layoutFromReads, finding it
 * at `at` in the read list, starts its round of readers where it would at the
 * group's own `index`.
 */
function rowShares(g: { tiles: number[]; runs: Range[] }, rowLength: number, index: number, at: number, grain: number, minElems: number): ReadGroup[] {
  const n = g.tiles.length;
  // The block's rows: its runs cut where the stored operand's rows end (adjacent rows came merged).
  const runs: Range[] = [];
  for (const [b, e] of g.runs) for (let x = b; x < e; ) {
    const end = Math.min(e, (Math.floor(x / rowLength) + 1) * rowLength);
    runs.push([x, end]);
    x = end;
  }
  let total = 0;
  for (const [b, e] of runs) total += e - b;
  const pieces = Math.max(1, Math.min(n, Math.floor(total / Math.max(1, minElems)), Math.ceil(total / grain)));
  const parts = Math.min(pieces, runs.length);
  const first = index % n;
  const cut = (i: number) => Math.floor((i * runs.length) / parts);
  // What the worst-off reader receives (the block less its share) grows by at most 1/16 (rows of unequal shares,
  // or fewer rows than readers): more bytes would cost cycles, not just save copy rows.
  let least = parts < n ? 0 : total;
  for (let i = 0; i < parts && least > 0; i++) {
    let size = 0;
    for (let k = cut(i); k < cut(i + 1); k++) size += runs[k][1] - runs[k][0];
    least = Math.min(least, size);
  }
  const equal = pieces < n ? 0 : Math.floor(total / pieces / grain) * grain;
  if (pieces === 1 || 2 * parts < pieces || 16 * (total - least) > 17 * (total - equal)) return [{ tiles: g.tiles.map((_, j) => g.tiles[(((j - at + index) % n) + n) % n]), runs: g.runs }];
  return Array.from({ length: parts }, (_, i) => {
    const share: Range[] = [];
    for (let k = cut(i); k < cut(i + 1); k++) pushRun(share, runs[k][0], runs[k][1]);
    return { tiles: [g.tiles[(first + i) % n]], runs: share };
  });
}

function inputLayout(p: MatMulProblem, which: 'a' | 'b', o: MatMulOperands, device: DeviceSpec, plans: PlanOverrides, maxIntervalsPerTile?: number): TileRange[] | undefined {
  const plan = matMulPlan(p, o, device, plans).plan;
  const numTiles = device.ipus * device.tilesPerIpu;
  const groups = new Map<string, { tiles: number[]; runs: Range[] }>();
  for (const w of planWindows(p, plan))
    for (const bl of windowBlocks(p, plan, w)) {
      const key = which === 'a' ? `${bl.g}:${bl.r}:${bl.c}` : `${bl.g}:${bl.c}:${bl.j}`;
      let group = groups.get(key);
      if (!group) {
        const runs = (which === 'a' ? aRanges(p, bl.g[0], bl.g[1], bl.r[0], bl.r[1], bl.c[0], bl.c[1]) : bRanges(p, bl.g[0], bl.g[1], bl.c[0], bl.c[1], bl.j[0], bl.j[1])).pairs();
        group = { tiles: [], runs };
        groups.set(key, group);
      }
      if (!group.tiles.includes(bl.tile)) group.tiles.push(bl.tile);
    }
  const size = which === 'a' ? o.aElems : o.bElems;
  const grain = vectorWidth(o.inDtype, device);
  const minElems = Math.max(grain, Math.ceil(device.minBytesPerTile / DTYPE_BYTES[o.inDtype] / grain) * grain);
  const read: ReadGroup[] = [];
  let gi = 0;
  // The stored operand's row length: A is [m, K] ([K, m] transposed), B [K, n] ([n, K] transposed).
  const rowLength = which === 'a' ? (p.transA ? p.m : p.kPerTerm) : p.transB ? p.kPerTerm : p.n;
  for (const g of groups.values()) read.push(...rowShares(g, rowLength, gi++, read.length, grain, minElems));
  return layoutFromReads(size, read, { grain, minElems, linear: linearMapping(size, o.inDtype, device, numTiles), numTiles, ...(maxIntervalsPerTile !== undefined ? { maxIntervalsPerTile } : {}) });
}

/** The variable whose gradient this op's output is, when the output has its size: the output is then mapped like it. */
function gradientTarget(ctx: LowerContext, out: BuildTensor): BuildTensor | undefined {
  const v = ctx.gradientOf(0);
  return v && v.category === 'variable' && v.size === out.size && v.dtype === out.dtype && v.mapping ? v : undefined;
}

/**
 * Calls f(tile, elements, first element) for each mapped range of `t` over
 * [begin, end), clipped, in order: ctx.ranges without a list of new ranges
 * (asked per row and per run, its garbage was much of a gradient matmul's).
 */
function forRanges(t: BuildTensor, begin: number, end: number, f: (tile: number, n: number, begin: number) => void): void {
  const m = t.mapping;
  if (!m) return;
  for (let q = m.firstEndingAfter(begin); q < m.length && m.begin(q) < end; q++) {
    const b = Math.max(begin, m.begin(q));
    const e = Math.min(end, m.end(q));
    if (e > b) f(m.tile(q), e - b, b);
  }
}

/** A reduction tile's share of a window: window-local runs. */
interface Chunk {
  tile: number;
  runs: Range[];
}

/** The reduction's share of a window by mapLinearly's rule (start tile included), in window-local order. */
function linearChunks(ctx: LowerContext, p: MatMulProblem, w: Window, outDtype: MatMulDType): Chunk[] {
  const numTiles = ctx.graph.numTiles;
  const elems = p.groups * (w.r[1] - w.r[0]) * (w.j[1] - w.j[0]);
  const l = linearMapping(elems, outDtype, ctx.device, numTiles);
  return Array.from({ length: l.tiles }, (_, t): Chunk => ({ tile: layoutTile(l, t, numTiles), runs: [[t * l.perTile, Math.min(elems, (t + 1) * l.perTile)]] })).filter((ch) => ch.runs[0][0] < ch.runs[0][1]);
}

/** The reduction's share of a window where `like` (the output's variable) has each element: window-local runs per tile. */
function chunksLike(ctx: LowerContext, p: MatMulProblem, w: Window, like: BuildTensor): Chunk[] {
  const rows = w.r[1] - w.r[0];
  const cols = w.j[1] - w.j[0];
  const byTile = new Map<number, Range[]>();
  for (let g = 0; g < p.groups; g++)
    for (let r = w.r[0]; r < w.r[1]; r++) {
      const at = (g * p.m + r) * p.n + w.j[0];
      const local = (g * rows + r - w.r[0]) * cols;
      forRanges(like, at, at + cols, (tile, n, begin) => {
        let runs = byTile.get(tile);
        if (!runs) byTile.set(tile, (runs = []));
        pushRun(runs, local + begin - at, local + begin + n - at);
      });
    }
  return [...byTile].sort((x, y) => x[0] - y[0]).map(([tile, runs]) => ({ tile, runs }));
}

/**
 * A whole contraction per tile: each window's output blocks stay where they
 * are computed, but which tiles compute which blocks is free. Move the plan's
 * tiles in whole shared-bus groups (bus-mates take the same operand block, and
 * the exchange charges them once: moving single tiles would split them), each
 * group onto the group holding most of its blocks' elements of `like` at the
 * same places (greedily, the largest overlaps first, one group each), so the
 * optimizer's update finds much of the gradient in place; kept as planned
 * when that gains nothing. Returns the elements now on their variable's tile.
 */
function placeBlocksLike(ctx: LowerContext, windows: Window[], blocks: Block[][], outRuns: Runs[][], like: BuildTensor): number {
  const bus = Math.max(1, ctx.device.tilesPerSharedBus);
  const groupsOnDevice = Math.floor(ctx.graph.numTiles / bus);
  let inPlace = 0;
  windows.forEach((w, s) => {
    // Per planned group, the overlap with each target group (a block at offset o of its group going to offset o).
    const tally = new Map<number, Map<number, number>>();
    let kept = 0;
    blocks[s].forEach((bl, i) => {
      const from = Math.floor(bl.tile / bus);
      const offset = bl.tile % bus;
      let t = tally.get(from);
      if (!t) tally.set(from, (t = new Map()));
      const runs = outRuns[s][i];
      for (let k = 0; k < runs.length; k += 2)
        forRanges(like, runs[k], runs[k + 1], (tile, n) => {
          if (tile % bus !== offset) return;
          const to = Math.floor(tile / bus);
          if (to >= groupsOnDevice) return;
          t.set(to, (t.get(to) ?? 0) + n);
          if (tile === bl.tile) kept += n;
        });
    });
    const candidates: { from: number; to: number; n: number }[] = [];
    for (const [from, t] of tally) for (const [to, n] of t) candidates.push({ from, to, n });
    candidates.sort((x, y) => y.n - x.n || x.from - y.from || x.to - y.to);
    const moved = new Map<number, number>();
    const taken = new Set<number>();
    let gained = 0;
    for (const c of candidates) {
      if (moved.has(c.from) || taken.has(c.to)) continue;
      moved.set(c.from, c.to);
      taken.add(c.to);
      gained += c.n;
    }
    if (gained <= kept) {
      inPlace += kept;
      return;
    }
    // The other groups on their planned group when it is free, else on the first free one.
    const planned = [...tally.keys()].sort((x, y) => x - y);
    for (const g of planned) {
      if (moved.has(g) || taken.has(g)) continue;
      taken.add(g);
      moved.set(g, g);
    }
    let free = 0;
    for (const g of planned) {
      if (moved.has(g)) continue;
      while (taken.has(free)) free++;
      taken.add(free);
      moved.set(g, free);
    }
    // A group moved past the device's last whole group (a partial one at the end): keep the plan.
    if ([...moved].some(([from, to]) => from !== to && to >= groupsOnDevice)) {
      inPlace += kept;
      return;
    }
    inPlace += gained;
    for (const bl of blocks[s]) bl.tile = moved.get(Math.floor(bl.tile / bus))! * bus + (bl.tile % bus);
  });
  return inPlace;
}

/**
 * Lower a matmul problem to the device: plan it, explain the plan, create
 * output 0 (mapped by the plan), and for each serial step run the AMP stage
 * and, when the contraction is split, the fp32 reduction stage.
 */
export function lowerMatMulProblem(ctx: LowerContext, p: MatMulProblem, a: BuildTensor, b: BuildTensor): void {
  const outDtype = ctx.op.outInfo(0).dtype as MatMulDType;
  const operands: MatMulOperands = { aElems: a.size, bElems: b.size, inDtype: a.dtype as MatMulDType, outDtype };
  // An operand this op created (createInput) was laid out by the plan of the shapes alone: plan so again.
  const created = a.layoutBy?.op === ctx.op.name || b.layoutBy?.op === ctx.op.name;
  const result = matMulPlan(p, operands, ctx.device, ctx.plans, created ? undefined : { a: holders(ctx, a), b: holders(ctx, b) });
  ctx.note('plan', describePlan(problemShape(p, operands.inDtype, outDtype), result));
  const plan = result.plan;
  const gK = plan.gK;
  const out = ctx.output(0);

  const windows = planWindows(p, plan);
  const blocks = windows.map((w) => windowBlocks(p, plan, w));
  // A block writing the output itself (a whole contraction): its runs in the output.
  const outRuns = gK === 1 ? blocks.map((bs, s) => bs.map((bl) => localToOut(p, windows[s], blockLocalRuns(windows[s], bl)))) : [];
  // The gradient of a variable lives where the variable does, so the optimizer's update reads it in place: a
  // split contraction reduces each element on its variable's tile; a whole one puts each block on the tile
  // holding most of it. Otherwise the reduction's share of each window is its elements (window-local order)
  // linearly over the tiles, by mapLinearly's rule, start tile included.
  const like = gradientTarget(ctx, out);
  if (like) {
    const inPlace = gK > 1 ? out.size : placeBlocksLike(ctx, windows, blocks, outRuns, like);
    ctx.note('layout', `output is the gradient of '${like.name}': mapped like it (${Math.round((100 * inPlace) / out.size)}% of its elements on the tile holding the variable's)`);
  }
  const chunks = gK === 1 ? [] : windows.map((w) => (like ? chunksLike(ctx, p, w, like) : linearChunks(ctx, p, w, outDtype)));

  // The output lives where it is computed: on the AMP tiles when the contraction is whole, else on the reducing tiles.
  const outMapping = new TileMappingBuilder();
  windows.forEach((w, s) => {
    if (gK === 1) {
      blocks[s].forEach((bl, i) => {
        const runs = outRuns[s][i];
        for (let k = 0; k < runs.length; k += 2) outMapping.push(bl.tile, runs[k], runs[k + 1]);
      });
    } else {
      const runs: Runs = [];
      for (const ch of chunks[s]) {
        runs.length = 0;
        for (const [c0, c1] of ch.runs) windowToOut(p, w, c0, c1, runs);
        for (let k = 0; k < runs.length; k += 2) outMapping.push(ch.tile, runs[k], runs[k + 1]);
      }
    }
  });
  ctx.graph.setTileMapping(out, outMapping.finish());

  windows.forEach((w, s) => {
    const suffix = plan.serial > 1 ? `${s}` : '';
    const elems = p.groups * (w.r[1] - w.r[0]) * (w.j[1] - w.j[0]);
    // fp32 partials of the window, [gK, elems]: each block's partial one contiguous run on its tile.
    const partials = gK > 1 ? ctx.addTensor(`partials${suffix}`, 'float32', [gK, elems], 'temporary') : undefined;
    const at = partials ? partialBlocks(p, plan, w, blocks[s]) : undefined;
    if (partials) {
      const m: TileRange[] = [];
      for (const i of at!.order) {
        const bl = blocks[s][i];
        m.push({ tile: bl.tile, begin: at!.begin[i], end: at!.begin[i] + blockSize(bl) });
      }
      ctx.graph.setTileMapping(partials, m);
    }

    ctx.computeSet(`amp${suffix}`);
    // Each operand block's runs, listed once for all the tiles reading it (an A block is read across the
    // column split, a B block across the row split): by the block's place in the split.
    const aRuns = new Array<RunList | undefined>(plan.gB * plan.gM * gK);
    const bRuns = new Array<RunList | undefined>(plan.gB * plan.gN * gK);
    blocks[s].forEach((bl, i) => {
      const ib = Math.floor(bl.g[0] / plan.bBlock);
      const ai = (ib * plan.gM + Math.floor((bl.r[0] - w.r[0]) / plan.mBlock)) * gK + bl.kk;
      const bi = (ib * plan.gN + Math.floor((bl.j[0] - w.j[0]) / plan.nBlock)) * gK + bl.kk;
      const aBlock = (aRuns[ai] ??= aRanges(p, bl.g[0], bl.g[1], bl.r[0], bl.r[1], bl.c[0], bl.c[1]));
      const bBlock = (bRuns[bi] ??= bRanges(p, bl.g[0], bl.g[1], bl.c[0], bl.c[1], bl.j[0], bl.j[1]));
      const target: Slice[] = [];
      if (partials) target.push(ctx.slice(partials, at!.begin[i], at!.begin[i] + blockSize(bl)));
      else {
        const runs = outRuns[s][i];
        for (let k = 0; k < runs.length; k += 2) target.push(ctx.slice(out, runs[k], runs[k + 1]));
      }
      ctx.vertex(
        ampMatMulCodelet,
        bl.tile,
        {
          // Strided operand blocks arrive as one tensor per vertex field (the AMP reads the runs back to back).
          a: ctx.gather(a, aBlock, bl.tile),
          b: ctx.gather(b, bBlock, bl.tile),
          out: target,
        },
        {
          groups: bl.g[1] - bl.g[0],
          rows: bl.r[1] - bl.r[0],
          k: bl.c[1] - bl.c[0],
          n: bl.j[1] - bl.j[0],
          transA: p.transA ? 1 : 0,
          transB: p.transB ? 1 : 0,
          swap: plan.swap ? 1 : 0,
        },
      );
    });
    if (!partials) return;

    ctx.computeSet(`reduce${suffix}`);
    // One scratch list for every read: a once gather keeps no reference to it.
    const read = new RunList();
    for (const ch of chunks[s]) {
      // Each partial as one region (the vertex reads partial kk's elements in the order of its output pieces).
      // The chunks cut the window apart, so each chunk of each partial is read once, by one tile.
      const parts = Array.from({ length: gK }, (_, kk) => {
        read.clear();
        for (const [c0, c1] of ch.runs) at!.runs(kk, c0, c1, read);
        return read.n === 1 ? ctx.onTileOnce(partials, read.begin(0), read.end(0), ch.tile) : ctx.gather(partials, read, ch.tile, { oneSlice: true, once: true })[0];
      });
      const runs: Runs = [];
      for (const [c0, c1] of ch.runs) windowToOut(p, w, c0, c1, runs);
      const pieces: Slice[] = [];
      for (let k = 0; k < runs.length; k += 2) pieces.push(ctx.slice(out, runs[k], runs[k + 1]));
      ctx.vertex(matMulReduceCodelet, ch.tile, { partials: parts, out: pieces });
    }
  });
}

/** The problem of out[m, n] = op(A) x op(B) for 2-D A and B as stored (op = transpose where the flag is set). */
export function problem2d(as: readonly number[], bs: readonly number[], transA: boolean, transB: boolean): MatMulProblem {
  const m = transA ? as[1] : as[0];
  const k = transA ? as[0] : as[1];
  const n = transB ? bs[0] : bs[1];
  const one = Int32Array.of(0);
  return { groups: 1, m, n, kPerTerm: k, terms: 1, termA: one, termB: one, transA, transB };
}

/**
 * out[m, n] = op(A) x op(B) for the op's 2-D inputs ia and ib as stored, op =
 * transpose when the flag is set (for other ops' lowerings). The shapes are
 * the IR's: an input's device tensor may be a view of another shape (Reshape).
 */
export function lowerMatMul(ctx: LowerContext, ia: number, ib: number, transA: boolean, transB: boolean): void {
  lowerMatMulProblem(ctx, problem2d(ctx.op.inInfo(ia).shape, ctx.op.inInfo(ib).shape, transA, transB), ctx.input(ia), ctx.input(ib));
}

/**
 * The createInput of an op that lowers as lowerMatMulProblem(p) with its inputs ia and ib as A and B:
 * input `index`'s mapping from the plan (matMulInputLayout), undefined for any other input.
 */
export function matMulCreateInput(op: Op, index: number, device: DeviceSpec, plans: PlanOverrides, p: MatMulProblem, use?: InputUse, ia = 0, ib = 1): TileRange[] | undefined {
  if (index !== ia && index !== ib) return undefined;
  const a = op.inInfo(ia);
  const operands: MatMulOperands = { aElems: nelms(a.shape), bElems: nelms(op.inInfo(ib).shape), inDtype: a.dtype as MatMulDType, outDtype: op.outInfo(0).dtype as MatMulDType };
  return matMulInputLayout(p, index === ia ? 'a' : 'b', operands, device, plans, use?.allReadersPlanned ? Infinity : undefined);
}

function dimsOf(a: TensorInfo, b: TensorInfo): MatMulDims {
  const d = matMulDims(a.shape, b.shape);
  if (typeof d === 'string') throw new Error(`internal: matmul of ${fmtInfo(a)} and ${fmtInfo(b)}: ${d}`);
  return d;
}

function matMulDefinition(version: number): OpDefinition {
  return defineOp({
    op: MatMulOp,
    id: { ...MATMUL, version },
    description: 'Matrix product with NumPy semantics: batch dimensions broadcast, 1-D operands as a row or a column',
    inputs: [{ name: 'A' }, { name: 'B' }],
    outputs: [{ name: 'Y' }],
    grad: true,
    create: ({ settings }) => new MatMulOp(settings, version),
    // createMatMulInputLHS / RHS: a weight or an input laid out where the planned matmul reads it.
    createInput: (op, index, device, plans, use) => matMulCreateInput(op, index, device, plans, forwardProblem(op.dims()), use),
    lower: (op, ctx) => lowerMatMulProblem(ctx, forwardProblem(op.dims()), ctx.input(0), ctx.input(1)),
  });
}

export const matMulDefinitions: OpDefinition[] = [
  matMulDefinition(1),
  matMulDefinition(9),
  matMulDefinition(13),
  defineOp({
    op: MatMulLhsGradOp,
    id: LHS_GRAD,
    description: 'dA = dY x B^T, summed over the batch dimensions A was broadcast along',
    lower: (op, ctx) => lowerMatMulProblem(ctx, lhsGradProblem(op.dims), ctx.input(0), ctx.input(1)),
  }),
  defineOp({
    op: MatMulRhsGradOp,
    id: RHS_GRAD,
    description: 'dB = A^T x dY, summed over the batch dimensions B was broadcast along',
    lower: (op, ctx) => lowerMatMulProblem(ctx, rhsGradProblem(op.dims), ctx.input(0), ctx.input(1)),
  }),
];
