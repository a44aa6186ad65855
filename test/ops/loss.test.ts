/**
 * Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss forward
 * against onnxruntime-node; L1, MSE and PopART's Nll (no onnxruntime
 * equivalent) forward against host formulas in double precision; every
 * grad op against central finite differences; train.loss of every type; the
 * error paths.
 *
 * Forward tolerances (|ours - ref| <= atol + rtol |ref|): we compute in double
 * and round once to fp32. onnxruntime's fp32 kernels accumulate in fp32 and
 * (softmax cross entropy) evaluate exp/log in fp32: a few ulp of the result,
 * i.e. well inside rtol 1e-5, atol 1e-6 for losses of size ~1 summed over
 * <= 180 samples (fp32 summation error <= 180 x 6e-8 relative, ~1e-5 worst
 * case, ~1e-6 typical). Against host double formulas: rtol 1e-6 (a handful of
 * fp32 roundings).
 *
 * Grad tolerance: checkGrad's default 2e-3 absolute (reasoning in
 * test/autodiff/gradcheck.test.ts: fp32 rounding of the projected loss over
 * 2h). The truncation error of central differences, h^2/6 |f'''| |R| with
 * |R| <= 1, stays small: NLL and MSE are linear or quadratic in the input
 * (no truncation error), log-softmax has |f'''| <= 1 (h = 1e-2: < 2e-5), and
 * Nll's -log p has f''' = -2/p^3 <= 74 for p in [0.3, 1], so it uses
 * h = 2e-3 (< 5e-5). Inputs stay off L1's kink (|x| >= 0.05).
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import { compile, run } from '../../src/session.js';
import { randomData } from '../helpers.js';
import { checkForward, checkGrad, f32, i32, runOurs, type TensorSpec } from './harness.js';

const FWD = { atol: 1e-6, rtol: 1e-5 };
const HOST = { atol: 1e-7, rtol: 1e-6 };

/** A constant float input (class weights): not differentiated. */
function constF32(shape: number[], seed: number, low: number, high: number): TensorSpec {
  return { ...f32(shape, seed, 0, low, high), constant: true };
}

/** Deterministic labels in [lo, hi], with some set to `special` (an ignore index). */
function labels(shape: number[], C: number, seed: number, special?: number, every = 4): TensorSpec {
  const n = shape.reduce((a, b) => a * b, 1);
  const r = randomData(n, seed, 0, 1);
  const values = Array.from(r, (v, i) => (special !== undefined && i % every === 1 ? special : Math.min(C - 1, Math.floor(v * C))));
  return i32(shape, values, true);
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: { atol: number; rtol: number }, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i] - want[i]);
    if (!(err <= tol.atol + tol.rtol * Math.abs(want[i]))) expect.fail(`${what}[${i}]: ours ${got[i]}, reference ${want[i]}`);
  }
}

