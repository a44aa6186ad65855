/**
 * Zero-size tensors (a dimension of 0) are accepted and carried through:
 * streamed inputs and initializers with no elements, elementwise ops and
 * views of them, reductions over no elements (their identity), all against
 * onnxruntime-node; an empty `axes` initializer in an ONNX model reduces
 * every axis. Values are exact (atol = rtol = 0): nothing is summed.
 */
import { describe, expect, it } from 'vitest';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { importOnnx } from '../../src/onnx/import.js';
import { runGraph } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { checkForward, f32, i32 } from '../ops/harness.js';
import { f32 as f32Info, int64Tensor, modelBytes, node } from '../onnx/helpers.js';

const exact = { atol: 0, rtol: 0 };
const empty = (shape: number[]) => ({ shape, data: new Float32Array(0) });

describe('zero-size tensors', () => {
  it('reductions over no elements write their identity; keepdims and a reduced axis of 0', async () => {
    for (const op of ['ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceMean', 'ReduceL2', 'ReduceLogSumExp']) {
      await checkForward({ op, opset: 18, inputs: { x: empty([2, 0, 4]), axes: i32([1], [1], true) }, attributes: { keepdims: 1 }, ...exact });
    }
  });

  it('elementwise ops, views and reductions keeping the zero axis give zero-size outputs', async () => {
    await checkForward({ op: 'Add', inputs: { a: empty([0, 3]), b: f32([3], 1) }, ...exact });
    await checkForward({ op: 'Relu', inputs: { x: empty([2, 0]) }, ...exact });
    await checkForward({ op: 'Transpose', inputs: { x: empty([2, 0, 3]) }, ...exact });
    await checkForward({ op: 'ReduceSum', opset: 18, inputs: { x: empty([0, 4]), axes: i32([1], [1], true) }, attributes: { keepdims: 0 }, ...exact });
  });

  it('an empty axes initializer (shape [0]) in an ONNX model reduces every axis', async () => {
    const registry = await createRegistry([]);
    const bytes = modelBytes({
      opset: 18,
      inputs: [f32Info('x', [2, 3])],
      initializers: [int64Tensor('axes', [0], [])],
      nodes: [node('ReduceSum', ['x', 'axes'], ['y'])],
      outputs: [f32Info('y')],
    });
    const g = buildGraph(importOnnx(bytes, { file: 'empty.onnx', registry }).graph, registry, { inference: true });
    expect(g.tensor('axes').info.shape).toEqual([0]);
    expect(g.tensor('y').info.shape).toEqual([1, 1]);
    const { outputs } = await runGraph({ graph: g, registry, device: tiny(), inputs: { x: Float32Array.from([1, 2, 3, 4, 5, 6]) }, outputs: ['y'] });
    expect(Array.from(outputs.get('y')!)).toEqual([21]);
  });
});
