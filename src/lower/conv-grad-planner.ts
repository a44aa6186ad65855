/**
 * Plans of the convolution's backward passes (ConvGradX, ConvGradW), costed
 * as the AMP convolutions PopLibs turns them into (poplin's backward and
 * weight-update passes; ipu-architecture.md §3), with the forward planner's
 * estimators and search (src/lower/conv-planner.ts).
 *
 * ConvGradX: dX = dY convolved with the weights transposed and flipped. The
 * roles of the channels swap: dX's channels C are the outputs, dY's channels
 * M (per group) the contraction; a stride makes the taps that land between
 * strides contribute nothing. Split over batch, dX rows, dX channels (any
 * block of C, straddling groups as the forward's output-channel blocks do)
 * and output-gradient channels of each group (the contraction). Each tile
 * receives the dY box its dX rows read (the dY rows whose windows cover
 * them, for its contraction channels of every group its dX channels are in)
 * and the weight block W[m, c', :] of those channels.
 *
 * ConvGradW: dW[m, c', k] = sum over n, o of dY[n, m, o] X[n, c, o s - p + k d].
 * Split over output channels M (straddling groups), input channels of a group,
 * and the contraction: batch items x dY rows. Each tile receives its dY block
 * and the X box those rows read for its input channels (the forward's box).
 *
 * When the contraction is split, each tile writes an fp32 partial of its
 * block and a second stage sums them. Unlike the forward plan (the whole sum
 * on the block's owner) the sum is spread: the block's elements are cut into
 * chunks, one per contraction tile (up to one per 16 elements), each tile
 * summing one chunk of every partial, and the output is mapped by the
 * chunks. A weight gradient's contraction can be split hundreds of ways
 * (ResNet-50's early layers: a small dW over 56 x 56 positions); one owner
 * would receive every partial.
 *
 * Cost of a split (as the forward's): sync + exchange of the operand blocks
 * (max(sent, received) on the busiest tile; operands spread as a linear
 * mapping spreads them) + the AMP vertex of the largest block [+ sync + the
 * partials' exchange + their fp32 sum]; the fewest-cycle split whose
 * temporaries fit availableMemoryProportion, else the one needing least.
 * ConvGradX also pays the weights' move into its blocks first: a sync and
 * an exchange, and each reader's piece of its block as a temporary.
 */
import { fitsDevice, type PlanOverrides } from './plan-overrides.js';
import { ampConvCycles } from '../../sim/codelets/nn-util.js';
import { reduce } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import { cGrain, groupsTouched, ladder, maxInRows, type ConvShape } from './conv-planner.js';
import { better, kib, linearMapping, type MatMulDType, type PlanCost } from './matmul-planner.js';

/** A convolution as the backward planners see it: the forward's shape and all three strides (taps skipped between strides). */
export interface ConvGradShape extends ConvShape {
  strides: number[];
}

export interface ConvCycles {
  sync: number;
  exchange: number;
  compute: number;
  reduceExchange: number;
  reduce: number;
  total: number;
}

/** dX blocks: nBlock batch items x rowBlock dX rows x cBlock dX channels (of C), over mBlock dY channels of each group. */
export interface ConvGradXSplit {
  nBlock: number;
  rowBlock: number;
  cBlock: number;
  mBlock: number;
}

export interface ConvGradXPlan extends ConvGradXSplit, PlanCost {
  /** Parts along each dimension: tile = ((nb gRow + rb) gC + cb) gM + mb. */
  gN: number;
  gRow: number;
  gC: number;
  gM: number;
  cycles: ConvCycles;
}

/** dW blocks: mBlock output channels (of M) x cBlock input channels of a group, over nBlock batch items x rowBlock dY rows. */
export interface ConvGradWSplit {
  mBlock: number;
  cBlock: number;
  nBlock: number;
  rowBlock: number;
}

export interface ConvGradWPlan extends ConvGradWSplit, PlanCost {
  /** Parts along each dimension: tile = ((mb gC + cb) gN + nb) gRow + rb. */
  gM: number;
  gC: number;
  gN: number;
  gRow: number;
  cycles: ConvCycles;
}

export interface GradPlanResult<P> {
  plan: P;
  candidates: number;
  overMemory: number;
  fallback: boolean;
}

/** dY rows [lo, hi) that dX rows [r0, r1) read (hi <= lo: none, every tap of those rows lands in padding or between strides). */
export function gradOutRows(s: ConvShape, r0: number, r1: number): [number, number] {
  const lo = Math.max(0, Math.ceil((r0 + s.pad0 - (s.kernel[0] - 1) * s.dilation0) / s.stride0));
  const hi = Math.min(s.outDims[0], Math.floor((r1 - 1 + s.pad0) / s.stride0) + 1);
  return [lo, hi];
}

