/**
 * Loss codelets (src/ops/loss.ts has the ops and their lowerings).
 *
 * L1 (PopART's l1loss):
 *   L1Grad         dx = scale x sign(x) x dLoss, `scale` already holding 1/n
 *                  for reduction 'mean'; dLoss one element (reduced loss) or one
 *                  per element (reduction 'none'). sign(0) = 0, as in PopART.
 *   L1Elementwise  out = scale x |x| (reduction 'none').
 * MSE:
 *   MsePartial     out[0] = sum (a - b)^2 over the vertex's elements (a float32 partial).
 *   MseElementwise out = scale x (a - b)^2 (reduction 'none').
 *   MseGrad        out = factor x (a - b) x dLoss, factor = ±2 scale (/ n for 'mean').
 * Class losses (NLL, PopART's Nll, SoftmaxCrossEntropyLoss), over a vertex's
 * S samples of C classes. Field `x` is either one region of S rows of C
 * (param layout 0) or C regions of S elements, one per class (layout 1: the
 * ONNX [N, C, d...] layout, where a sample's classes are `inner` apart).
 * mode 0: x holds log-probabilities, l = -x[t]; mode 1: probabilities,
 * l = -log(max(x[t], eps)) (PopART); mode 2: scores, l = -log_softmax(x)[t].
 * Each sample's weight is w = weights[t] (1 without a weights field), 0 when
 * t is the ignore index.
 *   ClassLoss        reduce 0: out[s] = scale x w x l; reduce 1: out = [sum w l, sum w]
 *                    (a float32 partial); mode 2 may also write logProb.
 *   ClassWeightSum   out[0] = sum w (the 'mean' denominator, for the grad).
 *   ClassLossGrad    dx for every sample: g = dLoss (one, or one per sample) x
 *                    scale (/ denom[0] when there is a denom field);
 *                    mode 0: dx[t] = -w g; mode 1: dx[t] = -w g / max(x[t], eps);
 *                    mode 2: dx[c] = w g (softmax(x)[c] - [c = t]).
 *   LossFinal        out = scale x sum p[0] / (mean ? sum p[1] : 1) over the partials.
 *
 * Arithmetic is in double precision, rounded once on the store. A label
 * outside [0, C) that is not the ignore index fails the run, naming it (as
 * onnxruntime does).
 *
 * Cycle estimates are MODEL figures: the popops passes (../shared/ipu-architecture.md
 * §3) the equivalent PopLibs program runs, e.g. for NLL encodeOneHot + mul +
 * a reduction over the classes (PopART's NllOpx), for softmax cross entropy
 * a max-reduce, exp, sum-reduce and log per sample.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { defineCodelet } from '../define.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType, Region } from '../program.js';
import { addLoop, binaryMultiVertex, reduce, unaryMultiVertex, type LoopCost } from './estimators.js';

// ---------------------------------------------------------------------------
// Loop costs (§3).

/** exp float {6, no, 2}, half {4, no, 4} (§3). */
function expLoop(d: DeviceDType): LoopCost {
  return d === 'float16' ? { cyclesPerLoop: 4, vectorised: false, unroll: 4 } : { cyclesPerLoop: 6, vectorised: false, unroll: 2 };
}
/** log float {12, no, 2} (§3; half costed as float). */
const LOG_LOOP: LoopCost = { cyclesPerLoop: 12, vectorised: false, unroll: 2 };
/** divide float {10, no, 2}, half {21, no, 4} (§3). */
function divideLoop(d: DeviceDType): LoopCost {
  return d === 'float16' ? { cyclesPerLoop: 21, vectorised: false, unroll: 4 } : { cyclesPerLoop: 10, vectorised: false, unroll: 2 };
}
/** max/min float {3, no, 2} (§3), a compare-select per vector. */
function maxLoop(d: DeviceDType): LoopCost {
  return { cyclesPerLoop: 3, vectorised: false, unroll: d === 'float16' ? 4 : 2 };
}

