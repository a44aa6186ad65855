/**
 * BatchNormalization in training mode (14, 15 with training_mode = 1; 9 with
 * more than one output):
 * - Y, running_mean and running_var against onnxruntime-node, 2-D to 4-D,
 *   on 1 and 16 tiles, float32 and float16;
 * - gradients of X, scale and B against central finite differences: the
 *   full training-mode gradient, through the batch mean and variance;
 * - a training run (TrainingSession, as `sim run` makes): each step
 *   normalises with that batch's statistics (its loss is the host's
 *   computation with them) and writes the running statistics into the
 *   mean and var variables, step after step, as PopART's BatchNormOp
 *   modifies its inputs.
 *
 * Tolerances: float32 atol 1e-5, rtol 1e-4: the mean and variance are sums
 * of at most 48 elements in another order than onnxruntime's (a few ulp), and
 * Y divides by sqrt(var + eps), which multiplies the relative error of var by
 * 1/2 and of the centred X by up to |x - mean| / std (< 4 here). float16: Y
 * and the statistics rounded to float16 on both sides and our sums kept in
 * float16 per step: 1e-2 absolute (|Y| < 4, so a few half-ulps of 2^-9).
 * Gradients: the harness default 2e-3 with h = 1e-2.
 * The training run: 1e-5 on the running statistics (recomputed on the host
 * in double precision from the fed batches), 1e-5 relative on the loss.
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, type OpCase } from './harness.js';
import { tiny } from '../helpers.js';
import { loadConfigText } from '../../src/config/load.js';
import { compile, run, TrainingSession } from '../../src/session.js';
import { randomData } from '../helpers.js';

function bn(shape: number[], attributes: Record<string, number>, seed: number, opset = 15): OpCase {
  const C = shape[1];
  return {
    op: 'BatchNormalization',
    opset,
    attributes: { training_mode: 1, ...attributes },
    inputs: { x: f32(shape, seed, 0, -2, 2), scale: f32([C], seed + 1), bias: f32([C], seed + 2), mean: f32([C], seed + 3), var: f32([C], seed + 4, 0, 0.5, 1.5) },
    outputs: ['y', 'running_mean', 'running_var'],
    atol: 1e-5,
    rtol: 1e-4,
  };
}

describe('BatchNormalization, training mode', () => {
  it('Y and the running statistics match onnxruntime, 2-D to 4-D, opsets 14 and 15, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      await checkForward({ ...bn([4, 3], {}, 1), device });
      await checkForward({ ...bn([2, 5, 6], { momentum: 0.7, epsilon: 1e-3 }, 2, 14), device });
      await checkForward({ ...bn([3, 4, 4, 4], { momentum: 0.95 }, 3), device });
    }
  });

  it('opset 9: more than one output is training mode; saved_mean is the batch mean, saved_var its 1 / sqrt(var + eps) (onnxruntime)', async () => {
    const c = bn([3, 4, 2, 2], { momentum: 0.8 }, 7, 9);
    delete c.attributes!.training_mode;
    await checkForward({ ...c, outputs: ['y', 'running_mean', 'running_var', 'saved_mean', 'saved_var'], device: tiny({ tilesPerIpu: 4 }) });
  });

  it('float16', async () => {
    const c = bn([2, 3, 4, 2], { momentum: 0.8 }, 4);
    for (const t of Object.values(c.inputs)) t.dtype = 'float16';
    await checkForward({ ...c, outputDtype: 'float16', atol: 1e-2, rtol: 0 });
  });

  it('gradients of X, scale and B through the batch statistics (opsets 15 and 9)', async () => {
    for (const [shape, seed, opset] of [[[4, 3], 5, 15], [[2, 3, 2, 3], 6, 15], [[2, 3, 2, 2], 8, 9]] as const) {
      const c = bn([...shape], { epsilon: 1e-3 }, seed, opset);
      if (opset === 9) delete c.attributes!.training_mode;
      c.inputs.mean.constant = true;
      c.inputs.var.constant = true;
      await checkGrad({ ...c, device: tiny({ tilesPerIpu: 4 }) });
    }
  });

  it('a training run normalises with each batch and updates the running statistics in place each step', async () => {
    const [N, C, H] = [4, 3, 2];
    const momentum = 0.75;
    const config = `
name: bn-train
device: tiny
model:
  graph:
    inputs:
      x: {shape: [${N}, ${C}, ${H}, ${H}], dtype: float32}
    initializers:
      scale: {shape: [${C}], init: {value: [1, 2, 0.5]}}
      bias: {shape: [${C}], init: {value: [0, 0.5, -1]}}
      mean: {shape: [${C}], init: {value: [0.1, 0.2, 0.3]}}
      var: {shape: [${C}], init: {value: [1, 1.5, 2]}}
    nodes:
      - {op: BatchNormalization, inputs: [x, scale, bias, mean, var], outputs: [y, running_mean, running_var], attributes: {training_mode: 1, momentum: ${momentum}, epsilon: 0.00001}}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
train:
  loss: {type: l1, input: y, reduction: mean}
  optimizer: {type: sgd, lr: 0}
  steps: 3
`;
    // An inference run (no train section) normalises with the batch too, but leaves the weights alone.
    const inference = await run(await compile(loadConfigText(config.replace(/train:[^]*$/, 'anchors: {running_mean: final}\n'), '/tmp/bn-infer.yaml')), { workers: 1, numerics: true, steps: 2 });
    expect(Array.from(inference.weights.get('mean')!)).toEqual(Array.from(Float32Array.of(0.1, 0.2, 0.3)));
    expect(inference.anchors.get('running_mean')!.data.length).toBe(C);
    const session = await TrainingSession.create(await compile(loadConfigText(config, '/tmp/bn-train.yaml')), { workers: 1, numerics: true });
    try {
      const rm = [0.1, 0.2, 0.3];
      const rv = [1, 1.5, 2];
      const [scale, bias] = [[1, 2, 0.5], [0, 0.5, -1]];
      const S = H * H;
      for (let step = 0; step < 3; step++) {
        const x = randomData(N * C * S, 100 + step, -1 + step, 1 + 2 * step);
        const r = await session.runStep({ x });
        let l1 = 0;
        for (let c = 0; c < C; c++) {
          const vals: number[] = [];
          for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) vals.push(x[(n * C + c) * S + s]);
          const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
          const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length;
          for (const v of vals) l1 += Math.abs(((v - mean) / Math.sqrt(variance + 1e-5)) * scale[c] + bias[c]);
          rm[c] = rm[c] * momentum + mean * (1 - momentum);
          rv[c] = rv[c] * momentum + variance * (1 - momentum);
        }
        expect(Math.abs(r.loss! / (l1 / (N * C * S)) - 1), `step ${step} loss`).toBeLessThan(1e-5);
        const w = session.readWeights();
        for (let c = 0; c < C; c++) {
          expect(Math.abs(w.get('mean')![c] - rm[c]), `step ${step} running mean ${c}`).toBeLessThan(1e-5);
          expect(Math.abs(w.get('var')![c] - rv[c]), `step ${step} running var ${c}`).toBeLessThan(1e-5);
        }
      }
    } finally {
      await session.close();
    }
  });
});
