/**
 * Convolution codelets (ONNX Conv, NCHW, 1 to 3 spatial dims padded to 3),
 * direct loops with fp32 accumulation (Math.fround per MAC), as the AMP
 * accumulates partials in fp32. Geometry comes as vertex arrays (xs, ys, k,
 * s, d, pb, pe; see sim/codelets/nn-util.ts), the input box as a plane
 * window (params and arrays x*: the rows of each (n, c) plane it holds).
 *
 * The forward pass: the planned block codelets of ./conv-block.ts.
 * NnConvGradX: out = elements [outBegin, ...) of dX [N, C, D...]; gradOut is a
 *   plane window (params y*) of dY; weights = W rows of groups gMin ....
 * NnConvGradWPartial: gradOut = elements [begin, ...) of dY; `in` a plane
 *   window of X; out = fp32 partial of dW rows m = mMin ... (summed over
 *   tiles by NnPartialsFinal).
 *
 * Cost: the AMP estimate of sim/codelets/nn-util.ts (PopLibs'
 * ConvPartial1x1Out structure); the backward passes are costed as the
 * convolutions PopLibs turns them into (dX: a convolution over the output
 * gradient with in/out channels swapped, taps that land between strides
 * skipped; dW: a convolution whose contraction runs over output positions).
 */
import type { Codelet } from '../codelet.js';
import { fieldDType } from '../codelet.js';
import { convBlockCodelets } from './conv-block.js';
import { AMP_SOURCE, ampConvCycles, count, geometryForCycles, geometryOf, planeWindow } from './nn-util.js';

export const convGradXCodelet: Codelet = {
  name: 'NnConvGradX',
  kind: 'multi',
  fields: { gradOut: { direction: 'input', vector: true }, weights: { direction: 'input' }, out: { direction: 'output' } },
  compute(args) {
    const { fields, params } = args;
    const g = geometryOf(args.arrays);
    const [, C, D0, D1, D2] = g.xs;
    const [, M, O0, O1, O2] = g.ys;
    const [K0, K1, K2] = g.k;
    const [s0, s1, s2] = g.s;
    const [d0, d1, d2] = g.d;
    const [p0, p1, p2] = g.pb;
    const group = params.group;
    const Cg = C / group;
    const Mg = M / group;
    const K = K0 * K1 * K2;
    const yw = planeWindow(args, 'gradOut', 'y', O1, O2);
    const w = fields.weights as Float32Array;
    const out = fields.out as Float32Array;
    const { outBegin, gMin } = params;
    for (let i = 0; i < out.length; i++) {
      let t = outBegin + i;
      const i2 = t % D2;
      t = (t - i2) / D2;
      const i1 = t % D1;
      t = (t - i1) / D1;
      const i0 = t % D0;
      t = (t - i0) / D0;
      const c = t % C;
      const n = (t - c) / C;
      const gi = Math.floor(c / Cg);
      const cl = c - gi * Cg;
      let acc = 0;
      for (let m = gi * Mg; m < (gi + 1) * Mg; m++) {
        const wc = ((m - gMin * Mg) * Cg + cl) * K;
        for (let a = 0; a < K0; a++) {
          const t0 = i0 + p0 - a * d0;
          if (t0 < 0 || t0 % s0 !== 0) continue;
          const o0 = t0 / s0;
          if (o0 >= O0) continue;
          const [arr, base] = yw.row(n, m, o0);
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
              acc = Math.fround(acc + arr[row + o2] * w[wr + e]);
            }
          }
        }
      }
      out[i] = acc;
    }
  },
  cycles(v, device) {
    const a = geometryForCycles(v);
    const [, C, D0, D1, D2] = a.xs;
    const M = a.ys[1];
    const group = v.params.group ?? 1;
    const Cg = C / group;
    const Mg = M / group;
    const K = a.k[0] * a.k[1] * a.k[2];
    const dxCount = count(v, 'out');
    const planes = D0 * D1 * D2;
    const cTouched = Math.max(1, Math.min(C, Math.ceil(dxCount / planes)));
    return ampConvCycles(
      {
        convGroups: Math.max(1, Math.round(count(v, 'weights') / (Mg * Cg * K))),
        inChans: Mg,
        outChans: Math.min(cTouched, Cg),
        kernelPositions: Math.ceil(K / (a.s[0] * a.s[1] * a.s[2])),
        positions: Math.ceil(dxCount / cTouched),
        dtype: fieldDType(v.fields.out),
      },
      device,
    );
  },
  estimateSource: `${AMP_SOURCE}; dX as a convolution of dY with in/out channels swapped, kernel taps / prod(strides)`,
};

