/**
 * RoiAlign (Mask R-CNN's; ONNX 10 and 16), forward and the gradient for X,
 * as onnxruntime computes them: output bin (ph, pw) of RoI r in channel c
 * is the mean of grid_h x grid_w bilinear samples of X[batch_indices[r], c]
 * (grid = sampling_ratio, or ceil(roi size / output size) when it is 0); a
 * sample more than one pixel outside the map is 0, one just outside is
 * clamped to the edge.
 *
 * A vertex covers consecutive outputs of one RoI-channel block run
 * [r, c0..c1]; its `in` field holds, for every batch item n, the planes of
 * channels [c0, c0 + nch) (the RoIs' batch items are data, known only at run
 * time), back to back: n-major. A gradient vertex holds a run of dX within
 * one batch item's planes of channels [c0, c0 + nch), and the output gradient
 * of every RoI in those channels.
 *
 * Cycles (GUESS, no §3 figure): per sample, 4 loads, the weights and a
 * multiply-add each, about 16 cycles on one worker, the bins shared among
 * the 6 workers; with sampling_ratio 0 the grid depends on the RoIs, so the
 * estimate takes the largest one (an RoI covering the whole map). The
 * gradient is costed the same, its 4 adds in place of the loads.
 */
import type { Codelet, ElemArray } from '../codelet.js';
import { regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceSpec } from '../device.js';

const GEOMETRY = {
  C: 'int',
  H: 'int',
  W: 'int',
  N: 'int',
  oh: 'int',
  ow: 'int',
  samplingRatio: 'int',
  spatialScale: 'float',
  halfPixel: 'int',
} as const;

interface Geometry {
  C: number;
  H: number;
  W: number;
  N: number;
  oh: number;
  ow: number;
  samplingRatio: number;
  spatialScale: number;
  halfPixel: number;
}

