/**
 * The matmul planner, PopLibs-style (poplin's convolution planner, which
 * plans matmuls; ipu-architecture.md §3): split the output groups (batch),
 * the rows M, the columns N and the contraction K over tiles. Each tile runs
 * one AMP vertex on its block and, when K is split, writes fp32 partials that
 * a second stage exchanges to the tile owning each output element and sums
 * there. Every candidate split is costed with the same estimators the
 * simulator charges:
 *
 *   sync + exchange (operand blocks in; the busiest tile's max(sent, received))
 *   + AMP vertex on the largest block (+ the compute set's supervisor launch)
 *   [+ sync + exchange of the partials + the reduction, when K is split]
 *
 * and the planner picks the fewest-cycle split whose temporaries (operand
 * copies, partials, partials received for the reduction) fit
 * availableMemoryProportion of a tile. When none fits it takes, as PopLibs
 * does, the split needing the least temporary memory, and says so.
 *
 * The exchange is costed by the rules of sim/cost.ts: a holder sends each
 * piece once however many tiles take it (all the tiles of one operand block
 * ask for identical pieces), and tiles of one shared exchange bus taking the
 * same data share its receive charge. Tiles are numbered so that bus-mates
 * share the larger operand block: the innermost split is the columns (tiles
 * sharing an A block) or the rows (sharing a B block).
 *
 * Simplifications (stated so estimates can be judged): each operand (and each
 * serial step's slice of it) is assumed spread evenly over its `aHolders` /
 * `bHolders` tiles, and none of a block is assumed to be on its tile already;
 * rearranging operands (transposes) is free, done by the exchange gathering
 * rows in the order the vertex reads them.
 */
import { ampVertexCycles } from '../../sim/codelets/amp.js';
import { reduce, vectorWidth } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import { linearLayout, type LinearLayout } from './linear.js';
import { fitsDevice } from './plan-overrides.js';

export type MatMulDType = 'float16' | 'float32';

/** out[g] (m x n) = sum over a contraction of length k of opA(...)[m, :] opB(...)[:, n], for g < groups. */
export interface MatMulShape {
  groups: number;
  m: number;
  n: number;
  /** Contraction length per output group (for a broadcast grad: terms x K). */
  k: number;
  inDtype: MatMulDType;
  outDtype: MatMulDType;
}

export interface PlanContext {
  /** Tiles to plan over (default: every tile of the device). */
  tiles?: number;
  /** Elements of the stored A and B operands (default groups x m x k and groups x k x n; fewer when a batch is broadcast). */
  aElems?: number;
  bElems?: number;
  /** Tiles holding the A and B operands (default: as a linear mapping of groups x m x k, groups x k x n would). */
  aHolders?: number;
  bHolders?: number;
  /** Override the device's availableMemoryProportion. */
  availableMemoryProportion?: number;
  /** A split to take instead of searching (PlanOverrides.matmul). */
  force?: (shape: MatMulShape) => MatMulSplit | undefined;
}

/**
 * Block sizes of a split: each tile computes [bBlock, mBlock, nBlock] over
 * kBlock of the contraction, in each of the sequential steps (PopLibs' serial
 * splits) over slices of the output: serialM slices of its rows times serialN
 * slices of its columns (default 1 each). With serial steps the block sizes
 * are those of one step.
 */
export interface MatMulSplit {
  bBlock: number;
  mBlock: number;
  nBlock: number;
  kBlock: number;
  serialM?: number;
  serialN?: number;
}

export interface MatMulPlan extends MatMulSplit {
  /** Tiles along each dimension and in all. */
  gB: number;
  gM: number;
  gN: number;
  gK: number;
  tiles: number;
  /** Sequential steps (1: no serial split): serialM x serialN slices of stepM rows and stepN columns. */
  serial: number;
  serialM: number;
  serialN: number;
  stepM: number;
  stepN: number;
  /** The AMP streams the B block and holds the A block as weights (cheaper when mBlock is small). */
  swap: boolean;
  /**
   * Tile order: tile = ((ib gK + kk) gOuter + outer) gInner + inner, the inner
   * split the columns (shareA: neighbouring tiles take the same A block) or
   * the rows (they take the same B block).
   */
  shareA: boolean;
  /** Cycles of all the steps, by phase. */
  cycles: {
    sync: number;
    exchange: number;
    compute: number;
    reduceExchange: number;
    reduce: number;
    total: number;
  };
  /** Temporary bytes on the busiest tile and the limit they must fit. */
  tempBytes: number;
  memoryLimit: number;
}