export const convGradWPartialCodelet: Codelet = {
  name: 'NnConvGradWPartial',
  kind: 'multi',
  fields: { gradOut: { direction: 'input' }, in: { direction: 'input', vector: true }, out: { direction: 'output', dtypes: ['float32'] } },
  compute(args) {
    const { fields, params } = args;
    const g = geometryOf(args.arrays);
    const [, C, D0, D1, D2] = g.xs;
    const [, M, O0, O1, O2] = g.ys;
    const [K0, K1, K2] = g.k;
    const [s0, s1, s2] = g.s;
    const [d0, d1, d2] = g.d;
    const [p0, p1, p2] = g.pb;
    const group = params.group;
    const Cg = C / group;
    const Mg = M / group;
    const K = K0 * K1 * K2;
    const xw = planeWindow(args, 'in', 'x', D1, D2);
    const dy = fields.gradOut as Float32Array;
    const out = fields.out as Float32Array;
    const { begin, mMin } = params;
    out.fill(0);
    for (let i = 0; i < dy.length; i++) {
      const gv = dy[i];
      let t = begin + i;
      const o2 = t % O2;
      t = (t - o2) / O2;
      const o1 = t % O1;
      t = (t - o1) / O1;
      const o0 = t % O0;
      t = (t - o0) / O0;
      const m = t % M;
      const n = (t - m) / M;
      const gi = Math.floor(m / Mg);
      const wm = (m - mMin) * Cg * K;
      for (let c = 0; c < Cg; c++) {
        const wc = wm + c * K;
        for (let a = 0; a < K0; a++) {
          const i0 = o0 * s0 - p0 + a * d0;
          if (i0 < 0 || i0 >= D0) continue;
          const [arr, base] = xw.row(n, gi * Cg + c, i0);
          for (let b = 0; b < K1; b++) {
            const i1 = o1 * s1 - p1 + b * d1;
            if (i1 < 0 || i1 >= D1) continue;
            const row = base + i1 * D2;
            const wr = wc + (a * K1 + b) * K2;
            for (let e = 0; e < K2; e++) {
              const i2 = o2 * s2 - p2 + e * d2;
              if (i2 < 0 || i2 >= D2) continue;
              out[wr + e] += gv * arr[row + i2];
            }
          }
        }
      }
    }
  },
  cycles(v, device) {
    const a = geometryForCycles(v);
    const C = a.xs[1];
    const M = a.ys[1];
    const group = v.params.group ?? 1;
    const Cg = C / group;
    const K = a.k[0] * a.k[1] * a.k[2];
    const mTouched = Math.max(1, Math.round(count(v, 'out') / (Cg * K)));
    return ampConvCycles(
      {
        convGroups: Math.ceil(mTouched / (M / group)),
        inChans: Math.ceil(count(v, 'gradOut') / mTouched),
        outChans: Math.min(mTouched, M / group),
        kernelPositions: 1,
        positions: Cg * K,
        dtype: fieldDType(v.fields.gradOut),
      },
      device,
    );
  },
  estimateSource: `${AMP_SOURCE}; dW as a convolution contracting over this tile's output positions, Cg x kernel rows of work`,
};

export const convCodelets: Codelet[] = [...convBlockCodelets, convGradXCodelet, convGradWPartialCodelet];
