/**
 * LayerNormalization and BatchNormalization (inference) codelets.
 *
 * LayerNorm works on rows of a row-major [outer, n] view: a vertex writes
 * elements [outBegin, outBegin + len(out)) and reads `in` from flat index
 * inBegin, whole rows. Per row, in fp32 as ONNX's stash_type 1 asks:
 *   mean = sum x / n; var = sum (x - mean)^2 / n; r = 1 / sqrt(var + eps);
 *   y = (x - mean) r scale + bias.
 * Backward (g = dy scale, xhat = (x - mean) r):
 *   dx = r (g - mean(g) - xhat mean(g xhat)); dscale = sum over rows of dy xhat (its terms here, summed by a planned reduction).
 *
 * BatchNorm (inference) is per channel of an [N, C, S] view: a vertex's run
 * starts at flat `begin`; scale, bias, mean, var hold channels cMin ...:
 *   k = scale / sqrt(var + eps); y = x k + (bias - mean k)  (onnxruntime's order).
 *
 * The LayerNorm vertices run WebAssembly kernels per row over tile memory
 * (ln_row, ln_stats_rows, ln_grad_x_row, ln_scale_row): the same operations
 * in the same order as the code here, which stays the reference.
 *
 * Costs (PopLibs' norms run popops reductions and elementwise maps; there is
 * no single vertex estimate): built from §3 blocks, per step named below.
 */
import type { Codelet, VertexShape } from '../codelet.js';
import { defineCodelet, type ParamValues } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceSpec } from '../device.js';
import { addLoop, binaryMultiVertex, binaryOp2D, reduce, unaryMultiVertex, unaryOp2D } from './estimators.js';
import { regionCounts } from './multi-region.js';
import { DIV_LOOP, SQRT_LOOP } from './nn-util.js';
import { laneWise, separate } from '../wasm/kernels.js';

/** Mean and 1 / sqrt(var + eps) of the row starting at `at`, accumulated in fp32. */
function rowStats(x: Float32Array, at: number, n: number, eps: number): [number, number] {
  let s = 0;
  for (let k = 0; k < n; k++) s = Math.fround(s + x[at + k]);
  const mean = Math.fround(s / n);
  let v = 0;
  for (let k = 0; k < n; k++) {
    const d = Math.fround(x[at + k] - mean);
    v = Math.fround(v + Math.fround(d * d));
  }
  const variance = Math.fround(v / n);
  return [mean, Math.fround(1 / Math.fround(Math.sqrt(Math.fround(variance + eps))))];
}

/** Rows touching [b, e) of an [outer, n] view: calls fn(row, first, end) with the row's elements inside. */
function forEachRow(b: number, e: number, n: number, fn: (row: number, first: number, end: number) => void): void {
  for (let r = Math.floor(b / n); r * n < e; r++) fn(r, Math.max(b, r * n), Math.min(e, (r + 1) * n));
}

function rows(v: VertexShape, field: string): number {
  return Math.max(1, Math.ceil(regionCount(v.fields[field]) / Math.max(1, v.params.n)));
}

/** Row statistics in the §3 blocks: two reductions (sum, sum of squares) over the window and 1/sqrt per row. */
function statsCycles(v: VertexShape, device: DeviceSpec): number {
  const dtype = fieldDType(v.fields.in);
  const nIn = regionCount(v.fields.in);
  const r = rows(v, 'in');
  return 2 * reduce(nIn, r, dtype, device) + unaryMultiVertex(r, 'float32', SQRT_LOOP, device) + unaryMultiVertex(r, 'float32', DIV_LOOP('float32'), device);
}

/** Rows of n; outputs from outBegin, inputs from inBegin. */
const LN_PARAMS = { n: 'int', outBegin: 'int', inBegin: 'int', eps: 'float' } as const;
const LN_FIELDS = { in: { direction: 'input' }, scale: { direction: 'input' }, out: { direction: 'output' } } as const;
const LN_BIAS_FIELDS = { in: { direction: 'input' }, scale: { direction: 'input' }, bias: { direction: 'input' }, out: { direction: 'output' } } as const;

