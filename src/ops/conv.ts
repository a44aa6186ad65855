/**
 * Conv (ONNX 1 and 11): NCHW with 1 to 3 spatial dims (the issue asks for
 * 2-D; 1-D and 3-D come free with the same geometry), group, strides, pads,
 * dilations, auto_pad NOTSET / VALID / SAME_UPPER / SAME_LOWER, optional
 * bias; and its grad ops:
 *   ConvGradX (dY, W):  dX[n, c, i] = sum over m in c's group and taps k with
 *                        i = o s - pb + k d of dY[n, m, o] W[m, c', k]
 *   ConvGradW (dY, X):  dW[m, c', k] = sum over n, o of dY[n, m, o] X[n, c, o s - pb + k d]
 *   ConvGradB (dY):     dB[m] = sum over n, o of dY[n, m, o]
 *
 * Lowering: all three convolutions are planned and their outputs mapped by
 * the plan, each tile gathering only its operand blocks: the forward by
 * src/lower/conv-planner.ts, dX and dW by src/lower/conv-grad-planner.ts
 * (fp32 partials of a split contraction summed in a second stage). dB is a
 * two-stage channel sum (src/lower/window.ts). Costs: the AMP estimate of
 * sim/codelets/nn-util.ts. The lowerings take a ConvSpec (geometry, group,
 * dtype), not the op, so ConvTranspose (./conv-transpose.ts) lowers through
 * them too.
 */
import type { PlanOverrides } from '../lower/plan-overrides.js';
import { Op, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type InputUse, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import { describeConvPlan, inputRows, planConv, type ConvPlan, type ConvPlanResult, type ConvShape } from '../lower/conv-planner.js';
import { DeviceMemo } from '../lower/plan-memo.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import { linearMapping, type MatMulDType } from '../lower/matmul-planner.js';
import { layoutFromReads, pushRun, RunList, type ReadGroup } from '../lower/layout.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES } from '../../sim/program.js';
import { describeConvGradWPlan, describeConvGradXPlan, gradOutRows, planConvGradW, planConvGradX, reduceChunks, type ConvGradShape, type ConvGradXPlan } from '../lower/conv-grad-planner.js';
import { channelSum, partialOnTile } from '../lower/window.js';
import { floatInput, gid, product, sameDTypeAs, versions, withoutEmpty } from './nn-util.js';
import { ArgGradOp, fwdIn, gradOf, gradOut } from './arg-grad.js';
import { geometryArrays, outShape, resolveGeometry, type Geometry } from './spatial.js';
import { convBlockBiasCodelet, convBlockCodelet, convBlockReduceBiasCodelet, convBlockReduceCodelet } from '../../sim/codelets/conv-block.js';
import { convGradWBlockCodelet, convGradXBlockCodelet } from '../../sim/codelets/conv.js';

export interface ConvAttrs {
  autoPad: string;
  dilations: number[];
  group: number;
  kernelShape: number[];
  pads: number[];
  strides: number[];
}

export class ConvOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    readonly attrs: ConvAttrs,
    settings: OpSettings,
  ) {
    super(opid, settings);
  }
  get hasBias(): boolean {
    return this.hasInput(2);
  }
  setup(): void {
    floatInput(this, 0);
    sameDTypeAs(this, 0, [1, 2]);
    const x = this.inInfo(0);
    const w = this.inInfo(1);
    const { group } = this.attrs;
    if (x.shape.length < 3) this.fail(`X must be [N, C, spatial...], got ${fmtInfo(x)}`);
    if (w.shape.length !== x.shape.length) this.fail(`W ${fmtInfo(w)} must have the rank of X ${fmtInfo(x)}: [M, C / group, kernel...]`);
    const [M, Cg] = w.shape;
    const C = x.shape[1];
    if (!Number.isInteger(group) || group < 1 || C % group !== 0 || M % group !== 0) {
      this.fail(`group ${group} must divide the input channels (${C}) and the output channels (${M})`);
    }
    if (Cg * group !== C) this.fail(`W ${fmtInfo(w)} has ${Cg} input channels per group, but X has ${C} channels in ${group} group(s) (${C / group} per group)`);
    const kernel = w.shape.slice(2);
    if (this.attrs.kernelShape.length && this.attrs.kernelShape.join() !== kernel.join()) {
      this.fail(`kernel_shape [${this.attrs.kernelShape.join(', ')}] differs from W's spatial dims [${kernel.join(', ')}]`);
    }
    if (this.hasBias) {
      const b = this.inInfo(2);
      if (b.shape.length !== 1 || b.shape[0] !== M) this.fail(`B must be [${M}] (W's output channels), got ${fmtInfo(b)}`);
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: outShape(this.geometry()) });
  }
  geometry(): Geometry & { rank: number } {
    const w = this.inInfo(1).shape;
    return resolveGeometry(this, this.inInfo(0).shape, w[0], {
      autoPad: this.attrs.autoPad,
      kernel: w.slice(2),
      strides: this.attrs.strides,
      dilations: this.attrs.dilations,
      pads: this.attrs.pads,
      ceilMode: false,
    });
  }
  /** MACs of one forward pass. */
  macs(): number {
    const w = this.inInfo(1).shape;
    return product(this.outInfo(0).shape) * product(w.slice(1));
  }
  override getGradOps(): ArgGradOp[] {
    const ops = [
      new ArgGradOp(gid('ConvGradX'), this, 0, [gradOut(0), fwdIn(1, 1)], () => 2 * this.macs()),
      new ArgGradOp(gid('ConvGradW'), this, 1, [gradOut(0), fwdIn(1, 0)], () => 2 * this.macs()),
    ];
    if (this.hasBias) ops.push(new ArgGradOp(gid('ConvGradB'), this, 2, [gradOut(0)], () => product(this.outInfo(0).shape)));
    return ops;
  }
  override attributes() {
    const a = this.attrs;
    return withoutEmpty({ auto_pad: a.autoPad, dilations: a.dilations, group: a.group, kernel_shape: a.kernelShape, pads: a.pads, strides: a.strides });
  }
  override flops(): number {
    return 2 * this.macs() + (this.hasBias ? product(this.outInfo(0).shape) : 0);
  }
}

