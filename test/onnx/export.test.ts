/**
 * ONNX export: `train.saveModel` writes the trained forward graph as
 * model.onnx in the run folder; onnxruntime loads it and computes what the
 * simulator computes with the final weights.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { RunError } from '../../src/errors.js';
import { Graph } from '../../src/ir/graph.js';
import { Op } from '../../src/ir/op.js';
import { OpRegistry } from '../../src/ir/registry.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { decodeTensor } from '../../src/onnx/tensor.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run, TrainingSession } from '../../src/session.js';
import { attr, f32, floatTensor, int64Tensor, modelBytes, node, onnx, writeTemp } from './helpers.js';

const X = [
  [0.5, -1, 0.25],
  [1, 0.5, -0.5],
  [-0.75, 0.2, 1],
  [0.1, -0.3, 0.6],
];

/** y = (x @ w + b) * 0.5, a constant folded from a Constant node. */
const MODEL = modelBytes({
  opset: 14,
  inputs: [f32('x', [4, 3])],
  initializers: [floatTensor('w', [3, 2], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]), floatTensor('b', [2], [0.05, -0.05])],
  nodes: [
    node('MatMul', ['x', 'w'], ['h'], [], { name: 'fc' }),
    node('Add', ['h', 'b'], ['hb'], [], { name: 'bias' }),
    node('Constant', [], ['half'], [attr.f('value_float', 0.5)]),
    node('Mul', ['hb', 'half'], ['y'], [], { name: 'scale' }),
  ],
  outputs: [f32('y', [4, 2])],
});

function config(model: string, extra: string): string {
  return `model:\n  onnx: ${model}\ninputs:\n  x: {value: ${JSON.stringify(X)}}\n${extra}`;
}

async function ortRun(bytes: Uint8Array, x: Float32Array): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    return (await s.run({ x: new ort.Tensor('float32', x, [4, 3]) })).y.data as Float32Array;
  } finally {
    await s.release();
  }
}

