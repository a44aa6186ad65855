/**
 * RoiAlign and MaxRoiPool (src/ops/roi-align.ts, sim/codelets/roi-align.ts) against
 * onnxruntime-node, and its gradient for X against central finite
 * differences (the harness default, 2e-3).
 *
 * Tolerance: atol 1e-5, rtol 1e-4. Each output is the mean of at most a few
 * dozen bilinear samples; onnxruntime computes the sample positions, weights
 * and sums in float, tilesim in double rounded once, so they differ by a few
 * float ulps of the sum (the inputs are in [-1, 1]). MaxRoiPool is a max:
 * exact, its bin edges computed in float as onnxruntime does.
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };
/** RoIs (x1, y1, x2, y2) inside, across and partly outside a 10 x 12 map; kept constant (no RoI gradient). */
const rois = (scale = 1): TensorSpec => ({
  shape: [5, 4],
  data: Float32Array.from([0, 0, 9, 9, 2.5, 1.2, 7.7, 8.4, -1.5, 3, 4, 12.5, 5, 5, 5.6, 5.9, 1, 0.5, 11, 9.2].map((v) => v / scale)),
  constant: true,
});

describe('RoiAlign', () => {
  it('agrees with onnxruntime: versions 16 (half_pixel, output_half_pixel) and 10, sampling ratios, spatial scale, on 1 and 16 tiles', async () => {
    const x = f32([2, 3, 10, 12], 1);
    const batch = i32([5], [0, 1, 1, 0, 1], true);
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      await checkForward({ op: 'RoiAlign', opset: 16, attributes: { output_height: 3, output_width: 4 }, inputs: { x, rois: rois(), batch }, device, ...TOL });
      await checkForward({ op: 'RoiAlign', opset: 16, attributes: { output_height: 2, output_width: 2, sampling_ratio: 2, coordinate_transformation_mode: 'output_half_pixel' }, inputs: { x, rois: rois(), batch }, device, ...TOL });
      await checkForward({ op: 'RoiAlign', opset: 10, attributes: { output_height: 4, output_width: 3, spatial_scale: 0.5 }, inputs: { x, rois: rois(0.5), batch }, device, ...TOL });
    }
  });

  it('gradient for X, over RoIs of both batch items', async () => {
    const x = f32([2, 2, 6, 7], 2);
    const r: TensorSpec = { shape: [3, 4], data: Float32Array.from([0.3, 0.2, 5.1, 4.6, 1.4, 2.2, 6.3, 5.7, 2.1, 0.6, 4.4, 3.3]), constant: true };
    await checkGrad({ op: 'RoiAlign', opset: 16, attributes: { output_height: 2, output_width: 3, sampling_ratio: 2 }, inputs: { x, rois: r, batch: i32([3], [1, 0, 1], true) }, device: tiny({ tilesPerIpu: 4 }) });
  });

  it('refuses mode max and a batch index outside the batch, naming the op', async () => {
    const x = f32([1, 1, 4, 4], 3);
    await expect(runOurs({ op: 'RoiAlign', opset: 16, attributes: { mode: 'max' }, inputs: { x, rois: rois(), batch: i32([5], [0, 0, 0, 0, 0], true) } })).rejects.toThrow(/op 'RoiAlign_0' .*mode 'max' is not supported/);
    await expect(runOurs({ op: 'RoiAlign', opset: 16, inputs: { x, rois: rois(), batch: i32([5], [0, 0, 2, 0, 0], true) } })).rejects.toThrow(/RoI 2 has batch index 2, outside \[0, 1\)/);
  });
});

describe('MaxRoiPool', () => {
  /** RoIs (batch index, x1, y1, x2, y2), some with .5 corners (rounded half away from zero) and one partly outside. */
  const boxes: TensorSpec = { shape: [4, 5], data: Float32Array.from([0, 0, 0, 9, 9, 1, 2.5, 1.5, 7.4, 8.6, 1, -2, 3, 5, 12, 0, 4, 4, 4, 4]), constant: true };
  it('agrees with onnxruntime (exact: a max), pooled shapes, spatial scale, on 1 and 16 tiles', async () => {
    const x = f32([2, 3, 10, 12], 11);
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      await checkForward({ op: 'MaxRoiPool', attributes: { pooled_shape: [3, 2] }, inputs: { x, rois: boxes }, device, atol: 0, rtol: 0 });
      await checkForward({ op: 'MaxRoiPool', attributes: { pooled_shape: [2, 4], spatial_scale: 0.5 }, inputs: { x, rois: boxes }, device, atol: 0, rtol: 0 });
    }
  });

  it('gradient for X: each bin to its maximum', async () => {
    // Distinct values 0.05 apart, so no maximum changes under a finite-difference step.
    const n = 2 * 2 * 6 * 7;
    const x: TensorSpec = { shape: [2, 2, 6, 7], data: Float32Array.from({ length: n }, (_, i) => (((i * 7919) % n) - n / 2) * 0.05) };
    const r: TensorSpec = { shape: [3, 5], data: Float32Array.from([1, 0, 0, 5, 4, 0, 1, 2, 6, 5, 1, 2, 1, 4, 3]), constant: true };
    await checkGrad({ op: 'MaxRoiPool', attributes: { pooled_shape: [2, 2] }, inputs: { x, rois: r }, device: tiny({ tilesPerIpu: 4 }) });
  });
});