/** Channel bookkeeping of a convolution geometry. */
function channels(g: Geometry, group: number) {
  const C = g.xs[1];
  const M = g.ys[1];
  const Cg = C / group;
  const Mg = M / group;
  const K = g.k[0] * g.k[1] * g.k[2];
  return {
    C,
    M,
    Cg,
    Mg,
    K,
  };
}

/**
 * A convolution as the lowerings see it: its geometry, group and dtype. A
 * ConvOp gives its own; ConvTranspose (src/ops/conv-transpose.ts) gives the
 * convolution whose input gradient it is, and lowers through the same code.
 */
export interface ConvSpec {
  g: Geometry;
  group: number;
  dtype: MatMulDType;
}

export function convSpecOf(conv: ConvOp): ConvSpec {
  return { g: conv.geometry(), group: conv.attrs.group, dtype: conv.inInfo(0).dtype as MatMulDType };
}

/** The planner's view of a convolution (spatial dims padded to 3). */
function convShape(spec: ConvSpec): ConvShape {
  const { g } = spec;
  return {
    N: g.xs[0],
    C: g.xs[1],
    M: g.ys[1],
    group: spec.group,
    inDims: g.xs.slice(2),
    outDims: g.ys.slice(2),
    kernel: g.k,
    stride0: g.s[0],
    dilation0: g.d[0],
    pad0: g.pb[0],
    dtype: spec.dtype,
  };
}

/** A forward plan's block of output rows x output channels for some batch items, owned by `owner` (its first tile). */
interface ConvBlock {
  owner: number;
  n0: number;
  n1: number;
  r0: number;
  r1: number;
  m0: number;
  m1: number;
  /** Runs of Y it computes. */
  out: [number, number][];
}

/** The forward plan's blocks, in the order the lowering places them. */
function convBlocks(s: ConvShape, p: ConvPlan): ConvBlock[] {
  const M = s.M;
  const [O0, O1, O2] = s.outDims;
  const outRest = O1 * O2;
  const blocks: ConvBlock[] = [];
  for (let nb = 0; nb < p.gN; nb++) {
    for (let rb = 0; rb < p.gRow; rb++) {
      for (let mb = 0; mb < p.gM; mb++) {
        const owner = ((nb * p.gRow + rb) * p.gM + mb) * p.gC;
        const n0 = nb * p.nBlock;
        const n1 = Math.min(s.N, n0 + p.nBlock);
        const r0 = rb * p.rowBlock;
        const r1 = Math.min(O0, r0 + p.rowBlock);
        const m0 = mb * p.mBlock;
        const m1 = Math.min(M, m0 + p.mBlock);
        const runs: [number, number][] = [];
        for (let n = n0; n < n1; n++) for (let m = m0; m < m1; m++) pushRun(runs, ((n * M + m) * O0 + r0) * outRest, ((n * M + m) * O0 + r1) * outRest);
        blocks.push({ owner, n0, n1, r0, r1, m0, m1, out: runs });
      }
    }
  }
  return blocks;
}

