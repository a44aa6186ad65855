/**
 * SGD update with PyTorch's semantics (torch.optim.SGD):
 *   g = grad + weightDecay * w
 *   v = started ? momentum * v + (1 - dampening) * g : g      (only when momentum != 0)
 *   g = nesterov ? g + momentum * v : v
 *   w -= lr * g
 * `started` is a one-element device flag so the first step matches PyTorch
 * without recompiling the program.
 */
import type { Codelet } from '../codelet.js';
import { fieldDType, regionCount } from '../codelet.js';
import { scaledAdd } from './estimators.js';

export const sgdCodelet: Codelet = {
  name: 'SGDUpdate',
  kind: 'multi',
  fields: {
    w: { direction: 'inout' },
    g: { direction: 'input' },
    v: { direction: 'inout' },
    started: { direction: 'inout' },
  },
  compute({ fields, params }) {
    const w = fields.w as Float32Array;
    const grad = fields.g as Float32Array;
    const { lr, momentum, dampening, weightDecay, nesterov } = params;
    if (momentum === 0) {
      for (let i = 0; i < w.length; i++) w[i] -= lr * (grad[i] + weightDecay * w[i]);
      return;
    }
    const v = fields.v as Float32Array;
    const started = fields.started as Float32Array;
    const first = started[0] === 0;
    for (let i = 0; i < w.length; i++) {
      let g = grad[i] + weightDecay * w[i];
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
};