/** The largest dY-row count a block of rowBlock dX rows reads. */
function maxGradOutRows(s: ConvShape, rowBlock: number): number {
  return Math.min(s.outDims[0], Math.floor((rowBlock - 1 + (s.kernel[0] - 1) * s.dilation0) / s.stride0) + 1);
}

/** Tap passes per output position of dX: the kernel's taps over the strides (the others land between strides). */
export function gradXKernelPositions(kernel: number[], strides: number[]): number {
  return Math.ceil((kernel[0] * kernel[1] * kernel[2]) / (strides[0] * strides[1] * strides[2]));
}

/** Tiles of the second stage of a block split `parts` ways: one chunk of the block each, of at least 16 elements. */
export function reduceChunks(parts: number, outBlock: number): { reducers: number; chunk: number } {
  const chunk = Math.ceil(outBlock / Math.max(1, Math.min(parts, Math.ceil(outBlock / 16))));
  return { reducers: Math.ceil(outBlock / chunk), chunk };
}

/** Bytes one tile sends of a linearly mapped operand (its share). */
function spread(elems: number, dtype: MatMulDType, device: DeviceSpec, tiles: number): number {
  return Math.ceil((elems * DTYPE_BYTES[dtype]) / linearMapping(elems, dtype, device, tiles).tiles);
}

/** The common tail of a backward estimate: operand exchange, AMP, and the spread fp32 second stage when the contraction is split. */
function costed(
  device: DeviceSpec,
  io: {
    received: number;
    sent: number;
    compute: number;
    outBlock: number;
    outBytes: number;
    parts: number;
    runLength: number;
    /** An exchange before the operand exchange that rearranges an operand (its own sync): bytes per tile in and out. */
    rearrange?: { received: number; sent: number };
  },
): { cycles: ConvCycles; tempBytes: number; memoryLimit: number } {
  const exBytes = device.exchangeBytesPerCycle;
  let exchange = Math.ceil(Math.max(io.received, io.sent) / exBytes);
  const compute = device.supervisorOverheadCycles + io.compute;
  let temp = io.received;
  let reduceExchange = 0;
  let reduceCycles = 0;
  let syncs = 1;
  if (io.rearrange) {
    exchange += Math.ceil(Math.max(io.rearrange.received, io.rearrange.sent) / exBytes);
    temp += io.rearrange.received;
    syncs += 1;
  }
  if (io.parts > 1) {
    const { chunk } = reduceChunks(io.parts, io.outBlock);
    // Its own partial, the parts - 1 pieces of its chunk it receives, and its chunk of the output.
    temp += io.outBlock * 4 + (io.parts - 1) * chunk * 4 + chunk * io.outBytes;
    reduceExchange = Math.ceil(Math.max(io.outBlock * 4, (io.parts - 1) * chunk * 4) / exBytes);
    const regions = Math.min(chunk, Math.ceil(chunk / io.runLength) + 1);
    reduceCycles = device.supervisorOverheadCycles + reduce(io.parts * chunk, regions, 'float32', device);
    syncs += 1;
  } else temp += io.outBlock * io.outBytes;
  const sync = syncs * device.syncCycles;
  const proportion = device.availableMemoryProportion ?? 0.6;
  return {
    cycles: { sync, exchange, compute, reduceExchange, reduce: reduceCycles, total: sync + exchange + compute + reduceExchange + reduceCycles },
    tempBytes: temp,
    memoryLimit: Math.floor(proportion * device.bytesPerTile),
  };
}