/** What tile `owner + cb` of a block reads: its input channels, groups, input rows, and the runs of X and W. */
function blockReads(s: ConvShape, p: ConvPlan, blk: ConvBlock, cb: number, only?: 'x' | 'w') {
  const Cg = s.C / s.group;
  const Mg = s.M / s.group;
  const K = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const inRest = s.inDims[1] * s.inDims[2];
  const inPlane = s.inDims[0] * inRest;
  const g0 = Math.floor(blk.m0 / Mg);
  const g1 = Math.floor((blk.m1 - 1) / Mg);
  const [ih0, ih1] = inputRows(s, blk.r0, blk.r1);
  const inRows = Math.max(1, ih1 - ih0);
  const c0 = cb * p.cBlock;
  const c1 = Math.min(Cg, c0 + p.cBlock);
  const xRuns = new RunList();
  for (let n = blk.n0; n < blk.n1 && only !== 'w'; n++) {
    for (let gi = g0; gi <= g1; gi++) {
      for (let c = gi * Cg + c0; c < gi * Cg + c1; c++) xRuns.push((n * s.C + c) * inPlane + ih0 * inRest, (n * s.C + c) * inPlane + (ih0 + inRows) * inRest);
    }
  }
  const wRuns = new RunList();
  for (let m = blk.m0; m < blk.m1 && only !== 'x'; m++) wRuns.push((m * Cg + c0) * K, (m * Cg + c1) * K);
  return { tile: blk.owner + cb, c0, c1, g0, g1, ih0, inRows, xRuns: xRuns, wRuns: wRuns };
}

/**
 * createInput / createWeights: X (input 0) or W (input 1) laid out where the
 * forward plan's tiles read them (src/lower/layout.ts): each tile's input box
 * or weight block on it, shared in equal parts where several tiles read the
 * same (the weights of an output-channel block over the batch and row
 * blocks); undefined for the bias, or when the layout would leave a tile too
 * many intervals.
 */
function convCreateInput(conv: ConvOp, index: number, device: DeviceSpec, plans: PlanOverrides, use: InputUse): TileRange[] | undefined {
  if (index !== 0 && index !== 1) return undefined;
  const s = convShape(convSpecOf(conv));
  if (plans.conv) return inputLayout(conv, index, s, device, plans, use);
  const key = `${index},${use.allReadersPlanned ? 1 : 0},${conv.inInfo(index).dtype},${conv.inInfo(index).shape.join()}|${JSON.stringify(s)}`;
  // Each tensor gets its own ranges (a mapping is the tensor's own).
  return layoutsMade.get(device, key, () => inputLayout(conv, index, s, device, plans, use))?.map((r) => ({ ...r }));
}

/** The plans of convolutions (unless forced: the user's function is asked each time), by shape and device. */
const plansMade = new DeviceMemo<ConvPlanResult>();
const layoutsMade = new DeviceMemo<TileRange[] | undefined>();

function convPlan(s: ConvShape, device: DeviceSpec, plans: PlanOverrides): ConvPlanResult {
  return plans.conv ? planConv(s, device, plans) : plansMade.get(device, JSON.stringify(s), () => planConv(s, device, plans));
}

function inputLayout(conv: ConvOp, index: number, s: ConvShape, device: DeviceSpec, plans: PlanOverrides, use: InputUse): TileRange[] | undefined {
  const p = convPlan(s, device, plans).plan;
  // Blocks reading the same runs, found by a hash of the runs (a string key of them was most of a ResNet's compile garbage).
  const groups = new Map<number, { tiles: number[]; list: RunList; runs: [number, number][] }[]>();
  // The groups in the order first read (the layout's order), whatever lists their hashes share.
  const read: ReadGroup[] = [];
  for (const blk of convBlocks(s, p)) {
    for (let cb = 0; cb < p.gC; cb++) {
      const r = blockReads(s, p, blk, cb, index === 0 ? 'x' : 'w');
      const runs = index === 0 ? r.xRuns : r.wRuns;
      const key = runs.hash();
      const list = groups.get(key) ?? [];
      let group = list.find((g) => g.list.same(runs));
      if (!group) {
        list.push((group = { tiles: [], list: runs, runs: runs.pairs() }));
        groups.set(key, list);
        read.push(group);
      }
      if (!group.tiles.includes(r.tile)) group.tiles.push(r.tile);
    }
  }
  const dtype = conv.inInfo(index).dtype as MatMulDType;
  const size = product(conv.inInfo(index).shape);
  const numTiles = device.ipus * device.tilesPerIpu;
  const grain = vectorWidth(dtype, device);
  const minElems = Math.max(grain, Math.ceil(device.minBytesPerTile / DTYPE_BYTES[dtype] / grain) * grain);
  // However strided, when no reader works per interval (InputUse).
  return layoutFromReads(size, read, { grain, minElems, linear: linearMapping(size, dtype, device, numTiles), numTiles, ...(use.allReadersPlanned ? { maxIntervalsPerTile: Infinity } : {}) });
}