/** The slices of a vector field as one array (a gather may give them joined already). */
function joined(xs: readonly ElemArray[]): ElemArray {
  if (xs.length === 1) return xs[0];
  const out = new Float32Array(xs.reduce((s, x) => s + x.length, 0));
  let at = 0;
  for (const x of xs) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/** The sampling grid of RoI `box` (x1, y1, x2, y2) and, for each sample, its bin and 4 weighted corners. */
function forEachSample(g: Geometry, box: ArrayLike<number>, visit: (bin: number, w: readonly number[], at: readonly number[]) => void): number {
  const off = g.halfPixel ? 0.5 : 0;
  const x1 = box[0] * g.spatialScale - off;
  const y1 = box[1] * g.spatialScale - off;
  let rw = box[2] * g.spatialScale - off - x1;
  let rh = box[3] * g.spatialScale - off - y1;
  if (!g.halfPixel) {
    rw = Math.max(rw, 1);
    rh = Math.max(rh, 1);
  }
  const bh = rh / g.oh;
  const bw = rw / g.ow;
  const gh = g.samplingRatio > 0 ? g.samplingRatio : Math.ceil(rh / g.oh);
  const gw = g.samplingRatio > 0 ? g.samplingRatio : Math.ceil(rw / g.ow);
  const count = Math.max(gh * gw, 1);
  const w = [0, 0, 0, 0];
  const at = [0, 0, 0, 0];
  for (let ph = 0; ph < g.oh; ph++) {
    for (let pw = 0; pw < g.ow; pw++) {
      for (let iy = 0; iy < gh; iy++) {
        const y = y1 + ph * bh + ((iy + 0.5) * bh) / gh;
        for (let ix = 0; ix < gw; ix++) {
          let x = x1 + pw * bw + ((ix + 0.5) * bw) / gw;
          if (y < -1 || y > g.H || x < -1 || x > g.W) continue;
          let yy = Math.max(y, 0);
          x = Math.max(x, 0);
          let yl = Math.floor(yy);
          let xl = Math.floor(x);
          let yh: number;
          let xh: number;
          if (yl >= g.H - 1) {
            yh = yl = g.H - 1;
            yy = yl;
          } else yh = yl + 1;
          if (xl >= g.W - 1) {
            xh = xl = g.W - 1;
            x = xl;
          } else xh = xl + 1;
          const ly = yy - yl;
          const lx = x - xl;
          const hy = 1 - ly;
          const hx = 1 - lx;
          w[0] = hy * hx;
          w[1] = hy * lx;
          w[2] = ly * hx;
          w[3] = ly * lx;
          at[0] = yl * g.W + xl;
          at[1] = yl * g.W + xh;
          at[2] = yh * g.W + xl;
          at[3] = yh * g.W + xh;
          visit(ph * g.ow + pw, w, at);
        }
      }
    }
  }
  return count;
}

/** The RoI-channel blocks (r, c) of `bins` outputs each that output elements [begin, begin + length) touch, in order. */
function forEachBlock(begin: number, length: number, bins: number, C: number, visit: (block: number, r: number, c: number) => void): void {
  const last = Math.floor((begin + length - 1) / bins);
  for (let block = Math.floor(begin / bins); block <= last; block++) visit(block, Math.floor(block / C), block % C);
}

/** A gradient vertex's run of dX: elements [offset, offset + out.length) of its dense planes. */
function writeRun(out: ElemArray, dx: Float64Array, offset: number): void {
  for (let i = 0; i < out.length; i++) out[i] = dx[offset + i];
}

/** A RoI's samples, computed once and read for each of its channels: the bin of sample j, its 4 corners' weights and plane offsets. */
interface RoiSamples {
  count: number;
  bins: number[];
  w: number[];
  at: number[];
}

function roiSamples(g: Geometry, box: ArrayLike<number>): RoiSamples {
  const s: RoiSamples = { count: 0, bins: [], w: [], at: [] };
  s.count = forEachSample(g, box, (bin, w, at) => {
    s.bins.push(bin);
    for (let j = 0; j < 4; j++) {
      s.w.push(w[j]);
      s.at.push(at[j]);
    }
  });
  return s;
}

function batchOf(g: Geometry, batchIndices: ArrayLike<number>, k: number, r: number): number {
  const n = batchIndices[k];
  if (!Number.isInteger(n) || n < 0 || n >= g.N) throw new Error(`RoiAlign: RoI ${r} has batch index ${n}, outside [0, ${g.N})`);
  return n;
}

/** Worker cycles of `outs` output bins (forward) with grids of at most gh x gw samples. */
function roiCycles(outs: number, g: { H: number; W: number; oh: number; ow: number; samplingRatio: number }, device: DeviceSpec): number {
  const gh = g.samplingRatio > 0 ? g.samplingRatio : Math.ceil(g.H / g.oh);
  const gw = g.samplingRatio > 0 ? g.samplingRatio : Math.ceil(g.W / g.ow);
  const perWorker = Math.ceil(outs / device.workersPerTile);
  return device.workersPerTile * (10 + perWorker * (6 + 16 * gh * gw));
}

/**
 * Forward: out[i] is output element begin + i of [R, C, oh, ow]; rois holds RoIs from r0 on (4 each),
 * batchIndices theirs; `in` the planes of channels [c0, c0 + nch) of every batch item.
 */
export const roiAlignCodelet = defineCodelet({
  name: 'RoiAlign',
  kind: 'multi',
  fields: {
    in: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    rois: { direction: 'input', dtypes: ['float32', 'float16'] },
    batchIndices: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { ...GEOMETRY, begin: 'int', r0: 'int', c0: 'int', nch: 'int' },
  compute({ fields, params }) {
    const g = params;
    const x = joined(fields.in);
    const out = fields.out;
    const plane = g.H * g.W;
    const bins = g.oh * g.ow;
    const sums = new Float64Array(bins);
    // One RoI-channel block at a time: the bins of (r, c) are computed together, then the ones this vertex holds
    // are written. A RoI's samples are the same for each of its channels: computed once per RoI.
    let samplesOf = -1;
    let sm: RoiSamples | undefined;
    forEachBlock(g.begin, out.length, bins, g.C, (block, r, c) => {
      const n = batchOf(g, fields.batchIndices, r - g.r0, r);
      const base = (n * g.nch + (c - g.c0)) * plane;
      if (samplesOf !== r) {
        sm = roiSamples(g, fields.rois.subarray(4 * (r - g.r0), 4 * (r - g.r0) + 4));
        samplesOf = r;
      }
      const { bins: bin, w, at } = sm!;
      sums.fill(0);
      for (let j = 0; j < bin.length; j++) {
        const q = 4 * j;
        sums[bin[j]] += w[q] * x[base + at[q]] + w[q + 1] * x[base + at[q + 1]] + w[q + 2] * x[base + at[q + 2]] + w[q + 3] * x[base + at[q + 3]];
      }
      for (let b = 0; b < bins; b++) {
        const i = block * bins + b - g.begin;
        if (i >= 0 && i < out.length) out[i] = sums[b] / sm!.count;
      }
    });
  },
  cycles: (v, device) => roiCycles(regionCount(v.fields.out), v.params, device),
  estimateSource: 'per sample 4 loads, weights and multiply-adds, ~16 cycles, bins shared among the workers; sampling_ratio 0 costed at the largest grid (GUESS)',
});

/**
 * Gradient for X: `out` holds elements [offset, offset + length) of dX's planes of batch item `n`,
 * channels [c0, c0 + nch) (back to back), and gets the contributions of every RoI of batch item n in
 * them; gradOut holds dY[r, c0 .. c0 + nch) for every RoI r (r-major), rois and batchIndices all RoIs.
 */
export const roiAlignGradCodelet = defineCodelet({
  name: 'RoiAlignGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    rois: { direction: 'input', dtypes: ['float32', 'float16'] },
    batchIndices: { direction: 'input', dtypes: ['int32'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { ...GEOMETRY, R: 'int', n: 'int', c0: 'int', nch: 'int', offset: 'int' },
  compute({ fields, params }) {
    const g = params;
    const dy = joined(fields.gradOut);
    const plane = g.H * g.W;
    const bins = g.oh * g.ow;
    const dx = new Float64Array(g.nch * plane);
    for (let r = 0; r < g.R; r++) {
      if (batchOf(g, fields.batchIndices, r, r) !== g.n) continue;
      const { count, bins: bin, w, at } = roiSamples(g, fields.rois.subarray(4 * r, 4 * r + 4));
      for (let k = 0; k < g.nch; k++) {
        const base = k * plane;
        const grad = (r * g.nch + k) * bins;
        for (let q = 0; q < w.length; q++) dx[base + at[q]] += (w[q] * dy[grad + bin[q >> 2]]) / count;
      }
    }
    writeRun(fields.out, dx, g.offset);
  },
  cycles: (v, device) => roiCycles(v.params.R * v.params.nch * v.params.oh * v.params.ow, v.params, device),
  estimateSource: 'as RoiAlign over every RoI of its channels, 4 adds per sample in place of the loads (GUESS)',
});

// ---------------------------------------------------------------------------
// MaxRoiPool (ONNX 1, Fast R-CNN's RoI pooling): each bin the max of the pixels it covers, the RoI's corners
// rounded to pixels (half away from zero, as onnxruntime's std::round); an empty bin is 0. Each RoI is
// (batch index, x1, y1, x2, y2).

const POOL_GEOMETRY = { C: 'int', H: 'int', W: 'int', N: 'int', oh: 'int', ow: 'int', spatialScale: 'float' } as const;
type PoolGeometry = { C: number; H: number; W: number; N: number; oh: number; ow: number; spatialScale: number };

const roundHalfAway = (v: number) => Math.sign(v) * Math.round(Math.abs(v));

/** For each bin of RoI `box` (5 values), the pixels [h0, h1) x [w0, w1) it covers; the RoI's batch item. */
function poolBins(g: PoolGeometry, box: ArrayLike<number>, r: number, visit: (bin: number, h0: number, h1: number, w0: number, w1: number) => void): number {
  const n = box[0];
  if (!Number.isInteger(n) || n < 0 || n >= g.N) throw new Error(`MaxRoiPool: RoI ${r} has batch index ${n}, outside [0, ${g.N})`);
  const x1 = roundHalfAway(box[1] * g.spatialScale);
  const y1 = roundHalfAway(box[2] * g.spatialScale);
  const x2 = roundHalfAway(box[3] * g.spatialScale);
  const y2 = roundHalfAway(box[4] * g.spatialScale);
  const bh = Math.fround(Math.max(y2 - y1 + 1, 1) / g.oh);
  const bw = Math.fround(Math.max(x2 - x1 + 1, 1) / g.ow);
  const clampH = (v: number) => Math.min(Math.max(v + y1, 0), g.H);
  const clampW = (v: number) => Math.min(Math.max(v + x1, 0), g.W);
  for (let ph = 0; ph < g.oh; ph++) {
    for (let pw = 0; pw < g.ow; pw++) {
      // Bin edges in float, as onnxruntime computes them: 3 x fp32(1/3) is 1 there, and 1.00000003 in double.
      const f = Math.fround;
      visit(ph * g.ow + pw, clampH(Math.floor(f(ph * bh))), clampH(Math.ceil(f((ph + 1) * bh))), clampW(Math.floor(f(pw * bw))), clampW(Math.ceil(f((pw + 1) * bw))));
    }
  }
  return n;
}

/** The flat index (in a plane) of the first maximum of bin [h0, h1) x [w0, w1) of `x` from `base`, or -1 when empty. */
function argmaxOf(x: ElemArray, base: number, W: number, h0: number, h1: number, w0: number, w1: number): number {
  let best = -1;
  for (let h = h0; h < h1; h++) for (let w = w0; w < w1; w++) if (best < 0 || x[base + h * W + w] > x[base + best]) best = h * W + w;
  return best;
}

/** Worker cycles: every pixel of every bin compared once (about 2 cycles), the bins shared among the workers (GUESS). */
function poolCycles(bins: number, g: { H: number; W: number; oh: number; ow: number }, device: DeviceSpec): number {
  const perBin = Math.ceil(g.H / g.oh) * Math.ceil(g.W / g.ow);
  return device.workersPerTile * (10 + Math.ceil(bins / device.workersPerTile) * (6 + 2 * perBin));
}

/** Forward: as RoiAlign's vertex, the RoIs (5 values each) from r0 on. */
export const maxRoiPoolCodelet = defineCodelet({
  name: 'MaxRoiPool',
  kind: 'multi',
  fields: {
    in: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    rois: { direction: 'input', dtypes: ['float32', 'float16'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { ...POOL_GEOMETRY, begin: 'int', r0: 'int', c0: 'int', nch: 'int' },
  compute({ fields, params }) {
    const g = params;
    const x = joined(fields.in);
    const out = fields.out;
    const plane = g.H * g.W;
    const bins = g.oh * g.ow;
    forEachBlock(g.begin, out.length, bins, g.C, (block, r, c) => {
      const box = fields.rois.subarray(5 * (r - g.r0), 5 * (r - g.r0) + 5);
      poolBins(g, box, r, (bin, h0, h1, w0, w1) => {
        const i = block * bins + bin - g.begin;
        if (i < 0 || i >= out.length) return;
        const base = (box[0] * g.nch + (c - g.c0)) * plane;
        const at = argmaxOf(x, base, g.W, h0, h1, w0, w1);
        out[i] = at < 0 ? 0 : x[base + at];
      });
    });
  },
  cycles: (v, device) => poolCycles(regionCount(v.fields.out), v.params, device),
  estimateSource: 'every pixel of a bin compared once (~2 cycles), bins shared among the workers (GUESS)',
});

/**
 * Gradient for X: each bin's gradient to its first maximum. `out` holds elements [offset, ...) of batch item
 * n's planes of channels [c0, c0 + nch); `in` the same planes of X (to find the maxima); gradOut dY[r, c0 ..
 * c0 + nch) of every RoI; rois every RoI.
 */
export const maxRoiPoolGradCodelet = defineCodelet({
  name: 'MaxRoiPoolGrad',
  kind: 'multi',
  fields: {
    gradOut: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    in: { direction: 'input', vector: true, dtypes: ['float32', 'float16'] },
    rois: { direction: 'input', dtypes: ['float32', 'float16'] },
    out: { direction: 'output', dtypes: ['float32', 'float16'] },
  },
  params: { ...POOL_GEOMETRY, R: 'int', n: 'int', c0: 'int', nch: 'int', offset: 'int' },
  compute({ fields, params }) {
    const g = params;
    const dy = joined(fields.gradOut);
    const x = joined(fields.in);
    const plane = g.H * g.W;
    const bins = g.oh * g.ow;
    const dx = new Float64Array(g.nch * plane);
    for (let r = 0; r < g.R; r++) {
      // The RoI's bins once (its batch index checked), then each channel's maxima.
      const edges: number[] = [];
      if (poolBins(g, fields.rois.subarray(5 * r, 5 * r + 5), r, (bin, h0, h1, w0, w1) => edges.push(bin, h0, h1, w0, w1)) !== g.n) continue;
      for (let k = 0; k < g.nch; k++) {
        for (let e = 0; e < edges.length; e += 5) {
          const at = argmaxOf(x, k * plane, g.W, edges[e + 1], edges[e + 2], edges[e + 3], edges[e + 4]);
          if (at >= 0) dx[k * plane + at] += dy[(r * g.nch + k) * bins + edges[e]];
        }
      }
    }
    writeRun(fields.out, dx, g.offset);
  },
  cycles: (v, device) => poolCycles(v.params.R * v.params.nch * v.params.oh * v.params.ow, v.params, device),
  estimateSource: "as MaxRoiPool over every RoI of its channels, each bin's gradient added at its maximum (GUESS)",
});

export const roiAlignCodelets: Codelet[] = [roiAlignCodelet, roiAlignGradCodelet, maxRoiPoolCodelet, maxRoiPoolGradCodelet];