/** One binary elementwise pass (BinaryOp1D) over n elements. */
function pass(n: number, d: DeviceDType, loop: LoopCost, device: DeviceSpec): number {
  return n > 0 ? binaryMultiVertex(n, d, loop, device) : 0;
}
/** One unary elementwise pass (UnaryOp1D) over n elements; base 33 for exp (§3). */
function unary(n: number, d: DeviceDType, loop: LoopCost, device: DeviceSpec, base = 17): number {
  return n > 0 ? unaryMultiVertex(n, d, loop, device, base) : 0;
}

// ---------------------------------------------------------------------------
// L1

export const l1GradCodelet = defineCodelet({
  name: 'L1Grad',
  kind: 'multi',
  fields: { x: { direction: 'input' }, gradLoss: { direction: 'input' }, out: { direction: 'output' } },
  params: { scale: 'float' },
  compute({ fields, params }) {
    const x = fields.x;
    const gl = fields.gradLoss;
    const out = fields.out;
    const perElement = gl.length === x.length && x.length > 1;
    for (let i = 0; i < x.length; i++) {
      const g = (perElement ? gl[i] : gl[0]) * params.scale;
      out[i] = x[i] > 0 ? g : x[i] < 0 ? -g : 0;
    }
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    // A compare-select and a multiply per element: two binary-op passes.
    return 2 * binaryMultiVertex(regionCount(v.fields.out), dtype, addLoop(dtype), device);
  },
  estimateSource: '2 x PopLibs BinaryOp1D (sign select, scale)',
});

export const l1ElementwiseCodelet = defineCodelet({
  name: 'L1Elementwise',
  kind: 'multi',
  fields: { x: { direction: 'input' }, out: { direction: 'output' } },
  params: { scale: 'float' },
  compute({ fields, params }) {
    const x = fields.x;
    const out = fields.out;
    for (let i = 0; i < x.length; i++) out[i] = params.scale * Math.abs(x[i]);
  },
  cycles(v, device) {
    const n = regionCount(v.fields.out);
    const d = fieldDType(v.fields.out);
    // popops::map(ABSOLUTE) then a multiply by the scale (PopART's L1Opx, reduction none).
    return unary(n, d, maxLoop(d), device) + pass(n, d, addLoop(d), device);
  },
  estimateSource: 'PopLibs UnaryOp1D (abs, {3, no, 2}) + BinaryOp1D (scale) (§3)',
});

// ---------------------------------------------------------------------------
// MSE

export const msePartialCodelet = defineCodelet({
  name: 'MsePartial',
  kind: 'multi',
  fields: { a: { direction: 'input' }, b: { direction: 'input' }, out: { direction: 'output' } },
  compute({ fields }) {
    const a = fields.a;
    const b = fields.b;
    let s = 0;
    for (let i = 0; i < a.length; i++) {
      const d = a[i] - b[i];
      s += d * d;
    }
    fields.out[0] = s;
  },
  cycles(v, device) {
    const n = regionCount(v.fields.a);
    const d = fieldDType(v.fields.a);
    // Subtract, square (two BinaryOp1D passes), then a reduction to one partial.
    return 2 * pass(n, d, addLoop(d), device) + reduce(n, 1, d, device);
  },
  estimateSource: '2 x PopLibs BinaryOp1D (sub, square) + reduction (§3)',
});

export const mseElementwiseCodelet = defineCodelet({
  name: 'MseElementwise',
  kind: 'multi',
  fields: { a: { direction: 'input' }, b: { direction: 'input' }, out: { direction: 'output' } },
  params: { scale: 'float' },
  compute({ fields, params }) {
    const a = fields.a;
    const b = fields.b;
    const out = fields.out;
    for (let i = 0; i < a.length; i++) {
      const d = a[i] - b[i];
      out[i] = params.scale * d * d;
    }
  },
  cycles(v, device) {
    const n = regionCount(v.fields.out);
    const d = fieldDType(v.fields.out);
    return 3 * pass(n, d, addLoop(d), device);
  },
  estimateSource: '3 x PopLibs BinaryOp1D (sub, square, scale) (§3)',
});