/**
 * Forward: the planned lowering (src/lower/conv-planner.ts). Y is mapped by
 * the plan: each block of output rows x output channels on the tile that
 * computes it (with split input channels, the first of its gC tiles, which
 * sums the partials). Each tile gathers its input box and weight block.
 */
function lowerConv(conv: ConvOp, ctx: LowerContext): void {
  lowerConvSpec(convSpecOf(conv), conv.hasBias, ctx);
}

/** The forward lowering of `spec`: Y (output 0) from X (input 0), W (input 1) and, with `hasBias`, B (input 2). */
export function lowerConvSpec(spec: ConvSpec, hasBias: boolean, ctx: LowerContext): void {
  const { g } = spec;
  const s = convShape(spec);
  const result = convPlan(s, ctx.device, ctx.plans);
  const p = result.plan;
  ctx.note('conv plan', describeConvPlan(s, result));
  const outRest = s.outDims[1] * s.outDims[2];
  const x = ctx.input(0);
  const w = ctx.input(1);
  const bias = hasBias ? ctx.input(2) : undefined;
  const y = ctx.output(0);
  const arrays = geometryArrays(g);

  const blocks = convBlocks(s, p);
  const mapping: TileRange[] = [];
  for (const blk of blocks) for (const [b, e] of blk.out) mapping.push({ tile: blk.owner, begin: b, end: e });
  ctx.graph.setTileMapping(y, mapping);

  ctx.computeSet('conv');
  const partials: BuildTensor[][] = [];
  for (const [bi, blk] of blocks.entries()) {
    const outCount = (blk.n1 - blk.n0) * (blk.m1 - blk.m0) * (blk.r1 - blk.r0) * outRest;
    partials.push([]);
    for (let cb = 0; cb < p.gC; cb++) {
      const { tile, c0, c1, g0, g1, ih0, inRows, xRuns, wRuns } = blockReads(s, p, blk, cb);
      const final = p.gC === 1;
      let out: Slice[];
      if (final) out = blk.out.map(([b, e]) => ctx.slice(y, b, e));
      else {
        const part = partialOnTile(ctx, `partial${bi}.${cb}`, outCount, tile);
        partials[bi].push(part);
        out = [ctx.slice(part)];
      }
      ctx.vertex(
        final && bias ? convBlockBiasCodelet : convBlockCodelet,
        tile,
        {
          in: ctx.gather(x, xRuns, tile),
          weights: ctx.gather(w, wRuns, tile),
          ...(final && bias ? { bias: ctx.onTile(bias, blk.m0, blk.m1, tile) } : {}),
          out,
        },
        {
          group: s.group,
          nCount: blk.n1 - blk.n0,
          r0: blk.r0,
          rows: blk.r1 - blk.r0,
          m0: blk.m0,
          mCount: blk.m1 - blk.m0,
          c0,
          cCount: c1 - c0,
          g0,
          gCount: g1 - g0 + 1,
          ih0,
          inRows,
        },
        arrays,
      );
    }
  }
  if (p.gC === 1) return;
  ctx.computeSet('conv/reduce');
  for (const [bi, blk] of blocks.entries()) {
    const parts = partials[bi].map((t) => ctx.onTile(t, 0, t.size, blk.owner));
    const out = blk.out.map(([b, e]) => ctx.slice(y, b, e));
    const params = { perChannel: (blk.r1 - blk.r0) * outRest };
    if (bias) ctx.vertex(convBlockReduceBiasCodelet, blk.owner, { partials: parts, bias: ctx.onTile(bias, blk.m0, blk.m1, blk.owner), out }, params);
    else ctx.vertex(convBlockReduceCodelet, blk.owner, { partials: parts, out }, params);
  }
}

/** The backward planners' view of a convolution: the forward's and all three strides. */
function gradShape(spec: ConvSpec): ConvGradShape {
  return { ...convShape(spec), strides: spec.g.s };
}

/** The runs of `runs` (back to back, a block's elements in order) that elements [lo, hi) of the block cover. */
function cutRuns(runs: readonly [number, number][], lo: number, hi: number): [number, number][] {
  const out: [number, number][] = [];
  let at = 0;
  for (const [b, e] of runs) {
    const from = Math.max(lo, at);
    const to = Math.min(hi, at + e - b);
    if (to > from) out.push([b + from - at, b + to - at]);
    at += e - b;
    if (at >= hi) break;
  }
  return out;
}