/** y = (x - mean) r scale (+ bias) over the vertex's rows. */
function layerNormRows(x: Float32Array, scale: Float32Array, bias: Float32Array | undefined, out: Float32Array, params: ParamValues<typeof LN_PARAMS>): void {
  const { n, outBegin, inBegin, eps } = params;
  const w = separate(out, bias ? [x, scale, bias] : [x, scale]);
  if (w && scale.length >= n && (!bias || bias.length >= n)) {
    const [px, ps, pb] = w.ins;
    forEachRow(outBegin, outBegin + out.length, n, (row, first, end) =>
      w.K.x.ln_row(px + 4 * (row * n - inBegin), n, eps, ps, pb ?? 0, bias ? 1 : 0, w.out + 4 * (first - outBegin), first - row * n, end - row * n),
    );
    return;
  }
  forEachRow(outBegin, outBegin + out.length, n, (row, first, end) => {
    const at = row * n - inBegin;
    const [mean, r] = rowStats(x, at, n, eps);
    for (let i = first; i < end; i++) {
      const k = i - row * n;
      const y = Math.fround(Math.fround(Math.fround(x[at + k] - mean) * r) * scale[k]);
      out[i - outBegin] = bias ? y + bias[k] : y;
    }
  });
}

function layerNormCycles(v: VertexShape, device: DeviceSpec, hasBias: boolean): number {
  const dtype = fieldDType(v.fields.out);
  const nOut = regionCount(v.fields.out);
  // (x - mean), x r, x scale, + bias: one binary op each per output.
  return statsCycles(v, device) + (hasBias ? 4 : 3) * binaryMultiVertex(nOut, dtype, addLoop(dtype), device);
}

const LN_SOURCE = 'PopLibs layer norm as popops steps (§3 blocks): 2 reductions over the rows, sqrt and reciprocal per row, then 3-4 binary ops per output';

export const layerNormCodelet = defineCodelet({
  name: 'NnLayerNorm',
  kind: 'multi',
  fields: LN_BIAS_FIELDS,
  params: LN_PARAMS,
  compute: ({ fields, params }) => layerNormRows(fields.in, fields.scale, fields.bias, fields.out, params),
  cycles: (v, device) => layerNormCycles(v, device, true),
  estimateSource: LN_SOURCE,
});

export const layerNormNoBiasCodelet = defineCodelet({
  name: 'NnLayerNormNoBias',
  kind: 'multi',
  fields: LN_FIELDS,
  params: LN_PARAMS,
  compute: ({ fields, params }) => layerNormRows(fields.in, fields.scale, undefined, fields.out, params),
  cycles: (v, device) => layerNormCycles(v, device, false),
  estimateSource: LN_SOURCE,
});

/** Mean (which = 0) or InvStdDev (which = 1) of rows [outBegin, outBegin + len(out)). */
export const layerNormStatsCodelet = defineCodelet({
  name: 'NnLayerNormStats',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  params: { ...LN_PARAMS, which: 'int' },
  compute({ fields, params }) {
    const x = fields.in;
    const out = fields.out;
    const { n, outBegin, inBegin, eps, which } = params;
    const w = separate(out, [x]);
    if (w) return w.K.x.ln_stats_rows(w.ins[0] + 4 * (outBegin * n - inBegin), n, eps, w.out, out.length, which === 1 ? 1 : 0);
    for (let i = 0; i < out.length; i++) out[i] = rowStats(x, (outBegin + i) * n - inBegin, n, eps)[which];
  },
  cycles: statsCycles,
  estimateSource: 'PopLibs layer norm statistics (§3 blocks): 2 reductions over the rows, sqrt and reciprocal per row',
});

