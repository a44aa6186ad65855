/**
 * Shared pieces of the nn codelets (softmax, norms, conv, pooling):
 *
 * - the spatial geometry every windowed vertex receives as `arrays`
 *   (src/lower/window.ts builds it) and the "plane window" through which a
 *   vertex reads a box of an [N, C, D0, D1, D2] tensor: the rows of D0 it
 *   needs of each (n, c) plane, one region per run of rows (or whole planes
 *   merged into fewer regions);
 * - the two stages of the channel/interval reductions the grads need
 *   (NnChannelSum partials, NnPartialsFinal);
 * - cycle-estimate building blocks beyond sim/codelets/estimators.ts: the
 *   AMP convolution estimate (PopLibs' ConvPartial1x1Out supervisor
 *   estimate) and PopLibs' pooling vertex estimate.
 */
import type { Codelet, VertexShape } from '../codelet.js';
import { defineCodelet, type ParamValues } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { reduce, vectorWidth, type LoopCost } from './estimators.js';
import { separate } from '../wasm/kernels.js';

// ---------------------------------------------------------------------------
// Loop costs from ipu-architecture.md §3 (MODEL, PopLibs' per-op loop table).

export const EXP_LOOP = (dtype: DeviceDType): LoopCost => (dtype === 'float16' ? { cyclesPerLoop: 4, vectorised: false, unroll: 4 } : { cyclesPerLoop: 6, vectorised: false, unroll: 2 });
export const LOG_LOOP: LoopCost = { cyclesPerLoop: 12, vectorised: false, unroll: 2 };
export const SQRT_LOOP: LoopCost = { cyclesPerLoop: 10, vectorised: false, unroll: 2 };
export const DIV_LOOP = (dtype: DeviceDType): LoopCost => (dtype === 'float16' ? { cyclesPerLoop: 21, vectorised: false, unroll: 4 } : { cyclesPerLoop: 10, vectorised: false, unroll: 2 });
export const MAX_LOOP: LoopCost = { cyclesPerLoop: 3, vectorised: false, unroll: 2 };

// ---------------------------------------------------------------------------
// Geometry and plane windows.

/** Spatial geometry, always 3 spatial dims (lower ranks padded with trailing 1s). */
export interface Geometry {
  /** [N, C, D0, D1, D2] of the convolution/pool input. */
  xs: number[];
  /** [N, M, O0, O1, O2] of its output. */
  ys: number[];
  k: number[];
  s: number[];
  d: number[];
  /** Pads at the start and end of each spatial dim. */
  pb: number[];
  pe: number[];
}

/**
 * Flat index `t` of a row-major tensor of `shape` as its coordinates, written
 * to `out` (reused across calls in the codelets' per-element loops). The first
 * coordinate is not wrapped, so shape[0] may be anything.
 */
export function unravel(t: number, shape: readonly number[], out: number[]): number[] {
  for (let i = shape.length - 1; i > 0; i--) {
    const x = t % shape[i];
    out[i] = x;
    t = (t - x) / shape[i];
  }
  out[0] = t;
  return out;
}

/** Params and arrays as the window helpers read them: by key, some keys per window prefix. */
export interface WindowArgs {
  params: Readonly<Record<string, number | undefined>>;
  arrays: Readonly<Record<string, number[] | undefined>>;
}

/** An array a vertex must have, or a fault naming it. */
function need(arrays: WindowArgs['arrays'], key: string): number[] {
  const a = arrays[key];
  if (!a) throw new Error(`nn vertex: arrays.${key} is missing`);
  return a;
}

/** The geometry arrays (xs, ys, k, s, d, pb, pe) of the windowed vertices. */
export const GEOMETRY_ARRAYS = { xs: 'ints', ys: 'ints', k: 'ints', s: 'ints', d: 'ints', pb: 'ints', pe: 'ints' } as const;

const WINDOW_PARAM_KEYS = ['nMin', 'cLo', 'cCount', 'R', 'ppr', 'planeStride'] as const;
export type WindowParamKey<P extends string> = `${P}${(typeof WINDOW_PARAM_KEYS)[number]}`;
export type WindowArrayKey<P extends string> = `${P}rowRun` | `${P}rowOff`;
/** The params of a plane window read with `prefix` (src/lower/window.ts planeWindowOnTile writes them). */
export function windowParams<const P extends string>(prefix: P): Record<WindowParamKey<P>, 'int'> {
  // Keys built from the prefix: the record is the one the type spells out.
  return Object.fromEntries(WINDOW_PARAM_KEYS.map((k) => [`${prefix}${k}`, 'int'])) as Record<WindowParamKey<P>, 'int'>;
}
/** Its arrays: rows' runs and offsets, and the pieces' lengths when they were gathered into one region. */
export function windowArrays<const P extends string>(prefix: P): Record<WindowArrayKey<P>, 'ints'> & Record<`${P}lens`, 'ints?'> {
  return { [`${prefix}rowRun`]: 'ints', [`${prefix}rowOff`]: 'ints', [`${prefix}lens`]: 'ints?' } as Record<WindowArrayKey<P>, 'ints'> & Record<`${P}lens`, 'ints?'>;
}