export const mseGradCodelet = defineCodelet({
  name: 'MseGrad',
  kind: 'multi',
  fields: { a: { direction: 'input' }, b: { direction: 'input' }, gradLoss: { direction: 'input' }, out: { direction: 'output' } },
  params: { factor: 'float' },
  compute({ fields, params }) {
    const a = fields.a;
    const b = fields.b;
    const gl = fields.gradLoss;
    const out = fields.out;
    const perElement = gl.length === a.length && a.length > 1;
    for (let i = 0; i < a.length; i++) out[i] = params.factor * (a[i] - b[i]) * (perElement ? gl[i] : gl[0]);
  },
  cycles(v, device) {
    const n = regionCount(v.fields.out);
    const d = fieldDType(v.fields.out);
    // Subtract, then one multiply by factor x dLoss (a scalar folded into a ScaledAdd-style scale, or a tensor).
    return 2 * pass(n, d, addLoop(d), device);
  },
  estimateSource: '2 x PopLibs BinaryOp1D (sub, scale by dLoss) (§3)',
});

// ---------------------------------------------------------------------------
// Class losses

/**
 * The params of the class-loss vertices (ClassLossOp.vertexParams, the eps of
 * max(p, eps) and the index of the vertex's first sample). ClassWeightSum
 * runs on ClassLossGrad's.
 */
const CLASS_PARAMS = {
  C: 'int',
  layout: 'int',
  mode: 'int',
  hasIgnore: 'int',
  ignoreIndex: 'int',
  scale: 'float',
  eps: 'float',
  sampleOffset: 'int',
} as const;

/** What a class-loss vertex sees, independent of the layout. */
interface Samples {
  S: number;
  C: number;
  get(s: number, c: number): number;
}

function samples(x: Float32Array[], C: number, layout: number): Samples {
  if (layout === 0) {
    const r = x[0];
    return { S: r.length / C, C, get: (s, c) => r[s * C + c] };
  }
  return { S: x[0].length, C, get: (s, c) => x[c][s] };
}

function setter(x: Float32Array[], C: number, layout: number): (s: number, c: number, v: number) => void {
  if (layout === 0) {
    const r = x[0];
    return (s, c, v) => void (r[s * C + c] = v);
  }
  return (s, c, v) => void (x[c][s] = v);
}

/** A sample's weight: 0 for the ignore index; a label outside [0, C) otherwise fails. */
function sampleWeight(label: number, C: number, params: { hasIgnore: number; ignoreIndex: number }, weights: Float32Array | undefined, where: number): number {
  if (params.hasIgnore && label === params.ignoreIndex) return 0;
  if (!(label >= 0 && label < C)) {
    throw new Error(
      `label ${label} of sample ${where} is out of range: classes are 0 to ${C - 1}` + (params.hasIgnore ? ` (ignore index ${params.ignoreIndex})` : ''),
    );
  }
  return weights ? weights[label] : 1;
}

/** log-sum-exp of sample s, computed stably. */
function logSumExp(x: Samples, s: number): number {
  let m = -Infinity;
  for (let c = 0; c < x.C; c++) m = Math.max(m, x.get(s, c));
  if (m === -Infinity || !Number.isFinite(m)) return m;
  let sum = 0;
  for (let c = 0; c < x.C; c++) sum += Math.exp(x.get(s, c) - m);
  return m + Math.log(sum);
}

/** -log p of the label: the loss of one sample before its weight. */
function negLogProb(x: Samples, s: number, t: number, mode: number, eps: number): number {
  if (mode === 0) return -x.get(s, t);
  if (mode === 1) return -Math.log(Math.max(x.get(s, t), eps));
  return logSumExp(x, s) - x.get(s, t);
}

/** Classes of a class-loss vertex: its param, or (a probe without params, `sim vertex`) one per region of x. */
function classesOf(v: { fields: { x: Region[] }; params: { C?: number } }): number {
  const x = v.fields.x;
  return v.params.C ?? (Array.isArray(x) ? Math.max(1, x.length) : 1);
}

/**
 * Cycles of the passes over one vertex's S samples of C classes. mode 0:
 * encodeOneHot + mul + reduce over the classes (PopART's NllOpx); mode 1 adds
 * max(p, eps) and log per sample; mode 2: max-reduce, subtract, exp,
 * sum-reduce, log (log-softmax), then the same gather.
 */
