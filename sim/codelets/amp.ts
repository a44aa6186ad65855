/**
 * The AMP (accumulating matrix product) matmul vertex: a ConvPartial1x1Out-like
 * MultiVertex that multiplies, for each of `groups` groups, a block of `rows`
 * rows by a [k, n] block of weights, with fp32 partials.
 *
 * The estimator follows PopLibs' own (graphcore/poplibs,
 * lib/poplin/PerformanceEstimation.hpp: getConvPartial1x1SupervisorCycleEstimate
 * and its HalfFloat inner/outer loops), summarised in ipu-architecture.md §3:
 *
 * - The weights of one pass are `outChansPerPass` conv units x 16 input
 *   channels. Loading them into the AMP costs
 *   outChansPerPass x weightBytesPerConvUnit / coefficientLoadBytesPerCycle
 *   (PopLibs getConvPartialAmpSupervisorWeightLoadCycleEstimate; 16 B/cycle, §3,
 *   the preset's loadBytesPerCycle).
 * - The rows of the block are split among the W workers, one contiguous work
 *   item each. A worker with n >= 3 rows costs 37 + 4(n - 3) cycles for half
 *   inputs (§3; 38 when not zeroing the partials), 46 + 8(n - 3) (+ zeroing)
 *   for float inputs; n = 0, 1, 2 have their own costs; the half path then
 *   saves 7 cycles per call by retaining worker state (PopLibs
 *   conv1x1WorkerRetentionSavings: 7 total, 3 of them per input-channel group),
 *   paid back once per vertex by the supervisor.
 * - Tile cycles of the pass = max(W x slowest worker, W x fastest worker + 14)
 *   (PopLibs: "tag cost to worker with min cycles").
 * - The supervisor's loops: 50 cycles outside any loop (§3: "about 50 cycles
 *   of setup"), plus per conv group 12 + 1, per further input-channel group
 *   15, per output group 19, per pass 6 or 7 + the weight loads.
 *
 * Geometry from the preset (ipu-architecture.md §1): an AMP unit does 4 MACs
 * per cycle, so a tile has ampMacsPerCycle.float16 / 4 conv units (16 on
 * Mk2/Bow, 8 on Mk1). One half pass is [rows, 16] x [16, convUnits]: 16 x
 * convUnits MACs per row in 4 cycles (64 MACs/cycle on Mk2). Float inputs take
 * 8 cycles per row (PopLibs coreCycles), so a float pass has
 * ampMacsPerCycle.float32 x 8 / 16 output channels (8 on Mk2, 4 on Mk1): the
 * preset's float32 rate is kept exactly.
 *
 * The vertex is calibrated against the published Bow measurements
 * (ipu-architecture.md §6): see test/cycles/calibration.test.ts and
 * reports/fidelity.md. No constant here was fitted to them.
 *
 * Numerics (docs/numerics.md): each output is accumulated in fp32 in
 * ascending contraction order, each product rounded to fp32 and then each
 * sum; products of fp16 inputs are exact in fp32. The output field is fp32
 * partials or the final dtype (fp16 outputs are rounded to nearest even on
 * store by the vertex boundary). compute() runs the WebAssembly kernel over
 * tile memory when it can, else ampMatMulReference; they agree bit for bit.
 *
 * Fields (vector fields: lists of regions read back to back):
 *   a    per group, transA ? [k, rows] : [rows, k]
 *   b    per group, transB ? [n, k] : [k, n]
 *   out  [groups, rows, n]
 * Params: groups (default 1), rows, k, n, transA, transB, and swap: 1 when the
 * B block streams through the AMP and the A block is loaded as weights (the
 * cost of C^T = B^T A^T: rows and n exchange roles; the numbers are the same).
 */
import { fieldDType } from '../codelet.js';
import { defineCodelet, type TypedVertexArgs } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { kernelsFor } from '../wasm/kernels.js';

/** Input channels per AMP group (§3: one pass multiplies [n, 16] by [16, 16]). */
export const AMP_IN_CHANS_PER_GROUP = 16;
/** Output channels per partials group (PopLibs groups fp32 partials by 16 channels). */
export const AMP_OUT_CHANS_PER_GROUP = 16;