export function geometryOf(a: WindowArgs['arrays']): Geometry {
  return { xs: need(a, 'xs'), ys: need(a, 'ys'), k: need(a, 'k'), s: need(a, 's'), d: need(a, 'd'), pb: need(a, 'pb'), pe: need(a, 'pe') };
}

/**
 * The geometry a cycles() call sees: the vertex's arrays, or, for a vertex
 * probed without them (`sim vertex`), a 3x3 window over 16 channels in and
 * out with stride 1 and 8 x 8 planes.
 */
export function geometryForCycles(v: { arrays?: WindowArgs['arrays'] }): Geometry {
  if (v.arrays?.xs) return geometryOf(v.arrays);
  return { xs: [1, 16, 8, 8, 1], ys: [1, 16, 8, 8, 1], k: [3, 3, 1], s: [1, 1, 1], d: [1, 1, 1], pb: [1, 1, 0], pe: [1, 1, 0] };
}

/**
 * Read access to a box of an [N, C, D0, D1, D2] tensor handed to a vertex as
 * a list of regions (src/lower/window.ts, planeWindowOnTile): the planes
 * q = (n - nMin) x cCount + (c - cLo), each holding a set of rows of D0 in R
 * runs. Row i0 of plane q is in region floor(q / ppr) x R + rowRun[i0], at
 * (q mod ppr) x planeStride + rowOff[i0] x rest elements: one region per run
 * of each plane (ppr = 1), or whole runs of consecutive planes merged into
 * one region (R = 1).
 */
export class PlaneWindow {
  readonly rest: number;
  constructor(
    private readonly regions: Float32Array[],
    private readonly p: { nMin: number; cLo: number; cCount: number; R: number; ppr: number; planeStride: number },
    private readonly rowRun: number[],
    private readonly rowOff: number[],
    d1: number,
    d2: number,
  ) {
    this.rest = d1 * d2;
  }
  /** The region holding row i0 of plane (n, c), and the offset of its element (i0, 0, 0) in it. */
  row(n: number, c: number, i0: number): [Float32Array, number] {
    const q = (n - this.p.nMin) * this.p.cCount + (c - this.p.cLo);
    const g = Math.floor(q / this.p.ppr);
    return [this.regions[g * this.p.R + this.rowRun[i0]], (q - g * this.p.ppr) * this.p.planeStride + this.rowOff[i0] * this.rest];
  }
}

/** The plane window of field `field` whose params and arrays carry `prefix` (e.g. 'x' -> xnMin, xrowRun, ...). */
export function planeWindow(args: WindowArgs, field: Float32Array[], prefix: string, d1: number, d2: number): PlaneWindow {
  let regions = field;
  // Regions gathered into one on the tile (LowerContext.gather): split it back into the logical pieces.
  const lens = args.arrays[`${prefix}lens`];
  if (lens && regions.length === 1 && lens.length > 1) {
    const joined = regions[0];
    let at = 0;
    regions = lens.map((n) => joined.subarray(at, (at += n)));
  }
  const p = (k: string): number => {
    const v = args.params[`${prefix}${k}`];
    if (v === undefined) throw new Error(`nn vertex: param ${prefix}${k} is missing`);
    return v;
  };
  return new PlaneWindow(
    regions,
    { nMin: p('nMin'), cLo: p('cLo'), cCount: p('cCount'), R: p('R'), ppr: p('ppr'), planeStride: p('planeStride') },
    need(args.arrays, `${prefix}rowRun`),
    need(args.arrays, `${prefix}rowOff`),
    d1,
    d2,
  );
}

// ---------------------------------------------------------------------------
// Two-stage reductions: partials per tile, then the final sum.

/**
 * Stage 1: the vertex's run `in` = elements [begin, begin + n) of a row-major
 * [outer, G, inner] tensor, summed per g into a float32 partial covering
 * g = gMin .. gMin + len(out) - 1. With `centered`, each term is
 * dy x (x - mean[g]) x rsqrt(var[g] + eps): BatchNormalization's scale grad.
 */