/**
 * A block of a backward pass's output: `parts` tiles from `base` each compute
 * the contraction's share (fp32 partials when parts > 1); `out` its runs of
 * the output, in the block's element order.
 */
interface GradBlock {
  base: number;
  parts: number;
  out: [number, number][];
  size: number;
}

/** The output mapped by the blocks: whole on `base` when unsplit, else chunk j on tile base + j (conv-grad-planner.ts, reduceChunks). */
function mapGradBlocks(ctx: LowerContext, t: BuildTensor, blocks: readonly GradBlock[]): void {
  const mapping: TileRange[] = [];
  for (const b of blocks) {
    if (b.parts === 1) {
      for (const [lo, hi] of b.out) mapping.push({ tile: b.base, begin: lo, end: hi });
      continue;
    }
    const { reducers, chunk } = reduceChunks(b.parts, b.size);
    for (let j = 0; j < reducers; j++) for (const [lo, hi] of cutRuns(b.out, j * chunk, Math.min(b.size, (j + 1) * chunk))) mapping.push({ tile: b.base + j, begin: lo, end: hi });
  }
  ctx.graph.setTileMapping(t, mapping);
}

/** Where part `part` of a block writes: its output runs when the contraction is unsplit, else a new fp32 partial (kept in `partials`). */
function gradBlockOut(ctx: LowerContext, t: BuildTensor, b: GradBlock, name: string, part: number, partials: BuildTensor[]): Slice[] {
  if (b.parts === 1) return b.out.map(([lo, hi]) => ctx.slice(t, lo, hi));
  const p = partialOnTile(ctx, name, b.size, b.base + part);
  partials.push(p);
  return [ctx.slice(p)];
}

/** The second stage: chunk j of each split block summed over its partials on tile base + j. */
function reduceGradBlocks(ctx: LowerContext, t: BuildTensor, blocks: readonly GradBlock[], partials: readonly BuildTensor[][], name: string): void {
  if (blocks.every((b) => b.parts === 1)) return;
  ctx.computeSet(name);
  for (const [bi, b] of blocks.entries()) {
    if (b.parts === 1) continue;
    const { reducers, chunk } = reduceChunks(b.parts, b.size);
    for (let j = 0; j < reducers; j++) {
      const lo = j * chunk;
      const hi = Math.min(b.size, lo + chunk);
      const tile = b.base + j;
      ctx.vertex(
        convBlockReduceCodelet,
        tile,
        { partials: partials[bi].map((p) => ctx.onTile(p, lo, hi, tile)), out: cutRuns(b.out, lo, hi).map(([x, y]) => ctx.slice(t, x, y)) },
      );
    }
  }
}

/**
 * dX, planned (src/lower/conv-grad-planner.ts): blocks of batch x dX rows x
 * dX channels, each over gM tiles splitting the dY channels of its groups.
 * Each tile gathers the dY box its dX rows read and the weights
 * W[m, c', :] of its dY channels and dX channels.
 */
function lowerConvGradX(op: ArgGradOp<ConvOp>, ctx: LowerContext): void {
  lowerConvGradXSpec(convSpecOf(op.fwd), ctx);
}