export interface PlanResult {
  plan: MatMulPlan;
  /** The one-stage mapping (output rows over tiles, all of B on each): what the planner must beat. */
  naive: MatMulPlan;
  candidates: number;
  /** Candidates over the memory limit. */
  overMemory: number;
  /** True when no candidate fit and the least-memory one was taken. */
  fallback: boolean;
}

/** AMP granularity: 16 input channels per group (§3) and 16 output channels per partials group. */
export const K_GRAIN = 16;
export const N_GRAIN = 16;

/**
 * The linear mapping of `elems` elements of `dtype` (DeviceGraph.mapLinearly's
 * rule, src/lower/linear.ts): tiles used, elements on the busiest, first tile.
 */
export function linearMapping(elems: number, dtype: MatMulDType, device: DeviceSpec, numTiles: number): LinearLayout {
  return linearLayout(elems, DTYPE_BYTES[dtype], vectorWidth(dtype, device), device.minBytesPerTile, numTiles, device.tilesPerSharedBus);
}

function deviceTiles(device: DeviceSpec): number {
  return device.ipus * device.tilesPerIpu;
}

/**
 * Temporary bytes on the busiest tile for one step of `step` (operand blocks;
 * with a split contraction also the fp32 partial block and the partials it
 * receives to reduce): what must fit availableMemoryProportion.
 */
export function tempBytes(step: MatMulShape, split: MatMulSplit, device: DeviceSpec, numTiles: number): number {
  const bBlock = Math.min(split.bBlock, step.groups);
  const mBlock = Math.min(split.mBlock, step.m);
  const nBlock = Math.min(split.nBlock, step.n);
  const kBlock = Math.min(split.kBlock, step.k);
  const inBytes = DTYPE_BYTES[step.inDtype];
  let temp = bBlock * kBlock * (mBlock + nBlock) * inBytes;
  const gK = Math.ceil(step.k / kBlock);
  if (gK > 1) temp += bBlock * mBlock * nBlock * 4 + gK * linearMapping(step.groups * step.m * step.n, step.outDtype, device, numTiles).perTile * 4;
  return temp;
}

