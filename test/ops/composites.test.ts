/**
 * The composite ops (src/ops/composites.ts) against onnxruntime-node, fp32
 * and fp16, on 1 tile and on 16, and their gradients (through the ops they
 * expand into) against central finite differences (tolerance 2e-3 absolute,
 * the harness default).
 *
 * Tolerances: ops that move or select values (GlobalMaxPool, DepthToSpace,
 * SpaceToDepth, Tile, Pad, OneHot, Hardmax) are exact. Sums (ReduceL1,
 * ReduceSumSquare, ReduceL2, ReduceLogSum, ReduceLogSumExp) atol 1e-5, rtol 1e-5, as
 * test/ops/reduce.test.ts argues (float64 accumulation here, fp32 in
 * onnxruntime, at most a few hundred terms); float16 results rtol 2e-3 (four
 * half ulps: the composite rounds each of its steps to float16, onnxruntime
 * its own way).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const exact = { atol: 0, rtol: 0 };
const SUM_TOL = { atol: 1e-5, rtol: 1e-5 };
const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });
const wide = tiny({ tilesPerIpu: 16 });

/** Distinct values 0.05 apart in a scrambled order: no ties, and no max changes under a finite-difference step. */
function distinct(shape: number[], seed: number): TensorSpec {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, (_, i) => (((i * 7919 + seed * 104729) % n) - n / 2) * 0.05) };
}

describe('ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSum, ReduceLogSumExp', () => {
  const ops = ['ReduceL1', 'ReduceL2', 'ReduceSumSquare', 'ReduceLogSumExp'];
  for (const op of ops) {
    it(`${op}: axes as input (18) and attribute (13), keepdims, all axes, noop_with_empty_axes, on 1 and 16 tiles`, async () => {
      for (const device of [tiny(), wide]) {
        await checkForward({ op, opset: 18, inputs: { x: f32([4, 6, 5], 1), axes: i32([1], [1], true) }, attributes: { keepdims: 0 }, device, ...SUM_TOL });
        await checkForward({ op, opset: 18, inputs: { x: f32([4, 6, 5], 2), axes: i32([2], [0, -1], true) }, attributes: { keepdims: 1 }, device, ...SUM_TOL });
      }
      await checkForward({ op, opset: 13, inputs: { x: f32([3, 8], 3) }, attributes: { axes: [-1], keepdims: 0 }, ...SUM_TOL });
      await checkForward({ op, opset: 13, inputs: { x: f32([3, 8], 4) }, attributes: { keepdims: 0 }, ...SUM_TOL });
      await checkForward({ op, opset: 18, inputs: { x: f32([3, 4], 5) }, attributes: { noop_with_empty_axes: 1 }, ...SUM_TOL });
      await checkForward({ op, opset: 18, inputs: { x: half(f32([5, 6], 6)), axes: i32([1], [1], true) }, outputDtype: 'float16', atol: 1e-3, rtol: 2e-3 });
    });

    it(`${op}: gradient`, async () => {
      await checkGrad({ op, opset: 18, inputs: { x: f32([3, 4, 5], 7, 0.2), axes: i32([1], [1], true) }, attributes: { keepdims: 0 } });
      await checkGrad({ op, opset: 13, inputs: { x: f32([4, 6], 8, 0.2) }, attributes: { axes: [0], keepdims: 1 }, device: wide });
    });
  }

  it('ReduceLogSum (positive sums): axes as input and attribute, keepdims, on 1 and 16 tiles, fp16; gradient', async () => {
    const pos = (shape: number[], seed: number) => f32(shape, seed, 0, 0.1, 1);
    for (const device of [tiny(), wide]) {
      await checkForward({ op: 'ReduceLogSum', opset: 18, inputs: { x: pos([4, 6, 5], 11), axes: i32([1], [1], true) }, attributes: { keepdims: 0 }, device, ...SUM_TOL });
      await checkForward({ op: 'ReduceLogSum', opset: 13, inputs: { x: pos([3, 8], 12) }, attributes: { axes: [0, 1], keepdims: 1 }, device, ...SUM_TOL });
    }
    await checkForward({ op: 'ReduceLogSum', opset: 18, inputs: { x: half(pos([5, 6], 13)), axes: i32([1], [1], true) }, outputDtype: 'float16', atol: 1e-3, rtol: 2e-3 });
    await checkGrad({ op: 'ReduceLogSum', opset: 18, inputs: { x: pos([3, 4, 5], 14), axes: i32([1], [2], true) }, attributes: { keepdims: 0 } });
    await checkGrad({ op: 'ReduceLogSum', opset: 11, inputs: { x: pos([4, 6], 15) }, attributes: { axes: [0], keepdims: 1 }, device: wide });
  });

  it('ReduceLogSumExp stays finite where exp overflows float32', async () => {
    const x: TensorSpec = { shape: [2, 3], data: Float32Array.from([100, 101, 102, -100, -101, -102]) };
    const y = (await runOurs({ op: 'ReduceLogSumExp', opset: 18, inputs: { x, axes: i32([1], [1], true) }, attributes: { keepdims: 0 } })).get('y')!;
    // log(e^100 + e^101 + e^102) = 102 + log(1 + e^-1 + e^-2) = 102.40760596; float32 tolerance 1e-5 relative.
    expect(y[0]).toBeCloseTo(102.40760596, 3);
    expect(y[1]).toBeCloseTo(-99.59239404, 3);
  });
});