function classForwardCycles(S: number, C: number, d: DeviceDType, mode: number, weighted: boolean, logProb: boolean, device: DeviceSpec): number {
  const n = S * C;
  let c = pass(n, d, addLoop(d), device) + pass(n, d, addLoop(d), device) + reduce(n, S, d, device);
  if (mode === 1) c += pass(S, d, maxLoop(d), device) + unary(S, d, LOG_LOOP, device);
  if (mode === 2) {
    c += reduce(n, S, d, device) + pass(n, d, addLoop(d), device) + unary(n, d, expLoop(d), device, 33) + reduce(n, S, d, device) + unary(S, d, LOG_LOOP, device);
    if (logProb) c += pass(n, d, addLoop(d), device);
  }
  // Ignore-index mask and class weights: a select / multiply per sample.
  c += pass(S, d, addLoop(d), device) * (weighted ? 2 : 1);
  return c;
}

export const classLossCodelet = defineCodelet({
  name: 'ClassLoss',
  kind: 'multi',
  fields: {
    x: { direction: 'input', vector: true },
    labels: { direction: 'input', dtypes: ['int32'] },
    weights: { direction: 'inout' },
    out: { direction: 'output' },
    logProb: { direction: 'inout', vector: true },
  },
  params: { ...CLASS_PARAMS, reduce: 'int' },
  compute({ fields, params }) {
    const C = params.C;
    const x = samples(fields.x, C, params.layout);
    const labels = fields.labels;
    const weights = fields.weights;
    const out = fields.out;
    const lp = fields.logProb;
    const setLp = lp ? setter(lp, C, params.layout) : undefined;
    let sumL = 0;
    let sumW = 0;
    for (let s = 0; s < x.S; s++) {
      if (setLp) {
        const lse = logSumExp(x, s);
        for (let c = 0; c < C; c++) setLp(s, c, x.get(s, c) - lse);
      }
      const w = sampleWeight(labels[s], C, params, weights, params.sampleOffset + s);
      const l = w === 0 ? 0 : w * negLogProb(x, s, labels[s], params.mode, params.eps);
      if (params.reduce) {
        sumL += l;
        sumW += w;
      } else out[s] = params.scale * l;
    }
    if (params.reduce) {
      out[0] = sumL;
      out[1] = sumW;
    }
  },
  cycles(v, device) {
    const n = regionCount(v.fields.x);
    const C = classesOf(v);
    return classForwardCycles(Math.ceil(n / C), C, fieldDType(v.fields.x), v.params.mode, v.fields.weights !== undefined, v.fields.logProb !== undefined, device);
  },
  estimateSource:
    'MODEL: popops passes of the PopART/PopLibs program: encodeOneHot, mul, reduce over classes; + log for probabilities; ' +
    '+ max-reduce, sub, exp, sum-reduce, log for softmax (§3 loops and reductions)',
});

export const classWeightSumCodelet = defineCodelet({
  name: 'ClassWeightSum',
  kind: 'multi',
  fields: { labels: { direction: 'input', dtypes: ['int32'] }, weights: { direction: 'inout' }, out: { direction: 'output' } },
  params: { ...CLASS_PARAMS, perSample: 'int' },
  compute({ fields, params }) {
    const labels = fields.labels;
    const weights = fields.weights;
    let sum = 0;
    for (let s = 0; s < labels.length; s++) sum += sampleWeight(labels[s], params.C, params, weights, params.sampleOffset + s);
    fields.out[0] = sum;
  },
  cycles(v, device) {
    const S = regionCount(v.fields.labels);
    // Mask (compare with the ignore index), gather the weights, reduce: PopART's numNonIgnoredSamples.
    return 2 * pass(S, 'float32', addLoop('float32'), device) + reduce(S, 1, 'float32', device);
  },
  estimateSource: "2 x PopLibs BinaryOp1D (mask, weight gather) + reduction (PopART's numNonIgnoredSamples) (§3)",
});