const CHANNEL_SUM_PARAMS = { G: 'int', inner: 'int', begin: 'int', gMin: 'int' } as const;
const CENTERED_PARAMS = { ...CHANNEL_SUM_PARAMS, eps: 'float' } as const;
const SUM_OUT = { direction: 'output', dtypes: ['float32'] } as const;
/** The centred form's extra inputs: x, and mean and var per channel. */
interface Centering {
  x: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  eps: number;
}

function channelSumRun(dy: Float32Array, out: Float32Array, params: ParamValues<typeof CHANNEL_SUM_PARAMS>, c: Centering | undefined): void {
  const { G, inner, begin, gMin } = params;
  out.fill(0);
  let g = Math.floor(begin / inner) % G;
  let j = begin % inner;
  // On the kernel: the same fp32 chain per channel, in element order.
  const w = separate(out, c ? [dy, c.x, c.mean, c.variance] : [dy]);
  if (w && (!c || c.x.length >= dy.length)) {
    const [pdy, px, pm, pv] = w.ins;
    w.K.x.channel_sum(pdy, dy.length, w.out, G, inner, g, j, gMin, c ? 1 : 0, px ?? 0, pm ?? 0, pv ?? 0, c?.eps ?? 0);
    return;
  }
  let k = 0;
  let m = 0;
  const setG = (): void => {
    if (c) {
      m = c.mean[g - gMin];
      k = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(c.variance[g - gMin] + c.eps))));
    }
  };
  setG();
  for (let i = 0; i < dy.length; i++) {
    const term = c ? Math.fround(Math.fround(dy[i] * Math.fround(c.x[i] - m)) * k) : dy[i];
    out[g - gMin] = Math.fround(out[g - gMin] + term);
    if (++j === inner) {
      j = 0;
      if (++g === G) g = 0;
      setG();
    }
  }
}

function channelSumCycles(v: VertexShape, device: DeviceSpec, centered: boolean): number {
  const n = regionCount(v.fields.in);
  const base = reduce(n, Math.max(1, regionCount(v.fields.out)), fieldDType(v.fields.in), device);
  // The centred form first forms dy (x - mean) rsqrt(var + eps): two more vector ops per element.
  return centered ? base + 2 * Math.ceil(n / vectorWidth(fieldDType(v.fields.in), device)) * 3 : base;
}

export const channelSumCodelet = defineCodelet({
  name: 'NnChannelSum',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: SUM_OUT },
  params: CHANNEL_SUM_PARAMS,
  compute: ({ fields, params }) => channelSumRun(fields.in, fields.out, params, undefined),
  cycles: (v, device) => channelSumCycles(v, device, false),
  estimateSource: 'PopLibs reduction: 7 + 26 start, per output region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
});

/** The centred form: BatchNormalization's scale gradient. */
export const batchNormScalePartialCodelet = defineCodelet({
  name: 'NnBatchNormScalePartial',
  kind: 'multi',
  fields: { in: { direction: 'input' }, x: { direction: 'input' }, mean: { direction: 'input' }, var: { direction: 'input' }, out: SUM_OUT },
  params: CENTERED_PARAMS,
  compute: ({ fields, params }) => channelSumRun(fields.in, fields.out, params, { x: fields.x, mean: fields.mean, variance: fields.var, eps: params.eps }),
  cycles: (v, device) => channelSumCycles(v, device, true),
  estimateSource:
    'PopLibs reduction (7 + 26, per region 16 + 6 + 2 log2(vw) + 2, per vector 8) plus 2 vector ops of 3 cycles per element vector for the centred product',
});

export const channelSumCodelets: Codelet[] = [channelSumCodelet, batchNormScalePartialCodelet];

/**
 * NnPartialsFinal on the kernels: the pieces added into an fp32 accumulator
 * in the arena in piece order (add_vv), then scaled in double (scale_f64):
 * the reference's operations. False when they cannot run there.
 */
function partialsFinalWasm(parts: Float32Array[], out: Float32Array, offsets: readonly number[], scale: number): boolean {
  const w = separate(out, parts);
  if (!w || parts.some((p, j) => offsets[j] < 0 || offsets[j] + p.length > out.length)) return false;
  const acc = w.K.arena.alloc(4 * out.length);
  if (acc < 0) return false;
  w.K.f32.fill(0, acc >> 2, (acc >> 2) + out.length);
  parts.forEach((p, j) => w.K.x.add_vv(acc + 4 * offsets[j], w.ins[j], acc + 4 * offsets[j], p.length));
  w.K.x.scale_f64(acc, w.out, out.length, scale);
  return true;
}

