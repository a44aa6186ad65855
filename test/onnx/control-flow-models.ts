/** The keyword-spotting model with control flow of control-flow-model.test.ts, written with onnx-proto. */
import type onnxProto from 'onnx-proto';
import { randomData } from '../helpers.js';
import { attr, DT, f32, floatTensor, int64Tensor, modelBytes, node, valueInfo } from './helpers.js';

export const T = 5;
export const F = 8;
export const H = 16;
const C = 4;
const graph = (name: string, g: onnxProto.onnx.IGraphProto): onnxProto.onnx.IAttributeProto => ({ name, type: 5, g });
export const rounded = (n: number, seed: number, scale: number) => Array.from(randomData(n, seed, -scale, scale));

export function model(): Uint8Array {
  const gainIf = node(
    'If',
    ['late'],
    ['xg'],
    [
      graph('then_branch', { name: 'gain', node: [node('Mul', ['xt', 'gain'], ['xg_then'])], output: [f32('xg_then', [1, F])] }),
      graph('else_branch', { name: 'pass', node: [node('Identity', ['xt'], ['xg_else'])], output: [f32('xg_else', [1, F])] }),
    ],
    { name: 'frame_gain' },
  );
  const body: onnxProto.onnx.IGraphProto = {
    name: 'rnn_step',
    input: [valueInfo('t', DT.INT64, []), valueInfo('go', DT.BOOL, []), f32('h', [1, H])],
    node: [
      node('Identity', ['go'], ['go_out']),
      node('Gather', ['feats', 't'], ['frame'], [attr.i('axis', 0)]),
      node('Unsqueeze', ['frame', 'axis0'], ['xt']),
      node('Greater', ['t', 'one_i64'], ['late']),
      gainIf,
      node('MatMul', ['xg', 'Wx'], ['xw']),
      node('MatMul', ['h', 'Wh'], ['hw']),
      node('Add', ['xw', 'hw'], ['s0']),
      node('Add', ['s0', 'b'], ['s1']),
      node('Tanh', ['s1'], ['h_next']),
      node('Identity', ['h_next'], ['h_scan']),
    ],
    output: [valueInfo('go_out', DT.BOOL, []), f32('h_next', [1, H]), f32('h_scan', [1, H])],
  };
  const head = (name: string, w: string, act: string) =>
    graph(name, { name, node: [node('MatMul', ['h_last', w], [`${name}_z`]), node(act, [`${name}_z`], [`${name}_y`])], output: [f32(`${name}_y`, [1, C])] });
  return modelBytes({
    nodes: [
      node('Loop', ['T', 'true', 'h0'], ['h_last', 'states'], [graph('body', body)], { name: 'encoder' }),
      node('ReduceSumSquare', ['feats'], ['energy'], [attr.i('keepdims', 0)]),
      node('Greater', ['energy', 'threshold'], ['speech']),
      node('If', ['speech'], ['scores'], [head('then_branch', 'Wcls', 'Softmax'), head('else_branch', 'Wdet', 'Sigmoid')], { name: 'head' }),
    ],
    inputs: [f32('feats', [T, F]), f32('h0', [1, H])],
    outputs: [f32('scores', [1, C]), f32('states', [T, 1, H]), f32('h_last', [1, H])],
    initializers: [
      int64Tensor('T', [], [T]),
      { name: 'true', dims: [], dataType: DT.BOOL, int32Data: [1] },
      int64Tensor('axis0', [1], [0]),
      int64Tensor('one_i64', [], [1]),
      floatTensor('gain', [], [0.5]),
      floatTensor('Wx', [F, H], rounded(F * H, 1, 0.4)),
      floatTensor('Wh', [H, H], rounded(H * H, 2, 0.3)),
      floatTensor('b', [H], rounded(H, 3, 0.1)),
      floatTensor('Wcls', [H, C], rounded(H * C, 4, 0.5)),
      floatTensor('Wdet', [H, C], rounded(H * C, 5, 0.5)),
      floatTensor('threshold', [], [T * F * 0.3]),
    ],
  });
}