export const classLossGradCodelet = defineCodelet({
  name: 'ClassLossGrad',
  kind: 'multi',
  fields: {
    x: { direction: 'input', vector: true },
    labels: { direction: 'input', dtypes: ['int32'] },
    weights: { direction: 'inout' },
    gradLoss: { direction: 'input' },
    denom: { direction: 'inout' },
    out: { direction: 'output', vector: true },
  },
  params: { ...CLASS_PARAMS, perSample: 'int' },
  compute({ fields, params }) {
    const C = params.C;
    const x = samples(fields.x, C, params.layout);
    const set = setter(fields.out, C, params.layout);
    const labels = fields.labels;
    const weights = fields.weights;
    const gl = fields.gradLoss;
    const denom = fields.denom;
    const factor = params.scale / (denom ? denom[0] : 1);
    const perSample = params.perSample === 1;
    for (let s = 0; s < x.S; s++) {
      const t = labels[s];
      const w = sampleWeight(t, C, params, weights, params.sampleOffset + s);
      const g = w * factor * (perSample ? gl[s] : gl[0]);
      if (params.mode === 2) {
        if (w === 0) {
          for (let c = 0; c < C; c++) set(s, c, 0);
          continue;
        }
        const lse = logSumExp(x, s);
        for (let c = 0; c < C; c++) set(s, c, g * (Math.exp(x.get(s, c) - lse) - (c === t ? 1 : 0)));
      } else {
        for (let c = 0; c < C; c++) set(s, c, 0);
        if (w === 0) continue;
        set(s, t, params.mode === 0 ? -g : -g / Math.max(x.get(s, t), params.eps));
      }
    }
  },
  cycles(v, device) {
    const n = regionCount(v.fields.x);
    const C = classesOf(v);
    const S = Math.ceil(n / C);
    const d = fieldDType(v.fields.x);
    const mode = v.params.mode;
    // encodeOneHot and the scale by dLoss (and 1/denominator): two passes over the classes.
    let c = 2 * pass(n, d, addLoop(d), device);
    // Probabilities: max(p, eps) and -1/p over the classes (PopART's NllGradOpx).
    if (mode === 1) c += pass(n, d, maxLoop(d), device) + pass(n, d, divideLoop(d), device);
    // Softmax recomputed: max-reduce, sub, exp, sum-reduce, divide; then subtract the one-hot.
    if (mode === 2) {
      c += reduce(n, S, d, device) + pass(n, d, addLoop(d), device) + unary(n, d, expLoop(d), device, 33) + reduce(n, S, d, device);
      c += pass(n, d, divideLoop(d), device) + pass(n, d, addLoop(d), device);
    }
    c += pass(S, d, addLoop(d), device) * (v.fields.weights !== undefined ? 2 : 1);
    return c;
  },
  estimateSource:
    "MODEL: PopART's NllGradOpx passes (encodeOneHot, max(p, eps), divide, scale); softmax cross entropy recomputes the " +
    'softmax (max-reduce, sub, exp, sum-reduce, divide) and subtracts the one-hot (§3 loops and reductions)',
});

export const lossFinalCodelet = defineCodelet({
  name: 'LossFinal',
  kind: 'multi',
  fields: { partials: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: { scale: 'float', mean: 'int' },
  compute({ fields, params }) {
    const parts = fields.partials;
    let l = 0;
    let w = 0;
    for (const p of parts) {
      l += p[0];
      w += p[1];
    }
    fields.out[0] = params.scale * (params.mean ? l / w : l);
  },
  cycles(v, device) {
    // Two sums over the partials (a reduction), and a divide.
    return reduce(regionCount(v.fields.partials), 2, 'float32', device) + (v.params.mean ? pass(1, 'float32', divideLoop('float32'), device) : 0);
  },
  estimateSource: 'PopLibs reduction over the partials (second stage) + BinaryOp1D divide (§3)',
});

export const lossCodelets: Codelet[] = [
  l1GradCodelet,
  l1ElementwiseCodelet,
  msePartialCodelet,
  mseElementwiseCodelet,
  mseGradCodelet,
  classLossCodelet,
  classWeightSumCodelet,
  classLossGradCodelet,
  lossFinalCodelet,
];