/** dX (output 0) of the convolution `spec` from dY (input 0) and W (input 1). */
export function lowerConvGradXSpec(spec: ConvSpec, ctx: LowerContext): void {
  const { g } = spec;
  const s = gradShape(spec);
  const result = planConvGradX(s, ctx.device, ctx.plans);
  const p = result.plan;
  ctx.note('conv-grad-x plan', describeConvGradXPlan(s, result));
  const { C, M, Cg, Mg } = channels(g, s.group);
  const [D0, D1, D2] = s.inDims;
  const inRest = D1 * D2;
  const O0 = s.outDims[0];
  const outRest = s.outDims[1] * s.outDims[2];
  const dy = ctx.input(0);
  const w = ctx.input(1);
  const dx = ctx.output(0);
  const arrays = geometryArrays(g);

  const blocks: (GradBlock & { n0: number; n1: number; r0: number; r1: number; c0: number; c1: number })[] = [];
  for (let nb = 0; nb < p.gN; nb++) {
    for (let rb = 0; rb < p.gRow; rb++) {
      for (let cb = 0; cb < p.gC; cb++) {
        const n0 = nb * p.nBlock;
        const n1 = Math.min(s.N, n0 + p.nBlock);
        const r0 = rb * p.rowBlock;
        const r1 = Math.min(D0, r0 + p.rowBlock);
        const c0 = cb * p.cBlock;
        const c1 = Math.min(C, c0 + p.cBlock);
        const runs: [number, number][] = [];
        for (let n = n0; n < n1; n++) for (let c = c0; c < c1; c++) pushRun(runs, ((n * C + c) * D0 + r0) * inRest, ((n * C + c) * D0 + r1) * inRest);
        const base = ((nb * p.gRow + rb) * p.gC + cb) * p.gM;
        blocks.push({ base, parts: p.gM, out: runs, size: (n1 - n0) * (c1 - c0) * (r1 - r0) * inRest, n0, n1, r0, r1, c0, c1 });
      }
    }
  }
  mapGradBlocks(ctx, dx, blocks);
  const wt = rearrangeGradXWeights(ctx, s, p, w);

  ctx.computeSet('conv-grad-x');
  const partials: BuildTensor[][] = [];
  for (const [bi, blk] of blocks.entries()) {
    const cb = (blk.base / p.gM) % p.gC;
    const g0 = Math.floor(blk.c0 / Cg);
    const g1 = Math.floor((blk.c1 - 1) / Cg);
    const [lo, hi] = gradOutRows(s, blk.r0, blk.r1);
    // Rows whose every tap lands in padding or between strides read no dY: one row stands in.
    const oh0 = hi > lo ? lo : Math.min(lo, O0 - 1);
    const dyRows = Math.max(1, hi - lo);
    partials.push([]);
    for (let mb = 0; mb < p.gM; mb++) {
      const m0 = mb * p.mBlock;
      const m1 = Math.min(Mg, m0 + p.mBlock);
      const dyRuns = new RunList();
      for (let n = blk.n0; n < blk.n1; n++) {
        for (let gi = g0; gi <= g1; gi++) {
          for (let m = gi * Mg + m0; m < gi * Mg + m1; m++) dyRuns.push(((n * M + m) * O0 + oh0) * outRest, ((n * M + m) * O0 + oh0 + dyRows) * outRest);
        }
      }
      const tile = blk.base + mb;
      const wb = wt.blocks[cb * p.gM + mb];
      ctx.vertex(
        convGradXBlockCodelet,
        tile,
        { in: ctx.gather(dy, dyRuns, tile), weights: [ctx.onTile(wt.tensor, wb[0], wb[1], tile)], out: gradBlockOut(ctx, dx, blk, `partial${bi}.${mb}`, mb, partials[bi]) },
        { group: s.group, nCount: blk.n1 - blk.n0, r0: blk.r0, rows: blk.r1 - blk.r0, c0: blk.c0, cCount: blk.c1 - blk.c0, m0, mCount: m1 - m0, g0, gCount: g1 - g0 + 1, oh0, dyRows },
        arrays,
      );
    }
  }
  reduceGradBlocks(ctx, dx, blocks, partials, 'conv-grad-x/reduce');
}

/**
 * The weights rearranged once into a dX plan's blocks, as PopLibs transposes
 * them into the backward pass's layout before it: W[m, c', :] of each block's
 * dY channels (of every group its dX channels are in) and dX channels, in the
 * order a tile reads it (m, then c', then the taps), one contiguous block of
 * a new tensor, spread in equal parts over the tiles that read it (every
 * batch and row block of those channels). One exchange moves each weight
 * once; each tile then reads its block as one run, from the few tiles that
 * hold it. Read straight from W's forward layout, a tile's block was a short
 * piece per dY channel from a different tile each: ResNet-50's dX passes made
 * most of a training step's exchange copies that way. The blocks of the
 * plan's dX-channel and dY-channel parts partition W: the new tensor is W
 * permuted. `blocks[cb x gM + mb]`: where block (cb, mb) lies in it.
 */
