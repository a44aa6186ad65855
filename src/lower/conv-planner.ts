/**
 * The convolution planner, PopLibs-style (poplin's convolution planner;
 * ipu-architecture.md §3): split a forward convolution over tiles by batch
 * items, output rows (the first spatial dim), output channels and input
 * channels (the contraction). Each tile runs one AMP vertex on its block:
 * the input box its output rows read (all of the other spatial dims) for its
 * input channels, and the weights of its output channels over those input
 * channels. When the input channels are split, each tile writes an fp32
 * partial of its output block and a second stage sums the partials on the
 * tile that owns the block.
 *
 * Every candidate split is costed with the estimators the simulator charges:
 *
 *   sync + exchange (input box and weights in; max(sent, received) on the
 *   busiest tile) + the AMP vertex on the largest block (+ the supervisor launch)
 *   [+ sync + exchange of the partials + their fp32 sum, when input channels are split]
 *
 * and the planner takes the fewest-cycle split whose temporaries (input box,
 * weights, partials, the partials received, the output block it owns) fit
 * availableMemoryProportion of a tile; when none fits, the one needing the
 * least memory, and says so.
 *
 * Simplifications (stated so estimates can be judged): the input and the
 * weights are assumed spread evenly over the tiles a linear mapping would
 * use, none of a block already on its tile; the input box holds every row
 * between its first and last (a stride above the kernel's extent reads
 * fewer); the exchange of one block's pieces is charged at the tile's
 * receive bandwidth, with no sharing between tiles of one bus.
 */
import { fitsDevice, type PlanOverrides } from './plan-overrides.js';
import { ampConvCycles } from '../../sim/codelets/nn-util.js';
import { reduce } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import { better, kib, linearMapping, type MatMulDType } from './matmul-planner.js';

/** A forward convolution as the planner sees it (spatial dims padded to 3, as the codelets take them). */
export interface ConvShape {
  N: number;
  C: number;
  M: number;
  group: number;
  /** Input spatial dims [D0, D1, D2] and output [O0, O1, O2]. */
  inDims: number[];
  outDims: number[];
  /** Kernel [k0, k1, k2], stride and dilation of dim 0, start padding of dim 0. */
  kernel: number[];
  stride0: number;
  dilation0: number;
  pad0: number;
  dtype: MatMulDType;
}

/** Block sizes: each tile takes nBlock batch items x rowBlock output rows x mBlock output channels x cBlock input channels of a group. */
export interface ConvSplit {
  nBlock: number;
  rowBlock: number;
  mBlock: number;
  cBlock: number;
}

export interface ConvPlan extends ConvSplit {
  /** Parts along each dimension and tiles in all: tile = ((nb gRow + rb) gM + mb) gC + cb. */
  gN: number;
  gRow: number;
  gM: number;
  gC: number;
  tiles: number;
  cycles: { sync: number; exchange: number; compute: number; reduceExchange: number; reduce: number; total: number };
  tempBytes: number;
  memoryLimit: number;
}

export interface ConvPlanResult {
  plan: ConvPlan;
  candidates: number;
  overMemory: number;
  fallback: boolean;
}

/** AMP input-channel grain: 16 for half, 8 for float (sim/codelets/nn-util.ts, ampShape). */
export function cGrain(dtype: MatMulDType): number {
  return dtype === 'float16' ? 16 : 8;
}

/**
 * Input rows [lo, hi) that output rows [r0, r1) read, clipped to the input.
 * Rows that read only padding give lo = hi, kept inside the input
 * (0 <= lo <= D0 - 1) so the one row a box always holds exists.
 */
export function inputRows(s: ConvShape, r0: number, r1: number): [number, number] {
  const lo = Math.max(0, r0 * s.stride0 - s.pad0);
  const hi = Math.max(0, Math.min(s.inDims[0], (r1 - 1) * s.stride0 - s.pad0 + (s.kernel[0] - 1) * s.dilation0 + 1));
  return [Math.min(lo, hi, s.inDims[0] - 1), hi];
}

