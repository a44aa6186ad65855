/**
 * ConvTranspose: forward against onnxruntime-node (strides, pads,
 * output_padding, output_shape, dilations, group, auto_pad, 1-D to 3-D,
 * versions 1 and 11, fp32 and fp16, on 1 and 16 tiles), grads for X, W and
 * B against central finite differences.
 *
 * Tolerances as test/ops/conv.test.ts argues them: fp32 forward atol 2e-5,
 * rtol 1e-4 (each output sums at most Cg x kernel <= 54 products of values in
 * [-1, 1), in a different order from onnxruntime's col2im); fp16 atol = rtol
 * = 4e-3 (inputs and result rounded to float16 on both sides, twice the
 * result's half-ulp). Grads: the harness default 2e-3 with h = 0.5, exact for
 * central differences because Y is linear in X, W and B (conv.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, runOurs, type OpCase } from './harness.js';
import { lowered } from './nn-util.js';
import { tiny } from '../helpers.js';

const tol = { atol: 2e-5, rtol: 1e-4 };
const one = tiny({ tilesPerIpu: 1 });
const sixteen = tiny({ tilesPerIpu: 16 });

function convT(x: number[], w: number[], attributes: OpCase['attributes'] = {}, bias = false, seed = 1): OpCase {
  return {
    op: 'ConvTranspose',
    attributes,
    inputs: { x: f32(x, seed), w: f32(w, seed + 1), ...(bias ? { b: f32([w[1] * ((attributes.group as number | undefined) ?? 1)], seed + 2) } : {}) },
    ...tol,
  };
}

/** Forward on 1 tile and on 16. */
async function both(c: OpCase): Promise<void> {
  await checkForward({ ...c, device: one });
  await checkForward({ ...c, device: sixteen });
}

describe('ConvTranspose forward', () => {
  it('agrees with onnxruntime: plain, strides, pads, output_padding, dilations, bias', async () => {
    await both(convT([1, 1, 3, 3], [1, 2, 3, 3]));
    await both(convT([2, 3, 4, 5], [3, 2, 3, 3], { strides: [2, 2] }, true, 2));
    await both(convT([1, 2, 4, 4], [2, 3, 3, 2], { strides: [3, 2], pads: [1, 0, 2, 1] }, true, 3));
    await both(convT([1, 2, 3, 4], [2, 2, 3, 3], { strides: [3, 2], output_padding: [1, 1] }, false, 4));
    await both(convT([1, 2, 4, 4], [2, 2, 2, 3], { dilations: [2, 2], pads: [1, 1, 0, 2] }, true, 5));
  });

  it('groups, output_shape and auto_pad', async () => {
    await both(convT([2, 4, 3, 3], [4, 3, 3, 3], { group: 2, strides: [2, 2] }, true, 6));
    await both(convT([1, 3, 4, 4], [3, 1, 3, 3], { group: 3, pads: [1, 1, 1, 1] }, true, 7));
    await both(convT([1, 1, 3, 3], [1, 2, 3, 3], { strides: [3, 2], output_shape: [10, 8] }, false, 8));
    for (const auto_pad of ['SAME_UPPER', 'SAME_LOWER', 'VALID']) await both(convT([1, 2, 3, 4], [2, 2, 3, 3], { auto_pad, strides: [2, 2] }, true, 9));
  });

  it('1-D and 3-D, and both registered versions (1 and 11)', async () => {
    await both(convT([2, 3, 5], [3, 2, 3], { strides: [2], pads: [1, 0] }, true, 10));
    await both(convT([1, 2, 3, 4, 3], [2, 2, 2, 3, 2], { strides: [2, 1, 2] }, true, 11));
    await checkForward({ ...convT([1, 2, 3, 3], [2, 2, 3, 3], { strides: [2, 2] }, true, 12), opset: 10 });
  });

  it('spreads over tiles: a larger output spans all 16 (no bias, so y is the planned op\'s own output)', async () => {
    const c = { ...convT([2, 8, 8, 8], [8, 8, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, false, 13), device: sixteen };
    await checkForward(c);
    const { tiles } = await lowered(c);
    expect(tiles.size).toBe(16);
  });

  it('float16 agrees within float16 rounding', async () => {
    for (const device of [one, sixteen]) {
      const c = convT([1, 2, 4, 4], [2, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 0, 0] }, true, 14);
      for (const t of Object.values(c.inputs)) t.dtype = 'float16';
      await checkForward({ ...c, device, outputDtype: 'float16', atol: 4e-3, rtol: 4e-3 });
    }
  });

  it('refuses an output_shape more than stride - 1 past what the kernel reaches', async () => {
    await expect(runOurs(convT([1, 1, 3, 3], [1, 1, 3, 3], { output_shape: [7, 7] }))).rejects.toThrow(/output spatial dim 0 of 7/);
  });
});

describe('ConvTranspose grads', () => {
  it('dX, dW and dB agree with finite differences (strides, pads, output_padding, group, dilations)', async () => {
    await checkGrad({ ...convT([1, 2, 3, 3], [2, 2, 3, 3], { strides: [2, 2], pads: [1, 0, 0, 1], output_padding: [1, 0] }, true, 20), h: 0.5 });
    await checkGrad({ ...convT([2, 4, 3, 2], [4, 1, 2, 2], { group: 2, dilations: [2, 1] }, true, 21), h: 0.5 });
    await checkGrad({ ...convT([1, 2, 4], [2, 3, 3], { strides: [3], pads: [1, 2] }, false, 22), h: 0.5 });
  });

  it('on 16 tiles', async () => {
    await checkGrad({ ...convT([2, 3, 4, 4], [3, 2, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }, true, 23), device: sixteen, h: 0.5 });
  });
});