describe('GlobalMaxPool, DepthToSpace, SpaceToDepth, Tile', () => {
  it('GlobalMaxPool: 2-D and 3-D spatial, fp16, on 16 tiles; gradient', async () => {
    await checkForward({ op: 'GlobalMaxPool', inputs: { x: f32([2, 3, 5, 4], 1) }, ...exact });
    await checkForward({ op: 'GlobalMaxPool', inputs: { x: f32([1, 4, 3, 2, 5], 2) }, device: wide, ...exact });
    await checkForward({ op: 'GlobalMaxPool', inputs: { x: half(f32([2, 3, 4, 4], 3)) }, outputDtype: 'float16', ...exact });
    await checkGrad({ op: 'GlobalMaxPool', inputs: { x: distinct([2, 3, 4, 4], 4) } });
  });

  it('DepthToSpace (DCR, CRD) and SpaceToDepth: fp32 on 1 and 16 tiles, fp16; gradients', async () => {
    for (const device of [tiny(), wide]) {
      for (const mode of ['DCR', 'CRD']) await checkForward({ op: 'DepthToSpace', attributes: { blocksize: 2, mode }, inputs: { x: f32([2, 8, 3, 4], 5) }, device, ...exact });
      await checkForward({ op: 'SpaceToDepth', attributes: { blocksize: 3 }, inputs: { x: f32([2, 2, 6, 9], 6) }, device, ...exact });
    }
    await checkForward({ op: 'DepthToSpace', attributes: { blocksize: 2 }, inputs: { x: half(f32([1, 4, 2, 3], 7)) }, outputDtype: 'float16', ...exact });
    await checkForward({ op: 'SpaceToDepth', attributes: { blocksize: 2 }, inputs: { x: half(f32([1, 3, 4, 2], 8)) }, outputDtype: 'float16', ...exact });
    await checkGrad({ op: 'DepthToSpace', attributes: { blocksize: 2, mode: 'CRD' }, inputs: { x: f32([1, 8, 2, 3], 9) } });
    await checkGrad({ op: 'SpaceToDepth', attributes: { blocksize: 2 }, inputs: { x: f32([1, 2, 4, 6], 10) } });
  });

  it('Tile: every axis repeated or not, fp32 on 1 and 16 tiles, fp16 and int32; gradient sums the copies', async () => {
    for (const device of [tiny(), wide]) await checkForward({ op: 'Tile', inputs: { x: f32([3, 4, 2], 11), r: i32([3], [2, 1, 3], true) }, device, ...exact });
    await checkForward({ op: 'Tile', inputs: { x: half(f32([5], 12)), r: i32([1], [4], true) }, outputDtype: 'float16', ...exact });
    await checkForward({ op: 'Tile', inputs: { x: i32([2, 2], [1, 2, 3, 4]), r: i32([2], [1, 1], true) }, outputDtype: 'int32', ...exact });
    await checkGrad({ op: 'Tile', inputs: { x: f32([3, 4], 13), r: i32([2], [2, 3], true) } });
  });
});

describe('Pad', () => {
  const pad = (mode: string, x: TensorSpec, pads: number[], extra: Partial<OpCase> = {}): OpCase => ({ op: 'Pad', attributes: { mode }, inputs: { x, pads: i32([pads.length], pads, true) }, ...extra });

  it('constant (with a value), reflect and edge, on 1 and 16 tiles; negative pads crop', async () => {
    for (const device of [tiny(), wide]) {
      for (const mode of ['constant', 'reflect', 'edge']) {
        await checkForward({ ...pad(mode, f32([3, 5, 4], 20), [1, 0, 2, 2, 3, 1]), device, ...exact });
        await checkForward({ ...pad(mode, f32([6, 7], 21), [-1, 2, 3, -2]), device, ...exact });
      }
      const c = pad('constant', f32([4, 5], 22), [0, 3, 2, 0]);
      await checkForward({ ...c, inputs: { ...c.inputs, v: { shape: [], data: Float32Array.of(2.5), constant: true } }, device, ...exact });
    }
  });

  it('axes (18), opset 11 and 13, fp16 and int32', async () => {
    await checkForward({ op: 'Pad', opset: 18, attributes: { mode: 'edge' }, inputs: { x: f32([3, 4, 5], 23), pads: i32([4], [1, 2, 0, 3], true), v: { shape: [], data: Float32Array.of(0), constant: true }, axes: i32([2], [-1, 0], true) }, ...exact });
    await checkForward({ ...pad('reflect', f32([4, 4], 24), [1, 2, 2, 1]), opset: 11, ...exact });
    await checkForward({ ...pad('constant', half(f32([3, 3], 25)), [1, 1, 0, 2]), opset: 13, outputDtype: 'float16', ...exact });
    await checkForward({ ...pad('edge', i32([2, 3], [1, 2, 3, 4, 5, 6]), [0, 1, 1, 0]), outputDtype: 'int32', ...exact });
  });

  it('gradients of each mode', async () => {
    for (const mode of ['constant', 'reflect', 'edge']) await checkGrad(pad(mode, f32([3, 4], 26), [1, 2, 2, 1]));
    await checkGrad(pad('reflect', f32([5, 4], 27), [-1, 2, 1, -1]));
  });

  it('refuses wrap, a reflect pad as long as the axis, and streamed pads', async () => {
    await expect(runOurs({ ...pad('wrap', f32([3], 1), [1, 1]), opset: 19 })).rejects.toThrow(/mode 'wrap' is not supported \(supported: constant, reflect, edge\)/);
    await expect(runOurs(pad('reflect', f32([3], 1), [3, 0]))).rejects.toThrow(/reflect pads of 3 need axis 0 longer than 3 \(it is 3\)/);
    await expect(runOurs({ op: 'Pad', inputs: { x: f32([3], 1), pads: i32([2], [1, 1]) } })).rejects.toThrow(/pads \(input 1 'pads'\) must be a constant/);
  });
});

