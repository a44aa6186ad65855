/**
 * Constant folding when the graph is built (src/model/fold.ts), and
 * initializers read at compile time in an inference build: graphs written as
 * torch.onnx.export writes them (shape arithmetic on Shape), with onnx-proto.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { FOLD_MAX_ELEMENTS } from '../../src/model/fold.js';
import { createRegistry } from '../../src/model/modules.js';
import { importOnnx } from '../../src/onnx/import.js';
import { runGraph } from '../../src/session.js';
import { roundHalf } from '../../sim/half.js';
import { randomData, tiny } from '../helpers.js';
import { attr, DT, f32, floatTensor, int64Tensor, modelBytes, node, valueInfo, type ModelSpec } from '../onnx/helpers.js';

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

const build = (spec: ModelSpec, inference = true) => buildGraph(importOnnx(modelBytes(spec), { file: 'fold.onnx', registry }).graph, registry, { inference });
const constant = (name: string, t: Parameters<typeof attr.t>[1]) => node('Constant', [], [name], [attr.t('value', t)]);
const dataOf = (g: ReturnType<typeof build>, id: string) => {
  const t = g.tensor(id);
  expect(t.kind, `${id} is a constant`).toBe('constant');
  return Array.from(t.data!);
};

describe('constant folding at import', () => {
  it('a PyTorch-style Shape -> Gather -> Unsqueeze -> Concat -> Reshape imports as a static graph', async () => {
    // x.view(x.size(0), -1), as torch.onnx.export writes it at opset 13.
    const spec: ModelSpec = {
      opset: 13,
      inputs: [f32('x', [2, 3, 4])],
      outputs: [f32('y', [2, 12])],
      nodes: [
        node('Shape', ['x'], ['s']),
        constant('zero', int64Tensor('zero', [], [0])),
        node('Gather', ['s', 'zero'], ['n'], [attr.i('axis', 0)]),
        constant('ax', int64Tensor('ax', [1], [0])),
        node('Unsqueeze', ['n', 'ax'], ['n1']),
        constant('rest', int64Tensor('rest', [1], [-1])),
        node('Concat', ['n1', 'rest'], ['shape'], [attr.i('axis', 0)]),
        node('Reshape', ['x', 'shape'], ['y']),
      ],
    };
    const g = build(spec);
    // Only the Reshape is left, reading the folded shape [2, -1].
    expect(g.ops.map((o) => o.opid.type)).toEqual(['Reshape']);
    expect(dataOf(g, 'shape')).toEqual([2, -1]);
    expect(g.tensor('y').info.shape).toEqual([2, 12]);
    // What folding made and only folded ops read is gone.
    for (const id of ['s', 'n', 'n1']) expect(g.hasTensor(id), id).toBe(false);
    const x = randomData(24, 1);
    const { outputs } = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    expect(Array.from(outputs.get('y')!)).toEqual(Array.from(x));
  });

  it('CastLike -> Pow: the exponent reaches Pow as a constant (ONNX expanded Gelu)', async () => {
    const spec: ModelSpec = {
      inputs: [f32('x', [5])],
      outputs: [f32('y', [5])],
      nodes: [constant('three', floatTensor('three', [], [3])), node('CastLike', ['three', 'x'], ['e']), node('Pow', ['x', 'e'], ['y'])],
    };
    const g = build(spec);
    expect(g.ops.map((o) => o.opid.type)).toEqual(['Pow']);
    const x = Float32Array.from([-1.5, -0.5, 0, 0.75, 2]);
    const { outputs } = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    // Pow with a constant exponent 3; float32 tolerance 1e-6 relative.
    Array.from(x).forEach((v, i) => expect(outputs.get('y')![i]).toBeCloseTo(v ** 3, 6));
  });

  it('evaluates int32 shape arithmetic the device ops do not take, as ONNX defines it', () => {
    const spec: ModelSpec = {
      inputs: [f32('x', [6, 4])],
      outputs: [f32('y', [3, 8])],
      nodes: [
        node('Shape', ['x'], ['s']), // [6, 4]
        constant('a', int64Tensor('a', [2], [-7, 7])),
        constant('two', int64Tensor('two', [], [2])),
        node('Div', ['a', 'two'], ['q']), // truncation toward zero: [-3, 3]
        node('Neg', ['q'], ['nq']), // [3, -3]
        node('Abs', ['nq'], ['aq']), // [3, 3]
        constant('zero', int64Tensor('zero', [1], [0])),
        node('Gather', ['aq', 'zero'], ['three'], [attr.i('axis', 0)]),
        node('Mul', ['s', 'two'], ['s2']), // [12, 8]
        node('Equal', ['s2', 's2'], ['eq']),
        node('Where', ['eq', 's2', 'a'], ['w']), // [12, 8]
        constant('one', int64Tensor('one', [1], [1])),
        constant('two1', int64Tensor('two1', [1], [2])),
        node('Slice', ['w', 'one', 'two1'], ['last']), // [8]
        node('Concat', ['three', 'last'], ['shape'], [attr.i('axis', 0)]),
        node('Reshape', ['x', 'shape'], ['y']),
      ],
    };
    const g = build(spec);
    expect(g.ops.map((o) => o.opid.type)).toEqual(['Reshape']);
    expect(dataOf(g, 'shape')).toEqual([3, 8]);
    expect(g.tensor('y').info.shape).toEqual([3, 8]);
  });

  it('Size, Range and ConstantOfShape of a computed shape are folded', () => {
    const spec: ModelSpec = {
      inputs: [f32('x', [2, 3])],
      outputs: [f32('c', [2, 3]), valueInfo('r', DT.INT64, [3]), valueInfo('n', DT.INT64, [])],
      nodes: [
        node('Shape', ['x'], ['s']),
        node('ConstantOfShape', ['s'], ['c'], [attr.t('value', floatTensor('v', [1], [0.25]))]),
        node('Size', ['x'], ['n']),
        constant('start', int64Tensor('start', [], [10])),
        constant('delta', int64Tensor('delta', [], [-3])),
        node('Range', ['start', 'n', 'delta'], ['r']), // 10, 7 (4 is not above the limit 6)
      ],
    };
    const g = build(spec);
    expect(g.ops).toEqual([]);
    expect(dataOf(g, 'c')).toEqual([0.25, 0.25, 0.25, 0.25, 0.25, 0.25]);
    expect(g.tensor('c').info).toEqual({ dtype: 'float32', shape: [2, 3] });
    expect(dataOf(g, 'n')).toEqual([6]);
    expect(dataOf(g, 'r')).toEqual([10, 7]);
  });

  it('a folded float16 result is rounded to float16, float to int32 casts truncate toward zero, and a cast to bool tests for nonzero', () => {
    const spec: ModelSpec = {
      inputs: [],
      outputs: [valueInfo('h', DT.FLOAT16, [2]), valueInfo('i', DT.INT64, [3]), valueInfo('b', DT.BOOL, [3])],
      nodes: [
        constant('v', floatTensor('v', [2], [0.1, 1 / 3])),
        node('Cast', ['v'], ['h'], [attr.i('to', DT.FLOAT16)]),
        constant('f', floatTensor('f', [3], [-2.7, 2.7, 0.5])),
        node('Cast', ['f'], ['i'], [attr.i('to', DT.INT64)]),
        node('Cast', ['i'], ['b'], [attr.i('to', DT.BOOL)]),
      ],
    };
    const g = build(spec);
    expect(g.tensor('h').info.dtype).toBe('float16');
    expect(dataOf(g, 'h')).toEqual([roundHalf(0.1), roundHalf(1 / 3)]);
    expect(roundHalf(0.1)).not.toBe(Math.fround(0.1)); // the rounding is visible
    expect(dataOf(g, 'i')).toEqual([-2, 2, 0]);
    expect(g.tensor('b').info.dtype).toBe('int32');
    expect(dataOf(g, 'b')).toEqual([1, 1, 0]);
  });

  it('an op whose output is larger than FOLD_MAX_ELEMENTS stays on the device', () => {
    const n = FOLD_MAX_ELEMENTS + 64;
    const spec = (rows: number, cols: number, values: number[]): ModelSpec => ({
      inputs: [f32('x', [cols, rows])],
      outputs: [f32('y')],
      nodes: [constant('w', floatTensor('w', [rows, cols], values)), node('Transpose', ['w'], ['wt']), node('Add', ['x', 'wt'], ['y'])],
    });
    expect(build(spec(n / 64, 64, Array.from({ length: n }, (_, i) => i % 7))).ops.map((o) => o.opid.type)).toEqual(['Transpose', 'Add']);
    const g = build(spec(2, 3, [0, 1, 2, 3, 4, 5]));
    expect(g.ops.map((o) => o.opid.type)).toEqual(['Add']);
    expect(dataOf(g, 'wt')).toEqual([0, 3, 1, 4, 2, 5]);
  });

  it('streamed or trainable inputs are not folded', () => {
    const spec: ModelSpec = {
      inputs: [f32('x', [2])],
      outputs: [f32('y'), f32('z')],
      initializers: [floatTensor('w', [2], [1, 2])],
      nodes: [node('Neg', ['w'], ['y']), node('Neg', ['x'], ['z'])],
    };
    expect(build(spec, false).ops.map((o) => o.opid.type)).toEqual(['Neg', 'Neg']);
    // In inference too: w stays a variable (writeWeights may change it), so folding leaves it alone.
    expect(build(spec, true).ops.map((o) => o.opid.type)).toEqual(['Neg', 'Neg']);
  });
});

describe('initializers in an inference build', () => {
  const pow: ModelSpec = {
    inputs: [f32('x', [4])],
    outputs: [f32('y')],
    initializers: [floatTensor('p', [], [2])],
    nodes: [node('Pow', ['x', 'p'], ['y'])],
  };

  it('a float initializer used as Pow exponent is read at compile time in inference (it stays a variable), and runs', async () => {
    const g = build(pow, true);
    expect(g.tensor('p').kind).toBe('variable');
    const x = Float32Array.from([-2, 0.5, 1, 3]);
    const { outputs } = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    expect(Array.from(outputs.get('y')!)).toEqual([4, 0.25, 1, 9]);
  });

  it('in a training build the same initializer is a trainable variable, and Pow refuses it as exponent', () => {
    expect(() => build(pow, false)).toThrow(/exponent 'p' must be a constant .*it is a trainable variable/);
  });
});