/** The AMP's shape on one tile for one input precision. */
export interface AmpGeometry {
  floatActivations: boolean;
  inChansPerGroup: number;
  outChansPerGroup: number;
  /** Conv units used per pass: output channels of one pass. */
  outChansPerPass: number;
  /** Passes per output group: ceil(outChansPerGroup / outChansPerPass). */
  passesPerGroup: number;
  /** Worker cycles per output row in the core loop (PopLibs coreCycles: 4 half, 8 float). */
  coreCyclesPerRow: number;
  /** Cycles to load one pass's weights into the AMP. */
  weightLoadCycles: number;
}

export function ampGeometry(dtype: DeviceDType, device: DeviceSpec): AmpGeometry {
  const floatActivations = dtype === 'float32';
  const coreCyclesPerRow = floatActivations ? 8 : 4;
  const inChansPerGroup = AMP_IN_CHANS_PER_GROUP;
  // A row of one pass is inChansPerGroup x outChansPerPass MACs in coreCyclesPerRow cycles.
  const macs = floatActivations ? device.ampMacsPerCycle.float32 : device.ampMacsPerCycle.float16;
  const outChansPerPass = Math.max(1, Math.floor((macs * coreCyclesPerRow) / inChansPerGroup));
  const bytes = floatActivations ? 4 : 2;
  const weightBytesPerConvUnit = inChansPerGroup * bytes;
  return {
    floatActivations,
    inChansPerGroup,
    outChansPerGroup: AMP_OUT_CHANS_PER_GROUP,
    outChansPerPass,
    passesPerGroup: Math.ceil(AMP_OUT_CHANS_PER_GROUP / outChansPerPass),
    coreCyclesPerRow,
    weightLoadCycles: Math.ceil((outChansPerPass * weightBytesPerConvUnit) / device.loadBytesPerCycle),
  };
}

/** PopLibs conv1x1WorkerRetentionSavings (float partials): half inputs save 7 cycles per call, 3 of them per input group. */
function retentionSavings(g: AmpGeometry): readonly [number, number] {
  return g.floatActivations ? NO_SAVINGS : HALF_SAVINGS;
}
// Shared, not made per call: the cost of every AMP vertex of a step and every planner candidate asks.
const NO_SAVINGS = [0, 0] as const;
const HALF_SAVINGS = [7, 3] as const;

/**
 * One worker's cycles for a work item of `rows` output rows (PopLibs
 * getConvPartial1x1SupervisorInnerLoopCycleEstimateHalfFloat, float partials).
 * `rows` undefined: the worker has no work item.
 */
export function ampWorkerCycles(rows: number | undefined, g: AmpGeometry, zeroing: boolean): number {
  if (rows === undefined) return 0;
  const z = zeroing ? 1 : 0;
  let c: number;
  if (g.floatActivations) {
    const zeroPerRow = g.outChansPerPass === 16 ? 8 : 4;
    if (rows === 0) c = 24;
    else if (rows === 1) c = 47 + (2 + zeroPerRow) * z;
    else if (rows === 2) c = 46 + (2 + zeroPerRow * 2) * z;
    else c = 46 + (2 + zeroPerRow * rows) * z + (rows - 3) * g.coreCyclesPerRow;
  } else {
    const tail = zeroing ? 1 : 2;
    if (rows === 0) c = 20 + tail;
    else if (rows === 1) c = 31 + tail;
    else if (rows === 2) c = 40 + tail;
    else c = (zeroing ? 37 : 38) + (rows - 3) * g.coreCyclesPerRow;
  }
  return c - retentionSavings(g)[0];
}

/** Rows per worker: one contiguous work item each, the first (rows mod W) workers one row more. */
export function rowsPerWorker(rows: number, workers: number): (number | undefined)[] {
  return Array.from({ length: workers }, (_, w) => workerRows(rows, workers, w));
}

/** Worker w's rows by rowsPerWorker's rule (undefined: no work item), without the array. */
function workerRows(rows: number, workers: number, w: number): number | undefined {
  const r = Math.floor(rows / workers) + (w < rows % workers ? 1 : 0);
  return r > 0 ? r : undefined;
}

