/**
 * Optimizer updates with PyTorch's semantics, applied in place to a
 * variable's elements on one tile. The gradient is first divided by the loss
 * scaling (param lossScaling, PopART's semantics; 1 without loss scaling).
 *
 * SGDUpdate (torch.optim.SGD):
 *   g = grad / lossScaling + weightDecay * w
 *   v = started ? momentum * v + (1 - dampening) * g : g      (only when momentum != 0)
 *   g = nesterov ? g + momentum * v : v
 *   w -= lr * g
 * `started` is a one-element device flag so the first step matches PyTorch
 * without recompiling the program.
 *
 * AdamUpdate (torch.optim.Adam; with decoupled = 1, torch.optim.AdamW):
 *   t = step + 1 (a one-element device counter, so the bias corrections are right at every step)
 *   g = grad / lossScaling
 *   Adam:  g += weightDecay * w              AdamW: w *= 1 - lr * weightDecay
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   w -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * (the form of PyTorch's single-tensor implementation). Arithmetic is in
 * double precision, rounded when stored: m, v and the counter are float32.
 *
 * Cycle estimates (MODEL) are the popops passes PopLibs would run: one
 * ScaledAdd (a = a.x + b.y) per axpy, elementwise passes for g^2, sqrt, + eps
 * and the divide with their §3 loop costs (../shared/ipu-architecture.md §3:
 * sqrt float {10, no, 2}, divide float {10, no, 2} half {21, no, 4}; add/mul
 * 3 cycles per 64-bit vector). Folding 1/lossScaling into a pass's scale is
 * free, as PopART folds it into the scaled learning rate.
 */
import type { Codelet } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import { addLoop, binaryMultiVertex, scaledAdd, unaryMultiVertex, type LoopCost } from './estimators.js';

export const sgdCodelet = defineCodelet({
  name: 'SGDUpdate',
  kind: 'multi',
  fields: {
    w: { direction: 'inout', required: true },
    g: { direction: 'input' },
    v: { direction: 'inout' },
    started: { direction: 'inout' },
  },
  params: { lr: 'float', momentum: 'float', dampening: 'float', weightDecay: 'float', nesterov: 'int', lossScaling: 'float?' },
  compute({ fields, params }) {
    const w = fields.w;
    const grad = fields.g;
    const { lr, momentum, dampening, weightDecay, nesterov } = params;
    const ls = params.lossScaling ?? 1;
    if (momentum === 0) {
      for (let i = 0; i < w.length; i++) w[i] -= lr * (grad[i] / ls + weightDecay * w[i]);
      return;
    }
    const { v, started } = fields;
    if (!v || !started) throw new Error('SGDUpdate: momentum needs its v and started fields connected');
    const first = started[0] === 0;
    for (let i = 0; i < w.length; i++) {
      let g = grad[i] / ls + weightDecay * w[i];
      v[i] = first ? g : momentum * v[i] + (1 - dampening) * g;
      g = nesterov ? g + momentum * v[i] : v[i];
      w[i] -= lr * g;
    }
    started[0] = 1;
  },
  cycles(v, device) {
    const n = regionCount(v.fields.w);
    const dtype = fieldDType(v.fields.w);
    // One ScaledAdd pass per axpy: weight decay, momentum, nesterov, the update itself.
    const passes = 1 + (v.params.weightDecay !== 0 ? 1 : 0) + (v.params.momentum !== 0 ? 1 + (v.params.nesterov ? 1 : 0) : 0);
    return passes * scaledAdd(n, dtype, device);
  },
  estimateSource: 'PopLibs ScaledAdd (a += s.b) per pass: supervisor 21+11+7+12+6, worker 15+6+3(v-1)+2',
});

/** sqrt float {10, no, 2} (§3). */
const SQRT_LOOP: LoopCost = { cyclesPerLoop: 10, vectorised: false, unroll: 2 };
/** divide float {10, no, 2} (§3); the moments are float32. */
const DIVIDE_LOOP: LoopCost = { cyclesPerLoop: 10, vectorised: false, unroll: 2 };

export const adamCodelet = defineCodelet({
  name: 'AdamUpdate',
  kind: 'multi',
  fields: {
    w: { direction: 'inout', required: true },
    g: { direction: 'input' },
    m: { direction: 'inout', required: true, dtypes: ['float32'] },
    v: { direction: 'inout', required: true, dtypes: ['float32'] },
    step: { direction: 'inout', required: true, dtypes: ['float32'] },
  },
  params: { lr: 'float', beta1: 'float', beta2: 'float', eps: 'float', weightDecay: 'float', decoupled: 'int', lossScaling: 'float?' },
  compute({ fields, params }) {
    const w = fields.w;
    const grad = fields.g;
    const m = fields.m;
    const v = fields.v;
    const step = fields.step;
    const { lr, beta1, beta2, eps, weightDecay, decoupled } = params;
    const ls = params.lossScaling ?? 1;
    const t = step[0] + 1;
    step[0] = t;
    const stepSize = lr / (1 - Math.pow(beta1, t));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(beta2, t));
    const decay = decoupled ? 1 - lr * weightDecay : 1;
    const l2 = decoupled ? 0 : weightDecay;
    for (let i = 0; i < w.length; i++) {
      const wi = w[i] * decay;
      const g = grad[i] / ls + l2 * wi;
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      w[i] = wi - (stepSize * m[i]) / (Math.sqrt(v[i]) / bc2Sqrt + eps);
    }
  },
  cycles(vx, device) {
    const n = regionCount(vx.fields.w);
    const wType = fieldDType(vx.fields.w);
    const f = 'float32';
    // Weight decay: g += wd.w (Adam) or w *= 1 - lr.wd (AdamW): one ScaledAdd-class pass.
    let c = vx.params.weightDecay !== 0 ? scaledAdd(n, wType, device) : 0;
    // m = b1.m + (1 - b1).g; g^2; v = b2.v + (1 - b2).g^2.
    c += scaledAdd(n, f, device) + binaryMultiVertex(n, f, addLoop(f), device) + scaledAdd(n, f, device);
    // sqrt(v); + eps (the bias correction of v folded into its scale); m / denom.
    c += unaryMultiVertex(n, f, SQRT_LOOP, device) + binaryMultiVertex(n, f, addLoop(f), device) + binaryMultiVertex(n, f, DIVIDE_LOOP, device);
    // w -= lr / (1 - b1^t) . (m / denom).
    c += scaledAdd(n, wType, device);
    // The step counter and the two bias corrections: scalar passes.
    c += 2 * binaryMultiVertex(1, f, addLoop(f), device);
    return c;
  },
  estimateSource:
    'MODEL: PopLibs ScaledAdd per axpy (weight decay, m, v, update) + BinaryOp1D g^2, + eps, divide {10,no,2} + UnaryOp1D sqrt {10,no,2} (§3)',
});

export const optimizerCodelets: Codelet[] = [sgdCodelet, adamCodelet];
