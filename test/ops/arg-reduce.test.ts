/**
 * ArgMax and ArgMin against onnxruntime-node: every axis (negative too),
 * keepdims 0 and 1, select_last_index with ties (integer-valued inputs make
 * many), float16 and int32 inputs, versions 11-13, on 1 tile and spread over
 * 16 tiles (each tile's outputs read their window of the input through the
 * exchange). Indices must be equal (atol = rtol = 0).
 */
import { describe, it } from 'vitest';
import { checkForward, f32, i32, type OpCase } from './harness.js';
import { tiny } from '../helpers.js';

const exact = { atol: 0, rtol: 0, outputDtype: 'int64' as const };

/** Values in {-2, ..., 2}: ties on every row. */
function ties(shape: number[], seed: number) {
  const t = f32(shape, seed);
  t.data = Float32Array.from(t.data, (v) => Math.round(v * 2));
  return t;
}

describe('ArgMax and ArgMin', () => {
  for (const op of ['ArgMax', 'ArgMin']) {
    it(`${op}: every axis, keepdims, select_last_index with ties, on 1 and 16 tiles`, async () => {
      for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
        for (const axis of [0, 1, 2, -1]) {
          for (const keepdims of [0, 1]) {
            for (const last of [0, 1]) {
              const c: OpCase = { op, opset: 13, attributes: { axis, keepdims, select_last_index: last }, inputs: { x: ties([3, 5, 7], 10 + axis) }, device, ...exact };
              await checkForward(c);
            }
          }
        }
        await checkForward({ op, opset: 13, attributes: { axis: 1 }, inputs: { x: f32([6, 40, 3], 3) }, device, ...exact });
      }
    });

    it(`${op}: float16 and int32 inputs, opset 11 and 12`, async () => {
      await checkForward({ op, opset: 13, attributes: { axis: 1 }, inputs: { x: { ...f32([4, 9], 5), dtype: 'float16' } }, ...exact });
      await checkForward({ op, opset: 13, attributes: { axis: 0, select_last_index: 1 }, inputs: { x: i32([3, 4], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 9]) }, ...exact });
      await checkForward({ op, opset: 11, attributes: { axis: -2, keepdims: 0 }, inputs: { x: f32([2, 3, 4], 6) }, ...exact });
      await checkForward({ op, opset: 12, attributes: { axis: 2, select_last_index: 1 }, inputs: { x: ties([2, 3, 4], 7) }, ...exact });
    });
  }
});