/** Cost one split. */
export function estimatePlan(full: MatMulShape, split: MatMulSplit, device: DeviceSpec, ctx: PlanContext = {}): MatMulPlan {
  const numTiles = ctx.tiles ?? deviceTiles(device);
  const sm = serialSlices(full, 'm', split.serialM ?? 1);
  const sn = serialSlices(full, 'n', split.serialN ?? 1);
  const serial = sm.steps * sn.steps;
  const shape = { ...full, m: sm.size, n: sn.size };
  const { groups, m, n, k } = shape;
  const bBlock = Math.min(split.bBlock, groups);
  const mBlock = Math.min(split.mBlock, m);
  const nBlock = Math.min(split.nBlock, n);
  const kBlock = Math.min(split.kBlock, k);
  const gB = Math.ceil(groups / bBlock);
  const gM = Math.ceil(m / mBlock);
  const gN = Math.ceil(n / nBlock);
  const gK = Math.ceil(k / kBlock);
  const tiles = gB * gM * gN * gK;
  const inBytes = DTYPE_BYTES[shape.inDtype];
  const exBytes = device.exchangeBytesPerCycle;

  // Stage 1: every tile receives its A block [bBlock, mBlock, kBlock] and B block [bBlock, kBlock, nBlock].
  // Holders send each piece once (the tiles of a block ask for identical pieces): a step's slices of A and B.
  const blockA = bBlock * mBlock * kBlock * inBytes;
  const blockB = bBlock * kBlock * nBlock * inBytes;
  const aElems = ctx.aElems ?? full.groups * full.m * full.k;
  const bElems = ctx.bElems ?? full.groups * full.k * full.n;
  const aHolders = ctx.aHolders ?? linearMapping(aElems, shape.inDtype, device, numTiles).tiles;
  const bHolders = ctx.bHolders ?? linearMapping(bElems, shape.inDtype, device, numTiles).tiles;
  const sent = Math.ceil((aElems * inBytes) / sm.steps / aHolders) + Math.ceil((bElems * inBytes) / sn.steps / bHolders);
  // Bus-mates (consecutive tiles) share the receive charge of the block they both take, when the inner split pairs them up.
  const bus = device.tilesPerSharedBus;
  const shared = (block: number, inner: number) => (bus > 1 && inner % bus === 0 ? block / bus : block);
  const chargeShareA = shared(blockA, gN) + blockB;
  const chargeShareB = blockA + shared(blockB, gM);
  const shareA = chargeShareA <= chargeShareB;
  const received = Math.min(chargeShareA, chargeShareB);
  const exchange = Math.ceil(Math.max(received, sent) / exBytes);
  const straight = ampVertexCycles({ groups: bBlock, rows: mBlock, k: kBlock, n: nBlock }, shape.inDtype, device);
  const swapped = ampVertexCycles({ groups: bBlock, rows: nBlock, k: kBlock, n: mBlock }, shape.inDtype, device);
  const swap = swapped < straight;
  const compute = device.supervisorOverheadCycles + Math.min(straight, swapped);

  // Stage 2 (K split): fp32 partials to the owners of a linearly mapped output, summed there.
  let reduceExchange = 0;
  let reduceCycles = 0;
  const temp = tempBytes(shape, split, device, numTiles);
  let syncs = 1;
  if (gK > 1) {
    const out = linearMapping(groups * m * n, shape.outDtype, device, numTiles);
    const partialBlock = bBlock * mBlock * nBlock * 4;
    const partialsIn = gK * out.perTile * 4;
    reduceExchange = Math.ceil(Math.max(partialBlock, partialsIn) / exBytes);
    reduceCycles = device.supervisorOverheadCycles + reduce(gK * out.perTile, 1, 'float32', device);
    syncs = 2;
  }
  const sync = syncs * device.syncCycles;
  const proportion = ctx.availableMemoryProportion ?? device.availableMemoryProportion ?? 0.6;
  const stepTotal = sync + exchange + compute + reduceExchange + reduceCycles;
  return {
    bBlock,
    mBlock,
    nBlock,
    kBlock,
    gB,
    gM,
    gN,
    gK,
    tiles,
    serial,
    serialM: sm.steps,
    serialN: sn.steps,
    stepM: sm.size,
    stepN: sn.size,
    swap,
    shareA,
    cycles: {
      sync: serial * sync,
      exchange: serial * exchange,
      compute: serial * compute,
      reduceExchange: serial * reduceExchange,
      reduce: serial * reduceCycles,
      total: serial * stepTotal,
    },
    tempBytes: temp,
    memoryLimit: Math.floor(proportion * device.bytesPerTile),
  };
}

/**
 * Slices of `dim` for `serial` steps: columns in whole AMP grains (16), rows
 * in any size; returns the slice size and the number of steps it makes.
 */
export function serialSlices(shape: MatMulShape, dim: 'm' | 'n', serial: number): { size: number; steps: number } {
  const total = shape[dim];
  if (serial <= 1) return { size: total, steps: 1 };
  const grain = dim === 'n' && total > N_GRAIN ? N_GRAIN : 1;
  const size = Math.min(total, Math.ceil(Math.ceil(total / grain) / serial) * grain);
  return { size, steps: Math.ceil(total / size) };
}

/** Distinct values of ceil(size / x) for x = 1..maxParts, descending (block sizes of splits into at most maxParts). */
function blockSizes(size: number, maxParts: number): number[] {
  const out: number[] = [];
  let last = 0;
  for (let x = 1; x <= Math.min(size, maxParts); ) {
    const b = Math.ceil(size / x);
    if (b !== last) out.push(b);
    last = b;
    // Next x with a smaller block: the smallest x' with ceil(size / x') < b.
    x = b > 1 ? Math.max(x + 1, Math.ceil(size / (b - 1))) : x + 1;
  }
  return out;
}

