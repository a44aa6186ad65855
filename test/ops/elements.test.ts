/**
 * GatherElements and ScatterElements against onnxruntime-node: every axis
 * (negative too), negative indices, indices smaller than the data off the
 * axis, streamed (run-time) and constant indices, float16 and int32 data,
 * every ScatterElements reduction, on 1 tile and spread over 16 (each tile
 * reads only the window its elements reach). Moving values is exact, so
 * float32 and int32 compare with atol = rtol = 0; float16 too (both sides
 * hold the same halves). Scatter's add and mul round once per update in
 * onnxruntime and once in all here: rtol 1e-6. Gradients against central
 * finite differences (tolerance 2e-3 absolute, the harness default).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, type OpCase, type TensorSpec } from './harness.js';
import { lowered } from './nn-util.js';
import { tiny } from '../helpers.js';
import { vertexList } from '../../sim/vertex-table.js';

const exact = { atol: 0, rtol: 0 };

/** Deterministic indices in [-size, size) (negative ones too), as a streamed int32 input unless `constant`. */
function indices(shape: number[], size: number, seed: number, constant = false): TensorSpec {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, (_, i) => ((i * 7 + seed * 13) % (2 * size)) - size);
  return i32(shape, v, constant);
}

const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });

describe('GatherElements', () => {
  it('every axis, negative indices, indices smaller than the data, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const axis of [0, 1, 2, -1]) {
        const ax = axis < 0 ? axis + 3 : axis;
        const data = [4, 5, 6];
        const ishape = data.map((d, k) => (k === ax ? 7 : Math.max(1, d - 1)));
        await checkForward({ op: 'GatherElements', attributes: { axis }, inputs: { x: f32(data, 20 + ax), i: indices(ishape, data[ax], ax) }, device, ...exact });
      }
      // Rank 1 and a long axis spread over many tiles.
      await checkForward({ op: 'GatherElements', inputs: { x: f32([300], 3), i: indices([500], 300, 1) }, device, ...exact });
    }
  });

  it('float16 and int32 data, constant indices, opset 11', async () => {
    await checkForward({ op: 'GatherElements', attributes: { axis: 1 }, inputs: { x: half(f32([3, 8], 4)), i: indices([3, 5], 8, 2) }, outputDtype: 'float16', ...exact });
    await checkForward({ op: 'GatherElements', inputs: { x: i32([3, 2], [1, 2, 3, 4, 5, 6]), i: indices([2, 2], 3, 5, true) }, outputDtype: 'int32', ...exact });
    await checkForward({ op: 'GatherElements', opset: 11, attributes: { axis: -2 }, inputs: { x: f32([5, 3], 6), i: indices([4, 3], 5, 3, true) }, ...exact });
  });

  it('each tile reads only the window of data its outputs reach', async () => {
    // Axis -1 of [64, 32]: output row k reaches data row k only.
    const c: OpCase = { op: 'GatherElements', attributes: { axis: -1 }, inputs: { x: f32([64, 32], 7), i: indices([64, 32], 32, 4) }, device: tiny({ tilesPerIpu: 16 }) };
    const { program } = await lowered(c);
    const vertices = program.computeSets.flatMap((cs) => vertexList(cs.vertices)).filter((v) => v.codelet === 'GatherElements');
    expect(vertices.length).toBeGreaterThan(4);
    for (const v of vertices) {
      const out = v.fields.out as { count: number };
      const data = v.fields.data as { count: number };
      expect(data.count).toBeLessThanOrEqual(out.count + 31 + 32); // its rows, plus a partial row each side
      expect(data.count).toBeLessThan(64 * 32);
    }
  });

  it('gradient: dOut added at the places gathered (repeats accumulate)', async () => {
    // gradcheck perturbs the float inputs; the indices are constants.
    await checkGrad({ op: 'GatherElements', attributes: { axis: 1 }, inputs: { x: f32([3, 4], 8), i: i32([3, 6], [0, 1, 1, 3, -1, 0, 2, 2, 2, 1, 0, 3, 3, 3, 0, 0, 1, -4], true) } });
    await checkGrad({ op: 'GatherElements', inputs: { x: f32([40, 3], 9), i: indices([50, 3], 40, 6, true) }, device: tiny({ tilesPerIpu: 16 }) });
  });

  it('refuses indices of another rank and constant indices out of range', async () => {
    const { runOurs } = await import('./harness.js');
    await expect(runOurs({ op: 'GatherElements', inputs: { x: f32([3, 4], 1), i: i32([3], [0, 1, 2]) } })).rejects.toThrow(/indices int32\[3\] must have the rank of data float32\[3, 4\]/);
    await expect(runOurs({ op: 'GatherElements', inputs: { x: f32([3, 4], 1), i: i32([1, 2], [0, 3], true) } })).rejects.toThrow(/index 3 \(element 1 of input 1 'i' int32\[1, 2\]\) is out of range for axis 0 of size 3/);
  });
});

