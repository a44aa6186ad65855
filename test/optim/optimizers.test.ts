/**
 * SGD, Adam and AdamW against an independent host reference written from
 * PyTorch's documented update rules (torch.optim.SGD, torch.optim.Adam,
 * torch.optim.AdamW "Algorithm" sections), on a small model trained step by
 * step: y = x w + b, loss = MSE(y, t) (mean), 6 steps, the weights compared
 * after every step.
 *
 * The reference computes the model's gradient and the updates in double
 * precision; the device computes in float32 (matmul, MSE grad, bias-grad
 * reduction: each a few roundings of 6e-8 relative) and stores weights and
 * optimizer state in float32 after every step. Over 6 steps the differences
 * stay a few float32 ulps of the weights, times the optimizer's sensitivity
 * to gradient errors (Adam normalises the update: an error e in g moves the
 * step by about lr e / |g|). Measured worst difference: 4.4e-8 (SGD) and
 * 4.2e-8 (Adam, AdamW), about one float32 ulp of weights of size 0.1 to 1.
 * Tolerance per element: |dev - ref| <= 2e-7 + 1e-6 |ref| (a few ulp), far
 * below the weights' movement (0.04 to 0.5 over the steps, checked), so a
 * wrong rule (a missing bias correction, dampening on the first step, weight
 * decay in the wrong place) fails by orders of magnitude.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compile, run, TrainingSession } from '../../src/session.js';
import { UserError } from '../../src/errors.js';

const X = [
  [0.5, -1.0, 0.25],
  [1.5, 0.75, -0.5],
  [-0.25, 0.5, 1.0],
  [1.0, -0.75, 0.5],
];
const T = [
  [1.0, -0.5],
  [0.25, 0.75],
  [-1.0, 0.5],
  [0.5, 1.5],
];
const W0 = [
  [0.2, -0.1],
  [0.05, 0.3],
  [-0.4, 0.15],
];
const B0 = [0.1, -0.2];

function config(optimizer: string, batchesPerStep = 1, lossScaling = 1): string {
  return `name: optim
device: tiny
model:
  graph:
    inputs:
      x: {shape: [4, 3]}
      t: {shape: [4, 2]}
    initializers:
      w: {shape: [3, 2], init: {value: ${JSON.stringify(W0)}}}
      b: {shape: [2], init: {value: ${JSON.stringify(B0)}}}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [xw]}
      - {op: Add, inputs: [xw, b], outputs: [y]}
    outputs: [y]
inputs:
  x: {value: ${JSON.stringify(X)}}
  t: {value: ${JSON.stringify(T)}}
train:
  loss: {type: mse, input: y, target: t}
  optimizer: ${optimizer}
  batchesPerStep: ${batchesPerStep}
  lossScaling: ${lossScaling}
anchors: {Gradient___w: final}
`;
}

/** d loss / d w and d loss / d b of loss = mean((x w + b - t)^2), in double precision. */
function hostGrads(w: number[], b: number[]): { gw: number[]; gb: number[] } {
  const gw = new Array<number>(6).fill(0);
  const gb = [0, 0];
  const n = 8;
  for (let r = 0; r < 4; r++) {
    for (let j = 0; j < 2; j++) {
      let y = b[j];
      for (let k = 0; k < 3; k++) y += X[r][k] * w[k * 2 + j];
      const dy = (2 * (y - T[r][j])) / n;
      gb[j] += dy;
      for (let k = 0; k < 3; k++) gw[k * 2 + j] += X[r][k] * dy;
    }
  }
  return { gw, gb };
}

interface HostOptimizer {
  /** One update of parameter `p` (in place) with gradient `g`. */
  step(name: string, p: number[], g: number[]): void;
}