export const layerNormGradXCodelet = defineCodelet({
  name: 'NnLayerNormGradX',
  kind: 'multi',
  fields: { gradOut: { direction: 'input' }, in: { direction: 'input' }, scale: { direction: 'input' }, out: { direction: 'output' } },
  params: LN_PARAMS,
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const x = fields.in;
    const scale = fields.scale;
    const out = fields.out;
    const { n, outBegin, inBegin, eps } = params;
    const w = separate(out, [dy, x, scale]);
    if (w && scale.length >= n) {
      const [pdy, px, ps] = w.ins;
      forEachRow(outBegin, outBegin + out.length, n, (row, first, end) => {
        const at = 4 * (row * n - inBegin);
        w.K.x.ln_grad_x_row(pdy + at, px + at, ps, n, eps, w.out + 4 * (first - outBegin), first - row * n, end - row * n);
      });
      return;
    }
    forEachRow(outBegin, outBegin + out.length, n, (row, first, end) => {
      const at = row * n - inBegin;
      const [mean, r] = rowStats(x, at, n, eps);
      let sg = 0;
      let sgx = 0;
      for (let k = 0; k < n; k++) {
        const g = Math.fround(dy[at + k] * scale[k]);
        sg = Math.fround(sg + g);
        sgx = Math.fround(sgx + Math.fround(g * Math.fround(Math.fround(x[at + k] - mean) * r)));
      }
      const mg = Math.fround(sg / n);
      const mgx = Math.fround(sgx / n);
      for (let i = first; i < end; i++) {
        const k = i - row * n;
        const g = Math.fround(dy[at + k] * scale[k]);
        const xhat = Math.fround(Math.fround(x[at + k] - mean) * r);
        out[i - outBegin] = r * Math.fround(Math.fround(g - mg) - Math.fround(xhat * mgx));
      }
    });
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const nIn = regionCount(v.fields.in);
    const r = rows(v, 'in');
    // Stats, g = dy scale and g xhat over the window, their two row sums, then 4 binary ops per output.
    return statsCycles(v, device) + 3 * binaryMultiVertex(nIn, dtype, addLoop(dtype), device) + 2 * reduce(nIn, r, dtype, device) + 4 * binaryMultiVertex(regionCount(v.fields.out), dtype, addLoop(dtype), device);
  },
  estimateSource: 'PopLibs layer norm gradients as popops steps (§3 blocks): stats, 3 binary ops and 2 reductions over the rows, 4 binary ops per output',
});

/**
 * dscale's terms, elementwise: out[i] = dy_i xhat_i for the vertex's elements
 * [begin, begin + len(out)) (fp32, whatever dy's type), reading `in` from flat
 * index inBegin, whole rows; the sum over rows is a planned reduction of
 * these terms (src/ops/norm.ts). On the kernel each row's terms are
 * accumulated into a zeroed out (ln_scale_row), so a -0 term is +0: the
 * reference adds 0 too.
 */
export const layerNormDyXhatCodelet = defineCodelet({
  name: 'NnLayerNormDyXhat',
  kind: 'multi',
  fields: { gradOut: { direction: 'input' }, in: { direction: 'input' }, out: { direction: 'output', dtypes: ['float32'] } },
  params: { n: 'int', begin: 'int', inBegin: 'int', eps: 'float' },
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const x = fields.in;
    const out = fields.out;
    const { n, begin, inBegin, eps } = params;
    const w = separate(out, [dy, x]);
    if (w) {
      out.fill(0);
      const [pdy, px] = w.ins;
      // The kernel writes column k of the row at o + 4k: o is the row's first element's place in out.
      forEachRow(begin, begin + dy.length, n, (row, first, end) =>
        w.K.x.ln_scale_row(px + 4 * (row * n - inBegin), n, eps, pdy + 4 * (first - begin), w.out + 4 * (row * n - begin), first - row * n, end - row * n),
      );
      return;
    }
    forEachRow(begin, begin + dy.length, n, (row, first, end) => {
      const at = row * n - inBegin;
      const [mean, r] = rowStats(x, at, n, eps);
      for (let i = first; i < end; i++) out[i - begin] = 0 + Math.fround(dy[i - begin] * Math.fround(Math.fround(x[at + i - row * n] - mean) * r));
    });
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.gradOut);
    const n = regionCount(v.fields.gradOut);
    return statsCycles(v, device) + 3 * binaryMultiVertex(n, dtype, addLoop(dtype), device);
  },
  estimateSource: 'PopLibs layer norm gradients (§3 blocks): stats, xhat and dy xhat (3 binary ops)',
});

/** Channel runs shorter than this stay in TypeScript (two kernel calls per run would cost more). */
const MIN_RUN_WASM = 16;

/**
 * out = fp32(x k[c]) (+ b[c]) over the channel runs of an [N, C, S] view from
 * flat `begin`, on the kernels: per run mul_vs, then add_vs in place, the
 * reference's two roundings. k and b (channels cMin ...) are staged in the
 * arena. False when the fields are not fp32 tile memory, runs are short, or
 * out overlaps x other than exactly.
 */