describe('ScatterElements', () => {
  it('every axis, negative indices, on 1 and 16 tiles (distinct indices: replace has no order to agree on)', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const axis of [0, 1, -1]) {
        const ax = axis < 0 ? axis + 2 : axis;
        const data = [6, 40];
        const ishape = ax === 0 ? [3, 40] : [6, 20];
        // A permutation's first entries along the axis, some written negative.
        const n = ishape[0] * ishape[1];
        const v = Array.from({ length: n }, (_, i) => {
          const along = ax === 0 ? Math.floor(i / ishape[1]) : i % ishape[1];
          const other = ax === 0 ? i % ishape[1] : Math.floor(i / ishape[1]);
          const j = (along * 2 + other) % data[ax];
          return j % 3 === 0 ? j - data[ax] : j;
        });
        // Distinct targets within each line along the axis: along * 2 + other mod size, for along < size / 2.
        await checkForward({ op: 'ScatterElements', attributes: { axis }, inputs: { x: f32(data, 30 + ax), i: i32(ishape, v), u: f32(ishape, 40 + ax) }, device, ...exact });
      }
    }
  });

  it('Scatter (opset 9 and 10): ScatterElements under its old name, against onnxruntime; gradient', async () => {
    for (const opset of [9, 10]) {
      await checkForward({ op: 'Scatter', opset, attributes: { axis: 1 }, inputs: { x: f32([3, 5], 17), i: i32([3, 2], [4, 0, 1, 3, 2, 4], true), u: f32([3, 2], 18) }, ...exact });
    }
    await checkGrad({ op: 'Scatter', opset: 9, inputs: { x: f32([4, 3], 19), i: i32([2, 3], [3, 0, 1, 1, 2, 0], true), u: f32([2, 3], 20) } });
  });

  it('reductions add, mul (opset 16), max, min (opset 18) with repeated indices; float16 and int32', async () => {
    const i = i32([2, 4], [0, 1, 1, 0, 2, 2, 2, -1]);
    for (const reduction of ['add', 'mul', 'max', 'min']) {
      await checkForward({ op: 'ScatterElements', opset: 18, attributes: { axis: 1, reduction }, inputs: { x: f32([2, 3], 11), i, u: f32([2, 4], 12) }, atol: 0, rtol: 1e-6 });
    }
    await checkForward({ op: 'ScatterElements', opset: 16, attributes: { axis: 0, reduction: 'add' }, inputs: { x: f32([3, 4], 13), i: i32([2, 4], [0, 1, 2, 0, 0, 1, 2, 2]), u: f32([2, 4], 14) }, atol: 0, rtol: 1e-6 });
    await checkForward({ op: 'ScatterElements', opset: 13, inputs: { x: half(f32([4, 3], 15)), i: i32([1, 3], [3, 0, 1]), u: half(f32([1, 3], 16)) }, outputDtype: 'float16', ...exact });
    await checkForward({ op: 'ScatterElements', opset: 11, attributes: { axis: 1 }, inputs: { x: i32([2, 3], [1, 2, 3, 4, 5, 6]), i: i32([2, 1], [2, 0], true), u: i32([2, 1], [-7, -8]) }, outputDtype: 'int32', ...exact });
  });

  it('gradients (reduction none): dData is dOut with the written places zeroed, dUpdates is dOut gathered there', async () => {
    await checkGrad({ op: 'ScatterElements', attributes: { axis: 1 }, inputs: { x: f32([3, 5], 17), i: i32([3, 2], [4, 0, 1, 3, -1, 2], true), u: f32([3, 2], 18) } });
    await checkGrad({ op: 'ScatterElements', inputs: { x: f32([30, 4], 19), i: i32([2, 4], [0, 29, 7, 3, 15, 2, 20, 11], true), u: f32([2, 4], 20) }, device: tiny({ tilesPerIpu: 16 }) });
  });

  it('refuses a reduction its version does not have', async () => {
    const { runOurs } = await import('./harness.js');
    await expect(runOurs({ op: 'ScatterElements', opset: 16, attributes: { reduction: 'max' }, inputs: { x: f32([3], 1), i: i32([1], [0]), u: f32([1], 2) } })).rejects.toThrow(/reduction 'max' needs a newer version/);
  });
});
