/**
 * Convolution codelets (ONNX Conv, NCHW, 1 to 3 spatial dims padded to 3),
 * direct loops with fp32 accumulation (Math.fround per MAC: acc = fp32(acc
 * + x w), the product exact in double; docs/numerics.md). The dX and dW
 * blocks run on the WebAssembly kernel over tile memory when they can
 * (conv-kernel.ts). Geometry comes as vertex arrays (xs, ys, k,
 * s, d, pb, pe; see sim/codelets/nn-util.ts).
 *
 * The forward pass: the planned block codelets of ./conv-block.ts. The
 * backward passes, planned by src/lower/conv-grad-planner.ts, one vertex per
 * tile on one block (partials summed by NnConvBlockReduce):
 *
 * NnConvGradXBlock: dX[n, c, i] for batch items n0 .. n0 + nCount - 1, dX rows
 *   r0 .. r0 + rows - 1 (all of D1, D2), dX channels c0 .. c0 + cCount - 1
 *   (global; groups g0 .. g0 + gCount - 1), summed over dY channels
 *   m0 .. m0 + mCount - 1 of each group (local to the group):
 *   in       the dY box [n][group][m][rows oh0 .. oh0 + dyRows - 1][O1][O2]
 *   weights  per group of the block, W[gi Mg + m, c' of the block in gi, kernel] for each m
 *   out      [n][c][rows][D1][D2]: the regions of dX it owns, or one fp32 partial
 *   Taps that land between strides are skipped (dX[i] takes dY[o] where i = o s - p + k d).
 * NnConvGradWBlock: dW[m, c', k] for output channels m0 .. m0 + mCount - 1 (global;
 *   groups g0 ..), input channels c0 .. c0 + cCount - 1 of each group, summed
 *   over batch items n0 .. n0 + nCount - 1 and dY rows r0 .. r0 + rows - 1:
 *   gradOut  the dY block [n][m][rows][O1][O2]
 *   in       the X box [n][group][c][rows ih0 .. ih0 + inRows - 1][D1][D2] (the forward's box)
 *   out      [m][c'][kernel]: the regions of dW it owns, or one fp32 partial
 *
 * Cost: the AMP estimate of sim/codelets/nn-util.ts (PopLibs'
 * ConvPartial1x1Out structure) on the convolutions PopLibs turns the
 * backward passes into: dX a convolution of dY with in/out channels swapped
 * and kernel taps / prod(strides) passes; dW one whose contraction runs over
 * the block's output positions and whose AMP rows are c' x kernel.
 */
import type { Codelet, VertexShape } from '../codelet.js';
import { fieldDType } from '../codelet.js';
import { defineCodelet, type ParamValues } from '../define.js';
import { convGradWWasm, convGradXWasm } from './conv-kernel.js';
import { CONV_BLOCK_PARAMS, convBlockCodelets, joined, scatter } from './conv-block.js';
import { AMP_SOURCE, GEOMETRY_ARRAYS, ampConvCycles, geometryForCycles, geometryOf, gradXGroups, type WindowArgs } from './nn-util.js';

/** The block of dX a GradX vertex computes (images, rows, channels, the dY rows it reads). */
const GRAD_X_PARAMS = {
  group: 'int',
  nCount: 'int',
  r0: 'int',
  rows: 'int',
  c0: 'int',
  cCount: 'int',
  m0: 'int',
  mCount: 'int',
  g0: 'int',
  gCount: 'int',
  oh0: 'int',
  dyRows: 'int',
} as const;
/** The block of dW a GradW vertex computes, and the input rows it reads: the forward block's params. */
const GRAD_W_PARAMS = CONV_BLOCK_PARAMS;
const VEC = { direction: 'input', vector: true } as const;

type GradXArgs = { fields: { in: Float32Array[]; weights: Float32Array[]; out: Float32Array[] }; params: ParamValues<typeof GRAD_X_PARAMS>; arrays: WindowArgs['arrays'] };

/** The dX block on the WebAssembly kernel when its fields are tile memory (conv-kernel.ts), else the reference. */

function gradXBlock(args: GradXArgs): void {
  if (!convGradXWasm(args.fields, args.params, args.arrays)) gradXBlockReference(args);
}