describe('NegativeLogLikelihoodLoss (ONNX) against onnxruntime', () => {
  const C = 5;
  it('[N, C] with reduction none, sum, mean', async () => {
    for (const reduction of ['none', 'sum', 'mean']) {
      await checkForward({ op: 'NegativeLogLikelihoodLoss', opset: 13, attributes: { reduction }, inputs: { x: f32([6, C], 1, 0, -3, 0), t: labels([6], C, 2) }, ...FWD });
    }
  });

  it('[N, C, d1] and [N, C, d1, d2] with class weights, ignore_index (in range, negative, above C), every reduction', async () => {
    const cases: [number[], string, number | undefined][] = [
      [[3, C, 2], 'mean', 1],
      [[3, C, 6], 'mean', -5],
      [[2, C, 3, 4], 'sum', 10],
      [[2, C, 3, 4], 'none', 2],
      [[3, C, 4], 'mean', undefined],
    ];
    for (const [shape, reduction, ii] of cases) {
      const lshape = [shape[0], ...shape.slice(2)];
      await checkForward({
        op: 'NegativeLogLikelihoodLoss',
        opset: 22,
        attributes: { reduction, ...(ii !== undefined ? { ignore_index: ii } : {}) },
        inputs: { x: f32(shape, 3, 0, -3, 0), t: labels(lshape, C, 4, ii), w: constF32([C], 5, 0.2, 2) },
        ...FWD,
      });
    }
  });

  it('without weights, ignored samples leave the mean over the others', async () => {
    await checkForward({ op: 'NegativeLogLikelihoodLoss', attributes: { ignore_index: 0 }, inputs: { x: f32([4, 3, 5], 6, 0, -3, 0), t: labels([4, 5], 3, 7, 0, 3) }, ...FWD });
  });

  it('float16 input agrees within float16 rounding', async () => {
    // Inputs are float16 on both sides; the result is rounded once to float16 (half an ulp, 4.9e-4 relative).
    const x = { ...f32([4, C], 8, 0, -3, 0), dtype: 'float16' as const };
    await checkForward({ op: 'NegativeLogLikelihoodLoss', attributes: { reduction: 'sum' }, inputs: { x, t: labels([4], C, 9) }, outputDtype: 'float16', atol: 1e-3, rtol: 1e-3 });
  });

  it('grad for the input matches finite differences (mean with weights and ignore_index, none, sum)', async () => {
    await checkGrad({ op: 'NegativeLogLikelihoodLoss', attributes: { ignore_index: 2 }, inputs: { x: f32([3, C, 2], 10, 0, -3, 0), t: labels([3, 2], C, 11, 2), w: constF32([C], 12, 0.2, 2) } });
    await checkGrad({ op: 'NegativeLogLikelihoodLoss', attributes: { reduction: 'none' }, inputs: { x: f32([4, 3], 13, 0, -3, 0), t: labels([4], 3, 14) } });
    await checkGrad({ op: 'NegativeLogLikelihoodLoss', attributes: { reduction: 'sum' }, inputs: { x: f32([2, 3, 2, 2], 15, 0, -3, 0), t: labels([2, 2, 2], 3, 16) } });
  });
});

describe('SoftmaxCrossEntropyLoss (ONNX) against onnxruntime', () => {
  const C = 5;
  it('[N, C] with every reduction, and the log_prob output', async () => {
    for (const reduction of ['none', 'sum', 'mean']) {
      await checkForward({ op: 'SoftmaxCrossEntropyLoss', opset: 13, attributes: { reduction }, inputs: { x: f32([6, C], 20, 0, -4, 4), t: labels([6], C, 21) }, outputs: ['z', 'log_prob'], ...FWD });
    }
  });

  it('[N, C, d...] with weights and ignore_index (negative, above C), log_prob', async () => {
    const cases: [number[], string, number | undefined][] = [
      [[3, C, 6], 'mean', -5],
      [[3, C, 2, 2], 'sum', 10],
      [[2, C, 3, 2], 'none', 1],
      [[3, C, 2], 'mean', undefined],
    ];
    for (const [shape, reduction, ii] of cases) {
      await checkForward({
        op: 'SoftmaxCrossEntropyLoss',
        attributes: { reduction, ...(ii !== undefined ? { ignore_index: ii } : {}) },
        inputs: { x: f32(shape, 22, 0, -4, 4), t: labels([shape[0], ...shape.slice(2)], C, 23, ii), w: constF32([C], 24, 0.2, 2) },
        outputs: ['z', 'log_prob'],
        ...FWD,
      });
    }
  });

  it('large scores stay finite (log-softmax is computed stably)', async () => {
    await checkForward({ op: 'SoftmaxCrossEntropyLoss', inputs: { x: f32([4, 3], 25, 0, 80, 120), t: labels([4], 3, 26) }, ...FWD });
  });

  it('grad for the scores matches finite differences', async () => {
    await checkGrad({ op: 'SoftmaxCrossEntropyLoss', inputs: { x: f32([4, C], 27, 0, -2, 2), t: labels([4], C, 28) } });
    await checkGrad({ op: 'SoftmaxCrossEntropyLoss', attributes: { ignore_index: 1 }, inputs: { x: f32([2, 3, 3], 29, 0, -2, 2), t: labels([2, 3], 3, 30, 1, 3), w: constF32([3], 31, 0.5, 2) } });
    await checkGrad({ op: 'SoftmaxCrossEntropyLoss', attributes: { reduction: 'none' }, inputs: { x: f32([3, 4], 32, 0, -2, 2), t: labels([3], 4, 33) }, outputs: ['z', 'log_prob'] });
  });
});

