/**
 * The forward convolution codelets of the planned lowering (src/lower/conv-planner.ts):
 * one vertex per tile computes a block of Y [N, M, O0, O1, O2]: batch items
 * n0 .. n0 + nCount - 1, output rows r0 .. r0 + rows - 1 (all of O1, O2),
 * output channels m0 .. m0 + mCount - 1, over input channels c0 .. c0 + cCount - 1
 * of each group it touches (g0 .. g0 + gCount - 1).
 *
 * NnConvBlock[Bias]:
 *   in      the input box, in order [n][group][channel][rows ih0 .. ih0 + inRows - 1][D1][D2]
 *           (one or more regions read back to back)
 *   weights W[m, c0 .. c0 + cCount - 1, kernel] for each m of the block, in order
 *   bias    B[m0 ..] (only when the block is final)
 *   out     the block in order [n][m][rows][O1][O2]: the regions of Y it owns, or one fp32 partial
 * NnConvBlockReduce[Bias]: out = the sum of the gC partials of the block (+ bias).
 *
 * Accumulation in fp32: acc = fp32(acc + x w), the product exact in double,
 * channels outermost then the taps ascending (docs/numerics.md). compute()
 * runs the WebAssembly kernel over tile memory when it can (conv-kernel.ts),
 * else convBlockReference; they agree bit for bit.
 * Cost: the AMP estimate (PopLibs' ConvPartial1x1Out supervisor structure,
 * sim/codelets/nn-util.ts) for the block; the partials' sum: PopLibs' reduction.
 */
import type { Codelet, VertexShape } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet, type ParamValues } from '../define.js';
import { convBlockWasm } from './conv-kernel.js';
import { reduce } from './estimators.js';
import { AMP_SOURCE, GEOMETRY_ARRAYS, ampConvCycles, geometryForCycles, geometryOf, type WindowArgs } from './nn-util.js';

/** A block vertex's place in the convolution: groups, images, rows, channels (the lowering's block). */
export const CONV_BLOCK_PARAMS = {
  group: 'int',
  nCount: 'int',
  r0: 'int',
  rows: 'int',
  m0: 'int',
  mCount: 'int',
  c0: 'int',
  cCount: 'int',
  g0: 'int',
  gCount: 'int',
  ih0: 'int',
  inRows: 'int',
} as const;