/** The dX reference: each output's fp32 chain over dY channels, then taps, as the forward block. */
export function gradXBlockReference(args: GradXArgs): void {
  const { fields, params } = args;
  const g = geometryOf(args.arrays);
  const [, C, , D1, D2] = g.xs;
  const [, , O0, O1, O2] = g.ys;
  const [K0, K1, K2] = g.k;
  const [s0, s1, s2] = g.s;
  const [d0, d1, d2] = g.d;
  const [p0, p1, p2] = g.pb;
  const { group, nCount, r0, rows, c0, cCount, mCount, g0, gCount, oh0, dyRows } = params;
  const Cg = C / group;
  const K = K0 * K1 * K2;
  const dy = joined(fields.in);
  const w = joined(fields.weights);
  const outRest = O1 * O2;
  const plane = dyRows * outRest;
  const { wBase, cStart, cLen } = gradXGroups(c0, cCount, Cg, g0, gCount, mCount, K);
  const out = new Float32Array(nCount * cCount * rows * D1 * D2);
  let i = 0;
  for (let nn = 0; nn < nCount; nn++) {
    for (let cc = 0; cc < cCount; cc++) {
      const c = c0 + cc;
      const gi = Math.floor(c / Cg);
      const gl = gi - g0;
      const cl = c - gi * Cg - cStart[gl];
      const dyGroup = (nn * gCount + gl) * mCount * plane;
      for (let i0 = r0; i0 < r0 + rows; i0++) {
        for (let i1 = 0; i1 < D1; i1++) {
          for (let i2 = 0; i2 < D2; i2++, i++) {
            let acc = 0;
            for (let mm = 0; mm < mCount; mm++) {
              const wc = wBase[gl] + (mm * cLen[gl] + cl) * K;
              const dyPlane = dyGroup + mm * plane;
              for (let a = 0; a < K0; a++) {
                const t0 = i0 + p0 - a * d0;
                if (t0 < 0 || t0 % s0 !== 0) continue;
                const o0 = t0 / s0;
                if (o0 >= O0) continue;
                const base = dyPlane + (o0 - oh0) * outRest;
                for (let b = 0; b < K1; b++) {
                  const t1 = i1 + p1 - b * d1;
                  if (t1 < 0 || t1 % s1 !== 0) continue;
                  const o1 = t1 / s1;
                  if (o1 >= O1) continue;
                  const row = base + o1 * O2;
                  const wr = wc + (a * K1 + b) * K2;
                  for (let e = 0; e < K2; e++) {
                    const t2 = i2 + p2 - e * d2;
                    if (t2 < 0 || t2 % s2 !== 0) continue;
                    const o2 = t2 / s2;
                    if (o2 >= O2) continue;
                    acc = Math.fround(acc + dy[row + o2] * w[wr + e]);
                  }
                }
              }
            }
            out[i] = acc;
          }
        }
      }
    }
  }
  scatter(out, fields.out);
}

type GradWArgs = { fields: { gradOut: Float32Array[]; in: Float32Array[]; out: Float32Array[] }; params: ParamValues<typeof GRAD_W_PARAMS>; arrays: WindowArgs['arrays'] };

/** The dW block on the WebAssembly kernel when its fields are tile memory (conv-kernel.ts), else the reference. */
function gradWBlock(args: GradWArgs): void {
  if (!convGradWWasm(args.fields, args.params, args.arrays)) gradWBlockReference(args);
}

