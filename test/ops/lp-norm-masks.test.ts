/**
 * LpNormalization, MeanVarianceNormalization, GlobalLpPool, LpPool (src/ops/lp-norm.ts),
 * Trilu, EyeLike (src/ops/masks.ts) and ReverseSequence
 * (src/ops/reverse-sequence.ts): composites, against onnxruntime-node
 * in fp32 and fp16 on 1 tile and on 16, and their gradients (through the
 * parts) against central finite differences (the harness default, 2e-3).
 *
 * Tolerances: Trilu, EyeLike and ReverseSequence select, move or make values: exact. The norms are
 * sums of at most 60 terms then a root and a divide, in another order than
 * onnxruntime's: atol 1e-5, rtol 1e-5 (as test/ops/reduce.test.ts argues).
 * MeanVarianceNormalization takes E[x^2] - E[x]^2 as ONNX's function does,
 * which loses up to |E[x]|^2 / var of relative precision in the variance;
 * with inputs in [-1, 1] that is a few fp32 ulps of the result scaled by
 * 1/std (< 4 here): rtol 1e-4 (onnxruntime cannot run it in float16: its
 * function body mixes float constants in). float16: every step rounds to half on our
 * side: atol 2e-3, rtol 4e-3 (a few half ulps).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const exact = { atol: 0, rtol: 0 };
const NORM = { atol: 1e-5, rtol: 1e-5 };
const HALF = { atol: 2e-3, rtol: 4e-3 };
const wide = tiny({ tilesPerIpu: 16 });
const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });

describe('LpNormalization, MeanVarianceNormalization, GlobalLpPool, LpPool', () => {
  it('LpNormalization: p 1 and 2, each axis, on 1 and 16 tiles, fp16; gradient', async () => {
    for (const device of [tiny(), wide]) {
      for (const [p, axis] of [[2, -1], [1, 0], [2, 1]]) {
        await checkForward({ op: 'LpNormalization', attributes: { p, axis }, inputs: { x: f32([4, 6, 5], p * 10 + axis, 0.05) }, device, ...NORM });
      }
    }
    await checkForward({ op: 'LpNormalization', inputs: { x: half(f32([4, 6], 3, 0.05)) }, outputDtype: 'float16', ...HALF });
    await checkGrad({ op: 'LpNormalization', attributes: { p: 2, axis: 1 }, inputs: { x: f32([3, 4], 4, 0.1) } });
    await checkGrad({ op: 'LpNormalization', attributes: { p: 1, axis: 0 }, inputs: { x: f32([3, 4], 5, 0.1) } });
  });

  it('MeanVarianceNormalization: default and given axes, opsets 9 and 13; gradient', async () => {
    for (const device of [tiny(), wide]) {
      await checkForward({ op: 'MeanVarianceNormalization', opset: 13, inputs: { x: f32([2, 3, 4, 5], 6) }, device, atol: 1e-5, rtol: 1e-4 });
      await checkForward({ op: 'MeanVarianceNormalization', opset: 9, attributes: { axes: [1] }, inputs: { x: f32([3, 8], 7) }, device, atol: 1e-5, rtol: 1e-4 });
    }
    await checkGrad({ op: 'MeanVarianceNormalization', attributes: { axes: [0, 2] }, inputs: { x: f32([2, 3, 4], 9) } });
  });

  it('GlobalLpPool: p 1, 2 and 3, 1-D to 3-D spatial, fp16; gradient', async () => {
    for (const device of [tiny(), wide]) {
      for (const p of [1, 2, 3]) await checkForward({ op: 'GlobalLpPool', attributes: { p }, inputs: { x: f32([2, 3, 4, 5], 10 + p) }, device, ...NORM });
      await checkForward({ op: 'GlobalLpPool', inputs: { x: f32([2, 3, 7], 14) }, device, ...NORM });
      await checkForward({ op: 'GlobalLpPool', inputs: { x: f32([1, 2, 3, 2, 2], 15) }, device, ...NORM });
    }
    await checkForward({ op: 'GlobalLpPool', inputs: { x: half(f32([2, 3, 4, 4], 16)) }, outputDtype: 'float16', ...HALF });
    for (const p of [2, 3]) await checkGrad({ op: 'GlobalLpPool', attributes: { p }, inputs: { x: f32([2, 2, 3, 3], 17 + p, 0.1) } });
  });

  it('LpPool: p 1, 2 and 3, pads, strides, auto_pad, 1-D and 2-D, opsets 11 and 18 (dilations, ceil_mode), fp16; gradient', async () => {
    for (const device of [tiny(), wide]) {
      for (const p of [1, 2, 3]) {
        await checkForward({ op: 'LpPool', opset: 11, attributes: { p, kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] }, inputs: { x: f32([2, 3, 7, 6], 20 + p) }, device, ...NORM });
      }
      await checkForward({ op: 'LpPool', opset: 11, attributes: { kernel_shape: [2], auto_pad: 'SAME_UPPER' }, inputs: { x: f32([2, 3, 9], 24) }, device, ...NORM });
      await checkForward({ op: 'LpPool', opset: 18, attributes: { kernel_shape: [2, 2], dilations: [2, 1], ceil_mode: 1, strides: [2, 2] }, inputs: { x: f32([1, 2, 7, 7], 25) }, device, ...NORM });
    }
    await checkForward({ op: 'LpPool', opset: 11, attributes: { kernel_shape: [2, 2] }, inputs: { x: half(f32([2, 3, 4, 4], 26)) }, outputDtype: 'float16', ...HALF });
    await checkGrad({ op: 'LpPool', opset: 11, attributes: { kernel_shape: [2, 2], strides: [1, 2] }, inputs: { x: f32([1, 2, 4, 4], 27, 0.1) } });
    await checkGrad({ op: 'LpPool', opset: 11, attributes: { p: 3, kernel_shape: [3], pads: [1, 1] }, inputs: { x: f32([2, 2, 5], 28, 0.1) } });
  });

  it('refuses what ONNX does not define, naming the node', async () => {
    await expect(runOurs({ op: 'LpNormalization', attributes: { p: 3 }, inputs: { x: f32([2, 3], 1) } })).rejects.toThrow(/LpNormalization.*p must be 1 or 2, got 3/);
    await expect(runOurs({ op: 'GlobalLpPool', inputs: { x: f32([2, 3], 1) } })).rejects.toThrow(/X must be \[N, C, spatial\.\.\.\]/);
  });
});

describe('Trilu, EyeLike', () => {
  it('Trilu: upper and lower, k from -2 to 3 (constant input), batched, int32, fp16, on 1 and 16 tiles (exact)', async () => {
    for (const device of [tiny(), wide]) {
      for (const upper of [1, 0]) {
        await checkForward({ op: 'Trilu', attributes: { upper }, inputs: { x: f32([4, 5], 1) }, device, ...exact });
        for (const k of [-2, 1, 3]) await checkForward({ op: 'Trilu', attributes: { upper }, inputs: { x: f32([2, 3, 4, 6], 2 + k), k: i32([], [k], true) }, device, ...exact });
      }
    }
    await checkForward({ op: 'Trilu', inputs: { x: i32([3, 4], Array.from({ length: 12 }, (_, i) => i - 5)) }, outputDtype: 'int32', ...exact });
    await checkForward({ op: 'Trilu', attributes: { upper: 0 }, inputs: { x: half(f32([5, 3], 3)) }, outputDtype: 'float16', ...exact });
  });

  it('Trilu keeps a NaN or inf it drops out of the result (a select, not a multiply)', async () => {
    const x: TensorSpec = { shape: [2, 2], data: Float32Array.from([1, NaN, Infinity, 2]) };
    const y = (await runOurs({ op: 'Trilu', inputs: { x } })).get('y')!;
    expect(Array.from(y)).toEqual([1, NaN, 0, 2]);
  });

  it('Trilu gradient: y\' on the kept triangle, 0 elsewhere', async () => {
    await checkGrad({ op: 'Trilu', inputs: { x: f32([3, 4], 4), k: i32([], [1], true) } });
    await checkGrad({ op: 'Trilu', attributes: { upper: 0 }, inputs: { x: f32([2, 3, 3], 5) } });
  });

  it('EyeLike: k and dtype (float, int32 against onnxruntime; float16), exact', async () => {
    for (const k of [0, 1, -2]) await checkForward({ op: 'EyeLike', attributes: { k }, inputs: { x: f32([4, 5], 6) }, ...exact });
    await checkForward({ op: 'EyeLike', attributes: { dtype: 6, k: 1 }, inputs: { x: f32([3, 4], 8) }, outputDtype: 'int32', ...exact });
    // onnxruntime has no float16 EyeLike: 0 and 1 are exact in half, so the expected values are written out.
    const y = (await runOurs({ op: 'EyeLike', attributes: { dtype: 10, k: -1 }, inputs: { x: f32([3, 3], 7) } })).get('y')!;
    expect(Array.from(y)).toEqual([0, 0, 0, 1, 0, 0, 0, 1, 0]);
  });
});

describe('ReverseSequence', () => {
  it('time axis 0 and 1, lengths from 0 to the whole, inner dims, fp16, on 1 and 16 tiles (exact)', async () => {
    for (const device of [tiny(), wide]) {
      await checkForward({ op: 'ReverseSequence', inputs: { x: f32([5, 4, 3], 1), lens: i32([4], [5, 0, 3, 1], true) }, device, ...exact });
      await checkForward({ op: 'ReverseSequence', attributes: { time_axis: 1, batch_axis: 0 }, inputs: { x: f32([3, 6], 2), lens: i32([3], [2, 6, 4], true) }, device, ...exact });
    }
    await checkForward({ op: 'ReverseSequence', inputs: { x: half(f32([4, 2, 2], 3)), lens: i32([2], [4, 2], true) }, outputDtype: 'float16', ...exact });
  });
  it('gradient: the output gradient reversed back', async () => {
    await checkGrad({ op: 'ReverseSequence', inputs: { x: f32([4, 3, 2], 4), lens: i32([3], [4, 2, 3], true) } });
  });
  it('refuses lengths past the time axis or streamed, naming the node', async () => {
    await expect(runOurs({ op: 'ReverseSequence', inputs: { x: f32([3, 2], 5), lens: i32([2], [4, 1], true) } })).rejects.toThrow(/sequence_lens\[0\] = 4 is outside \[0, 3\]/);
    await expect(runOurs({ op: 'ReverseSequence', inputs: { x: f32([3, 2], 5), lens: i32([2], [1, 1]) } })).rejects.toThrow(/sequence_lens .* must be a constant/);
  });
});

