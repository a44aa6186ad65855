/**
 * Resize (10, 11, 13, 18) and Upsample (7, 9) against onnxruntime-node:
 * nearest with every nearest_mode and coordinate_transformation_mode, linear
 * (1-D to 3-D, up and down), cubic (cubic_coeff_a, exclude_outside), scales or sizes, axes and
 * keep_aspect_ratio_policy (18), fp32 and fp16, on 1 and 16 tiles; grads
 * against central finite differences.
 *
 * Tolerances: nearest copies elements, so it must match exactly (atol 0).
 * Linear: each output is w0 a + w1 b with w0 + w1 = 1, one rounding per
 * axis on each side, in a different order from onnxruntime: fp32 atol 1e-6,
 * rtol 1e-5 (values in [-1, 1), a few ulps); fp16 atol = rtol = 4e-3 (the
 * product and sum rounded to float16 per axis: twice the half-ulp 2^-11 per
 * axis). Cubic: four products of |w| <= ~1.1 summed per axis: fp32 atol
 * 1e-5, rtol 1e-4; fp16 8e-3 (four products and the sum each rounded to
 * float16, weights themselves float16: a few half-ulps). Grads: the harness default 2e-3 with h = 0.5: Y is linear in X, so
 * central differences are exact up to the fp32 rounding of the loss.
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { lowered } from './nn-util.js';
import { tiny } from '../helpers.js';

const one = tiny({ tilesPerIpu: 1 });
const sixteen = tiny({ tilesPerIpu: 16 });
const exact = { atol: 0, rtol: 0 };
const lin = { atol: 1e-6, rtol: 1e-5 };
const cub = { atol: 1e-5, rtol: 1e-4 };

const scalesT = (v: number[]): TensorSpec => ({ shape: [v.length], data: Float32Array.from(v), constant: true });
const empty = (): TensorSpec => ({ shape: [0], data: new Float32Array(0), constant: true });

function resize(x: number[], how: { scales: number[] } | { sizes: number[] }, attributes: OpCase['attributes'] = {}, seed = 1, opset = 13): OpCase {
  const mode = (attributes.mode as string | undefined) ?? 'nearest';
  return {
    op: 'Resize',
    opset,
    attributes,
    inputs:
      'scales' in how
        ? { x: f32(x, seed), roi: empty(), scales: scalesT(how.scales) }
        : { x: f32(x, seed), roi: empty(), scales: empty(), sizes: i32([how.sizes.length], how.sizes, true) },
    ...(mode === 'nearest' ? exact : lin),
  };
}

async function both(c: OpCase): Promise<void> {
  await checkForward({ ...c, device: one });
  await checkForward({ ...c, device: sixteen });
}

const COORDS = ['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric'];

describe('Resize nearest', () => {
  it('every nearest_mode with every coordinate transformation, up and down', async () => {
    for (const nearest_mode of ['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil']) {
      for (const coordinate_transformation_mode of COORDS) {
        const attributes = { mode: 'nearest', nearest_mode, coordinate_transformation_mode };
        await both(resize([1, 2, 3, 4], { scales: [1, 1, 2, 1.5] }, attributes, 2));
        await both(resize([1, 2, 5, 7], { scales: [1, 1, 0.6, 0.5] }, attributes, 3));
      }
    }
  });

  it('sizes, 1-D and 3-D, axes and keep_aspect_ratio_policy (18)', async () => {
    await both(resize([2, 3, 4, 5], { sizes: [2, 3, 7, 3] }, {}, 4));
    await both(resize([1, 2, 5], { scales: [1, 1, 2.5] }, {}, 5));
    await both(resize([1, 1, 2, 3, 2], { scales: [1, 1, 2, 1, 3] }, {}, 6));
    await both(resize([1, 2, 3, 4], { scales: [3, 2] }, { axes: [3, 2] }, 7, 18));
    for (const keep_aspect_ratio_policy of ['not_larger', 'not_smaller']) await both(resize([1, 2, 3, 4], { sizes: [7, 6] }, { axes: [2, 3], keep_aspect_ratio_policy }, 8, 18));
  });

  it('Resize-10 and Upsample (7, 9): asymmetric coordinates, floor when upsampling', async () => {
    await both({ op: 'Resize', opset: 10, inputs: { x: f32([1, 2, 3, 4], 9), scales: scalesT([1, 1, 2, 3]) }, ...exact });
    await both({ op: 'Resize', opset: 10, inputs: { x: f32([1, 1, 6, 6], 10), scales: scalesT([1, 1, 0.5, 0.5]) }, ...exact });
    await both({ op: 'Upsample', opset: 9, inputs: { x: f32([1, 2, 3, 3], 11), scales: scalesT([1, 1, 2, 3]) }, ...exact });
    await both({ op: 'Upsample', opset: 7, attributes: { scales: [1, 1, 2, 2] }, inputs: { x: f32([1, 2, 3, 3], 12) }, ...exact });
  });

  it('float16 copies exactly', async () => {
    for (const device of [one, sixteen]) {
      const c = resize([1, 2, 3, 4], { scales: [1, 1, 2, 1.5] }, {}, 13);
      c.inputs.x.dtype = 'float16';
      await checkForward({ ...c, device, outputDtype: 'float16' });
    }
  });
});

describe('Resize linear', () => {
  it('every coordinate transformation, up and down, 1-D to 3-D', async () => {
    for (const coordinate_transformation_mode of COORDS) {
      const attributes = { mode: 'linear', coordinate_transformation_mode };
      await both(resize([1, 2, 3, 4], { scales: [1, 1, 2, 1.5] }, attributes, 20));
      await both(resize([2, 1, 6, 7], { scales: [1, 1, 0.5, 0.6] }, attributes, 21));
      await both(resize([1, 2, 5], { sizes: [1, 2, 9] }, attributes, 22));
      await both(resize([1, 1, 2, 3, 3], { scales: [1, 1, 2, 1.5, 2] }, attributes, 23));
    }
  });

  it('spreads over tiles: a larger output spans all 16 (nearest: y is the last Gather\'s output)', async () => {
    const c = { ...resize([2, 4, 16, 16], { scales: [1, 1, 2, 2] }, {}, 27), device: sixteen };
    await checkForward(c);
    const { tiles } = await lowered(c);
    expect(tiles.size).toBe(16);
  });

  it('Resize-10 and Upsample-9 linear (asymmetric)', async () => {
    await both({ op: 'Resize', opset: 10, attributes: { mode: 'linear' }, inputs: { x: f32([1, 2, 3, 4], 24), scales: scalesT([1, 1, 2, 2.5]) }, ...lin });
    await both({ op: 'Upsample', opset: 9, attributes: { mode: 'linear' }, inputs: { x: f32([1, 2, 3, 4], 25), scales: scalesT([1, 1, 2, 2]) }, ...lin });
  });

  it('float16 within float16 rounding', async () => {
    for (const device of [one, sixteen]) {
      const c = resize([1, 2, 3, 4], { scales: [1, 1, 2, 1.5] }, { mode: 'linear' }, 26);
      c.inputs.x.dtype = 'float16';
      await checkForward({ ...c, device, outputDtype: 'float16', atol: 4e-3, rtol: 4e-3 });
    }
  });

  it('refuses tf_crop_and_resize, antialias and streamed scales', async () => {
    await expect(runOurs(resize([1, 1, 2, 2], { scales: [1, 1, 2, 2] }, { coordinate_transformation_mode: 'tf_crop_and_resize' }))).rejects.toThrow(/tf_crop_and_resize/);
    await expect(runOurs(resize([1, 1, 2, 2], { scales: [1, 1, 2, 2] }, { mode: 'linear', antialias: 1 }, 1, 18))).rejects.toThrow(/antialias/);
    const streamed = resize([1, 1, 2, 2], { scales: [1, 1, 2, 2] });
    streamed.inputs.scales.constant = false;
    await expect(runOurs(streamed)).rejects.toThrow(/scales .* must be a constant/);
  });
});

describe('Resize cubic', () => {
  it('every coordinate transformation, cubic_coeff_a and exclude_outside, up and down', async () => {
    for (const coordinate_transformation_mode of COORDS) {
      for (const extra of [{}, { cubic_coeff_a: -0.5 }, { exclude_outside: 1 }] as Record<string, number>[]) {
        const attributes = { mode: 'cubic', coordinate_transformation_mode, ...extra };
        await both({ ...resize([1, 2, 4, 5], { scales: [1, 1, 2, 1.5] }, attributes, 40), ...cub });
        await both({ ...resize([1, 1, 8, 7], { scales: [1, 1, 0.5, 0.6] }, attributes, 41), ...cub });
      }
    }
  });

  it('float16 within float16 rounding', async () => {
    const c = resize([1, 2, 4, 4], { scales: [1, 1, 2, 1.5] }, { mode: 'cubic' }, 42);
    c.inputs.x.dtype = 'float16';
    await checkForward({ ...c, device: sixteen, outputDtype: 'float16', atol: 8e-3, rtol: 8e-3 });
  });

  it('agrees with finite differences', async () => {
    await checkGrad({ ...resize([1, 1, 4, 4], { scales: [1, 1, 2, 1.5] }, { mode: 'cubic' }, 43), h: 0.5 });
  });
});

describe('Resize grads', () => {
  it('nearest and linear agree with finite differences, on 1 and 16 tiles', async () => {
    for (const device of [one, sixteen]) {
      await checkGrad({ ...resize([1, 2, 3, 4], { scales: [1, 1, 2, 1.5] }, {}, 30), device, h: 0.5 });
      await checkGrad({ ...resize([1, 2, 6, 5], { scales: [1, 1, 0.5, 0.6] }, { mode: 'linear', coordinate_transformation_mode: 'align_corners' }, 31), device, h: 0.5 });
      await checkGrad({ ...resize([1, 2, 3, 4], { scales: [1, 1, 2, 2] }, { mode: 'linear' }, 32), device, h: 0.5 });
    }
  });
});