function channelAffineWasm(x: Float32Array, out: Float32Array, k: Float32Array, b: Float32Array | undefined, C: number, S: number, begin: number, cMin: number): boolean {
  if (S < MIN_RUN_WASM || x.length !== out.length) return false;
  // Every channel the runs visit must have its k (the reference would read undefined otherwise).
  const first = Math.floor(begin / S);
  const last = Math.floor((begin + out.length - 1) / S);
  const every = cMin === 0 && k.length >= C;
  if (out.length > 0 && !every && (last - first + 1 > C || first % C < cMin || (last % C) - cMin >= k.length || last % C < first % C)) return false;
  const w = laneWise(out, [x]);
  if (!w) return false;
  const pk = w.K.stage([k]);
  const pb = b ? w.K.stage([b]) : 0;
  if (pk < 0 || pb < 0) return false;
  const [px] = w.ins;
  let c = Math.floor(begin / S) % C;
  for (let i = 0, j = begin % S; i < out.length; j = 0) {
    const run = Math.min(S - j, out.length - i);
    w.K.x.mul_vs(px + 4 * i, pk + 4 * (c - cMin), w.out + 4 * i, run);
    if (b) w.K.x.add_vs(w.out + 4 * i, pb + 4 * (c - cMin), w.out + 4 * i, run);
    i += run;
    if (++c === C) c = 0;
  }
  return true;
}

/** Channels C of S elements each; the vertex's outputs from begin, its channels from cMin. */
const BN_PARAMS = { C: 'int', S: 'int', begin: 'int', cMin: 'int', eps: 'float' } as const;

/** k = scale / sqrt(var + eps) and b = bias - mean k for the channels the slices hold (fp32, onnxruntime's order). */
function batchNormCoefficients(scale: Float32Array, bias: Float32Array, mean: Float32Array, variance: Float32Array, eps: number): [Float32Array, Float32Array] {
  const cc = scale.length;
  const k = new Float32Array(cc);
  const b = new Float32Array(cc);
  for (let c = 0; c < cc; c++) {
    k[c] = scale[c] / Math.fround(Math.sqrt(Math.fround(variance[c] + eps)));
    b[c] = bias[c] - Math.fround(mean[c] * k[c]);
  }
  return [k, b];
}

/** y = fp32(x k[c]) + b[c] over a run from flat `begin` of an [N, C, S] view; k and b hold channels cMin .... */
function batchNormApply(x: Float32Array, out: Float32Array, k: Float32Array, b: Float32Array, C: number, S: number, begin: number, cMin: number): void {
  if (channelAffineWasm(x, out, k, b, C, S, begin, cMin)) return;
  let c = Math.floor(begin / S) % C;
  let j = begin % S;
  for (let i = 0; i < x.length; i++) {
    out[i] = Math.fround(x[i] * k[c - cMin]) + b[c - cMin];
    if (++j === S) {
      j = 0;
      if (++c === C) c = 0;
    }
  }
}

const BN_FIELDS = {
  in: { direction: 'input' },
  scale: { direction: 'input' },
  bias: { direction: 'input' },
  mean: { direction: 'input' },
  var: { direction: 'input' },
  out: { direction: 'output' },
} as const;

/** BatchNorm inference: y = x k + (bias - mean k), k = scale / sqrt(var + eps) per channel. */
export const batchNormCodelet = defineCodelet({
  name: 'NnBatchNorm',
  kind: 'multi',
  fields: BN_FIELDS,
  params: BN_PARAMS,
  compute({ fields, params }) {
    const [k, b] = batchNormCoefficients(fields.scale, fields.bias, fields.mean, fields.var, params.eps);
    batchNormApply(fields.in, fields.out, k, b, params.C, params.S, params.begin, params.cMin);
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const n = regionCount(v.fields.out);
    const cc = regionCount(v.fields.scale);
    // Per channel: sqrt, divide, multiply-subtract; then ChannelMul and AddToChannel over the elements.
    return (
      unaryMultiVertex(cc, 'float32', SQRT_LOOP, device) +
      binaryMultiVertex(cc, 'float32', DIV_LOOP('float32'), device) +
      2 * binaryMultiVertex(cc, 'float32', addLoop('float32'), device) +
      2 * binaryMultiVertex(n, dtype, addLoop(dtype), device)
    );
  },
  estimateSource:
    "PopLibs batchNormalise structure (per-channel k = scale rsqrt(var + eps), then ChannelMul and AddToChannel); PopLibs' channel-op estimators are not in §3, so built from §3 unary/binary 1-D blocks",
});