/** torch.optim.SGD, as documented. */
function hostSgd(o: { lr: number; momentum?: number; dampening?: number; weightDecay?: number; nesterov?: boolean }): HostOptimizer {
  const { lr, momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = o;
  const buf = new Map<string, number[]>();
  return {
    step(name, p, grad) {
      const g = grad.map((gi, i) => gi + weightDecay * p[i]);
      let d = g;
      if (momentum !== 0) {
        const prev = buf.get(name);
        const b = prev ? prev.map((bi, i) => momentum * bi + (1 - dampening) * g[i]) : [...g];
        buf.set(name, b);
        d = nesterov ? g.map((gi, i) => gi + momentum * b[i]) : b;
      }
      for (let i = 0; i < p.length; i++) p[i] -= lr * d[i];
    },
  };
}

/** torch.optim.Adam (decoupled = false) and torch.optim.AdamW (decoupled = true), as documented. */
function hostAdam(o: { lr: number; beta1?: number; beta2?: number; eps?: number; weightDecay?: number; decoupled?: boolean }): HostOptimizer {
  const { lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weightDecay = 0, decoupled = false } = o;
  const state = new Map<string, { m: number[]; v: number[]; t: number }>();
  return {
    step(name, p, grad) {
      const s = state.get(name) ?? { m: p.map(() => 0), v: p.map(() => 0), t: 0 };
      state.set(name, s);
      s.t += 1;
      for (let i = 0; i < p.length; i++) {
        let g = grad[i];
        if (decoupled) p[i] -= lr * weightDecay * p[i];
        else g += weightDecay * p[i];
        s.m[i] = beta1 * s.m[i] + (1 - beta1) * g;
        s.v[i] = beta2 * s.v[i] + (1 - beta2) * g * g;
        const mHat = s.m[i] / (1 - beta1 ** s.t);
        const vHat = s.v[i] / (1 - beta2 ** s.t);
        p[i] -= (lr * mHat) / (Math.sqrt(vHat) + eps);
      }
    },
  };
}

const ATOL = 2e-7;
const RTOL = 1e-6;

async function compare(optimizerYaml: string, host: HostOptimizer, steps = 6, batchesPerStep = 1, lossScaling = 1): Promise<number> {
  const compiled = await compile(loadConfigText(config(optimizerYaml, batchesPerStep, lossScaling), 'optim.yaml'));
  const session = await TrainingSession.create(compiled, { workers: 1, numerics: true });
  const w = W0.flat();
  const b = [...B0];
  let worst = 0;
  let moved = 0;
  try {
    for (let s = 0; s < steps; s++) {
      const r = await session.runStep();
      // The anchored gradient of the last batch is the reference's gradient at the weights before that batch.
      for (let k = 0; k < batchesPerStep; k++) {
        const { gw, gb } = hostGrads(w, b);
        if (k === batchesPerStep - 1) {
          // Anchored gradients are the scaled ones.
          const dev = r.anchors.get('Gradient___w')!.data as Float32Array;
          gw.forEach((g, i) => expect(Math.abs(dev[i] / lossScaling - g)).toBeLessThanOrEqual(ATOL + RTOL * Math.abs(g)));
        }
        host.step('w', w, gw);
        host.step('b', b, gb);
      }
      const dw = session.readWeights();
      for (const [name, ref] of [['w', w], ['b', b]] as const) {
        const got = dw.get(name)!;
        ref.forEach((want, i) => {
          const err = Math.abs(got[i] - want);
          worst = Math.max(worst, err);
          if (!(err <= ATOL + RTOL * Math.abs(want))) expect.fail(`step ${s}: ${name}[${i}] = ${got[i]}, reference ${want} (|diff| ${err})`);
        });
      }
    }
    moved = Math.max(...w.map((v, i) => Math.abs(v - W0.flat()[i])));
  } finally {
    await session.close();
  }
  // The comparison means something: the weights moved far more than the tolerance.
  expect(moved).toBeGreaterThan(1e-3);
  if (process.env.SHOW_WORST) console.log(`${optimizerYaml}: worst |diff| ${worst}, largest move ${moved}`);
  return worst;
}

describe('SGD against torch.optim.SGD', () => {
  it('plain', async () => {
    await compare('{type: sgd, lr: 0.1}', hostSgd({ lr: 0.1 }));
  });
  it('momentum with dampening and weight decay (the first step takes the gradient undamped)', async () => {
    await compare('{type: sgd, lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 0.01}', hostSgd({ lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 }));
  });
  it('Nesterov with weight decay', async () => {
    await compare('{type: sgd, lr: 0.05, momentum: 0.8, weightDecay: 0.05, nesterov: true}', hostSgd({ lr: 0.05, momentum: 0.8, weightDecay: 0.05, nesterov: true }));
  });
});

describe('Adam and AdamW against torch.optim.Adam / AdamW', () => {
  it('Adam (bias-corrected from the first step)', async () => {
    await compare('{type: adam, lr: 0.01}', hostAdam({ lr: 0.01 }));
  });
  it('Adam with weight decay as L2 on the gradient, other betas and eps', async () => {
    await compare('{type: adam, lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1}', hostAdam({ lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1 }));
  });
  it('AdamW (decoupled weight decay; default weightDecay 0.01 as torch)', async () => {
    await compare('{type: adamw, lr: 0.02, weightDecay: 0.5}', hostAdam({ lr: 0.02, weightDecay: 0.5, decoupled: true }));
    await compare('{type: adamw, lr: 0.02}', hostAdam({ lr: 0.02, weightDecay: 0.01, decoupled: true }), 2);
  });
  it('the step counter lives on the device: 3 steps of 2 batches are 6 bias-corrected updates', async () => {
    await compare('{type: adam, lr: 0.01}', hostAdam({ lr: 0.01 }), 3, 2);
  });
});

describe('loss scaling in float32', () => {
  it('leaves SGD with momentum and weight decay, and Adam, on the unscaled reference', async () => {
    // A power of two: scaling and unscaling are exact, so the reference is the unscaled one.
    await compare('{type: sgd, lr: 0.05, momentum: 0.9, weightDecay: 0.01}', hostSgd({ lr: 0.05, momentum: 0.9, weightDecay: 0.01 }), 3, 1, 1024);
    await compare('{type: adam, lr: 0.01, weightDecay: 0.1}', hostAdam({ lr: 0.01, weightDecay: 0.1 }), 3, 1, 1024);
  });
});

describe('optimizer config', () => {
  it('refuses Nesterov without momentum, and betas outside [0, 1)', () => {
    const msg = (opt: string) => {
      try {
        loadConfigText(config(opt), 'bad.yaml');
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(msg('{type: sgd, lr: 0.1, nesterov: true}')).toMatch(/bad\.yaml:\d+:\d+: train\.optimizer\.nesterov: Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(msg('{type: adam, lr: 0.1, beta2: 1}')).toMatch(/train\.optimizer\.beta2: .*expected a number in \[0, 1\)/);
    expect(msg('{type: adamw, lr: 0.1, momentum: 0.9}')).toMatch(/train\.optimizer\.momentum: unknown key 'momentum'/);
  });

  it('update ops are named after the optimizer and costed: Adam costs more than SGD per step', async () => {
    const cycles = async (opt: string) => {
      const r = await run(await compile(loadConfigText(config(opt), 'c.yaml')), { workers: 1, numerics: false, steps: 1 });
      return r.phases.filter((p) => p.op.startsWith('SGDUpdate(') || p.op.startsWith('AdamUpdate(') || p.op.startsWith('AdamWUpdate(')).reduce((s, p) => s + p.cycles, 0);
    };
    const sgd = await cycles('{type: sgd, lr: 0.1}');
    const adam = await cycles('{type: adam, lr: 0.1}');
    const adamw = await cycles('{type: adamw, lr: 0.1}');
    expect(sgd).toBeGreaterThan(0);
    expect(adam).toBeGreaterThan(3 * sgd);
    expect(adamw).toBeGreaterThan(adam * 0.99);
  });
});