/** A vector field's regions as one array (copied only when there are several). */
export function joined(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Write `src` back to back into the regions of a vector field. */
export function scatter(src: Float32Array, parts: Float32Array[]): void {
  let at = 0;
  for (const p of parts) {
    p.set(src.subarray(at, at + p.length));
    at += p.length;
  }
}

interface ConvBlockArgs {
  fields: { in: Float32Array[]; weights: Float32Array[]; bias?: Float32Array; out: Float32Array[] };
  params: ParamValues<typeof CONV_BLOCK_PARAMS>;
  arrays: WindowArgs['arrays'];
}

/** The block on the WebAssembly kernel when its fields are tile memory (conv-kernel.ts), else the reference. */
function convBlock(args: ConvBlockArgs): void {
  if (!convBlockWasm(args.fields, args.params, args.arrays)) convBlockReference(args);
}

/** The reference: each output's fp32 chain over channels, then taps, as documented in docs/numerics.md. */
export function convBlockReference(args: ConvBlockArgs): void {
  const { fields, params } = args;
  const g = geometryOf(args.arrays);
  const [, , D0, D1, D2] = g.xs;
  const [, M, , O1, O2] = g.ys;
  const [K0, K1, K2] = g.k;
  const [s0, s1, s2] = g.s;
  const [d0, d1, d2] = g.d;
  const [p0, p1, p2] = g.pb;
  const { group, nCount, r0, rows, m0, mCount, cCount, g0, gCount, ih0, inRows } = params;
  const Mg = M / group;
  const K = K0 * K1 * K2;
  const x = joined(fields.in);
  const w = joined(fields.weights);
  const bias = fields.bias;
  const outRest = O1 * O2;
  const inRest = D1 * D2;
  const chanStride = inRows * inRest;
  const out = new Float32Array(nCount * mCount * rows * outRest);
  let i = 0;
  for (let nn = 0; nn < nCount; nn++) {
    for (let mm = 0; mm < mCount; mm++) {
      const m = m0 + mm;
      const gl = Math.floor(m / Mg) - g0;
      const xBase = (nn * gCount + gl) * cCount * chanStride;
      const wm = mm * cCount * K;
      for (let o0 = r0; o0 < r0 + rows; o0++) {
        for (let o1 = 0; o1 < O1; o1++) {
          for (let o2 = 0; o2 < O2; o2++, i++) {
            let acc = 0;
            for (let c = 0; c < cCount; c++) {
              const wc = wm + c * K;
              const xc = xBase + c * chanStride;
              for (let a = 0; a < K0; a++) {
                const i0 = o0 * s0 - p0 + a * d0;
                if (i0 < 0 || i0 >= D0) continue;
                const xr = xc + (i0 - ih0) * inRest;
                for (let b = 0; b < K1; b++) {
                  const i1 = o1 * s1 - p1 + b * d1;
                  if (i1 < 0 || i1 >= D1) continue;
                  const row = xr + i1 * D2;
                  const wr = wc + (a * K1 + b) * K2;
                  for (let e = 0; e < K2; e++) {
                    const i2 = o2 * s2 - p2 + e * d2;
                    if (i2 < 0 || i2 >= D2) continue;
                    acc = Math.fround(acc + x[row + i2] * w[wr + e]);
                  }
                }
              }
            }
            out[i] = bias ? acc + bias[mm] : acc;
          }
        }
      }
    }
  }
  scatter(out, fields.out);
}

/** Defaults for a vertex probed without its params (`sim vertex`): the whole of the probe geometry on one tile. */
function blockShape(v: VertexShape) {
  const a = geometryForCycles(v);
  const group = v.params.group ?? 1;
  const Cg = a.xs[1] / group;
  const Mg = a.ys[1] / group;
  return {
    group,
    Mg,
    K: a.k[0] * a.k[1] * a.k[2],
    cCount: v.params.cCount ?? Cg,
    mCount: v.params.mCount ?? a.ys[1],
    gCount: v.params.gCount ?? group,
    positions: (v.params.nCount ?? a.ys[0]) * (v.params.rows ?? a.ys[2]) * a.ys[3] * a.ys[4],
  };
}

function blockCycles(v: VertexShape, device: Parameters<Codelet['cycles']>[1]): number {
  const b = blockShape(v);
  return ampConvCycles(
    {
      convGroups: b.group > 1 ? b.gCount : 1,
      inChans: b.cCount,
      outChans: Math.min(b.mCount, b.Mg),
      kernelPositions: b.K,
      positions: b.positions,
      dtype: fieldDType(v.fields.in),
    },
    device,
  );
}

const BLOCK_SOURCE = `${AMP_SOURCE}; one block of output rows x output channels over a slice of the input channels`;
const BLOCK_FIELDS = { in: { direction: 'input', vector: true }, weights: { direction: 'input', vector: true }, out: { direction: 'output', vector: true } } as const;

export const convBlockCodelet = defineCodelet({
  name: 'NnConvBlock',
  kind: 'multi',
  fields: BLOCK_FIELDS,
  params: CONV_BLOCK_PARAMS,
  arrays: GEOMETRY_ARRAYS,
  compute: convBlock,
  cycles: blockCycles,
  estimateSource: BLOCK_SOURCE,
});

export const convBlockBiasCodelet = defineCodelet({
  name: 'NnConvBlockBias',
  kind: 'multi',
  fields: { in: BLOCK_FIELDS.in, weights: BLOCK_FIELDS.weights, bias: { direction: 'input' }, out: BLOCK_FIELDS.out },
  params: CONV_BLOCK_PARAMS,
  arrays: GEOMETRY_ARRAYS,
  compute: convBlock,
  cycles: blockCycles,
  estimateSource: BLOCK_SOURCE,
});

/** Sum of the partials (plus the bias of output i's channel, floor(i / perChannel)) into the output's regions. */
function reduceBlock(parts: Float32Array[], bias: Float32Array | undefined, perChannel: number | undefined, out: Float32Array[]): void {
  const sum = new Float32Array(parts[0].length);
  for (const p of parts) for (let i = 0; i < p.length; i++) sum[i] += p[i];
  if (bias) {
    if (perChannel === undefined) throw new Error('NnConvBlockReduceBias: param perChannel is missing');
    for (let i = 0; i < sum.length; i++) sum[i] += bias[Math.floor(i / perChannel) % bias.length];
  }
  scatter(sum, out);
}

function reduceCycles(v: VertexShape, device: Parameters<Codelet['cycles']>[1]): number {
  const out = v.fields.out;
  return reduce(regionCount(v.fields.partials), Math.max(1, Array.isArray(out) ? out.length : 1), 'float32', device);
}

const REDUCE_SOURCE = 'PopLibs reduction, second stage: 7 + 26 start, per output region 16 + 6 + 2 log2(vw) + 2, per vector 2 + 2 + 1 + 3';
const PARTIALS = { direction: 'input', vector: true, dtypes: ['float32'] } as const;

export const convBlockReduceCodelet = defineCodelet({
  name: 'NnConvBlockReduce',
  kind: 'multi',
  fields: { partials: PARTIALS, out: { direction: 'output', vector: true } },
  params: { perChannel: 'int?' },
  compute: ({ fields, params }) => reduceBlock(fields.partials, undefined, params.perChannel, fields.out),
  cycles: reduceCycles,
  estimateSource: REDUCE_SOURCE,
});

export const convBlockReduceBiasCodelet = defineCodelet({
  name: 'NnConvBlockReduceBias',
  kind: 'multi',
  fields: { partials: PARTIALS, bias: { direction: 'input' }, out: { direction: 'output', vector: true } },
  params: { perChannel: 'int' },
  compute: ({ fields, params }) => reduceBlock(fields.partials, fields.bias, params.perChannel, fields.out),
  cycles: reduceCycles,
  estimateSource: REDUCE_SOURCE,
});

export const convBlockCodelets: Codelet[] = [
  convBlockCodelet,
  convBlockBiasCodelet,
  convBlockReduceCodelet,
  convBlockReduceBiasCodelet,
];