/** Block sizes in whole grains (the last block may be partial). */
function grainBlocks(size: number, grain: number, maxParts: number): number[] {
  if (size <= grain) return [size];
  return blockSizes(Math.ceil(size / grain), maxParts).map((c) => Math.min(size, c * grain));
}

/** The one-stage mapping this planner replaces: output rows (groups x M) over tiles, all of K and N on each. */
export function naiveSplit(shape: MatMulShape, numTiles: number): MatMulSplit {
  const gB = Math.min(shape.groups, numTiles);
  const bBlock = Math.ceil(shape.groups / gB);
  const gM = Math.min(shape.m, Math.floor(numTiles / Math.ceil(shape.groups / bBlock)));
  return { bBlock, mBlock: Math.ceil(shape.m / Math.max(1, gM)), nBlock: shape.n, kBlock: shape.k };
}

/** What the split searches compare (the matmul's, the convolution's and its backward passes' plans). */
export interface PlanCost {
  tiles: number;
  cycles: { total: number };
  tempBytes: number;
  memoryLimit: number;
}

/** Fewer cycles, then fewer tiles, then less memory. */
export function better(a: PlanCost, b: PlanCost): boolean {
  if (a.cycles.total !== b.cycles.total) return a.cycles.total < b.cycles.total;
  if (a.tiles !== b.tiles) return a.tiles < b.tiles;
  return a.tempBytes < b.tempBytes;
}

interface Search {
  best?: MatMulPlan;
  leastMemory?: MatMulPlan;
  candidates: number;
  overMemory: number;
}

/**
 * Every split of one step over at most `tiles` tiles: groups and rows in any
 * block size, N and K in whole AMP grains (16), the number of row splits taken
 * from a geometric ladder below the most that fit (enough to see the
 * trade-off between AMP rows and operand traffic without costing every count).
 */
function search(shape: MatMulShape, serialM: number, serialN: number, device: DeviceSpec, ctx: PlanContext, numTiles: number, s: Search): void {
  const step = { ...shape, m: serialSlices(shape, 'm', serialM).size, n: serialSlices(shape, 'n', serialN).size };
  const limit = Math.floor((ctx.availableMemoryProportion ?? device.availableMemoryProportion ?? 0.6) * device.bytesPerTile);
  const consider = (split: MatMulSplit) => {
    s.candidates++;
    // Memory first (cheap): a split over the limit matters only as a fallback needing less than any seen.
    const temp = tempBytes(step, split, device, numTiles);
    if (temp > limit && s.leastMemory && temp > s.leastMemory.tempBytes) {
      s.overMemory++;
      return;
    }
    const p = estimatePlan(shape, { ...split, serialM, serialN }, device, ctx);
    if (!s.leastMemory || p.tempBytes < s.leastMemory.tempBytes || (p.tempBytes === s.leastMemory.tempBytes && better(p, s.leastMemory))) s.leastMemory = p;
    if (p.tempBytes > p.memoryLimit) {
      s.overMemory++;
      return;
    }
    if (!s.best || better(p, s.best)) s.best = p;
  };
  for (const bBlock of blockSizes(step.groups, numTiles)) {
    const gB = Math.ceil(step.groups / bBlock);
    for (const kBlock of grainBlocks(step.k, K_GRAIN, Math.floor(numTiles / gB))) {
      const gK = Math.ceil(step.k / kBlock);
      for (const nBlock of grainBlocks(step.n, N_GRAIN, Math.floor(numTiles / (gB * gK)))) {
        const gN = Math.ceil(step.n / nBlock);
        const maxGM = Math.min(step.m, Math.floor(numTiles / (gB * gK * gN)));
        if (maxGM < 1) continue;
        const seen = new Set<number>();
        for (let parts = maxGM; parts >= 1; parts = Math.min(parts - 1, Math.floor(parts / 1.25))) {
          const mBlock = Math.ceil(step.m / parts);
          if (seen.has(mBlock)) continue;
          seen.add(mBlock);
          consider({ bBlock, mBlock, nBlock, kBlock });
        }
      }
    }
  }
}