describe('train.saveModel: model.onnx in the run folder', () => {
  it('writes the forward graph with the trained weights; onnxruntime agrees with the simulator on it', async () => {
    const dir = writeTemp({
      'model.onnx': MODEL,
      'train.yaml': config('model.onnx', 'train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.2}\n  steps: 3\n  saveModel: true\n'),
    });
    const cfg = loadConfig(path.join(dir, 'train.yaml'));
    const r = await run(await compile(cfg), { workers: 1, numerics: true, steps: 3 });
    expect(r.steps[2].loss!).toBeLessThan(r.steps[0].loss!);
    const out = path.join(dir, 'run');
    await writeRun(out, r, 1);
    const saved = readFileSync(path.join(out, 'model.onnx'));

    // Forward only: no loss, grad or optimizer ops; the folded constant is an initializer.
    const m = onnx.ModelProto.decode(saved);
    expect(m.graph!.node!.map((n) => [n.name, n.opType, n.domain])).toEqual([
      ['fc', 'MatMul', ''],
      ['bias', 'Add', ''],
      ['scale', 'Mul', ''],
    ]);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([['', 14]]);
    expect(m.graph!.input!.map((i) => i.name)).toEqual(['x']);
    expect(m.graph!.output!.map((o) => o.name)).toEqual(['y']);

    // The weights are the trained ones, not the initial ones.
    const inits = new Map(m.graph!.initializer!.map((t) => [t.name, Array.from(decodeTensor(t, t.name!).data)]));
    expect([...inits.keys()].sort()).toEqual(['b', 'half', 'w']);
    expect(inits.get('w')).toEqual(Array.from(r.weights.get('w')!));
    expect(inits.get('b')).toEqual(Array.from(r.weights.get('b')!));
    expect(inits.get('w')).not.toEqual(Array.from(Float32Array.of(0.1, -0.2, 0.3, 0.4, -0.5, 0.6)));
    expect(inits.get('half')).toEqual([0.5]);

    // onnxruntime on the saved model vs the simulator running it (the run's forward pass with the final weights).
    const x = Float32Array.from(X.flat());
    const ref = await ortRun(saved, x);
    const inferFile = path.join(dir, 'infer.yaml');
    writeFileSync(inferFile, config('run/model.onnx', ''));
    const inferred = await run(await compile(loadConfig(inferFile)), { workers: 1, numerics: true, steps: 1 });
    const ours = inferred.anchors.get('y')!.data;
    expect(ours.length).toBe(8);
    for (let i = 0; i < 8; i++) expect(Math.abs(ours[i] - ref[i])).toBeLessThan(1e-6);
    // ... and they are not the outputs of the untrained model.
    const before = await ortRun(MODEL, x);
    expect(Math.max(...Array.from(ref, (v, i) => Math.abs(v - before[i])))).toBeGreaterThan(1e-3);
  });

  it("writes a Gemm with transB (PyTorch's Linear), fused into MatMulT on import, back as Gemm; onnxruntime agrees", async () => {
    // y = x @ w^T + b with w stored [2, 3], as PyTorch exports nn.Linear.
    const gemm = modelBytes({
      opset: 13,
      inputs: [f32('x', [4, 3])],
      initializers: [floatTensor('w', [2, 3], [0.1, -0.2, 0.3, 0.4, -0.5, 0.6]), floatTensor('b', [2], [0.05, -0.05])],
      nodes: [node('Gemm', ['x', 'w', 'b'], ['y'], [attr.i('transB', 1)], { name: 'fc' })],
      outputs: [f32('y', [4, 2])],
    });
    const dir = writeTemp({
      'model.onnx': gemm,
      'train.yaml': config('model.onnx', 'train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.2}\n  steps: 2\n  saveModel: true\n'),
    });
    const r = await run(await compile(loadConfig(path.join(dir, 'train.yaml'))), { workers: 1, numerics: true, steps: 2 });
    await writeRun(path.join(dir, 'run'), r, 1);
    const saved = readFileSync(path.join(dir, 'run', 'model.onnx'));
    const m = onnx.ModelProto.decode(saved);
    expect(m.graph!.node!.map((n) => [n.opType, n.domain])).toEqual([
      ['Gemm', ''],
      ['Add', ''],
    ]);
    expect(m.graph!.node![0].attribute!.map((a) => [a.name, Number(a.i)])).toEqual([
      ['transA', 0],
      ['transB', 1],
    ]);
    const inits = new Map(m.graph!.initializer!.map((t) => [t.name, Array.from(decodeTensor(t, t.name!).data)]));
    expect(inits.get('w')).toEqual(Array.from(r.weights.get('w')!));
    const x = Float32Array.from(X.flat());
    const ref = await ortRun(saved, x);
    const w = r.weights.get('w')!;
    const b = r.weights.get('b')!;
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 2; j++) {
        const want = X[i][0] * w[j * 3] + X[i][1] * w[j * 3 + 1] + X[i][2] * w[j * 3 + 2] + b[j];
        expect(Math.abs(ref[i * 2 + j] - want)).toBeLessThan(1e-6);
      }
  });

  it('writes ConvTranspose (trained through its planned grads) back as ConvTranspose, its bias as Reshape + Add; onnxruntime agrees', async () => {
    const convT = (w: number[], b: number[]) =>
      modelBytes({
        opset: 13,
        inputs: [f32('x', [4, 3])],
        initializers: [int64Tensor('s', [4], [1, 1, 4, 3]), floatTensor('w', [1, 2, 2, 2], w), floatTensor('b', [2], b)],
        nodes: [
          node('Reshape', ['x', 's'], ['xr'], [], { name: 'r' }),
          node('ConvTranspose', ['xr', 'w', 'b'], ['y'], [attr.ints('strides', [2, 1]), attr.ints('pads', [0, 1, 0, 0]), attr.ints('output_padding', [1, 0])], { name: 'up' }),
        ],
        outputs: [f32('y', [1, 2, 9, 3])],
      });
    const dir = writeTemp({
      'model.onnx': convT([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8], [0.05, -0.05]),
      'train.yaml': config('model.onnx', 'train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.2}\n  steps: 2\n  saveModel: true\n'),
    });
    const r = await run(await compile(loadConfig(path.join(dir, 'train.yaml'))), { workers: 1, numerics: true, steps: 2 });
    await writeRun(path.join(dir, 'run'), r, 1);
    const saved = readFileSync(path.join(dir, 'run', 'model.onnx'));
    const m = onnx.ModelProto.decode(saved);
    expect(m.graph!.node!.map((n) => n.opType)).toEqual(['Reshape', 'ConvTranspose', 'Reshape', 'Add']);
    const w = Array.from(r.weights.get('w')!);
    expect(w).not.toEqual([0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8].map(Math.fround));
    const x = Float32Array.from(X.flat());
    const got = await ortRun(saved, x);
    const want = await ortRun(convT(w, Array.from(r.weights.get('b')!)), x);
    expect(got.length).toBe(54);
    for (let i = 0; i < got.length; i++) expect(Math.abs(got[i] - want[i])).toBeLessThan(1e-6);
  });

  it('writes a training-mode BatchNormalization back as one inference-form BatchNormalization holding the running statistics training made', async () => {
    // x [2, 2, 2, 2] -> Conv 1x1 (w [3, 2, 1, 1], b [3]) -> BatchNormalization(training_mode 1) -> y, and running_mean as a graph output.
    const [N, Ci, C, S, momentum] = [2, 2, 3, 4, 0.8];
    const xs = Array.from({ length: N * Ci * S }, (_, i) => Math.fround(Math.sin(1.7 * i + 0.3) * 1.5));
    const init = { w: [0.5, -0.25, 0.75, 0.5, -0.5, 1], cb: [0.1, -0.2, 0.3], scale: [1, 1.5, 0.5], bias: [0, 0.25, -0.5], mean: [0.1, 0, -0.1], var: [1, 0.5, 2] };
    const model = modelBytes({
      opset: 15,
      inputs: [f32('x', [N, Ci, 2, 2])],
      initializers: [
        floatTensor('w', [C, Ci, 1, 1], init.w),
        floatTensor('cb', [C], init.cb),
        ...(['scale', 'bias', 'mean', 'var'] as const).map((k) => floatTensor(k, [C], init[k])),
      ],
      nodes: [
        node('Conv', ['x', 'w', 'cb'], ['c'], [], { name: 'conv' }),
        node('BatchNormalization', ['c', 'scale', 'bias', 'mean', 'var'], ['y', 'running_mean', 'running_var'], [attr.i('training_mode', 1), attr.f('momentum', momentum), attr.f('epsilon', 1e-5)], { name: 'bn' }),
      ],
      outputs: [f32('y', [N, C, 2, 2]), f32('running_mean', [C])],
    });
    const nested = Array.from({ length: N }, (_, n) => Array.from({ length: Ci }, (_, i) => [0, 2].map((h) => xs.slice((n * Ci + i) * S + h, (n * Ci + i) * S + h + 2))));
    const yaml = (m: string, extra: string) => `model:\n  onnx: ${m}\ninputs:\n  x: {value: ${JSON.stringify(nested)}}\n${extra}`;
    const dir = writeTemp({ 'model.onnx': model, 'train.yaml': yaml('model.onnx', 'train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.1}\n  steps: 3\n  saveModel: true\n') });
    const cfg = () => loadConfig(path.join(dir, 'train.yaml'));
    const r = await run(await compile(cfg()), { workers: 1, numerics: true, steps: 3 });
    await writeRun(path.join(dir, 'run'), r, 1);
    const saved = readFileSync(path.join(dir, 'run', 'model.onnx'));

    // One BatchNormalization per original node, in inference form; running_mean as Identity of the statistic it updated.
    const m = onnx.ModelProto.decode(saved);
    expect(m.graph!.node!.map((n) => [n.name, n.opType, n.domain])).toEqual([
      ['conv', 'Conv', ''],
      ['bn', 'BatchNormalization', ''],
      ['bn/running_mean_update', 'Identity', ''],
    ]);
    const bnNode = m.graph!.node![1];
    expect(bnNode.input).toEqual(['c', 'scale', 'bias', 'mean', 'var']);
    expect(bnNode.output).toEqual(['y']);
    expect(bnNode.attribute!.map((a) => a.name).sort()).toEqual(['epsilon', 'momentum']);
    expect(m.graph!.node![2].input).toEqual(['mean']);

    // The host's running statistics, step by step from the weights each step starts with (a TrainingSession of the same
    // config; the run is deterministic, so it ends with the run's weights), in double precision.
    const rm = [...init.mean];
    const rv = [...init.var];
    const session = await TrainingSession.create(await compile(cfg()), { workers: 1, numerics: true });
    try {
      for (let step = 0; step < 3; step++) {
        const wts = session.readWeights();
        const [w, cb] = [wts.get('w')!, wts.get('cb')!];
        for (let o = 0; o < C; o++) {
          const vals: number[] = [];
          for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) vals.push(cb[o] + w[o * Ci] * xs[n * Ci * S + s] + w[o * Ci + 1] * xs[(n * Ci + 1) * S + s]);
          const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
          const variance = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length;
          rm[o] = rm[o] * momentum + mean * (1 - momentum);
          rv[o] = rv[o] * momentum + variance * (1 - momentum);
        }
        await session.runStep({ x: Float32Array.from(xs) });
      }
      for (const k of ['w', 'cb', 'scale', 'bias', 'mean', 'var']) expect(Array.from(session.readWeights().get(k)!), k).toEqual(Array.from(r.weights.get(k)!));
    } finally {
      await session.close();
    }

    // Its initializers are the trained weights and the running statistics (float32 sums vs the host's doubles: 1e-5).
    const inits = new Map(m.graph!.initializer!.map((t) => [t.name!, Array.from(decodeTensor(t, t.name!).data)]));
    expect([...inits.keys()].sort()).toEqual(['bias', 'cb', 'mean', 'scale', 'var', 'w']);
    for (const k of ['w', 'cb', 'scale', 'bias', 'mean', 'var']) expect(inits.get(k), k).toEqual(Array.from(r.weights.get(k)!));
    for (const k of ['w', 'scale', 'mean', 'var'] as const) expect(inits.get(k), `${k} trained`).not.toEqual(init[k].map(Math.fround));
    for (let o = 0; o < C; o++) {
      expect(Math.abs(inits.get('mean')![o] - rm[o]), `running mean ${o}`).toBeLessThan(1e-5);
      expect(Math.abs(inits.get('var')![o] - rv[o]), `running var ${o}`).toBeLessThan(1e-5);
    }

    // onnxruntime runs it, and an inference run of the saved model agrees (1e-5: |y| < 4, sums in other orders).
    const s = await ort.InferenceSession.create(saved);
    let ref: Record<string, ort.Tensor>;
    try {
      ref = await s.run({ x: new ort.Tensor('float32', Float32Array.from(xs), [N, Ci, 2, 2]) });
    } finally {
      await s.release();
    }
    expect(Array.from(ref.running_mean.data as Float32Array)).toEqual(inits.get('mean'));
    writeFileSync(path.join(dir, 'infer.yaml'), yaml('run/model.onnx', ''));
    const inferred = await run(await compile(loadConfig(path.join(dir, 'infer.yaml'))), { workers: 1, numerics: true, steps: 1 });
    const [ours, theirs] = [inferred.anchors.get('y')!.data, ref.y.data as Float32Array];
    expect(ours.length).toBe(N * C * S);
    for (let i = 0; i < ours.length; i++) expect(Math.abs(ours[i] - theirs[i]), `y[${i}]`).toBeLessThan(1e-5);
  });

  it('is not written unless the config asks', async () => {
    const dir = writeTemp({ 'model.onnx': MODEL, 'train.yaml': config('model.onnx', 'train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.2}\n') });
    const r = await run(await compile(loadConfig(path.join(dir, 'train.yaml'))), { workers: 1, numerics: true, steps: 1 });
    await writeRun(path.join(dir, 'run'), r, 1);
    expect(existsSync(path.join(dir, 'run', 'model.onnx'))).toBe(false);
  });

  it('keeps a loss written in the graph (it is part of the model), in its own domain', async () => {
    const dir = writeTemp({
      'train.yaml': `model:
  graph:
    inputs: {x: {shape: [4, 3]}}
    initializers: {w: {shape: [3, 2], init: {value: [[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]]}}}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [y]}
      - {op: L1, domain: ai.graphcore, inputs: [y], outputs: [l], attributes: {lambda: 0.5, reduction: sum}}
    outputs: [y, l]
inputs:
  x: {value: ${JSON.stringify(X)}}
train:
  loss: l
  optimizer: {type: sgd, lr: 0.1}
  saveModel: true
`,
    });
    const r = await run(await compile(loadConfig(path.join(dir, 'train.yaml'))), { workers: 1, numerics: true, steps: 1 });
    await writeRun(path.join(dir, 'run'), r, 1);
    const m = onnx.ModelProto.decode(readFileSync(path.join(dir, 'run', 'model.onnx')));
    expect(m.graph!.node!.map((n) => [n.opType, n.domain])).toEqual([
      ['MatMul', ''],
      ['L1', 'ai.graphcore'],
    ]);
    const l1 = m.graph!.node![1].attribute!;
    expect(l1.map((a) => [a.name, a.type])).toEqual([
      ['lambda', onnx.AttributeProto.AttributeType.FLOAT],
      ['reduction', onnx.AttributeProto.AttributeType.STRING],
    ]);
    expect(m.opsetImport.map((o) => [o.domain, Number(o.version)])).toEqual([
      ['', 13],
      ['ai.graphcore', 1],
    ]);
  });
});