/** Channels of an [N, C, S] view that the runs from flat begins[j], counts[j] elements each, touch (summed over runs). */
export function channelsTouched(begins: readonly number[], counts: readonly number[], S: number): number {
  let cc = 0;
  for (let j = 0; j < counts.length; j++) if (counts[j] > 0) cc += Math.floor((begins[j] + counts[j] - 1) / S) - Math.floor(begins[j] / S) + 1;
  return cc;
}

/**
 * BatchNorm inference over several runs of a tile (the multi-region form, one
 * per worker, as popops' ChannelMul2D / AddToChannel2D): `in` and `out` lists
 * of runs, run j from flat arrays.begin[j]; scale, bias, mean and var hold the
 * channels cMin ... that the runs touch. Each run is computed as the 1-D
 * vertex computes it.
 */
export const batchNorm2DCodelet = defineCodelet({
  name: 'NnBatchNorm2D',
  kind: 'worker',
  fields: { ...BN_FIELDS, in: { direction: 'input', vector: true }, out: { direction: 'output', vector: true } },
  params: { C: 'int', S: 'int', cMin: 'int', eps: 'float' },
  arrays: { begin: 'ints' },
  compute({ fields, params, arrays }) {
    const [k, b] = batchNormCoefficients(fields.scale, fields.bias, fields.mean, fields.var, params.eps);
    for (let j = 0; j < fields.out.length; j++) batchNormApply(fields.in[j], fields.out[j], k, b, params.C, params.S, arrays.begin[j], params.cMin);
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const counts = regionCounts(v.fields.out);
    const cc = [channelsTouched(v.arrays?.begin ?? [], counts, v.params.S)];
    // The 1-D steps as one worker's loops (UnaryOp2D, BinaryOp2D): per channel touched sqrt, divide,
    // multiply-subtract; then ChannelMul and AddToChannel over each run.
    return (
      unaryOp2D(cc, 'float32', SQRT_LOOP, device) +
      binaryOp2D(cc, 'float32', DIV_LOOP('float32'), device) +
      2 * binaryOp2D(cc, 'float32', addLoop('float32'), device) +
      2 * binaryOp2D(counts, dtype, addLoop(dtype), device)
    );
  },
  estimateSource:
    'NnBatchNorm in worker form: the per-channel steps over the channels its runs touch, then ChannelMul and AddToChannel per run, as PopLibs UnaryOp2D (20 + inner) and BinaryOp2D (5 + inner) worker loops',
});

/** BatchNorm dx = dy scale / sqrt(var + eps) per channel. */
export const batchNormGradXCodelet = defineCodelet({
  name: 'NnBatchNormGradX',
  kind: 'multi',
  fields: { gradOut: { direction: 'input' }, scale: { direction: 'input' }, var: { direction: 'input' }, out: { direction: 'output' } },
  params: BN_PARAMS,
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const scale = fields.scale;
    const variance = fields.var;
    const out = fields.out;
    const { C, S, begin, cMin, eps } = params;
    const k = new Float32Array(scale.length);
    for (let c = 0; c < scale.length; c++) k[c] = scale[c] / Math.fround(Math.sqrt(Math.fround(variance[c] + eps)));
    if (channelAffineWasm(dy, out, k, undefined, C, S, begin, cMin)) return;
    let c = Math.floor(begin / S) % C;
    let j = begin % S;
    for (let i = 0; i < dy.length; i++) {
      out[i] = dy[i] * k[c - cMin];
      if (++j === S) {
        j = 0;
        if (++c === C) c = 0;
      }
    }
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const cc = regionCount(v.fields.scale);
    return (
      unaryMultiVertex(cc, 'float32', SQRT_LOOP, device) +
      binaryMultiVertex(cc, 'float32', DIV_LOOP('float32'), device) +
      binaryMultiVertex(regionCount(v.fields.out), dtype, addLoop(dtype), device)
    );
  },
  estimateSource: 'per-channel k = scale rsqrt(var + eps) (§3 sqrt, divide), then one ChannelMul over the elements (§3 binary 1-D block)',
});

export const normCodelets: Codelet[] = [
  layerNormCodelet,
  layerNormNoBiasCodelet,
  layerNormStatsCodelet,
  layerNormGradXCodelet,
  layerNormDyXhatCodelet,
  batchNormCodelet,
  batchNormGradXCodelet,
  batchNorm2DCodelet,
];