/** Host reference of PopART's nllloss: classes on the last axis. */
function hostNll(p: Float32Array, t: Int32Array, C: number, o: { log?: boolean; ignore?: number; reduction: string }): number[] {
  const losses: number[] = [];
  let count = 0;
  for (let s = 0; s < t.length; s++) {
    if (o.ignore !== undefined && t[s] === o.ignore) {
      losses.push(0);
      continue;
    }
    count++;
    const v = p[s * C + t[s]];
    losses.push(o.log ? -v : -Math.log(Math.max(v, 1e-7)));
  }
  const sum = losses.reduce((a, b) => a + b, 0);
  return o.reduction === 'none' ? losses : [o.reduction === 'sum' ? sum : sum / count];
}

describe("Nll (ai.graphcore, PopART's nllloss)", () => {
  const C = 4;
  const probs = (shape: number[], seed: number) => f32(shape, seed, 0, 0.3, 1);

  it('probabilities with the classes last, ignoreIndex, every reduction, against the host formula', async () => {
    for (const reduction of ['Mean', 'Sum', 'None']) {
      const x = probs([2, 3, C], 40);
      const t = labels([2, 3], C, 41, 3, 3);
      const got = (await runOurs({ op: 'Nll', domain: 'ai.graphcore', attributes: { reduction, ignoreIndex: 3 }, inputs: { x, t } })).get('y')!;
      const want = hostNll(x.data as Float32Array, t.data as Int32Array, C, { ignore: 3, reduction: reduction.toLowerCase() });
      expectClose(got, want, HOST, `Nll ${reduction}`);
    }
  });

  it('log-probabilities (inputIsLogProbability), and the eps clamp of zero probabilities', async () => {
    const x = f32([5, C], 42, 0, -3, 0);
    const t = labels([5], C, 43);
    const got = (await runOurs({ op: 'Nll', domain: 'ai.graphcore', attributes: { reduction: 'mean', inputIsLogProbability: 1 }, inputs: { x, t } })).get('y')!;
    expectClose(got, hostNll(x.data as Float32Array, t.data as Int32Array, C, { log: true, reduction: 'mean' }), HOST, 'Nll log');
    // p = 0 at the label: -log(max(0, 1e-7)) = 16.118..., as PopART.
    const zero = { shape: [1, 2], data: Float32Array.of(0, 1) };
    const y = (await runOurs({ op: 'Nll', domain: 'ai.graphcore', attributes: { reduction: 'sum' }, inputs: { x: zero, t: i32([1], [0], true) } })).get('y')!;
    expect(y[0]).toBeCloseTo(-Math.log(1e-7), 5);
  });

  it('grad matches finite differences (probabilities and log-probabilities)', async () => {
    // d/dp (-log p) = -1/p: with p in [0.3, 1] and h = 2e-3 the truncation error h^2/6 x 2/p^3 is below 5e-5.
    await checkGrad({ op: 'Nll', domain: 'ai.graphcore', attributes: { reduction: 'mean', ignoreIndex: 0 }, inputs: { x: probs([2, 3, C], 44), t: labels([2, 3], C, 45, 0, 4) }, h: 2e-3 });
    await checkGrad({ op: 'Nll', domain: 'ai.graphcore', attributes: { reduction: 'none', inputIsLogProbability: 1 }, inputs: { x: f32([3, C], 46, 0, -2, 0), t: labels([3], C, 47) } });
  });
});