/** The dW reference: each output's fp32 chain over batch items, then output rows, then columns. */
export function gradWBlockReference(args: GradWArgs): void {
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
  const dy = joined(fields.gradOut);
  const x = joined(fields.in);
  const outRest = O1 * O2;
  const inRest = D1 * D2;
  const chanStride = inRows * inRest;
  const out = new Float32Array(mCount * cCount * K0 * K1 * K2);
  let i = 0;
  for (let mm = 0; mm < mCount; mm++) {
    const gl = Math.floor((m0 + mm) / Mg) - g0;
    for (let cc = 0; cc < cCount; cc++) {
      for (let a = 0; a < K0; a++) {
        for (let b = 0; b < K1; b++) {
          for (let e = 0; e < K2; e++, i++) {
            let acc = 0;
            for (let nn = 0; nn < nCount; nn++) {
              const xc = ((nn * gCount + gl) * cCount + cc) * chanStride;
              const dyPlane = (nn * mCount + mm) * rows * outRest;
              for (let o0 = r0; o0 < r0 + rows; o0++) {
                const i0 = o0 * s0 - p0 + a * d0;
                if (i0 < 0 || i0 >= D0) continue;
                const xr = xc + (i0 - ih0) * inRest;
                const yr = dyPlane + (o0 - r0) * outRest;
                for (let o1 = 0; o1 < O1; o1++) {
                  const i1 = o1 * s1 - p1 + b * d1;
                  if (i1 < 0 || i1 >= D1) continue;
                  const xrow = xr + i1 * D2;
                  const yrow = yr + o1 * O2;
                  for (let o2 = 0; o2 < O2; o2++) {
                    const i2 = o2 * s2 - p2 + e * d2;
                    if (i2 < 0 || i2 >= D2) continue;
                    acc = Math.fround(acc + dy[yrow + o2] * x[xrow + i2]);
                  }
                }
              }
            }
            out[i] = acc;
          }
        }
      }
    }
  }
  scatter(out, fields.out);
}

/** Block sizes of a vertex, defaulting (a vertex probed without params, `sim vertex`) to the whole of the probe geometry on one tile. */
function blockDims(v: VertexShape) {
  const a = geometryForCycles(v);
  const group = v.params.group ?? 1;
  return { a, group, Cg: a.xs[1] / group, Mg: a.ys[1] / group, K: a.k[0] * a.k[1] * a.k[2] };
}

export const convGradXBlockCodelet = defineCodelet({
  name: 'NnConvGradXBlock',
  kind: 'multi',
  fields: { in: VEC, weights: VEC, out: { direction: 'output', vector: true } },
  params: GRAD_X_PARAMS,
  arrays: GEOMETRY_ARRAYS,
  compute: gradXBlock,
  cycles(v, device) {
    const { a, group, Cg, Mg } = blockDims(v);
    const cCount = v.params.cCount ?? a.xs[1];
    const positions = (v.params.nCount ?? a.xs[0]) * (v.params.rows ?? a.xs[2]) * a.xs[3] * a.xs[4];
    return ampConvCycles(
      {
        convGroups: group > 1 ? (v.params.gCount ?? group) : 1,
        inChans: v.params.mCount ?? Mg,
        outChans: Math.min(cCount, Cg),
        kernelPositions: Math.ceil((a.k[0] * a.k[1] * a.k[2]) / (a.s[0] * a.s[1] * a.s[2])),
        positions,
        dtype: fieldDType(v.fields.in),
      },
      device,
    );
  },
  estimateSource: `${AMP_SOURCE}; dX as a convolution of dY with in/out channels swapped (dY channels the contraction), kernel taps / prod(strides) passes`,
});

export const convGradWBlockCodelet = defineCodelet({
  name: 'NnConvGradWBlock',
  kind: 'multi',
  fields: { gradOut: VEC, in: VEC, out: { direction: 'output', vector: true } },
  params: GRAD_W_PARAMS,
  arrays: GEOMETRY_ARRAYS,
  compute: gradWBlock,
  cycles(v, device) {
    const { a, group, Cg, Mg, K } = blockDims(v);
    const mCount = v.params.mCount ?? a.ys[1];
    return ampConvCycles(
      {
        convGroups: group > 1 ? (v.params.gCount ?? group) : 1,
        inChans: (v.params.nCount ?? a.ys[0]) * (v.params.rows ?? a.ys[2]) * a.ys[3] * a.ys[4],
        outChans: Math.min(mCount, Mg),
        kernelPositions: 1,
        positions: (v.params.cCount ?? Cg) * K,
        dtype: fieldDType(v.fields.gradOut),
      },
      device,
    );
  },
  estimateSource: `${AMP_SOURCE}; dW as a convolution contracting over the block's output positions, c' x kernel rows of work`,
});

export const convCodelets: Codelet[] = [...convBlockCodelets, convGradXBlockCodelet, convGradWBlockCodelet];