/** Groups a block of `block` consecutive channels (of `total`, in `group` groups) can touch at most. */
export function groupsTouched(total: number, group: number, block: number): number {
  const per = total / group;
  if (group === 1) return 1;
  const aligned = block >= per ? block % per === 0 : per % block === 0;
  return Math.min(group, Math.ceil(block / per) + (aligned ? 0 : 1));
}

/** The largest input-row count any block of rowBlock output rows reads. */
export function maxInRows(s: ConvShape, rowBlock: number): number {
  return Math.min(s.inDims[0], (rowBlock - 1) * s.stride0 + (s.kernel[0] - 1) * s.dilation0 + 1);
}

/** Cost one split. */
export function estimateConvPlan(s: ConvShape, split: ConvSplit, device: DeviceSpec, tilesAvailable = device.ipus * device.tilesPerIpu): ConvPlan {
  const Cg = s.C / s.group;
  const Mg = s.M / s.group;
  const nBlock = Math.min(split.nBlock, s.N);
  const rowBlock = Math.min(split.rowBlock, s.outDims[0]);
  const mBlock = Math.min(split.mBlock, s.M);
  const cBlock = Math.min(split.cBlock, Cg);
  const gN = Math.ceil(s.N / nBlock);
  const gRow = Math.ceil(s.outDims[0] / rowBlock);
  const gM = Math.ceil(s.M / mBlock);
  const gC = Math.ceil(Cg / cBlock);
  const bytes = DTYPE_BYTES[s.dtype];
  const K = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const inRest = s.inDims[1] * s.inDims[2];
  const outRest = s.outDims[1] * s.outDims[2];
  const groups = groupsTouched(s.M, s.group, mBlock);
  const inElems = nBlock * groups * cBlock * maxInRows(s, rowBlock) * inRest;
  const wElems = mBlock * cBlock * K;
  const received = (inElems + wElems) * bytes;
  const xElems = s.N * s.C * s.inDims[0] * inRest;
  const wAll = s.M * Cg * K;
  const sent =
    Math.ceil((xElems * bytes) / linearMapping(xElems, s.dtype, device, tilesAvailable).tiles) + Math.ceil((wAll * bytes) / linearMapping(wAll, s.dtype, device, tilesAvailable).tiles);
  const exBytes = device.exchangeBytesPerCycle;
  const exchange = Math.ceil(Math.max(received, sent) / exBytes);
  const positions = nBlock * rowBlock * outRest;
  const compute =
    device.supervisorOverheadCycles +
    ampConvCycles({ convGroups: s.group > 1 ? groups : 1, inChans: cBlock, outChans: Math.min(mBlock, Mg), kernelPositions: K, positions, dtype: s.dtype }, device);
  const outBlock = positions * mBlock;
  let temp = received + outBlock * bytes;
  let reduceExchange = 0;
  let reduceCycles = 0;
  let syncs = 1;
  if (gC > 1) {
    // Each tile's fp32 partial, and on the owner the gC - 1 partials it receives.
    temp += gC * outBlock * 4;
    reduceExchange = Math.ceil(((gC - 1) * outBlock * 4) / exBytes);
    reduceCycles = device.supervisorOverheadCycles + reduce(gC * outBlock, nBlock * mBlock, 'float32', device);
    syncs = 2;
  }
  const sync = syncs * device.syncCycles;
  const proportion = device.availableMemoryProportion ?? 0.6;
  return {
    nBlock,
    rowBlock,
    mBlock,
    cBlock,
    gN,
    gRow,
    gM,
    gC,
    tiles: gN * gRow * gM * gC,
    cycles: { sync, exchange, compute, reduceExchange, reduce: reduceCycles, total: sync + exchange + compute + reduceExchange + reduceCycles },
    tempBytes: temp,
    memoryLimit: Math.floor(proportion * device.bytesPerTile),
  };
}