/** Tile cycles of one AMP pass over `rows` rows: max(W x slowest, W x fastest + 14). */
export function ampInnerLoopCycles(rows: number, g: AmpGeometry, workers: number, zeroing: boolean): number {
  // Worker by worker, no arrays: asked twice for every AMP vertex a step costs.
  let max = -Infinity;
  let min = Infinity;
  for (let w = 0; w < workers; w++) {
    const c = ampWorkerCycles(workerRows(rows, workers, w), g, zeroing);
    if (c > max) max = c;
    if (c < min) min = c;
  }
  return Math.max(workers * max, workers * min + 14);
}

export interface AmpWork {
  groups: number;
  rows: number;
  k: number;
  n: number;
}

export interface AmpBreakdown {
  /** Supervisor cycles outside the worker passes (setup, loops, retention payback). */
  supervisor: number;
  /** Weight loads into the AMP, all passes. */
  weightLoads: number;
  /** Worker passes (W x slowest worker), all passes. */
  workers: number;
  passes: number;
  total: number;
}

/**
 * The whole vertex (PopLibs getConvPartial1x1SupervisorOuterLoopCycleEstimateHalfFloat
 * with float partials): 50 + W x (7 + 3 (IG x CG - 1)) + CG x (13
 * + (IG - 1) x (15 + OG x (19 + P x (6 + loads + inner)))
 * + (11 + OG x (18 + P x (7 + loads + innerZeroing)))),
 * CG conv groups, IG = ceil(k / 16) input groups, OG = ceil(n / 16) output groups, P passes per group.
 */
export function ampBreakdown(work: AmpWork, dtype: DeviceDType, device: DeviceSpec): AmpBreakdown {
  const g = ampGeometry(dtype, device);
  const W = device.workersPerTile;
  const CG = Math.max(1, work.groups);
  const IG = Math.max(1, Math.ceil(work.k / g.inChansPerGroup));
  const OG = Math.max(1, Math.ceil(work.n / g.outChansPerGroup));
  const P = g.passesPerGroup;
  const [ret, retPerGroup] = retentionSavings(g);
  const common = 1; // float partials: PopLibs' commonHalfAndFloatPartialsCodePath
  const excessInChan = 1;
  const innerZero = ampInnerLoopCycles(work.rows, g, W, true);
  const innerNoZero = ampInnerLoopCycles(work.rows, g, W, false);
  const passes = CG * IG * OG * P;
  const weightLoads = passes * g.weightLoadCycles;
  const workers = CG * OG * P * (innerZero + (IG - 1) * innerNoZero);
  const supervisor =
    50 +
    W * (ret + retPerGroup * (IG * CG - 1)) +
    CG *
      (12 + common +
        (IG - 1) * (15 - common + excessInChan + OG * (19 + P * 6)) +
        (10 + excessInChan + OG * (19 - common + P * 7)));
  return { supervisor, weightLoads, workers, passes, total: supervisor + weightLoads + workers };
}

export function ampVertexCycles(work: AmpWork, dtype: DeviceDType, device: DeviceSpec): number {
  return ampBreakdown(work, dtype, device).total;
}

/** MACs per cycle the vertex sustains on this work (for reports). */
export function ampEfficiency(work: AmpWork, dtype: DeviceDType, device: DeviceSpec): number {
  const peak = dtype === 'float32' ? device.ampMacsPerCycle.float32 : device.ampMacsPerCycle.float16;
  const macs = work.groups * work.rows * work.k * work.n;
  return macs / ampVertexCycles(work, dtype, device) / peak;
}

const AMP_FIELDS = {
  a: { direction: 'input', vector: true, dtypes: ['float16', 'float32'] },
  b: { direction: 'input', vector: true, dtypes: ['float16', 'float32'] },
  out: { direction: 'output', vector: true, dtypes: ['float16', 'float32'] },
} as const;
/** groups (default 1) blocks of op(A)[rows, k] x op(B)[k, n]; swap: the planner swapped the operands (costing only). */
const AMP_PARAMS = { rows: 'int', k: 'int', n: 'int', groups: 'int?', transA: 'int?', transB: 'int?', swap: 'int?' } as const;
/** What the AMP vertex's compute sees. */
export type AmpArgs = TypedVertexArgs<typeof AMP_FIELDS, typeof AMP_PARAMS, Record<never, 'ints'>>;