/** Cost one ConvGradX split. */
export function estimateConvGradXPlan(s: ConvGradShape, split: ConvGradXSplit, device: DeviceSpec, tilesAvailable = device.ipus * device.tilesPerIpu): ConvGradXPlan {
  const Cg = s.C / s.group;
  const Mg = s.M / s.group;
  const nBlock = Math.min(split.nBlock, s.N);
  const rowBlock = Math.min(split.rowBlock, s.inDims[0]);
  const cBlock = Math.min(split.cBlock, s.C);
  const mBlock = Math.min(split.mBlock, Mg);
  const gN = Math.ceil(s.N / nBlock);
  const gRow = Math.ceil(s.inDims[0] / rowBlock);
  const gC = Math.ceil(s.C / cBlock);
  const gM = Math.ceil(Mg / mBlock);
  const bytes = DTYPE_BYTES[s.dtype];
  const K = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const inRest = s.inDims[1] * s.inDims[2];
  const outRest = s.outDims[1] * s.outDims[2];
  const groups = groupsTouched(s.C, s.group, cBlock);
  const dyElems = nBlock * groups * mBlock * maxGradOutRows(s, rowBlock) * outRest;
  const wElems = mBlock * cBlock * K;
  const positions = nBlock * rowBlock * inRest;
  const amp = ampConvCycles(
    { convGroups: s.group > 1 ? groups : 1, inChans: mBlock, outChans: Math.min(cBlock, Cg), kernelPositions: gradXKernelPositions(s.kernel, s.strides), positions, dtype: s.dtype },
    device,
  );
  const wSpread = spread(s.M * Cg * K, s.dtype, device, tilesAvailable);
  const c = costed(device, {
    received: (dyElems + wElems) * bytes,
    sent: spread(s.N * s.M * s.outDims[0] * outRest, s.dtype, device, tilesAvailable) + wSpread,
    compute: amp,
    outBlock: positions * cBlock,
    outBytes: bytes,
    parts: gM,
    runLength: rowBlock * inRest,
    // The weights first move into the plan's blocks (src/ops/conv.ts, weights-by-block): each block spread over
    // the gN x gRow tiles that read it, each holding its piece until the dX vertices have run.
    rearrange: { received: Math.ceil((wElems * bytes) / (gN * gRow)), sent: wSpread },
  });
  return { nBlock, rowBlock, cBlock, mBlock, gN, gRow, gC, gM, tiles: gN * gRow * gC * gM, ...c };
}

/** Cost one ConvGradW split. */
export function estimateConvGradWPlan(s: ConvGradShape, split: ConvGradWSplit, device: DeviceSpec, tilesAvailable = device.ipus * device.tilesPerIpu): ConvGradWPlan {
  const Cg = s.C / s.group;
  const Mg = s.M / s.group;
  const mBlock = Math.min(split.mBlock, s.M);
  const cBlock = Math.min(split.cBlock, Cg);
  const nBlock = Math.min(split.nBlock, s.N);
  const rowBlock = Math.min(split.rowBlock, s.outDims[0]);
  const gM = Math.ceil(s.M / mBlock);
  const gC = Math.ceil(Cg / cBlock);
  const gN = Math.ceil(s.N / nBlock);
  const gRow = Math.ceil(s.outDims[0] / rowBlock);
  const bytes = DTYPE_BYTES[s.dtype];
  const K = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const inRest = s.inDims[1] * s.inDims[2];
  const outRest = s.outDims[1] * s.outDims[2];
  const groups = groupsTouched(s.M, s.group, mBlock);
  const dyElems = nBlock * mBlock * rowBlock * outRest;
  const xElems = nBlock * groups * cBlock * maxInRows(s, rowBlock) * inRest;
  // The weight-update pass: the contraction runs over this tile's positions, the AMP's rows are dW's c' x kernel.
  const amp = ampConvCycles(
    { convGroups: s.group > 1 ? groups : 1, inChans: nBlock * rowBlock * outRest, outChans: Math.min(mBlock, Mg), kernelPositions: 1, positions: cBlock * K, dtype: s.dtype },
    device,
  );
  const c = costed(device, {
    received: (dyElems + xElems) * bytes,
    sent: spread(s.N * s.M * s.outDims[0] * outRest, s.dtype, device, tilesAvailable) + spread(s.N * s.C * s.inDims[0] * inRest, s.dtype, device, tilesAvailable),
    compute: amp,
    outBlock: mBlock * cBlock * K,
    outBytes: bytes,
    parts: gN * gRow,
    runLength: cBlock * K,
  });
  return { mBlock, cBlock, nBlock, rowBlock, gM, gC, gN, gRow, tiles: gM * gC * gN * gRow, ...c };
}

/**
 * The fewest-cycle split that fits the memory limit, else the one needing the
 * least memory: every combination of the dims' ladders whose part counts
 * multiply to at most the device's tiles.
 */
function search<P extends PlanCost>(dims: { size: number; grain?: number }[], numTiles: number, estimate: (blocks: number[]) => P): GradPlanResult<P> {
  let best: P | undefined;
  let leastMemory: P | undefined;
  let candidates = 0;
  let overMemory = 0;
  const blocks: number[] = [];
  const walk = (i: number, tilesLeft: number): void => {
    if (i === dims.length) {
      candidates++;
      const p = estimate(blocks);
      if (!leastMemory || p.tempBytes < leastMemory.tempBytes || (p.tempBytes === leastMemory.tempBytes && better(p, leastMemory))) leastMemory = p;
      if (p.tempBytes > p.memoryLimit) overMemory++;
      else if (!best || better(p, best)) best = p;
      return;
    }
    const d = dims[i];
    for (const b of ladder(d.size, tilesLeft, d.grain)) {
      blocks[i] = b;
      walk(i + 1, Math.floor(tilesLeft / Math.ceil(d.size / b)));
    }
  };
  walk(0, numTiles);
  if (best) return { plan: best, candidates, overMemory, fallback: false };
  return { plan: leastMemory!, candidates, overMemory, fallback: true };
}