/** Stage 2: out = scale x the sum of the pieces; piece j adds into out[offsets[j] ...]. */
export const partialsFinalCodelet = defineCodelet({
  name: 'NnPartialsFinal',
  kind: 'multi',
  fields: { partials: { direction: 'input', vector: true, dtypes: ['float32'] }, out: { direction: 'output' } },
  params: { scale: 'float?' },
  arrays: { offsets: 'ints' },
  compute({ fields, params, arrays }) {
    const parts = fields.partials;
    const out = fields.out;
    if (partialsFinalWasm(parts, out, arrays.offsets, params.scale ?? 1)) return;
    const acc = new Float32Array(out.length);
    for (let j = 0; j < parts.length; j++) {
      const p = parts[j];
      const off = arrays.offsets[j];
      for (let i = 0; i < p.length; i++) acc[off + i] += p[i];
    }
    const scale = params.scale ?? 1;
    for (let i = 0; i < out.length; i++) out[i] = acc[i] * scale;
  },
  cycles(v, device) {
    const parts = v.fields.partials;
    const pieces = Array.isArray(parts) ? parts.length : 1;
    return reduce(regionCount(parts), Math.max(1, pieces), 'float32', device);
  },
  estimateSource: 'PopLibs reduction, second stage: 7 + 26 start, per partial region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3',
});

// ---------------------------------------------------------------------------
// AMP convolution estimate.

export interface AmpConvWork {
  /** Convolution groups the vertex touches. */
  convGroups: number;
  /** Input channels (the contraction) per group. */
  inChans: number;
  /** Output channels per group the vertex produces. */
  outChans: number;
  /** Kernel positions, each a separate pass over the AMP weights. */
  kernelPositions: number;
  /** Output positions (rows of the AMP work) per output channel. */
  positions: number;
  dtype: DeviceDType;
}

/** AMP geometry of the preset: conv units = f16 MACs / 4 (§1: 16 units x 4 on Mk2). */
export function ampShape(dtype: DeviceDType, device: DeviceSpec): { convUnits: number; inChansPerGroup: number; rowCycles: number } {
  const convUnits = Math.max(1, Math.round(device.ampMacsPerCycle.float16 / 4));
  const inChansPerGroup = dtype === 'float16' ? 16 : 8;
  const macs = dtype === 'float16' ? device.ampMacsPerCycle.float16 : device.ampMacsPerCycle.float32;
  // One pass multiplies [n, inChansPerGroup] by [inChansPerGroup, convUnits]: this many cycles per row.
  const rowCycles = Math.max(1, Math.round((inChansPerGroup * convUnits) / macs));
  return { convUnits, inChansPerGroup, rowCycles };
}

/**
 * The structure of PopLibs' ConvPartial1x1Out supervisor estimate
 * (graphcore/poplibs lib/poplin/PerformanceEstimation.hpp,
 * getConvPartial1x1SupervisorCycleEstimate; ipu-architecture.md §3):
 *   worker, per work item of n rows: n >= 3: 43 (half) or 50 (float) + rowCycles (n - 3),
 *     n = 1, 2: 41/42 (half) or 50 (float), + the zeroing of the first in-group pass;
 *   inner = W x max worker (the rows split evenly over the W workers);
 *   outer = 50 + convGroups x (11 + (inGroups - 1) x (13 + outGroups x (18 + 6 + loads + inner))
 *                                  + (10 + outGroups x (18 + 6 + loads + innerWithZeroing)))
 * where loads = convUnits x inChansPerGroup x bytes / 16 (weights into the AMP at
 * 16 bytes per cycle), inGroups = kernelPositions x ceil(inChans / inChansPerGroup)
 * and outGroups = ceil(outChans / convUnits). rowCycles = inChansPerGroup x
 * convUnits / ampMacsPerCycle (4 for half, 8 for float on Mk2, as §3 says).
 */
export function ampConvCycles(w: AmpConvWork, device: DeviceSpec): number {
  if (w.positions <= 0 || w.outChans <= 0) return 50;
  const W = device.workersPerTile;
  const { convUnits, inChansPerGroup, rowCycles } = ampShape(w.dtype, device);
  const isFloat = w.dtype === 'float32';
  const rows = Math.ceil(w.positions / W);
  const worker = (zeroing: boolean): number => {
    const zero = zeroing ? 2 + (isFloat ? 8 : 4) * rows : 0;
    if (rows === 0) return 28;
    if (rows < 3) return (isFloat ? 50 : 40 + rows) + zero;
    return (isFloat ? 50 : 43) + zero + (rows - 3) * rowCycles;
  };
  const inner = W * worker(false);
  const innerZero = W * worker(true);
  const loads = Math.ceil((convUnits * inChansPerGroup * (isFloat ? 4 : 2)) / 16);
  const inGroups = Math.max(1, w.kernelPositions) * Math.ceil(Math.max(1, w.inChans) / inChansPerGroup);
  const outGroups = Math.ceil(w.outChans / convUnits);
  return (
    50 +
    Math.max(1, w.convGroups) * (11 + (inGroups - 1) * (13 + outGroups * (18 + 6 + loads + inner)) + (10 + outGroups * (18 + 6 + loads + innerZero)))
  );
}