/** Block sizes of splits into 1 .. maxParts parts, on a geometric ladder of part counts (enough to see the trade-offs). */
export function ladder(size: number, maxParts: number, grain = 1): number[] {
  const units = Math.ceil(size / grain);
  const out = new Set<number>();
  for (let parts = Math.min(units, maxParts); parts >= 1; parts = Math.min(parts - 1, Math.floor(parts / 1.25))) {
    out.add(Math.min(size, Math.ceil(units / parts) * grain));
  }
  return [...out];
}

/** The plan: the fewest-cycle split that fits the memory limit, else the one needing the least memory. */
export function planConv(s: ConvShape, device: DeviceSpec, plans: PlanOverrides = {}): ConvPlanResult {
  const numTiles = device.ipus * device.tilesPerIpu;
  const forced = plans.conv?.(s);
  if (forced) {
    const plan = fitsDevice(estimateConvPlan(s, forced, device, numTiles), numTiles, 'convolution');
    return { plan, candidates: 1, overMemory: 0, fallback: false };
  }
  const Cg = s.C / s.group;
  let best: ConvPlan | undefined;
  let leastMemory: ConvPlan | undefined;
  let candidates = 0;
  let overMemory = 0;
  for (const nBlock of ladder(s.N, numTiles)) {
    const gN = Math.ceil(s.N / nBlock);
    for (const cBlock of ladder(Cg, Math.floor(numTiles / gN), cGrain(s.dtype))) {
      const gC = Math.ceil(Cg / cBlock);
      for (const mBlock of ladder(s.M, Math.floor(numTiles / (gN * gC)))) {
        const gM = Math.ceil(s.M / mBlock);
        const maxRows = Math.floor(numTiles / (gN * gC * gM));
        if (maxRows < 1) continue;
        for (const rowBlock of ladder(s.outDims[0], maxRows)) {
          candidates++;
          const p = estimateConvPlan(s, { nBlock, rowBlock, mBlock, cBlock }, device, numTiles);
          if (!leastMemory || p.tempBytes < leastMemory.tempBytes || (p.tempBytes === leastMemory.tempBytes && better(p, leastMemory))) leastMemory = p;
          if (p.tempBytes > p.memoryLimit) {
            overMemory++;
            continue;
          }
          if (!best || better(p, best)) best = p;
        }
      }
    }
  }
  if (best) return { plan: best, candidates, overMemory, fallback: false };
  return { plan: leastMemory!, candidates, overMemory, fallback: true };
}

/** What `sim compile` shows for a plan: the split, the estimate by phase, the memory, and why. */
export function describeConvPlan(s: ConvShape, r: ConvPlanResult): string {
  const p = r.plan;
  const c = p.cycles;
  const k = s.kernel.filter((_, i) => i < 2 || s.kernel[i] > 1).join('x');
  const dims = `[${s.N}, ${s.C}, ${s.inDims.filter((d, i) => i === 0 || d > 1).join(', ')}] * ${s.M} x ${k}${s.group > 1 ? ` in ${s.group} groups` : ''} ${s.dtype}`;
  const split = `batch ${p.gN} x rows ${p.gRow} x out-channels ${p.gM} x in-channels ${p.gC} = ${p.tiles} tiles`;
  const block = `block ${p.nBlock} x ${p.rowBlock} rows x ${p.mBlock} out x ${p.cBlock} in`;
  const parts = [`sync ${c.sync}`, `exchange ${c.exchange}`, `AMP ${c.compute}`];
  if (p.gC > 1) parts.push(`partials exchange ${c.reduceExchange}`, `fp32 reduction ${c.reduce}`);
  const why = r.fallback
    ? `no split fits ${kib(p.memoryLimit)} of temporaries per tile: took the one needing the least (${kib(p.tempBytes)})`
    : `fewest cycles of ${r.candidates} splits${r.overMemory ? ` (${r.overMemory} over the memory limit)` : ''}, temporaries ${kib(p.tempBytes)} per tile of ${kib(p.memoryLimit)} allowed`;
  return `${dims}: ${split}, ${block}; estimated ${c.total} cycles (${parts.join(' + ')}); ${why}`;
}