function rearrangeGradXWeights(ctx: LowerContext, s: ConvGradShape, p: ConvGradXPlan, w: BuildTensor): { tensor: BuildTensor; blocks: [number, number][] } {
  const Cg = s.C / s.group;
  const Mg = s.M / s.group;
  const K = s.kernel[0] * s.kernel[1] * s.kernel[2];
  const blocks: [number, number][] = [];
  const reads: ReadGroup[] = [];
  const copies: { src: number; dst: number; runs: number; len: number }[] = [];
  let at = 0;
  for (let cb = 0; cb < p.gC; cb++) {
    const c0 = cb * p.cBlock;
    const c1 = Math.min(s.C, c0 + p.cBlock);
    const g0 = Math.floor(c0 / Cg);
    const g1 = Math.floor((c1 - 1) / Cg);
    for (let mb = 0; mb < p.gM; mb++) {
      const m0 = mb * p.mBlock;
      const m1 = Math.min(Mg, m0 + p.mBlock);
      const begin = at;
      for (let gi = g0; gi <= g1; gi++) {
        const cs = Math.max(c0, gi * Cg) - gi * Cg;
        const ce = Math.min(c1, (gi + 1) * Cg) - gi * Cg;
        // Rows m of the group, each its run of (ce - cs) x K weights, Cg x K apart in W.
        copies.push({ src: ((gi * Mg + m0) * Cg + cs) * K, dst: at, runs: m1 - m0, len: (ce - cs) * K });
        at += (m1 - m0) * (ce - cs) * K;
      }
      blocks.push([begin, at]);
      const tiles: number[] = [];
      for (let nb = 0; nb < p.gN; nb++) for (let rb = 0; rb < p.gRow; rb++) tiles.push(((nb * p.gRow + rb) * p.gC + cb) * p.gM + mb);
      reads.push({ tiles, runs: [[begin, at]] });
    }
  }
  if (at !== w.size) throw new Error(`internal: ${ctx.op.name}'s dX weight blocks hold ${at} weights of ${w.size}`);
  const tensor = ctx.addTensor('weights-by-block', w.dtype, [at]);
  const device = ctx.device;
  const grain = vectorWidth(s.dtype, device);
  const minElems = Math.max(grain, Math.ceil(device.minBytesPerTile / DTYPE_BYTES[s.dtype] / grain) * grain);
  // layoutFromReads' pieces of each block, built from the blocks' bounds (no owner per element: the blocks are disjoint and cover the tensor).
  const mapping: TileRange[] = [];
  reads.forEach((r, gi) => {
    const [begin, end] = r.runs[0];
    const total = end - begin;
    const grains = Math.ceil(total / grain);
    const pieces = Math.max(1, Math.min(r.tiles.length, Math.floor(total / Math.max(1, minElems)), grains));
    const cut = (i: number) => Math.min(total, Math.round((i * grains) / pieces) * grain);
    for (let i = 0; i < pieces; i++) {
      const b = begin + cut(i);
      const e = begin + cut(i + 1);
      if (e <= b) continue;
      const tile = r.tiles[(gi % r.tiles.length + i) % r.tiles.length];
      const last = mapping[mapping.length - 1];
      if (last && last.tile === tile && last.end === b) last.end = e;
      else mapping.push({ tile, begin: b, end: e });
    }
  });
  ctx.graph.setTileMapping(tensor, mapping);
  const ex = ctx.graph.addExchange(`${ctx.op.name}/conv-grad-x/weights-by-block`, ctx.op.name);
  for (const c of copies) ctx.graph.addStridedCopy(ex, ctx.slice(w, c.src, c.src + c.len), ctx.slice(tensor, c.dst, c.dst + c.len), c.runs, Cg * K, c.len);
  ctx.emit({ kind: 'exchange', exchange: ex });
  return { tensor, blocks };
}

/**
 * dW, planned (src/lower/conv-grad-planner.ts): blocks of output channels x
 * input channels of a group, each over gN x gRow tiles splitting the batch
 * and the dY rows (the contraction). Each tile gathers its dY block and the
 * X box those rows read (the forward's box for the same block).
 */
function lowerConvGradW(op: ArgGradOp<ConvOp>, ctx: LowerContext): void {
  lowerConvGradWSpec(convSpecOf(op.fwd), ctx);
}

