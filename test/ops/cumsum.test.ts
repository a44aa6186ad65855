/**
 * CumSum against onnxruntime-node: every axis (negative too), exclusive and
 * reverse, on 1 tile and on 16 (each tile reads the window of input its
 * columns need), float16 and int32, opsets 11 and 14; gradient against
 * central finite differences (2e-3 absolute, the harness default).
 * Tolerances: float32 atol 1e-5, rtol 1e-5 (sums of at most 40 terms in
 * [-1, 1), float64 here, fp32 in onnxruntime); float16 rtol 2e-3, atol 2e-3
 * (onnxruntime rounds each partial sum to float16, we round once); int32
 * exact.
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOurs } from './harness.js';
import { lowered } from './nn-util.js';
import { tiny } from '../helpers.js';
import { vertexList } from '../../sim/vertex-table.js';

const TOL = { atol: 1e-5, rtol: 1e-5 };
const axisOf = (a: number) => i32([], [a], true);

describe('CumSum', () => {
  it('every axis, exclusive and reverse, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const axis of [0, 1, -1]) {
        for (const [exclusive, reverse] of [[0, 0], [1, 0], [0, 1], [1, 1]]) {
          await checkForward({ op: 'CumSum', attributes: { exclusive, reverse }, inputs: { x: f32([8, 40, 3], 10 + axis), a: axisOf(axis) }, device, ...TOL });
        }
      }
    }
  });

  it('float16, int32, opset 11', async () => {
    await checkForward({ op: 'CumSum', inputs: { x: { ...f32([4, 6], 1), dtype: 'float16' }, a: axisOf(1) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
    await checkForward({ op: 'CumSum', attributes: { reverse: 1 }, inputs: { x: i32([5], [1, -2, 3, 4, -5]), a: axisOf(0) }, outputDtype: 'int32', atol: 0, rtol: 0 });
    await checkForward({ op: 'CumSum', opset: 11, attributes: { exclusive: 1 }, inputs: { x: f32([3, 4], 2), a: axisOf(0) }, ...TOL });
  });

  it('each tile reads only the blocks its outputs are in (the scan axis last: its own rows)', async () => {
    const { program } = await lowered({ op: 'CumSum', inputs: { x: f32([64, 32], 3), a: axisOf(-1) }, device: tiny({ tilesPerIpu: 16 }) });
    const vertices = program.computeSets.flatMap((cs) => vertexList(cs.vertices)).filter((v) => v.codelet === 'CumSum');
    expect(vertices.length).toBeGreaterThan(4);
    for (const v of vertices) expect((v.fields.in as { count: number }).count).toBeLessThanOrEqual((v.fields.out as { count: number }).count + 31);
  });

  it('gradients: the sum of dY the other way round', async () => {
    for (const [exclusive, reverse] of [[0, 0], [1, 1]]) await checkGrad({ op: 'CumSum', attributes: { exclusive, reverse }, inputs: { x: f32([3, 5], 4), a: axisOf(1) } });
    await checkGrad({ op: 'CumSum', attributes: { reverse: 1 }, inputs: { x: f32([20, 3], 5), a: axisOf(0) }, device: tiny({ tilesPerIpu: 16 }) });
  });

  it('refuses a streamed axis', async () => {
    await expect(runOurs({ op: 'CumSum', inputs: { x: f32([3], 1), a: i32([], [0]) } })).rejects.toThrow(/axis \(input 1 'a'\) must be a constant initializer/);
  });
});