describe('OneHot and Hardmax', () => {
  it('OneHot: every axis, negative indices, integer-valued float indices, on 1 and 16 tiles', async () => {
    const values: TensorSpec = { shape: [2], data: Float32Array.of(-0.5, 3) };
    const depth = i32([], [5], true);
    for (const device of [tiny(), wide]) {
      for (const axis of [0, 1, -1]) {
        await checkForward({ op: 'OneHot', attributes: { axis }, inputs: { i: i32([3, 4], [0, 1, 4, -1, -5, 2, 3, 3, 0, -2, 1, 4], true), depth, values }, device, ...exact });
      }
    }
    await checkForward({ op: 'OneHot', opset: 11, inputs: { i: { shape: [4], data: Float32Array.of(0, 2, -1, 4) }, depth: { shape: [], data: Float32Array.of(5), constant: true }, values }, ...exact });
  });

  it('Hardmax: 1 at the first maximum (ties too), every axis, fp16, on 16 tiles', async () => {
    const ties: TensorSpec = { shape: [3, 4], data: Float32Array.from([1, 3, 3, 0, 2, 2, 2, 2, -1, 5, 0, 5]) };
    for (const axis of [0, 1, -1]) await checkForward({ op: 'Hardmax', attributes: { axis }, inputs: { x: ties }, ...exact });
    await checkForward({ op: 'Hardmax', attributes: { axis: 1 }, inputs: { x: f32([4, 50, 3], 30) }, device: wide, ...exact });
    await checkForward({ op: 'Hardmax', inputs: { x: half(f32([3, 7], 31)) }, outputDtype: 'float16', ...exact });
  });
});

describe('GroupNormalization and InstanceNormalization', () => {
  // Means and variances over at most 60 elements, divided by sqrt(var + eps): float32 atol 1e-5, rtol 1e-4; float16 atol 4e-3, rtol 4e-3.
  const TOL = { atol: 1e-5, rtol: 1e-4 };
  it('GroupNormalization 21 (scale per channel) and 18 (per group), on 1 and 16 tiles; InstanceNormalization; fp16', async () => {
    for (const device of [tiny(), wide]) {
      await checkForward({ op: 'GroupNormalization', opset: 21, attributes: { num_groups: 2, epsilon: 1e-3 }, inputs: { x: f32([3, 4, 3, 5], 40), s: f32([4], 41), b: f32([4], 42) }, device, ...TOL });
      await checkForward({ op: 'InstanceNormalization', opset: 13, inputs: { x: f32([2, 3, 4, 5], 43), s: f32([3], 44), b: f32([3], 45) }, device, ...TOL });
    }
    await checkForward({ op: 'GroupNormalization', opset: 18, attributes: { num_groups: 3 }, inputs: { x: f32([2, 6, 4], 46), s: f32([3], 47), b: f32([3], 48) }, ...TOL });
    await checkForward({ op: 'InstanceNormalization', opset: 13, inputs: { x: half(f32([1, 2, 6], 49)), s: half(f32([2], 50)), b: half(f32([2], 51)) }, outputDtype: 'float16', atol: 4e-3, rtol: 4e-3 });
  });

  it('gradients to X, scale and bias', async () => {
    await checkGrad({ op: 'GroupNormalization', opset: 21, attributes: { num_groups: 2 }, inputs: { x: f32([2, 4, 3], 52), s: f32([4], 53), b: f32([4], 54) } });
    await checkGrad({ op: 'InstanceNormalization', opset: 13, inputs: { x: f32([2, 2, 5], 55), s: f32([2], 56), b: f32([2], 57) } });
  });
});