describe('L1 and MSE', () => {
  it('L1 none gives scale |x| elementwise; mean and sum as PopART', async () => {
    const x = f32([3, 7], 50, 0, -2, 2);
    const xs = x.data as Float32Array;
    const none = (await runOurs({ op: 'L1', domain: 'ai.graphcore', attributes: { lambda: 0.5, reduction: 'none' }, inputs: { x } })).get('y')!;
    expectClose(none, Array.from(xs, (v) => 0.5 * Math.abs(v)), HOST, 'L1 none');
    const sum = xs.reduce((a, v) => a + Math.abs(v), 0);
    const mean = (await runOurs({ op: 'L1', domain: 'ai.graphcore', attributes: { lambda: 0.5 }, inputs: { x } })).get('y')!;
    expectClose(mean, [(0.5 * sum) / 21], HOST, 'L1 mean');
  });

  it('L1 grads (none, sum) match finite differences', async () => {
    await checkGrad({ op: 'L1', domain: 'ai.graphcore', attributes: { lambda: 0.7, reduction: 'none' }, inputs: { x: f32([4, 5], 51, 0.05) } });
    await checkGrad({ op: 'L1', domain: 'ai.graphcore', attributes: { lambda: 0.7, reduction: 'sum' }, inputs: { x: f32([4, 5], 52, 0.05) } });
  });

  it('MSE forward: mean, sum, none against the host formula', async () => {
    const a = f32([6, 9], 53, 0, -2, 2);
    const b = f32([6, 9], 54, 0, -2, 2);
    const d2 = Array.from(a.data as Float32Array, (v, i) => (v - (b.data as Float32Array)[i]) ** 2);
    const sum = d2.reduce((s, v) => s + v, 0);
    for (const [reduction, want] of [['mean', [(1.5 * sum) / 54]], ['sum', [1.5 * sum]], ['none', d2.map((v) => 1.5 * v)]] as const) {
      const got = (await runOurs({ op: 'MSE', domain: 'ai.graphcore', attributes: { lambda: 1.5, reduction }, inputs: { a, b } })).get('y')!;
      expectClose(got, want, HOST, `MSE ${reduction}`);
    }
  });

  it('MSE grads for both inputs match finite differences', async () => {
    await checkGrad({ op: 'MSE', domain: 'ai.graphcore', inputs: { a: f32([3, 4], 55), b: f32([3, 4], 56) } });
    await checkGrad({ op: 'MSE', domain: 'ai.graphcore', attributes: { reduction: 'none', lambda: 2 }, inputs: { a: f32([5], 57), b: f32([5], 58) } });
  });
});

describe('loss errors', () => {
  it('labels of the wrong shape or type, weights of the wrong size, a bad reduction', async () => {
    const x = f32([3, 4], 60);
    await expect(runOurs({ op: 'NegativeLogLikelihoodLoss', inputs: { x, t: i32([4], [0, 1, 2, 3], true) } })).rejects.toThrow(
      /labels must have shape \[3\] \(input float32\[3, 4\] without its class axis 1\), got int32\[4\]/,
    );
    await expect(runOurs({ op: 'SoftmaxCrossEntropyLoss', inputs: { x, t: f32([3], 61) } })).rejects.toThrow(/labels must be int32 class indices, got float32\[3\]/);
    await expect(runOurs({ op: 'SoftmaxCrossEntropyLoss', inputs: { x, t: i32([3], [0, 1, 2], true), w: constF32([3], 62, 0, 1) } })).rejects.toThrow(
      /weights must be a float tensor of shape \[4\] \(one per class\), got float32\[3\]/,
    );
    await expect(runOurs({ op: 'MSE', domain: 'ai.graphcore', attributes: { reduction: 'avg' }, inputs: { a: x, b: x } })).rejects.toThrow(/reduction must be 'mean', 'sum' or 'none', got 'avg'/);
    await expect(runOurs({ op: 'MSE', domain: 'ai.graphcore', inputs: { a: x, b: f32([4, 3], 63) } })).rejects.toThrow(/same shape and type, got float32\[3, 4\] and float32\[4, 3\]/);
  });

  it('a label out of range fails the run, naming it', async () => {
    await expect(runOurs({ op: 'SoftmaxCrossEntropyLoss', inputs: { x: f32([3, 4], 64), t: i32([3], [0, 7, 1], true) } })).rejects.toThrow(
      /label 7 of sample 1 is out of range: classes are 0 to 3/,
    );
  });

  it('log_prob on the path to the loss is refused (no gradient flows through it)', async () => {
    const yaml = `model:
  graph:
    inputs: {t: {shape: [2], dtype: int32}}
    initializers: {x: {shape: [2, 3], init: {constant: 0.5}}}
    nodes:
      - {op: SoftmaxCrossEntropyLoss, inputs: [x, t], outputs: [z, lp]}
      - {op: L1, domain: ai.graphcore, inputs: [lp], outputs: [l1]}
      - {op: Add, inputs: [z, l1], outputs: [total]}
    outputs: [total]
inputs: {t: {value: [0, 2]}}
train: {loss: total, optimizer: {type: sgd, lr: 0.1}}
`;
    await expect(compile(loadConfigText(yaml, 'lp.yaml'))).rejects.toThrow(/log_prob output 'lp' is on the path to the loss, but gradients flow back through the loss output only/);
  });
});