function forced<P extends PlanCost>(plan: P, numTiles: number): GradPlanResult<P> {
  return { plan: fitsDevice(plan, numTiles, 'convolution-gradient'), candidates: 1, overMemory: 0, fallback: false };
}

export function planConvGradX(s: ConvGradShape, device: DeviceSpec, plans: PlanOverrides = {}): GradPlanResult<ConvGradXPlan> {
  const numTiles = device.ipus * device.tilesPerIpu;
  const f = plans.convGradX?.(s);
  if (f) return forced(estimateConvGradXPlan(s, f, device, numTiles), numTiles);
  const dims = [{ size: s.N }, { size: s.M / s.group, grain: cGrain(s.dtype) }, { size: s.C }, { size: s.inDims[0] }];
  return search(dims, numTiles, ([nBlock, mBlock, cBlock, rowBlock]) => estimateConvGradXPlan(s, { nBlock, rowBlock, cBlock, mBlock }, device, numTiles));
}

export function planConvGradW(s: ConvGradShape, device: DeviceSpec, plans: PlanOverrides = {}): GradPlanResult<ConvGradWPlan> {
  const numTiles = device.ipus * device.tilesPerIpu;
  const f = plans.convGradW?.(s);
  if (f) return forced(estimateConvGradWPlan(s, f, device, numTiles), numTiles);
  // The contraction (batch x rows) in AMP grains is not needed: positions are many.
  const dims = [{ size: s.M }, { size: s.C / s.group }, { size: s.N }, { size: s.outDims[0] }];
  return search(dims, numTiles, ([mBlock, cBlock, nBlock, rowBlock]) => estimateConvGradWPlan(s, { mBlock, cBlock, nBlock, rowBlock }, device, numTiles));
}

function dimsText(s: ConvShape): string {
  const k = s.kernel.filter((_, i) => i < 2 || s.kernel[i] > 1).join('x');
  return `[${s.N}, ${s.C}, ${s.inDims.filter((d, i) => i === 0 || d > 1).join(', ')}] * ${s.M} x ${k}${s.group > 1 ? ` in ${s.group} groups` : ''} ${s.dtype}`;
}

function tail(c: ConvCycles, split: boolean, r: GradPlanResult<PlanCost>): string {
  const p = r.plan;
  const parts = [`sync ${c.sync}`, `exchange ${c.exchange}`, `AMP ${c.compute}`];
  if (split) parts.push(`partials exchange ${c.reduceExchange}`, `fp32 reduction ${c.reduce}`);
  const why = r.fallback
    ? `no split fits ${kib(p.memoryLimit)} of temporaries per tile: took the one needing the least (${kib(p.tempBytes)})`
    : `fewest cycles of ${r.candidates} splits${r.overMemory ? ` (${r.overMemory} over the memory limit)` : ''}, temporaries ${kib(p.tempBytes)} per tile of ${kib(p.memoryLimit)} allowed`;
  return `estimated ${c.total} cycles (${parts.join(' + ')}); ${why}`;
}

/** What `sim compile` shows for a ConvGradX plan. */
export function describeConvGradXPlan(s: ConvShape, r: GradPlanResult<ConvGradXPlan>): string {
  const p = r.plan;
  const split = `batch ${p.gN} x dX rows ${p.gRow} x dX channels ${p.gC} x dY channels ${p.gM} = ${p.tiles} tiles`;
  const block = `block ${p.nBlock} x ${p.rowBlock} rows x ${p.cBlock} dX channels over ${p.mBlock} dY channels per group`;
  return `dX of ${dimsText(s)}: ${split}, ${block}; ${tail(p.cycles, p.gM > 1, r)}`;
}

/** What `sim compile` shows for a ConvGradW plan. */
export function describeConvGradWPlan(s: ConvShape, r: GradPlanResult<ConvGradWPlan>): string {
  const p = r.plan;
  const split = `out-channels ${p.gM} x in-channels ${p.gC} x batch ${p.gN} x dY rows ${p.gRow} = ${p.tiles} tiles`;
  const block = `block ${p.mBlock} out x ${p.cBlock} in over ${p.nBlock} x ${p.rowBlock} rows`;
  return `dW of ${dimsText(s)}: ${split}, ${block}; ${tail(p.cycles, p.gN * p.gRow > 1, r)}`;
}