/** dW (output 0) of the convolution `spec` from dY (input 0) and X (input 1). */
export function lowerConvGradWSpec(spec: ConvSpec, ctx: LowerContext): void {
  const { g } = spec;
  const s = gradShape(spec);
  const result = planConvGradW(s, ctx.device, ctx.plans);
  const p = result.plan;
  ctx.note('conv-grad-w plan', describeConvGradWPlan(s, result));
  const { C, M, Cg, Mg, K } = channels(g, s.group);
  const [O0, O1, O2] = s.outDims;
  const outRest = O1 * O2;
  const inRest = s.inDims[1] * s.inDims[2];
  const inPlane = s.inDims[0] * inRest;
  const dy = ctx.input(0);
  const x = ctx.input(1);
  const dw = ctx.output(0);
  const arrays = geometryArrays(g);
  const gK = p.gN * p.gRow;

  const blocks: (GradBlock & { m0: number; m1: number; c0: number; c1: number })[] = [];
  for (let mb = 0; mb < p.gM; mb++) {
    for (let cb = 0; cb < p.gC; cb++) {
      const m0 = mb * p.mBlock;
      const m1 = Math.min(M, m0 + p.mBlock);
      const c0 = cb * p.cBlock;
      const c1 = Math.min(Cg, c0 + p.cBlock);
      const runs: [number, number][] = [];
      for (let m = m0; m < m1; m++) pushRun(runs, (m * Cg + c0) * K, (m * Cg + c1) * K);
      blocks.push({ base: (mb * p.gC + cb) * gK, parts: gK, out: runs, size: (m1 - m0) * (c1 - c0) * K, m0, m1, c0, c1 });
    }
  }
  mapGradBlocks(ctx, dw, blocks);

  ctx.computeSet('conv-grad-w');
  const partials: BuildTensor[][] = [];
  for (const [bi, blk] of blocks.entries()) {
    const g0 = Math.floor(blk.m0 / Mg);
    const g1 = Math.floor((blk.m1 - 1) / Mg);
    partials.push([]);
    for (let nb = 0; nb < p.gN; nb++) {
      for (let rb = 0; rb < p.gRow; rb++) {
        const n0 = nb * p.nBlock;
        const n1 = Math.min(s.N, n0 + p.nBlock);
        const r0 = rb * p.rowBlock;
        const r1 = Math.min(O0, r0 + p.rowBlock);
        const [ih0, ih1] = inputRows(s, r0, r1);
        const inRows = Math.max(1, ih1 - ih0);
        const dyRuns = new RunList();
        for (let n = n0; n < n1; n++) for (let m = blk.m0; m < blk.m1; m++) dyRuns.push(((n * M + m) * O0 + r0) * outRest, ((n * M + m) * O0 + r1) * outRest);
        const xRuns = new RunList();
        for (let n = n0; n < n1; n++) {
          for (let gi = g0; gi <= g1; gi++) {
            for (let c = gi * Cg + blk.c0; c < gi * Cg + blk.c1; c++) xRuns.push((n * C + c) * inPlane + ih0 * inRest, (n * C + c) * inPlane + (ih0 + inRows) * inRest);
          }
        }
        const part = nb * p.gRow + rb;
        const tile = blk.base + part;
        ctx.vertex(
          convGradWBlockCodelet,
          tile,
          { gradOut: ctx.gather(dy, dyRuns, tile), in: ctx.gather(x, xRuns, tile), out: gradBlockOut(ctx, dw, blk, `partial${bi}.${part}`, part, partials[bi]) },
          { group: s.group, nCount: n1 - n0, r0, rows: r1 - r0, m0: blk.m0, mCount: blk.m1 - blk.m0, c0: blk.c0, cCount: blk.c1 - blk.c0, g0, gCount: g1 - g0 + 1, ih0, inRows },
          arrays,
        );
      }
    }
  }
  reduceGradBlocks(ctx, dw, blocks, partials, 'conv-grad-w/reduce');
}

function lowerConvGradB(op: ArgGradOp<ConvOp>, ctx: LowerContext): void {
  const g = op.fwd.geometry();
  channelSum(ctx, ctx.input(0), g.ys[1], g.ys[2] * g.ys[3] * g.ys[4], ctx.output(0));
}

export const convDefinitions: OpDefinition[] = [
  ...versions('Conv', [1, 11], (_v, id) => defineOp({
    op: ConvOp,
    id,
    description: 'convolution, NCHW, 1-3 spatial dims: group, strides, pads, dilations, auto_pad; optional bias',
    inputs: [{ name: 'X' }, { name: 'W' }, { name: 'B', optional: true }],
    outputs: [{ name: 'Y' }],
    attributes: {
      auto_pad: { type: 'string', default: 'NOTSET', description: 'NOTSET, VALID, SAME_UPPER or SAME_LOWER' },
      dilations: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
      group: { type: 'int', default: 1 },
      kernel_shape: { type: 'ints', default: [], description: "W's spatial dims (inferred)" },
      pads: { type: 'ints', default: [], description: 'begin pads then end pads (default 0)' },
      strides: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
    },
    grad: true,
    create: ({ attributes, settings }) =>
      new ConvOp(
        id,
        {
          autoPad: attributes.string('auto_pad'),
          dilations: attributes.ints('dilations'),
          group: attributes.int('group'),
          kernelShape: attributes.ints('kernel_shape'),
          pads: attributes.ints('pads'),
          strides: attributes.ints('strides'),
        },
        settings,
      ),
    // createInput / createWeights: X and W laid out where the planned convolution reads them.
    createInput: convCreateInput,
    lower: lowerConv,
  })),
  defineOp({ op: gradOf(ConvOp), id: gid('ConvGradX'), description: 'dX: dY convolved with the weights transposed (taps that land between strides skipped), planned like the forward pass', lower: lowerConvGradX }),
  defineOp({ op: gradOf(ConvOp), id: gid('ConvGradW'), description: 'dW = sum over batch and output positions of dY x the input window, planned (split contraction summed in a second stage)', lower: lowerConvGradW }),
  defineOp({ op: gradOf(ConvOp), id: gid('ConvGradB'), description: 'dB = sum of dY over all axes but 1 (two-stage)', lower: lowerConvGradB }),
];
