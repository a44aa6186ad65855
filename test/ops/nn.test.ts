/**
 * Softmax, LogSoftmax, LayerNormalization, BatchNormalization (inference)
 * and GlobalAveragePool: forward against onnxruntime-node, grad ops against
 * central finite differences.
 *
 * Tolerances (|ours - ref| <= atol + rtol |ref|):
 * - forward fp32: both sides compute in fp32 but sum in different orders and
 *   onnxruntime uses vectorised exp/log approximations (a few ulp), so
 *   rtol 1e-5 (~80 ulp) with atol 1e-6 for outputs in [0, 1] (softmax, means)
 *   and 1e-5 where outputs reach ~10 (log-softmax, normalised values) — far
 *   below any formula mistake, which shows at 1e-2 or more.
 * - forward fp16: one float16 rounding of the result on each side (half an
 *   ulp, 2^-11 relative) on top of fp32 arithmetic: atol = rtol = 2e-3.
 * - gradients: the harness default 2e-3 absolute (finite differences with
 *   h = 1e-2: truncation O(h^2 f''') ~ 1e-4 plus the fp32 loss rounding
 *   divided by 2h; reasoning in test/autodiff/gradcheck.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, runOurs, type TensorSpec } from './harness.js';
import { checkForwardAllTiles, lowered } from './nn-util.js';
import { vertexList } from '../../sim/vertex-table.js';

const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });
const constant = (t: TensorSpec): TensorSpec => ({ ...t, constant: true });
const data = (shape: number[], values: number[]): TensorSpec => ({ shape, data: Float32Array.from(values) });

describe('Softmax and LogSoftmax', () => {
  it('opset 13: per-axis, every axis of a 3-D input, agrees with onnxruntime', async () => {
    for (const axis of [0, 1, 2, -1, -2]) {
      await checkForward({ op: 'Softmax', attributes: { axis }, inputs: { x: f32([3, 5, 4], 1, 0, -3, 3) }, atol: 1e-6, rtol: 1e-5 });
      await checkForward({ op: 'LogSoftmax', attributes: { axis }, inputs: { x: f32([3, 5, 4], 2, 0, -3, 3) }, atol: 1e-5, rtol: 1e-5 });
    }
  });

  it('opset 11: flattens to 2-D at the axis (a different result from opset 13)', async () => {
    for (const axis of [0, 1, 2]) {
      await checkForward({ op: 'Softmax', opset: 11, attributes: { axis }, inputs: { x: f32([3, 5, 4], 3, 0, -3, 3) }, atol: 1e-6, rtol: 1e-5 });
      await checkForward({ op: 'LogSoftmax', opset: 11, attributes: { axis }, inputs: { x: f32([3, 5, 4], 4, 0, -3, 3) }, atol: 1e-5, rtol: 1e-5 });
    }
    // Default axis: 1 before opset 13, -1 from 13.
    await checkForward({ op: 'Softmax', opset: 12, inputs: { x: f32([2, 3, 4], 5) } });
    await checkForward({ op: 'Softmax', opset: 13, inputs: { x: f32([2, 3, 4], 5) } });
  });

  it('spans all 4 tiles (groups cut across tiles, windows brought over)', async () => {
    await checkForwardAllTiles({ op: 'Softmax', attributes: { axis: 0 }, inputs: { x: f32([12, 70], 6, 0, -3, 3) }, atol: 1e-6, rtol: 1e-5 });
    await checkForwardAllTiles({ op: 'LogSoftmax', attributes: { axis: -1 }, inputs: { x: f32([7, 130], 7, 0, -3, 3) }, atol: 1e-5, rtol: 1e-5 });
  });

  it('is numerically stable (subtracts the max): large inputs give finite results', async () => {
    const x = data([2, 4], [0, 1, 2, 3, 10000, 10001, 10002, 10003]);
    await checkForward({ op: 'Softmax', inputs: { x }, atol: 1e-6, rtol: 1e-5 });
    await checkForward({ op: 'LogSoftmax', inputs: { x }, atol: 1e-5, rtol: 1e-5 });
  });

  it('float16 agrees within float16 rounding', async () => {
    await checkForward({ op: 'Softmax', inputs: { x: half(f32([4, 9], 8, 0, -3, 3)) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
    await checkForward({ op: 'LogSoftmax', inputs: { x: half(f32([4, 9], 8, 0, -3, 3)) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('grads agree with finite differences (both axis semantics)', async () => {
    await checkGrad({ op: 'Softmax', attributes: { axis: 1 }, inputs: { x: f32([2, 3, 2], 9) } });
    await checkGrad({ op: 'LogSoftmax', attributes: { axis: 0 }, inputs: { x: f32([3, 4], 10) } });
    await checkGrad({ op: 'Softmax', opset: 11, attributes: { axis: 1 }, inputs: { x: f32([2, 2, 3], 11) } });
  });

  it('rejects an axis out of range, naming the range', async () => {
    await expect(runOurs({ op: 'Softmax', attributes: { axis: 3 }, inputs: { x: f32([2, 3], 1) } })).rejects.toThrow(/axis 3 is out of range for rank 2 \(allowed -2 to 1\)/);
  });
});

describe('LayerNormalization', () => {
  it('agrees with onnxruntime over axes, with and without B', async () => {
    for (const axis of [-1, 1, 0]) {
      const x = f32([3, 4, 5], 20, 0, -2, 2);
      const norm = [3, 4, 5].slice(axis < 0 ? 3 + axis : axis);
      await checkForward({ op: 'LayerNormalization', attributes: { axis }, inputs: { x, s: f32(norm, 21), b: f32(norm, 22) }, atol: 1e-5, rtol: 1e-5 });
      await checkForward({ op: 'LayerNormalization', attributes: { axis, epsilon: 0.1 }, inputs: { x, s: f32(norm, 23) }, atol: 1e-5, rtol: 1e-5 });
    }
  });

  it('outputs Mean and InvStdDev', async () => {
    await checkForward({
      op: 'LayerNormalization',
      attributes: { axis: 1 },
      inputs: { x: f32([4, 2, 3], 24, 0, -2, 2), s: f32([2, 3], 25), b: f32([2, 3], 26) },
      outputs: ['y', 'mean', 'inv'],
      atol: 1e-5,
      rtol: 1e-5,
    });
  });

  it('float16 agrees within float16 rounding (statistics in fp32)', async () => {
    await checkForward({ op: 'LayerNormalization', inputs: { x: half(f32([3, 8], 35, 0, -2, 2)), s: half(f32([8], 36)), b: half(f32([8], 37)) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('spans all 4 tiles (rows cut across tiles)', async () => {
    await checkForwardAllTiles({ op: 'LayerNormalization', inputs: { x: f32([9, 70], 27, 0, -2, 2), s: f32([70], 28), b: f32([70], 29) }, atol: 1e-5, rtol: 1e-5 });
  });

  it('grads for X, Scale and B agree with finite differences', async () => {
    await checkGrad({ op: 'LayerNormalization', inputs: { x: f32([3, 4], 30, 0, -2, 2), s: f32([4], 31), b: f32([4], 32) } });
    await checkGrad({ op: 'LayerNormalization', attributes: { axis: 1 }, inputs: { x: f32([2, 2, 3], 33, 0, -2, 2), s: f32([2, 3], 34) } });
  });

  it('grads agree with finite differences with rows cut across all 4 tiles (Scale and B summed by a planned reduction)', async () => {
    const c = { op: 'LayerNormalization', inputs: { x: f32([6, 50], 38, 0, -2, 2), s: f32([50], 39), b: f32([50], 40) } };
    // The premise: x (and so dy, laid out like it) spans all 4 tiles, rows cut between them.
    expect((await lowered(c)).tiles.size).toBe(4);
    await checkGrad(c);
  });

  it('refuses a gradient through a consumed Mean output, naming it', async () => {
    const { gradcheck } = await import('../../src/autodiff/gradcheck.js');
    const { buildGraph } = await import('../../src/model/build.js');
    const { createRegistry } = await import('../../src/model/modules.js');
    const { tiny } = await import('../helpers.js');
    const registry = await createRegistry([]);
    const loc = { file: '<ln test>', line: 1, col: 1 };
    const x = f32([3, 4], 38);
    const decl = {
      inputs: [],
      initializers: [
        { name: 'x', shape: [3, 4], dtype: 'float32', loc, init: { kind: 'data', data: x.data }, trainable: true },
        { name: 's', shape: [4], dtype: 'float32', loc, init: { kind: 'data', data: f32([4], 39).data }, trainable: false },
      ],
      nodes: [
        { op: 'LayerNormalization', domain: '', name: 'ln', inputs: ['x', 's'], outputs: ['y', 'mean'], attributes: {}, loc },
        { op: 'Add', domain: '', name: 'add', inputs: ['y', 'mean'], outputs: ['z'], attributes: {}, loc },
      ],
      outputs: ['z'],
      opset: 18,
    } as never;
    await expect(gradcheck(buildGraph(decl, registry), 'z', ['x'], { registry, device: tiny() })).rejects.toThrow(/op 'ln' .*has no gradient through its Mean output 'mean', which is consumed/);
  });

  it('rejects a Scale of the wrong shape and stash_type 0', async () => {
    await expect(runOurs({ op: 'LayerNormalization', inputs: { x: f32([3, 4], 1), s: f32([3], 2) } })).rejects.toThrow(/'s' float32\[3\] must have the normalised shape \[4\]/);
    await expect(runOurs({ op: 'LayerNormalization', attributes: { stash_type: 0 }, inputs: { x: f32([3, 4], 1), s: f32([4], 2) } })).rejects.toThrow(/stash_type 0 is not supported/);
  });
});

describe('BatchNormalization (inference)', () => {
  const bnInputs = (shape: number[], seed: number) => {
    const C = shape[1];
    return {
      x: f32(shape, seed, 0, -2, 2),
      scale: f32([C], seed + 1),
      b: f32([C], seed + 2),
      mean: constant(f32([C], seed + 3)),
      var: constant(f32([C], seed + 4, 0, 0.2, 2)),
    };
  };

  it('agrees with onnxruntime at versions 9, 14 and 15, rank 2 to 4', async () => {
    for (const opset of [9, 14, 15]) {
      await checkForward({ op: 'BatchNormalization', opset, inputs: bnInputs([2, 3, 4, 5], 40), atol: 1e-5, rtol: 1e-5 });
    }
    await checkForward({ op: 'BatchNormalization', attributes: { epsilon: 0.01 }, inputs: bnInputs([5, 3], 41), atol: 1e-5, rtol: 1e-5 });
    await checkForward({ op: 'BatchNormalization', inputs: bnInputs([2, 4, 7], 42), atol: 1e-5, rtol: 1e-5 });
  });

  it('spans all 4 tiles', async () => {
    await checkForwardAllTiles({ op: 'BatchNormalization', inputs: bnInputs([2, 8, 6, 6], 43), atol: 1e-5, rtol: 1e-5 });
  });

  it('float16 agrees within float16 rounding', async () => {
    const ins = Object.fromEntries(Object.entries(bnInputs([2, 3, 4], 46)).map(([k, t]) => [k, half(t)]));
    await checkForward({ op: 'BatchNormalization', inputs: ins, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('grads for X, scale and B agree with finite differences (mean and var constant)', async () => {
    await checkGrad({ op: 'BatchNormalization', inputs: bnInputs([2, 3, 2, 2], 44) });
  });

  // Training mode (14, 15 with training_mode = 1; 9 with more than one output): test/ops/batchnorm-train.test.ts.
  it('rejects running statistics outputs with training_mode = 0', async () => {
    await expect(runOurs({ op: 'BatchNormalization', opset: 15, attributes: { training_mode: 0 }, inputs: bnInputs([2, 3], 45), outputs: ['y', 'rm'] })).rejects.toThrow(/running statistics outputs exist only in training mode/);
  });
});

describe('GlobalAveragePool', () => {
  it('agrees with onnxruntime (1-D to 3-D spatial)', async () => {
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: f32([2, 3, 4, 5], 50) }, atol: 1e-6, rtol: 1e-5 });
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: f32([2, 3, 7], 51) }, atol: 1e-6, rtol: 1e-5 });
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: f32([1, 2, 3, 4, 2], 52) }, atol: 1e-6, rtol: 1e-5 });
  });

  it('spans all 4 tiles (planes summed in two stages across tiles)', async () => {
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: f32([2, 3, 17, 19], 53) }, atol: 1e-6, rtol: 1e-5 });
    // The output is small; the input spans the tiles, each contributing partial plane sums.
    const { lowered } = await import('./nn-util.js');
    const { program } = await lowered({ op: 'GlobalAveragePool', inputs: { x: f32([2, 3, 17, 19], 53) } });
    const partials = program.computeSets.find((cs) => cs.name.endsWith('reduce/partials'))!;
    expect(new Set(vertexList(partials.vertices).map((v) => v.tile)).size).toBe(4);
  });

  it('float16 agrees within float16 rounding (fp32 sums)', async () => {
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: half(f32([2, 3, 4, 5], 55)) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('grad agrees with finite differences', async () => {
    await checkGrad({ op: 'GlobalAveragePool', inputs: { x: f32([2, 2, 3, 2], 54) } });
  });
});