export const AMP_SOURCE =
  'PopLibs ConvPartial1x1Out supervisor estimate (lib/poplin/PerformanceEstimation.hpp): 50 + groups x (in-chan groups x (out-chan groups x (24 + AMP weight loads + W x worker))), ' +
  'worker per n rows 43 + 4 (n - 3) half, 50 + 8 (n - 3) float; rows/cycle from ampMacsPerCycle';

// ---------------------------------------------------------------------------
// Pooling estimate.

export interface PoolWork {
  /** Rows of work: rows of the innermost output dim, per vector of channels. */
  rows: number;
  /** Positions per row. */
  rowLength: number;
  /** Kernel positions (work items per row). */
  kernelPositions: number;
  kind: 'max' | 'avg' | 'maxGrad';
}

/**
 * PopLibs' pooling vertex estimate (graphcore/poplibs
 * lib/popnn/PerformanceEstimation.hpp, getPoolingCycles), with one channel
 * group of one vector (vw channels) per row: per worker 4 + 1 + 2 + 7 + 2 + 5 + 1 + 2 + 3 + 3 setup
 * (+ 6 + 4 unpacking on the backward pass), then per row 13 + 2 + 2, per work
 * item (kernel position) 20 + 3 + [2 + 4 + 2 + 4 (+ 8 bwd) + 2 + rpt + 1 + 1],
 * rpt = 4 + 3n (max), 5 + 3n (avg/sum), 7 + 5n (max grad) for n row elements;
 * total = 7 + 6 x max worker + 6.
 */
export function poolCycles(w: PoolWork, device: DeviceSpec): number {
  const W = device.workersPerTile;
  const bwd = w.kind === 'maxGrad';
  const n = w.rowLength;
  const rpt = w.kind === 'max' ? 4 + 3 * n : w.kind === 'avg' ? 5 + 3 * n : 7 + 5 * n;
  const perItem = 20 + 3 + (2 + 4 + 2 + 4 + (bwd ? 8 : 0) + 2 + rpt + 1 + 1);
  const perRow = 13 + 2 + 2 + Math.max(1, w.kernelPositions) * perItem;
  const rowsPerWorker = Math.ceil(w.rows / W);
  const worker = 4 + 1 + 2 + 7 + 2 + 5 + 1 + 2 + 3 + 3 + (bwd ? 10 : 0) + rowsPerWorker * perRow + 1;
  return 7 + W * worker + 6;
}

export const POOL_SOURCE =
  'PopLibs pooling vertex estimate (lib/popnn/PerformanceEstimation.hpp getPoolingCycles): 7 + W x max worker + 6, worker = ~30 setup + rows x (17 + kernel positions x (~39 + rpt)), ' +
  'rpt 4 + 3n max, 5 + 3n avg, 7 + 5n max grad; rows of the innermost dim per vector of channels';

/** Field count helper for cycles(): the elements of a (possibly vector) field. */
export function count(v: VertexShape, field: string): number {
  return regionCount(v.fields[field]);
}

/**
 * A GradX block's weights per group: where group gl's weights start in the
 * field (wBase), the block's first input channel in that group (cStart) and
 * how many of its channels the group holds (cLen); `total` is the field's
 * length. The reference (conv.ts) and its WebAssembly kernel (conv-kernel.ts) read the
 * weights through this one layout.
 */
export function gradXGroups(c0: number, cCount: number, Cg: number, g0: number, gCount: number, mCount: number, K: number): { wBase: number[]; cStart: number[]; cLen: number[]; total: number } {
  const wBase: number[] = [];
  const cStart: number[] = [];
  const cLen: number[] = [];
  let at = 0;
  for (let gl = 0; gl < gCount; gl++) {
    const gi = g0 + gl;
    const lo = Math.max(c0, gi * Cg);
    const hi = Math.min(c0 + cCount, (gi + 1) * Cg);
    wBase.push(at);
    cStart.push(lo - gi * Cg);
    cLen.push(hi - lo);
    at += mCount * (hi - lo) * K;
  }
  return { wBase, cStart, cLen, total: at };
}
