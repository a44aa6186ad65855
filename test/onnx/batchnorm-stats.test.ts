/**
 * BatchNormalization's running statistics import as constants (they have no gradient); its scale and bias stay trainable.
 * In training mode they stay variables: a training run writes the running statistics into them.
 */
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { parseOnnx } from '../../src/onnx/import.js';
import { attr, floatTensor, modelBytes, node, valueInfo } from './helpers.js';

const F = onnxProto.onnx.TensorProto.DataType.FLOAT;

describe('ONNX import of BatchNormalization', () => {
  it('makes mean and var constants, scale and bias trainable', () => {
    const bytes = modelBytes({
      nodes: [node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], ['y'])],
      inputs: [valueInfo('x', F, [1, 2, 3, 3])],
      outputs: [valueInfo('y', F)],
      initializers: [floatTensor('scale', [2], [1, 2]), floatTensor('bias', [2], [0, 1]), floatTensor('mean', [2], [0.5, -0.5]), floatTensor('var', [2], [1, 4])],
      opset: 15,
    });
    const { graph } = parseOnnx(bytes, { file: 'bn.onnx' });
    const trainable = Object.fromEntries(graph.initializers.map((i) => [i.name, i.trainable]));
    expect(trainable).toEqual({ scale: true, bias: true, mean: false, var: false });
  });

  it('keeps mean and var variables in training mode (training_mode = 1), which updates them', () => {
    const bytes = modelBytes({
      nodes: [node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], ['y', 'rm', 'rv'], [attr.i('training_mode', 1)])],
      inputs: [valueInfo('x', F, [2, 2, 3, 3])],
      outputs: [valueInfo('y', F)],
      initializers: [floatTensor('scale', [2], [1, 2]), floatTensor('bias', [2], [0, 1]), floatTensor('mean', [2], [0.5, -0.5]), floatTensor('var', [2], [1, 4])],
      opset: 15,
    });
    const { graph } = parseOnnx(bytes, { file: 'bn.onnx' });
    const trainable = Object.fromEntries(graph.initializers.map((i) => [i.name, i.trainable]));
    expect(trainable).toEqual({ scale: true, bias: true, mean: true, var: true });
  });

  it('keeps a statistic trainable when another op also reads it as a weight', () => {
    const bytes = modelBytes({
      nodes: [node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], ['y']), node('Add', ['y', 'mean'], ['z'])],
      inputs: [valueInfo('x', F, [1, 2])],
      outputs: [valueInfo('z', F)],
      initializers: [floatTensor('scale', [2], [1, 2]), floatTensor('bias', [2], [0, 1]), floatTensor('mean', [2], [0.5, -0.5]), floatTensor('var', [2], [1, 4])],
      opset: 15,
    });
    const { graph } = parseOnnx(bytes, { file: 'bn.onnx' });
    expect(graph.initializers.find((i) => i.name === 'mean')!.trainable).toBe(true);
    expect(graph.initializers.find((i) => i.name === 'var')!.trainable).toBe(false);
  });

  it('reads an opset-9 node with running outputs as training mode: upgraded to 15 with training_mode = 1, or kept a 9 when it uses saved_mean / saved_var', () => {
    const model = (outputs: string[]) =>
      modelBytes({
        nodes: [node('BatchNormalization', ['x', 'scale', 'bias', 'mean', 'var'], outputs)],
        inputs: [valueInfo('x', F, [2, 2, 3, 3])],
        outputs: [valueInfo('y', F)],
        initializers: [floatTensor('scale', [2], [1, 2]), floatTensor('bias', [2], [0, 1]), floatTensor('mean', [2], [0.5, -0.5]), floatTensor('var', [2], [1, 4])],
        opset: 12,
      });
    const three = parseOnnx(model(['y', 'rm', 'rv']), { file: 'bn.onnx' }).graph;
    expect(three.nodes[0].attributes.training_mode).toBe(1);
    expect(three.nodes[0].outputs).toEqual(['y', 'rm', 'rv']);
    expect(three.initializers.filter((i) => i.trainable).map((i) => i.name)).toEqual(['scale', 'bias', 'mean', 'var']);
    const five = parseOnnx(model(['y', 'rm', 'rv', 'sm', 'sv']), { file: 'bn.onnx' }).graph;
    expect(five.nodes[0].attributes.training_mode).toBeUndefined();
    expect(five.nodes[0].onnx?.schemaVersion).toBe(9);
    expect(five.initializers.filter((i) => i.trainable).map((i) => i.name)).toEqual(['scale', 'bias', 'mean', 'var']);
    const inference = parseOnnx(model(['y']), { file: 'bn.onnx' }).graph;
    expect(inference.nodes[0].attributes.training_mode).toBeUndefined();
    expect(inference.initializers.filter((i) => i.trainable).map((i) => i.name)).toEqual(['scale', 'bias']);
  });
});
