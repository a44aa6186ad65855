/**
 * The ONNX importer: what a ModelProto becomes (GraphDecl), tensor storage
 * forms and dtypes, folding, opset upgrades, and every error path.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { setFloat16 } from '@petamoriken/float16';
import type { InitializerDecl } from '../../src/config/types.js';
import { OpRegistry, type OpDefinition } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkOnnxGraph, importOnnx, parseOnnx, readOnnxFile, unsupportedNodes } from '../../src/onnx/import.js';
import { runGraph } from '../../src/session.js';
import { LEAKY_MODULE, randomData, tiny } from '../helpers.js';
import { AT, attr, DT, f32, floatTensor, int64Tensor, modelBytes, node, userErrorOf, valueInfo, writeTemp } from './helpers.js';

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

const init = (inits: InitializerDecl[], name: string) => {
  const i = inits.find((x) => x.name === name);
  if (!i) throw new Error(`no initializer ${name}`);
  return i;
};
const data = (i: InitializerDecl) => (i.init.kind === 'data' ? Array.from(i.init.data) : undefined);

describe('parseOnnx: the graph declaration', () => {
  const bytes = modelBytes({
    opset: 13,
    inputs: [f32('x', [2, 3]), f32('w', [3, 4])], // w is also an initializer: an initializer
    initializers: [floatTensor('w', [3, 4], Array.from({ length: 12 }, (_, i) => i / 10)), int64Tensor('shape', [2], [4, 2])],
    nodes: [
      node('MatMul', ['x', 'w'], ['h']),
      node('Constant', [], ['c'], [attr.t('value', floatTensor('', [4], [1, 2, 3, 4]))]),
      node('Add', ['h', 'c'], ['y']),
      node('ConstantOfShape', ['shape'], ['z'], [attr.t('value', floatTensor('', [1], [0.5]))]),
    ],
    outputs: [f32('y'), f32('z')],
  });
  const { graph, info } = parseOnnx(bytes, { file: 'models/m.onnx' });

  it('streams the graph inputs that are not initializers', () => {
    expect(graph.inputs.map((i) => [i.name, i.shape, i.dtype])).toEqual([['x', [2, 3], 'float32']]);
  });

  it('makes float initializers trainable variables, folded constants constants, and drops shapes only folding used', () => {
    expect(graph.initializers.map((i) => [i.name, i.dtype, i.shape, i.trainable])).toEqual([
      ['w', 'float32', [3, 4], true],
      ['c', 'float32', [4], false],
      ['z', 'float32', [4, 2], false],
    ]);
    expect(data(init(graph.initializers, 'c'))).toEqual([1, 2, 3, 4]);
    expect(init(graph.initializers, 'z').init).toEqual({ kind: 'constant', value: 0.5 }); // a fill, not an array
    expect(info.folded).toBe(2);
  });

  it('keeps nodes in order with default names, the opset and where they came from', () => {
    expect(graph.nodes.map((n) => [n.name, n.op, n.inputs, n.outputs])).toEqual([
      ['MatMul_0', 'MatMul', ['x', 'w'], ['h']],
      ['Add_2', 'Add', ['h', 'c'], ['y']],
    ]);
    expect(graph.opset).toBe(13);
    expect(graph.outputs).toEqual(['y', 'z']);
    expect(graph.nodes[1].onnx).toMatchObject({ file: expect.stringContaining('m.onnx'), opset: 13, schemaVersion: 14 });
    expect(graph.nodes[1].version).toBe(14); // Add-13 upgraded to its opset-18 form, Add-14 (new types only)
  });

  it('builds and runs like onnxruntime', async () => {
    const x = randomData(6, 1);
    const ours = await runGraph({ graph: buildGraph(graph, registry), registry, device: tiny(), inputs: { x }, outputs: ['y'] });
    const session = await ort.InferenceSession.create(bytes);
    const ref = await session.run({ x: new ort.Tensor('float32', x, [2, 3]) });
    await session.release();
    const want = ref.y.data as Float32Array;
    const got = ours.outputs.get('y')!;
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], 5);
  });
});

describe('parseOnnx: tensor storage and element types', () => {
  const one = (t: Parameters<typeof modelBytes>[0]['initializers']) =>
    parseOnnx(modelBytes({ nodes: [node('Identity', ['t'], ['y'])], initializers: t, outputs: [f32('y')] })).graph.initializers[0];

  it('reads float raw_data and float_data', () => {
    const raw = new Uint8Array(8);
    new DataView(raw.buffer).setFloat32(0, 1.5, true);
    new DataView(raw.buffer).setFloat32(4, -2, true);
    expect(data(one([{ name: 't', dims: [2], dataType: DT.FLOAT, rawData: raw }]))).toEqual([1.5, -2]);
    expect(data(one([floatTensor('t', [2], [0.25, 3])]))).toEqual([0.25, 3]);
  });

  it('decodes float16 from raw_data and from int32_data (bit patterns)', () => {
    const raw = new Uint8Array(4);
    const v = new DataView(raw.buffer);
    setFloat16(v, 0, 0.5, true);
    setFloat16(v, 2, -3.25, true);
    const a = one([{ name: 't', dims: [2], dataType: DT.FLOAT16, rawData: raw }]);
    expect([a.dtype, data(a)]).toEqual(['float16', [0.5, -3.25]]);
    expect(data(one([{ name: 't', dims: [2], dataType: DT.FLOAT16, int32Data: [v.getUint16(0, true), v.getUint16(2, true)] }]))).toEqual([0.5, -3.25]);
  });

  it('reads int32, int64 (raw and typed) and bool as int32 constants', () => {
    const i32 = one([{ name: 't', dims: [3], dataType: DT.INT32, int32Data: [1, -2, 3] }]);
    expect([i32.dtype, i32.trainable, data(i32)]).toEqual(['int32', false, [1, -2, 3]]);
    expect(data(one([int64Tensor('t', [2], [-7, 2147483647])]))).toEqual([-7, 2147483647]);
    expect(data(one([{ name: 't', dims: [2], dataType: DT.INT64, int64Data: [5, -6] }]))).toEqual([5, -6]);
    expect(data(one([{ name: 't', dims: [3], dataType: DT.BOOL, rawData: Uint8Array.of(1, 0, 1) }]))).toEqual([1, 0, 1]);
  });

  it('clamps the INT64_MAX / INT64_MIN "to the end" sentinels to int32', () => {
    expect(data(one([int64Tensor('t', [2], [9223372036854775807n, -9223372036854775808n])]))).toEqual([2147483647, -2147483648]);
  });

  it('fails on an int64 value out of int32 range, naming the tensor and the value', () => {
    const m = userErrorOf(() => one([int64Tensor('big', [2], [1, 2147483648])]));
    expect(m).toContain("initializer 'big'");
    expect(m).toContain('int64 value 2147483648 (element 1) does not fit in int32');
  });

  it('fails on an unsupported element type, listing the supported ones', () => {
    const m = userErrorOf(() => one([{ name: 'd', dims: [1], dataType: DT.DOUBLE, doubleData: [1] }]));
    expect(m).toContain("initializer 'd': element type DOUBLE is not supported (supported: float32, float16, int32, int64 (read as int32), bool (read as int32))");
    const m2 = userErrorOf(() => parseOnnx(modelBytes({ inputs: [valueInfo('x', DT.UINT8, [2])], nodes: [node('Identity', ['x'], ['y'])], outputs: [f32('y')] })));
    expect(m2).toContain("graph input 'x' has element type UINT8, which is not supported (supported: float32, float16");
  });

  it('fails when the data does not match the shape', () => {
    expect(userErrorOf(() => one([floatTensor('t', [3], [1, 2])]))).toContain("initializer 't': holds 2 values, but its shape [3] needs 3");
  });

  it('reads external data relative to the model file', () => {
    const raw = new Uint8Array(12);
    new DataView(raw.buffer).setFloat32(4, 7, true);
    new DataView(raw.buffer).setFloat32(8, 8, true);
    const bytes = modelBytes({
      nodes: [node('Identity', ['t'], ['y'])],
      initializers: [
        { name: 't', dims: [2], dataType: DT.FLOAT, dataLocation: 1, externalData: [{ key: 'location', value: 'w.bin' }, { key: 'offset', value: '4' }, { key: 'length', value: '8' }] },
      ],
      outputs: [f32('y')],
    });
    const dir = writeTemp({ 'm.onnx': bytes, 'w.bin': raw });
    expect(data(readOnnxFile(path.join(dir, 'm.onnx')).graph.initializers[0])).toEqual([7, 8]);
    expect(userErrorOf(() => parseOnnx(bytes))).toContain('its data is in an external file (w.bin), but the model was not read from a file');
  });
});

describe('parseOnnx: errors', () => {
  it('asks for a concrete shape when an input has a symbolic dimension, naming the input', () => {
    const m = userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('tokens', ['batch', 8])], nodes: [node('Relu', ['tokens'], ['y'])], outputs: [f32('y')] }), { file: 'bert.onnx' }));
    expect(m).toContain("bert.onnx: graph input 'tokens' has the symbolic dimension 'batch' at axis 0; tilesim needs a concrete shape");
    expect(m).toContain('make_dynamic_shape_fixed');
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x')], nodes: [node('Relu', ['x'], ['y'])], outputs: [f32('y')] })))).toContain("graph input 'x' has no shape");
  });

  it('rejects bytes that are not an ONNX model, and missing or unreadable files', () => {
    expect(userErrorOf(() => parseOnnx(new TextEncoder().encode('model:\n  graph: {}\n'), { file: 'cfg.yaml' }))).toMatch(/^cfg\.yaml: not a valid ONNX model/);
    expect(userErrorOf(() => parseOnnx(new Uint8Array(0)))).toContain('not a valid ONNX model: it has no graph');
    const good = modelBytes({ nodes: [node('Relu', ['x'], ['y'])], inputs: [f32('x', [2])], outputs: [f32('y')] });
    expect(userErrorOf(() => parseOnnx(good.subarray(0, good.length - 5)))).toContain('not a valid ONNX model');
    const dir = writeTemp({});
    expect(userErrorOf(() => readOnnxFile(path.join(dir, 'nope.onnx')))).toMatch(/ONNX model not found: .*nope\.onnx/);
    mkdirSync(path.join(dir, 'folder.onnx'));
    expect(userErrorOf(() => readOnnxFile(path.join(dir, 'folder.onnx')))).toContain('is a directory, not a file');
  });

  it('rejects tensor and graph attributes outside Constant, naming the node', () => {
    const m = userErrorOf(() =>
      parseOnnx(modelBytes({ inputs: [f32('x', [2])], nodes: [node('Foo', ['x'], ['y'], [attr.t('table', floatTensor('', [1], [1]))], { name: 'foo1' })], outputs: [f32('y')] })),
    );
    expect(m).toContain("node 'foo1' (op type Foo, domain ai.onnx): attribute 'table' is a TENSOR, which is not supported");
  });

  it('takes ConstantOfShape whose shape is computed; it builds when folding makes the shape constant, and is refused when it is streamed', () => {
    const value = [attr.t('value', int64Tensor('v', [1], [7]))];
    const folded = importOnnx(modelBytes({ inputs: [f32('x', [2, 3])], nodes: [node('Shape', ['x'], ['s']), node('ConstantOfShape', ['s'], ['y'], value)], outputs: [valueInfo('y', DT.INT64)] }), { registry });
    expect(folded.graph.nodes[1].attributes).toEqual({ value: 7, value_type: 'int32' });
    const g = buildGraph(folded.graph, registry);
    expect(g.tensor('y').info).toEqual({ dtype: 'int32', shape: [2, 3] });
    expect(Array.from(g.tensor('y').data!)).toEqual([7, 7, 7, 7, 7, 7]);
    const streamed = importOnnx(modelBytes({ inputs: [valueInfo('s', DT.INT64, [2])], nodes: [node('ConstantOfShape', ['s'], ['y'])], outputs: [f32('y')] }), { registry });
    expect(userErrorOf(() => buildGraph(streamed.graph, registry))).toContain("node 'ConstantOfShape_0' (ConstantOfShape): the shape (input 0 's') must be a constant");
  });

  it('rejects opsets newer than it knows, and domains the model does not import', () => {
    expect(userErrorOf(() => parseOnnx(modelBytes({ opset: 26, inputs: [f32('x', [2])], nodes: [node('Relu', ['x'], ['y'])], outputs: [f32('y')] })))).toContain(
      "the model's default-domain opset 26 is newer than tilesim knows (up to 25)",
    );
    const m = userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [2])], nodes: [node('LeakyRelu', ['x'], ['y'], [], { domain: 'custom.ops' })], outputs: [f32('y')] })));
    expect(m).toContain("node 'LeakyRelu_0' (op type LeakyRelu, domain custom.ops) is in domain 'custom.ops', but the model imports no opset for that domain");
  });

  it('rejects nodes out of order, names defined twice and outputs nobody makes', () => {
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [2])], nodes: [node('Relu', ['h'], ['y']), node('Relu', ['x'], ['h'])], outputs: [f32('y')] })))).toContain(
      "node 'Relu_0' (op type Relu, domain ai.onnx) reads 'h', which is not defined before it",
    );
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [2])], nodes: [node('Relu', ['x'], ['x'])], outputs: [f32('x')] })))).toContain("tensor 'x' is defined twice");
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [2])], nodes: [node('Relu', ['x'], ['y'])], outputs: [f32('q')] })))).toContain(
      "graph output 'q' is not produced by any node, initializer or input",
    );
  });
});

describe('checkOnnxGraph: ops against the registry', () => {
  it('names an unsupported op with its node, type and domain, and lists the supported ops', () => {
    const bytes = modelBytes({
      inputs: [f32('x', [2, 2])],
      nodes: [node('MatMul', ['x', 'x'], ['h']), node('FancyNorm', ['h'], ['y'], [], { name: 'norm1' }), node('FancyNorm', ['y'], ['z'], [], { name: 'norm2' })],
      outputs: [f32('z')],
    });
    const m = userErrorOf(() => importOnnx(bytes, { registry, file: 'net.onnx' }));
    expect(m).toContain("net.onnx:1:1: node 'norm1' (op type FancyNorm, domain ai.onnx) is not supported: tilesim has no op ai.onnx::FancyNorm");
    expect(m).toContain('1 more node not supported (FancyNorm)');
    expect(m).toMatch(/supported ops: ai\.onnx: .*MatMul \([\d, ]+\)/);
    expect(m).toMatch(/ai\.graphcore: .*L1 \(1\)/);
    expect(m).not.toContain('MatMulLhsGrad'); // grad ops cannot be written in a graph
  });

  it('names a node whose attributes the op does not take, listing the ones it does', () => {
    const bytes = modelBytes({ inputs: [f32('x', [2, 2])], nodes: [node('MatMul', ['x', 'x'], ['y'], [attr.i('transA', 1)], { name: 'mm' })], outputs: [f32('y')] });
    const m = userErrorOf(() => importOnnx(bytes, { registry }));
    expect(m).toContain("node 'mm' (op type MatMul, domain ai.onnx) is not supported: unknown attribute 'transA'");
    expect(m).toContain('(it takes: no attributes)');
  });

  it('explains why an old node could not be upgraded to a version tilesim has', () => {
    const bytes = modelBytes({ opset: 6, inputs: [f32('a', [2, 3]), f32('b', [3])], nodes: [node('Add', ['a', 'b'], ['y'], [attr.i('broadcast', 1)])], outputs: [f32('y')] });
    const decl = parseOnnx(bytes).graph;
    expect(decl.nodes[0].version).toBeUndefined();
    const m = userErrorOf(() => checkOnnxGraph(decl, registry));
    expect(m).toMatch(/node 'Add_0' \(op type Add, domain ai\.onnx\) is not supported: Add at opset 6 is Add-6, and tilesim implements only Add-\d+/);
    expect(m).toContain("it uses the pre-opset-7 'broadcast' attribute");
  });

  it("runs an opset-6 Gemm (alpha, beta, C): its parts are pinned to their versions, not resolved at the model's opset; onnxruntime agrees", async () => {
    // onnxruntime has no Gemm-6: its reference is the same node at opset 9 (Gemm-9 is Gemm-6 with broadcast always on).
    const model = (opset: number) =>
      modelBytes({
        opset,
        inputs: [f32('a', [3, 4])],
        initializers: [floatTensor('b', [5, 4], Array.from(randomData(20, 3))), floatTensor('c', [5], Array.from(randomData(5, 4)))],
        nodes: [node('Gemm', ['a', 'b', 'c'], ['y'], [attr.f('alpha', 0.5), attr.f('beta', 2), attr.i('transB', 1), ...(opset < 7 ? [attr.i('broadcast', 1)] : [])])],
        outputs: [f32('y')],
      });
    const decl = parseOnnx(model(6)).graph;
    const a = randomData(12, 5);
    const ours = await runGraph({ graph: buildGraph(decl, registry), registry, device: tiny(), inputs: { a }, outputs: ['y'] });
    const session = await ort.InferenceSession.create(model(9));
    const ref = await session.run({ a: new ort.Tensor('float32', a, [3, 4]) });
    await session.release();
    const want = ref.y.data as Float32Array;
    const got = ours.outputs.get('y')!;
    // A dot of 4 products, then a scale and an add: a few fp32 ulps apart in another order.
    for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(want[i]));
  });

  it('refuses to run a node with an older implementation whose semantics differ', () => {
    const fake = new OpRegistry();
    const stub = (type: string, version: number): OpDefinition => ({
      id: { domain: 'ai.onnx', type, version },
      attributes: { axis: { type: 'int', default: 1 } },
      create: () => {
        throw new Error('not built in this test');
      },
      lower: () => undefined,
    });
    fake.add(stub('Softmax', 11));
    const decl = parseOnnx(modelBytes({ opset: 13, inputs: [f32('x', [2, 3])], nodes: [node('Softmax', ['x'], ['y'])], outputs: [f32('y')] })).graph;
    const [bad] = unsupportedNodes(decl, fake);
    expect(bad.reason).toContain("the node is Softmax-13, and tilesim's Softmax-11 differs: Softmax-13 works along 'axis' alone");
    fake.add(stub('Softmax', 13));
    expect(unsupportedNodes(decl, fake)).toEqual([]);
  });

  it('resolves custom-domain ops at the model\'s opset for that domain', async () => {
    const reg = await createRegistry([LEAKY_MODULE]);
    const bytes = modelBytes({
      domains: { 'custom.ops': 1 },
      inputs: [f32('x', [4])],
      nodes: [node('LeakyRelu', ['x'], ['y'], [attr.f('alpha', 0.25)], { domain: 'custom.ops' })],
      outputs: [f32('y')],
    });
    const { graph } = importOnnx(bytes, { registry: reg });
    expect(graph.nodes[0]).toMatchObject({ domain: 'custom.ops', version: 1, attributes: { alpha: 0.25 } });
    const r = await runGraph({ graph: buildGraph(graph, reg), registry: reg, device: tiny(), inputs: { x: Float32Array.of(-4, -1, 0, 2) }, outputs: ['y'] });
    expect(Array.from(r.outputs.get('y')!)).toEqual([-1, -0.25, 0, 2]);
  });
});

describe('opset upgrades', () => {
  const parse = (opset: number, nodes: Parameters<typeof modelBytes>[0]['nodes'], inputs = [f32('x', [2, 1, 3])], outputs = [f32('y')]) =>
    parseOnnx(modelBytes({ opset, inputs, nodes, outputs })).graph;

  it('moves attributes that became inputs into constant inputs (Unsqueeze-1 -> 13, ReduceMean-1 -> 18, Slice-1 -> 13)', () => {
    const g = parse(9, [
      node('Unsqueeze', ['x'], ['u'], [attr.ints('axes', [0])]),
      node('ReduceMean', ['u'], ['m'], [attr.ints('axes', [-1]), attr.i('keepdims', 0)]),
      node('Slice', ['m'], ['y'], [attr.ints('starts', [1]), { name: 'ends', type: AT.INTS, ints: [{ low: -1, high: 0x7fffffff, unsigned: false }] }, attr.ints('axes', [3])]),
    ]);
    const [u, m, s] = g.nodes;
    expect([u.version, u.inputs.length, u.attributes]).toEqual([13, 2, {}]);
    expect(data(init(g.initializers, u.inputs[1]))).toEqual([0]);
    expect([m.version, m.attributes]).toEqual([18, { keepdims: 0 }]);
    expect(data(init(g.initializers, m.inputs[1]))).toEqual([-1]);
    expect(s.version).toBe(13);
    expect(s.inputs.slice(1).map((n) => data(init(g.initializers, n)))).toEqual([[1], [2147483647], [3]]);
    expect(init(g.initializers, s.inputs[1]).trainable).toBe(false);
  });

  it('drops legacy attributes and fills old defaults (Concat-1, Dropout-1)', () => {
    const g = parse(3, [node('Concat', ['x', 'x'], ['c']), node('Dropout', ['c'], ['y'], [attr.i('is_test', 1), attr.f('ratio', 0.25)])]);
    expect(g.nodes[0]).toMatchObject({ version: 13, attributes: { axis: 1 } });
    expect(g.nodes[1]).toMatchObject({ version: 13, attributes: {} });
    expect(data(init(g.initializers, g.nodes[1].inputs[1]))).toEqual([0.25]);
  });

  it('upgrades Softmax-1 only when flattening at axis equals working along it (from the shapes the model states)', () => {
    const ok = parse(9, [node('Softmax', ['x'], ['y'])], [f32('x', [4, 10, 1, 1])]);
    expect(ok.nodes[0]).toMatchObject({ version: 13, attributes: { axis: 1 } });
    const no = parse(9, [node('Softmax', ['x'], ['y'])], [f32('x', [4, 10, 3])]);
    expect(no.nodes[0].version).toBeUndefined();
    expect(no.nodes[0].onnx?.upgradeRefused).toContain('flattens its input [4, 10, 3] to 2-D at axis 1, which differs from working along axis 1 alone');
  });

  it('leaves nodes of opsets 11 to 18 as they are when nothing but types changed', () => {
    const g = parse(18, [node('ReduceSum', ['x', 'axes'], ['y'])], [f32('x', [2, 1, 3]), valueInfo('axes', DT.INT64, [1])]);
    expect(g.nodes[0]).toMatchObject({ version: 13, inputs: ['x', 'axes'], onnx: { opset: 18, schemaVersion: 13 } });
  });
});
