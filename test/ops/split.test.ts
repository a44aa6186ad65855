/**
 * Split against onnxruntime-node: the split attribute (opset 11), the split
 * input (13), num_outputs with an uneven last part (18), equal parts, every
 * axis, float16 and int32; on 1 tile and on 16. Moving values is exact
 * (atol = rtol = 0). Gradients (through the Slices it expands into) against
 * central finite differences, for the first and for a later output
 * (tolerance 2e-3 absolute, the harness default).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs } from './harness.js';
import { tiny } from '../helpers.js';

const exact = { atol: 0, rtol: 0 };

describe('Split', () => {
  it('split sizes as attribute (11) and constant input (13), every axis, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const axis of [0, 1, -1]) {
        const shape = [6, 10, 4];
        const sizes = axis === 0 ? [1, 2, 3] : axis === 1 ? [5, 1, 4] : [2, 1, 1];
        const x = f32(shape, 30 + axis);
        await checkForward({ op: 'Split', opset: 11, attributes: { axis, split: sizes }, inputs: { x }, outputs: ['a', 'b', 'c'], device, ...exact });
        await checkForward({ op: 'Split', opset: 13, attributes: { axis }, inputs: { x, s: i32([3], sizes, true) }, outputs: ['a', 'b', 'c'], device, ...exact });
      }
    }
  });

  it('equal parts, num_outputs with an uneven last part (18), float16 and int32', async () => {
    await checkForward({ op: 'Split', opset: 13, attributes: { axis: 1 }, inputs: { x: f32([2, 9], 1) }, outputs: ['a', 'b', 'c'], ...exact });
    await checkForward({ op: 'Split', opset: 18, attributes: { axis: 0, num_outputs: 3 }, inputs: { x: f32([7, 3], 2) }, outputs: ['a', 'b', 'c'], ...exact });
    await checkForward({ op: 'Split', opset: 18, attributes: { num_outputs: 2 }, inputs: { x: { ...f32([5], 3), dtype: 'float16' } }, outputs: ['a', 'b'], outputDtype: 'float16', ...exact });
    await checkForward({ op: 'Split', opset: 13, inputs: { x: i32([4, 2], [1, 2, 3, 4, 5, 6, 7, 8]) }, outputs: ['a', 'b'], outputDtype: 'int32', ...exact });
    // A part of size 0 is a zero-size tensor.
    await checkForward({ op: 'Split', opset: 13, inputs: { x: f32([6], 9), s: i32([3], [2, 0, 4], true) }, outputs: ['a', 'b', 'c'], ...exact });
  });

  it('gradients of the first and of a later part', async () => {
    const s = i32([3], [2, 3, 1], true);
    await checkGrad({ op: 'Split', opset: 13, attributes: { axis: 1 }, inputs: { x: f32([3, 6], 4), s }, outputs: ['a', 'b', 'c'] });
    await checkGrad({ op: 'Split', opset: 13, attributes: { axis: 1 }, inputs: { x: f32([3, 6], 4), s }, outputs: ['b', 'a', 'c'] });
  });

  it('refuses sizes that do not add up, parts that do not divide and a streamed split', async () => {
    const x = f32([6], 5);
    await expect(runOurs({ op: 'Split', opset: 13, inputs: { x, s: i32([2], [2, 3], true) }, outputs: ['a', 'b'] })).rejects.toThrow(/split \[2, 3\] must be non-negative and sum to the axis size 6/);
    await expect(runOurs({ op: 'Split', opset: 13, inputs: { x }, outputs: ['a', 'b', 'c', 'd'] })).rejects.toThrow(/the axis size 6 does not split into 4 equal parts/);
    await expect(runOurs({ op: 'Split', opset: 13, inputs: { x, s: i32([2], [3, 3]) }, outputs: ['a', 'b'] })).rejects.toThrow(/split \(input 1 's'\) must be a constant/);
  });
});
