/**
 * A realistic recurrent sequence classifier written as ONNX the way
 * torch.onnx.export writes one (embedding Gather, Transpose to time-major,
 * an LSTM over padded sequences with sequence_lens, Squeeze of the
 * direction axis, a bidirectional LSTM whose final states feed a Gemm
 * classifier, SoftmaxCrossEntropyLoss), run end to end through the normal
 * config and session path:
 *
 * - inference: logits and loss match onnxruntime on the same file
 *   (atol 1e-5, rtol 1e-4: two layers of six steps, float32, the op tests'
 *   tolerance);
 * - training: the gradients the session anchors match central finite
 *   differences of onnxruntime's loss (h = 1e-2; the float32 loss is ~1, so
 *   its rounding, 6e-8, divided by 2h is ~6e-6: tolerance 3e-5 + 2% of the
 *   value; the gradients checked are 4e-5 to 4e-2), and SGD steps lower the
 *   loss;
 * - the same model in float16 (weights, activations, loss) matches
 *   onnxruntime's float16 run (atol and rtol 4e-3: two layers rounding every
 *   op to float16) and trains with loss scaling;
 * - LSTM-1, GRU-1 and RNN-1 nodes of an opset-6 model import as their
 *   opset-14 form.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { compile, InferenceSession, runGraph, TrainingSession } from '../../src/session.js';
import { randomData, tiny } from '../helpers.js';
import { decodeHalf, encodeHalf } from '../../sim/half.js';
import { attr, DT, f32, floatTensor, int64Tensor, modelBytes, node, valueInfo, writeTemp } from './helpers.js';

const [B, S, V, E, H, C] = [4, 6, 12, 5, 6, 3];
const TOKENS = [3, 7, 1, 0, 11, 4, 9, 2, 2, 5, 0, 0, 6, 6, 10, 8, 1, 0, 4, 0, 0, 0, 0, 0];
const LENS = [6, 4, 5, 1];
const LABELS = [2, 0, 1, 1];

const WEIGHTS: Record<string, number[]> = {
  emb: [V, E],
  l1_W: [1, 4 * H, E],
  l1_R: [1, 4 * H, H],
  l1_B: [1, 8 * H],
  l2_W: [2, 4 * H, H],
  l2_R: [2, 4 * H, H],
  l2_B: [2, 8 * H],
  fc_W: [C, 2 * H],
  fc_b: [C],
};

function initialValues(): Record<string, Float32Array> {
  return Object.fromEntries(
    Object.entries(WEIGHTS).map(([name, shape], k) => [name, randomData(shape.reduce((a, b) => a * b, 1), 100 + k, -0.6, 0.6, 0)]),
  );
}

/** The classifier; `half`: float16 weights, activations, logits and loss. */
function model(weights: Record<string, Float32Array>, half = false): Uint8Array {
  const tensor = (name: string, shape: number[], v: Float32Array) =>
    half ? { name, dims: shape, dataType: DT.FLOAT16, int32Data: Array.from(encodeHalf(v)) } : floatTensor(name, shape, Array.from(v));
  const out = (name: string, dims: number[]) => valueInfo(name, half ? DT.FLOAT16 : DT.FLOAT, dims);
  return modelBytes({
    opset: 14,
    inputs: [valueInfo('tokens', DT.INT64, [B, S]), valueInfo('lens', DT.INT32, [B]), valueInfo('labels', DT.INT64, [B])],
    initializers: [
      ...Object.entries(WEIGHTS).map(([name, shape]) => tensor(name, shape, weights[name])),
      int64Tensor('axis1', [1], [1]),
      int64Tensor('feat_shape', [2], [B, 2 * H]),
    ],
    nodes: [
      node('Gather', ['emb', 'tokens'], ['e'], [], { name: 'embed' }),
      node('Transpose', ['e'], ['es'], [attr.ints('perm', [1, 0, 2])]),
      node('LSTM', ['es', 'l1_W', 'l1_R', 'l1_B', 'lens'], ['y1'], [attr.i('hidden_size', H)], { name: 'lstm1' }),
      node('Squeeze', ['y1', 'axis1'], ['s1']),
      node('LSTM', ['s1', 'l2_W', 'l2_R', 'l2_B'], ['', 'h2'], [attr.i('hidden_size', H), attr.s('direction', 'bidirectional')], { name: 'lstm2' }),
      node('Transpose', ['h2'], ['h2t'], [attr.ints('perm', [1, 0, 2])]),
      node('Reshape', ['h2t', 'feat_shape'], ['feat']),
      node('Gemm', ['feat', 'fc_W', 'fc_b'], ['logits'], [attr.i('transB', 1)], { name: 'classifier' }),
      node('SoftmaxCrossEntropyLoss', ['logits', 'labels'], ['loss']),
    ],
    outputs: [out('logits', [B, C]), out('loss', [])],
  });
}