/** Regions of a vector field read back to back as one array (copied only when there are several). */
function joined(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * The reference (TypeScript) AMP vertex. Each output is accumulated in fp32
 * in ascending contraction order: every product rounded to fp32, then the
 * sum rounded to fp32 (docs/numerics.md). The WebAssembly kernel keeps the
 * same order and roundings, so the two agree bit for bit.
 */
export function ampMatMulReference({ fields, params }: AmpArgs): void {
  const a = joined(fields.a);
  const b = joined(fields.b);
  const outs = fields.out;
  const { rows, k, n } = params;
  const groups = params.groups ?? 1;
  const transA = params.transA === 1;
  const transB = params.transB === 1;
  // Row stride and element stride of op(A)[r, c] and op(B)[c, j] within one group.
  const [aRow, aCol] = transA ? [1, rows] : [k, 1];
  const [bCol, bRow] = transB ? [k, 1] : [1, n];
  let region = 0;
  let pos = 0;
  for (let g = 0; g < groups; g++) {
    const aBase = g * rows * k;
    const bBase = g * k * n;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        let ai = aBase + r * aRow;
        let bi = bBase + j * bCol;
        for (let c = 0; c < k; c++) {
          acc = Math.fround(acc + Math.fround(a[ai] * b[bi]));
          ai += aCol;
          bi += bRow;
        }
        while (pos === outs[region].length) {
          region++;
          pos = 0;
        }
        outs[region][pos++] = acc;
      }
    }
  }
}

/**
 * The AMP vertex on the WebAssembly kernel (sim/wasm): false when it cannot
 * run there (fields outside tile memory, a full arena, unexpected sizes) and
 * the reference must. Operands spread over several regions are joined in the
 * arena, a transposed B is packed to [k, n], and an output of several
 * regions is computed in the arena and copied out.
 */
export function ampMatMulWasm({ fields, params }: AmpArgs): boolean {
  const as = fields.a;
  const bs = fields.b;
  const outs = fields.out;
  const K = as[0] && kernelsFor(as[0]);
  if (!K) return false;
  const { rows, k, n } = params;
  const groups = params.groups ?? 1;
  const total = (xs: Float32Array[]) => xs.reduce((s, x) => s + x.length, 0);
  if (total(as) < groups * rows * k || total(bs) < groups * k * n || total(outs) !== groups * rows * n) return false;
  const a = K.stage(as);
  let b = K.stage(bs);
  // In place when the output's regions are back to back (a whole contraction's block writes a region per row of the output).
  const direct = K.contiguous(outs);
  const single = direct >= 0;
  const out = single ? direct : K.arena.alloc(4 * groups * rows * n);
  if (a < 0 || b < 0 || out < 0) return false;
  if (params.transB === 1) {
    const packed = K.arena.alloc(4 * groups * k * n);
    if (packed < 0) return false;
    for (let g = 0; g < groups; g++) K.x.transpose_f32(b + 4 * g * n * k, packed + 4 * g * k * n, n, k);
    b = packed;
  }
  const [aRow, aCol] = params.transA === 1 ? [1, rows] : [k, 1];
  for (let g = 0; g < groups; g++) K.x.matmul_f32(a + 4 * g * rows * k, b + 4 * g * k * n, out + 4 * g * rows * n, rows, k, n, 4 * aRow, 4 * aCol);
  if (!single) {
    let at = out >> 2;
    for (const o of outs) {
      o.set(K.f32.subarray(at, at + o.length));
      at += o.length;
    }
  }
  return true;
}

export const ampMatMulCodelet = defineCodelet({
  name: 'AmpMatMul',
  kind: 'multi',
  fields: AMP_FIELDS,
  params: AMP_PARAMS,
  compute(args) {
    if (!ampMatMulWasm(args)) ampMatMulReference(args);
  },
  cycles(v, device) {
    const { rows, k, n } = v.params;
    const groups = v.params.groups ?? 1;
    const work = v.params.swap === 1 ? { groups, rows: n, k, n: rows } : { groups, rows, k, n };
    return ampVertexCycles(work, fieldDType(v.fields.a), device);
  },
  estimateSource:
    'PopLibs ConvPartial1x1Out (poplin PerformanceEstimation.hpp): 50 + supervisor loops + per pass (6|7 + weight loads ' +
    'convUnits x 16 x bytes / 16 B per cycle + max(W x worker, W x min + 14)); worker n >= 3 rows: 37 + 4(n - 3) - 7 half, 46 + 8(n - 3) float',
});