describe('train.loss', () => {
  const graph = (lossYaml: string, extraInputs = '') => `model:
  graph:
    inputs:
      x: {shape: [6, 3]}
      label: {shape: [6], dtype: int32}
      target: {shape: [6, 4]}${extraInputs}
    initializers:
      w: {shape: [3, 4], init: {normal: {std: 0.5, seed: 1}}}
      cw: {shape: [4], init: {value: [1, 2, 0.5, 1]}, trainable: false}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 2}}
  label: {value: [0, 1, 2, 3, 1, 0]}
  target: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}
train:
  loss: ${lossYaml}
  optimizer: {type: sgd, lr: 0.1}
  steps: 3
`;

  it('every type builds its op, and the first step reports the loss of the initial weights', async () => {
    const cases: [string, string][] = [
      ['{type: l1, input: y, scale: 0.5, reduction: sum}', 'L1'],
      ['{type: mse, input: y, target: target}', 'MSE'],
      ['{type: softmaxCrossEntropy, input: y, labels: label, weights: cw, ignoreIndex: 3}', 'SoftmaxCrossEntropyLoss'],
      ['{type: nll, input: y, labels: label, inputIsLogProbability: true, reduction: sum, scale: 2}', 'Nll'],
    ];
    for (const [loss, type] of cases) {
      const compiled = await compile(loadConfigText(graph(loss), 'train-loss.yaml'));
      const op = compiled.graph.ops.find((o) => o.outputs.includes(compiled.loss!))!;
      expect(op.opid.type).toBe(type);
      const r = await run(compiled, { workers: 1, numerics: true, steps: 3 });
      const y = r.steps.map((s) => s.loss!);
      expect(y.every(Number.isFinite)).toBe(true);
      expect(y[2]).toBeLessThan(y[0]);
    }
  });

  it('reports wrong keys and unknown tensor names at their line, with a suggestion', () => {
    const err = (loss: string): string => {
      try {
        loadConfigText(graph(loss), 'bad-loss.yaml');
      } catch (e) {
        expect(e).toBeInstanceOf(UserError);
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(err('{type: nll, input: y, labels: lable}')).toMatch(/bad-loss\.yaml:18:\d+: train\.loss\.labels: loss labels 'lable' is not a tensor of the graph; did you mean 'label'\?/);
    expect(err('{type: softmaxCrossEntropy, input: y}')).toMatch(/bad-loss\.yaml:18:\d+: train\.loss: a softmaxCrossEntropy loss needs labels/);
    expect(err('{type: mse, input: y, labels: target}')).toMatch(/train\.loss\.labels: a mse loss takes no 'labels'; did you mean 'target'\? \(it takes: input, scale, reduction, target\)/);
    expect(err('{type: l1, input: y, ignoreIndex: 2}')).toMatch(/train\.loss\.ignoreIndex: a l1 loss takes no 'ignoreIndex'/);
    expect(err('{type: mse, input: y, target: targt}')).toMatch(/train\.loss\.target: loss target 'targt' is not a tensor of the graph; did you mean 'target'\?/);
  });

  it('checks the labels against the input when the graph is built', async () => {
    await expect(compile(loadConfigText(graph('{type: softmaxCrossEntropy, input: y, labels: target}'), 'l.yaml'))).rejects.toThrow(
      /op 'SoftmaxCrossEntropyLoss' \(ai\.onnx::SoftmaxCrossEntropyLoss:13\): labels must be int32 class indices, got float32\[6, 4\]/,
    );
  });
});

describe('loss cycles', () => {
  it('are costed per vertex and grow with the input', async () => {
    const cycles = async (n: number) => {
      const yaml = `device: tiny
model:
  graph:
    inputs: {x: {shape: [${n}, 10]}, t: {shape: [${n}], dtype: int32}}
    nodes: [{op: SoftmaxCrossEntropyLoss, inputs: [x, t], outputs: [z]}]
    outputs: [z]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1}}, t: {random: {distribution: integers, low: 0, high: 9}}}
`;
      const r = await run(await compile(loadConfigText(yaml, 'c.yaml')), { workers: 1, numerics: false, steps: 1 });
      return r.phases.filter((p) => p.kind === 'compute').reduce((s, p) => s + p.cycles, 0);
    };
    const small = await cycles(8);
    const large = await cycles(512);
    expect(small).toBeGreaterThan(0);
    expect(large).toBeGreaterThan(small);
  });
});