async function runOrt(bytes: Uint8Array): Promise<{ logits: Float32Array; loss: number }> {
  const s = await ort.InferenceSession.create(bytes);
  try {
    const r = await s.run({
      tokens: new ort.Tensor('int64', BigInt64Array.from(TOKENS.map(BigInt)), [B, S]),
      lens: new ort.Tensor('int32', Int32Array.from(LENS), [B]),
      labels: new ort.Tensor('int64', BigInt64Array.from(LABELS.map(BigInt)), [B]),
    });
    const f = (d: unknown) => (d instanceof Uint16Array ? decodeHalf(d) : (d as Float32Array));
    return { logits: f(r.logits.data), loss: f(r.loss.data)[0] };
  } finally {
    await s.release();
  }
}

const rows = (v: number[], n: number) => JSON.stringify(Array.from({ length: v.length / n }, (_, i) => v.slice(i * n, (i + 1) * n)));

function config(extra: string, half = false): string {
  const dir = writeTemp({ 'kws.onnx': model(initialValues(), half) });
  const yaml =
    `name: lstm-classifier\ndevice: tiny\nmodel:\n  onnx: kws.onnx\n` +
    `inputs:\n  tokens: {value: ${rows(TOKENS, S)}}\n  lens: {value: ${JSON.stringify(LENS)}}\n  labels: {value: ${JSON.stringify(LABELS)}}\n` +
    extra;
  const file = path.join(dir, 'cfg.yaml');
  writeFileSync(file, yaml);
  return file;
}

describe('an LSTM sequence classifier from ONNX', () => {
  it('inference through the config and session matches onnxruntime', async () => {
    const ref = await runOrt(model(initialValues()));
    const s = await InferenceSession.create(await compile(loadConfig(config('anchors: {logits: final, loss: final}\n'))), { workers: 1, numerics: true });
    try {
      const r = await s.runStep();
      const logits = r.anchors.get('logits')!.data;
      expect(logits.length).toBe(B * C);
      for (let i = 0; i < B * C; i++) expect(Math.abs(logits[i] - ref.logits[i]), `logits[${i}]: ours ${logits[i]}, onnxruntime ${ref.logits[i]}`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(ref.logits[i]));
      const loss = r.anchors.get('loss')!.data[0];
      expect(Math.abs(loss - ref.loss)).toBeLessThanOrEqual(1e-5 + 1e-4 * ref.loss);
    } finally {
      await s.close();
    }
  });

  it('training: gradients match finite differences of onnxruntime, and SGD lowers the loss', async () => {
    const grads = ['emb', 'l1_W', 'l1_R', 'l1_B', 'l2_W', 'l2_R', 'l2_B', 'fc_W'];
    const anchors = grads.map((g) => `  Gradient___${g}: final\n`).join('');
    const cfg = config(`train:\n  loss: loss\n  optimizer: {type: sgd, lr: 0.5}\n  steps: 6\nanchors:\n${anchors}`);
    const s = await TrainingSession.create(await compile(loadConfig(cfg)), { workers: 1, numerics: true });
    const losses: number[] = [];
    let first: Map<string, { data: ArrayLike<number> }> | undefined;
    try {
      for (let k = 0; k < 6; k++) {
        const r = await s.runStep();
        losses.push(r.loss!);
        if (k === 0) first = r.anchors as Map<string, { data: ArrayLike<number> }>;
      }
    } finally {
      await s.close();
    }
    // The first step's gradients are at the initial weights.
    const w0 = initialValues();
    const h = 1e-2;
    for (const g of grads) {
      const analytic = first!.get(`Gradient___${g}`)!.data;
      const n = w0[g].length;
      // A few elements spread over the tensor.
      const picks = g === 'emb' ? [3 * E, 7 * E + 2, 0, 5 * E + 4, 11 * E + 1] : [0, Math.floor(n / 3), Math.floor(n / 2) + 1, n - 1];
      for (const i of picks) {
        const at = (d: number) => {
          const w = initialValues();
          w[g][i] = w0[g][i] + d;
          return runOrt(model(w)).then((r) => r.loss);
        };
        const numeric = ((await at(h)) - (await at(-h))) / (2 * h);
        expect(Math.abs(analytic[i] - numeric), `d loss / d ${g}[${i}]: ours ${analytic[i]}, finite differences ${numeric}`).toBeLessThanOrEqual(3e-5 + 0.02 * Math.abs(numeric));
      }
    }
    expect(losses[0]).toBeCloseTo((await runOrt(model(w0))).loss, 4);
    expect(losses[5]).toBeLessThan(losses[0]);
    for (let k = 1; k < 6; k++) expect(losses[k]).toBeLessThan(losses[k - 1]);
  });
});