describe('exportOnnx: what it refuses', () => {
  class Passthrough extends Op {
    setup(): void {
      this.setOutInfo(0, this.inInfo(0));
    }
  }
  const fakeRegistry = (defs: { type: string; version: number; attributes?: Record<string, { type: 'float'; default?: number }> }[]) => {
    const r = new OpRegistry();
    for (const d of defs) r.add({ id: { domain: 'ai.onnx', type: d.type, version: d.version }, attributes: d.attributes, create: () => new Passthrough({ domain: 'ai.onnx', type: d.type, version: d.version }, { name: d.type }), lower: () => undefined });
    return r;
  };
  const graphOf = (ops: { type: string; version: number }[]) => {
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape: [2] }, 'stream');
    let prev = 'x';
    ops.forEach((o, i) => {
      g.addOp(new Passthrough({ domain: 'ai.onnx', type: o.type, version: o.version }, { name: `${o.type}_${i}` }), [prev], [`t${i}`]);
      prev = `t${i}`;
    });
    return { g, out: prev };
  };

  it('an op that does not report a required attribute', () => {
    const { g, out } = graphOf([{ type: 'Scale', version: 1 }]);
    const registry = fakeRegistry([{ type: 'Scale', version: 1, attributes: { factor: { type: 'float' } } }]);
    expect(() => exportOnnx(g, { registry, outputs: [out] })).toThrow(RunError);
    expect(() => exportOnnx(g, { registry, outputs: [out] })).toThrow("cannot export op 'Scale_0' (ai.onnx::Scale:1): it does not report its required attribute 'factor'");
  });

  it('ops whose versions need different opsets', () => {
    const { g, out } = graphOf([
      { type: 'Softmax', version: 11 },
      { type: 'Relu', version: 14 },
    ]);
    const registry = fakeRegistry([
      { type: 'Softmax', version: 11 },
      { type: 'Relu', version: 14 },
    ]);
    expect(() => exportOnnx(g, { registry, outputs: [out] })).toThrow(
      "cannot export op 'Softmax_0' (ai.onnx::Softmax:11) at opset 14 (needed by other ops): at that opset it is Softmax-13, and Softmax-13 works along 'axis' alone",
    );
  });
});