/**
 * The plan: the fewest-cycle split that fits the memory limit, in one step
 * when one fits, else in the fewest serial steps that make one fit (doubling
 * the count, each count split every way between rows and columns); else the
 * least-memory split seen.
 */
export function planMatMul(shape: MatMulShape, device: DeviceSpec, ctx: PlanContext = {}): PlanResult {
  const numTiles = ctx.tiles ?? deviceTiles(device);
  const naive = estimatePlan(shape, naiveSplit(shape, numTiles), device, ctx);
  const forced = ctx.force?.(shape);
  if (forced) {
    const plan = fitsDevice(estimatePlan(shape, forced, device, ctx), numTiles, 'matmul');
    return { plan, naive, candidates: 1, overMemory: 0, fallback: false };
  }

  const s: Search = { candidates: 0, overMemory: 0 };
  search(shape, 1, 1, device, ctx, numTiles, s);
  const tried = new Set<string>(['1x1']);
  for (let serial = 2; !s.best; serial *= 2) {
    let fresh = false;
    for (let serialM = 1; serialM <= serial; serialM *= 2) {
      const serialN = serial / serialM;
      // Only counts that make new slices (a dimension cannot be cut finer than its grain).
      const key = `${serialSlices(shape, 'm', serialM).steps}x${serialSlices(shape, 'n', serialN).steps}`;
      if (tried.has(key)) continue;
      tried.add(key);
      fresh = true;
      search(shape, serialM, serialN, device, ctx, numTiles, s);
    }
    if (!fresh) break;
  }
  if (s.best) return { plan: s.best, naive, candidates: s.candidates, overMemory: s.overMemory, fallback: false };
  return { plan: s.leastMemory!, naive, candidates: s.candidates, overMemory: s.overMemory, fallback: true };
}

export function kib(bytes: number): string {
  return bytes >= 10240 ? `${Math.round(bytes / 1024)} KiB` : `${bytes} B`;
}

/** What `sim compile` shows for a plan: the split, the estimate by phase, the memory, and why. */
export function describePlan(shape: MatMulShape, r: PlanResult): string {
  const p = r.plan;
  const c = p.cycles;
  const dims = `${shape.groups > 1 ? `${shape.groups} x ` : ''}[${shape.m} x ${shape.k}] x [${shape.k} x ${shape.n}] ${shape.inDtype}`;
  const serial = p.serial > 1 ? `${p.serial} serial steps (${p.serialM} x ${p.serialN} slices of ${p.stepM} rows x ${p.stepN} columns), each ` : '';
  const split = `${serial}groups ${p.gB} x rows ${p.gM} x cols ${p.gN} x contraction ${p.gK} = ${p.tiles} tiles`;
  const block = `block ${p.bBlock > 1 ? `${p.bBlock} x ` : ''}${p.mBlock} x ${p.kBlock} x ${p.nBlock}${p.swap ? ' (B streams, A held as weights)' : ''}`;
  const parts = [`sync ${c.sync}`, `exchange ${c.exchange}`, `AMP ${c.compute}`];
  if (p.gK > 1) parts.push(`partials exchange ${c.reduceExchange}`, `fp32 reduction ${c.reduce}`);
  const why =
    (r.fallback
      ? `no split fits ${kib(p.memoryLimit)} of temporaries per tile: took the one needing the least (${kib(p.tempBytes)})`
      : `fewest cycles of ${r.candidates} splits${r.overMemory ? ` (${r.overMemory} over the memory limit)` : ''}, temporaries ${kib(p.tempBytes)} per tile of ${kib(p.memoryLimit)} allowed`) +
    `; one-stage row split: ${r.naive.cycles.total} cycles${r.naive.tempBytes > r.naive.memoryLimit ? ', over the memory limit' : ''}`;
  return `${dims}: ${split}, ${block}; estimated ${c.total} cycles (${parts.join(' + ')}); ${why}`;
}