describe('the classifier in float16', () => {
  it('matches onnxruntime and trains: the loss falls', async () => {
    const ref = await runOrt(model(initialValues(), true));
    const inf = await InferenceSession.create(await compile(loadConfig(config('anchors: {logits: final}\n', true))), { workers: 1, numerics: true });
    try {
      const bits = (await inf.runStep()).anchors.get('logits')!.data;
      // float16 anchors come back as their bits.
      expect(bits).toBeInstanceOf(Uint16Array);
      const logits = decodeHalf(bits as Uint16Array);
      // float16 through two LSTM layers and the head: 8 half ulps at 1.
      for (let i = 0; i < B * C; i++) expect(Math.abs(logits[i] - ref.logits[i]), `logits[${i}]: ours ${logits[i]}, onnxruntime ${ref.logits[i]}`).toBeLessThanOrEqual(4e-3 + 4e-3 * Math.abs(ref.logits[i]));
    } finally {
      await inf.close();
    }
    const s = await TrainingSession.create(await compile(loadConfig(config('train:\n  loss: loss\n  optimizer: {type: sgd, lr: 0.5}\n  lossScaling: 64\n', true))), { workers: 1, numerics: true });
    const losses: number[] = [];
    try {
      for (let k = 0; k < 6; k++) losses.push((await s.runStep()).loss!);
    } finally {
      await s.close();
    }
    expect(Math.abs(losses[0] - ref.loss)).toBeLessThanOrEqual(4e-3);
    expect(losses[5]).toBeLessThan(losses[0] - 0.05);
  });
});

describe('recurrent nodes of old opsets', () => {
  it('LSTM-1, GRU-1 and RNN-1 (output_sequence) import as their opset-14 form and run as onnxruntime runs that form', async () => {
    const [s, b, i, h] = [3, 2, 4, 3];
    const w = (name: string, shape: number[], seed: number) => floatTensor(name, shape, Array.from(randomData(shape.reduce((x, y) => x * y, 1), seed, -0.8, 0.8, 0)));
    const bytes = (opset: number) =>
      modelBytes({
        opset,
        inputs: [f32('x', [s, b, i])],
        initializers: [w('lw', [1, 4 * h, i], 1), w('lr', [1, 4 * h, h], 2), w('gw', [1, 3 * h, i], 3), w('gr', [1, 3 * h, h], 4), w('rw', [1, h, i], 5), w('rr', [1, h, h], 6)],
        nodes: [
          node('LSTM', ['x', 'lw', 'lr'], ['ly'], [attr.i('hidden_size', h), ...(opset < 7 ? [attr.i('output_sequence', 1)] : [])]),
          node('GRU', ['x', 'gw', 'gr'], ['gy'], [attr.i('hidden_size', h), ...(opset < 7 ? [attr.i('output_sequence', 1)] : [])]),
          node('RNN', ['x', 'rw', 'rr'], ['ry'], [attr.i('hidden_size', h), ...(opset < 7 ? [attr.i('output_sequence', 1)] : [])]),
        ],
        outputs: [f32('ly'), f32('gy'), f32('ry')],
      });
    const decl = parseOnnx(bytes(6)).graph;
    for (const n of decl.nodes) expect(n).toMatchObject({ version: 14, attributes: { hidden_size: h } });
    for (const n of decl.nodes) expect(n.attributes.output_sequence).toBeUndefined();
    const registry = await createRegistry([]);
    const x = randomData(s * b * i, 7, -1, 1, 0);
    const ours = await runGraph({ graph: buildGraph(decl, registry), registry, device: tiny(), inputs: { x }, outputs: ['ly', 'gy', 'ry'] });
    const sess = await ort.InferenceSession.create(bytes(14));
    const ref = await sess.run({ x: new ort.Tensor('float32', x, [s, b, i]) });
    await sess.release();
    for (const name of ['ly', 'gy', 'ry']) {
      const a = ours.outputs.get(name)!;
      const want = ref[name].data as Float32Array;
      expect(a.length).toBe(want.length);
      for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - want[k]), `${name}[${k}]`).toBeLessThanOrEqual(1e-5 + 1e-4 * Math.abs(want[k]));
    }
  });
});
