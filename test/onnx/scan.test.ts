/**
 * Scan (src/model/control-flow.ts: a counted Loop whose body gathers each
 * pass's slices): a small RNN written as an ONNX Scan, with a scan input
 * read along axis 1, a reversed scan input, and scan outputs reversed and
 * moved to axis 1, against onnxruntime; and its gradients against central
 * finite differences of the simulated model.
 *
 * Tolerances: forward atol 1e-5, rtol 1e-4 (a few passes of tanh(x W + h U),
 * sums of 6 to 8 products in another order than onnxruntime's); gradients
 * 2e-4 absolute with h = 1e-2, as test/onnx/control-flow-model.test.ts argues
 * for the same smooth cell.
 */
import ort from 'onnxruntime-node';
import type onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { runGraph } from '../../src/session.js';
import { randomData, tiny } from '../helpers.js';
import { attr, f32, floatTensor, modelBytes, node } from './helpers.js';

const [B, T, F, H] = [2, 4, 3, 5];
const graph = (name: string, g: onnxProto.onnx.IGraphProto): onnxProto.onnx.IAttributeProto => ({ name, type: 5, g });
const values = (n: number, seed: number, scale: number) => Array.from(randomData(n, seed, -scale, scale));

/** h' = tanh(x W + r V + h U); outputs h' each pass and x W. x is [B, T, F] scanned along 1, r [T, B, F] reversed along 0. */
function model(): Uint8Array {
  const body: onnxProto.onnx.IGraphProto = {
    name: 'cell',
    input: [f32('h', [B, H]), f32('x_t', [B, F]), f32('r_t', [B, F])],
    node: [
      node('MatMul', ['x_t', 'W'], ['xw']),
      node('MatMul', ['r_t', 'V'], ['rv']),
      node('MatMul', ['h', 'U'], ['hu']),
      node('Add', ['xw', 'rv'], ['s0']),
      node('Add', ['s0', 'hu'], ['s1']),
      node('Tanh', ['s1'], ['h_next']),
      node('Identity', ['h_next'], ['h_out']),
    ],
    output: [f32('h_next', [B, H]), f32('h_out', [B, H]), f32('xw', [B, H])],
  };
  return modelBytes({
    opset: 16,
    nodes: [
      node(
        'Scan',
        ['h0', 'x', 'r'],
        ['h_last', 'hs', 'xws'],
        [graph('body', body), attr.i('num_scan_inputs', 2), attr.ints('scan_input_axes', [1, 0]), attr.ints('scan_input_directions', [0, 1]), attr.ints('scan_output_axes', [0, 1]), attr.ints('scan_output_directions', [1, 0])],
        { name: 'rnn' },
      ),
      node('ReduceSum', ['hs'], ['loss'], [attr.i('keepdims', 0)]),
    ],
    inputs: [f32('x', [B, T, F]), f32('r', [T, B, F])],
    outputs: [f32('h_last', [B, H]), f32('hs', [T, B, H]), f32('xws', [B, T, H]), f32('loss', [])],
    initializers: [floatTensor('h0', [B, H], values(B * H, 1, 0.5)), floatTensor('W', [F, H], values(F * H, 2, 0.6)), floatTensor('V', [F, H], values(F * H, 3, 0.6)), floatTensor('U', [H, H], values(H * H, 4, 0.4))],
  });
}

describe('Scan', () => {
  it('runs as onnxruntime does: scan axes, a reversed input, a reversed output and one moved to axis 1', async () => {
    const bytes = model();
    const registry = await createRegistry([]);
    const decl = parseOnnx(bytes).graph;
    const x = randomData(B * T * F, 5, -1, 1);
    const r = randomData(T * B * F, 6, -1, 1);
    const ours = await runGraph({ graph: buildGraph(decl, registry), registry, device: tiny({ tilesPerIpu: 4 }), inputs: { x, r }, outputs: ['h_last', 'hs', 'xws'] });
    const s = await ort.InferenceSession.create(bytes);
    const want = await s.run({ x: new ort.Tensor('float32', x, [B, T, F]), r: new ort.Tensor('float32', r, [T, B, F]) });
    await s.release();
    for (const o of ['h_last', 'hs', 'xws']) {
      const got = ours.outputs.get(o)! as Float32Array;
      const ref = want[o].data as Float32Array;
      expect(got.length, o).toBe(ref.length);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i]), `${o}[${i}]: ours ${got[i]}, onnxruntime ${ref[i]}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(ref[i]));
    }
  });

  it('gradients through the Scan (its LoopGrad) match finite differences', async () => {
    const registry = await createRegistry([]);
    const { graph: decl } = parseOnnx(model());
    const data = { x: Float32Array.from(values(B * T * F, 7, 1)), r: Float32Array.from(values(T * B * F, 8, 1)) };
    decl.initializers.push(...decl.inputs.map((i) => ({ ...i, init: { kind: 'data' as const, data: data[i.name as keyof typeof data] }, trainable: true })));
    decl.inputs = [];
    const results = await gradcheck(buildGraph(decl, registry), 'loss', ['W', 'U', 'h0', 'x', 'r'], { registry, device: tiny() });
    for (const g of results) expect(g.maxAbsError, `d/d${g.tensor}: element ${g.worst.index}: analytic ${g.worst.analytic}, numeric ${g.worst.numeric}`).toBeLessThan(2e-4);
  });
});
