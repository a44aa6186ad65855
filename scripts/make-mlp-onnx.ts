/**
 * Builds configs/examples/mlp.onnx, the small model configs/examples/mlp-onnx.yaml
 * imports and trains: a two-layer perceptron and its regression error,
 *
 *   h    = LeakyRelu(x @ w1 + b1)          x [16, 8], w1 [8, 16], b1 [16]
 *   y    = h @ w2 + b2                     w2 [16, 4], b2 [4]        (graph output)
 *   diff = y + target * -1                 target [16, 4]             (graph output; the config's L1 loss)
 *
 * written with onnx-proto, weights from a fixed seed, so the file is the same
 * byte for byte on every machine (a test checks the committed file against
 * this script). LeakyRelu is the custom op of examples/custom-ops (domain
 * custom.ops, opset 1), which the config loads.
 *
 *   npx tsx scripts/make-mlp-onnx.ts [out.onnx]    (default configs/examples/mlp.onnx)
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import onnxProto from 'onnx-proto';
import { Rng } from '../src/util/random.js';

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

function tensor(name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: FLOAT, floatData: Float32Array.from(values) as unknown as number[] };
}

/** Normal(0, 1/sqrt(fanIn)) weights, seeded. */
function weights(rng: Rng, rows: number, cols: number): number[] {
  return Array.from({ length: rows * cols }, () => rng.normal(0, 1 / Math.sqrt(rows)));
}

function input(name: string, dims: number[]): onnxProto.onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } };
}

export function makeMlpOnnx(): Uint8Array {
  const rng = new Rng(2024);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'tilesim scripts/make-mlp-onnx.ts',
    opsetImport: [
      { domain: '', version: 18 },
      { domain: 'custom.ops', version: 1 },
    ],
    graph: {
      name: 'mlp',
      node: [
        { name: 'fc1', opType: 'MatMul', input: ['x', 'w1'], output: ['h0'] },
        { name: 'bias1', opType: 'Add', input: ['h0', 'b1'], output: ['h1'] },
        {
          name: 'act',
          opType: 'LeakyRelu',
          domain: 'custom.ops',
          input: ['h1'],
          output: ['h'],
          attribute: [{ name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.1 }],
        },
        { name: 'fc2', opType: 'MatMul', input: ['h', 'w2'], output: ['y0'] },
        { name: 'bias2', opType: 'Add', input: ['y0', 'b2'], output: ['y'] },
        { name: 'negate', opType: 'Mul', input: ['target', 'minus_one'], output: ['neg_target'] },
        { name: 'error', opType: 'Add', input: ['y', 'neg_target'], output: ['diff'] },
      ],
      initializer: [
        tensor('w1', [8, 16], weights(rng, 8, 16)),
        tensor('b1', [16], new Array(16).fill(0.1)),
        tensor('w2', [16, 4], weights(rng, 16, 4)),
        tensor('b2', [4], new Array(4).fill(0)),
      ],
      input: [input('x', [16, 8]), input('target', [16, 4])],
      output: [input('y', [16, 4]), input('diff', [16, 4])],
    },
  });
  // The -1 is a Constant node, which the importer folds into a constant initializer.
  model.graph!.node!.unshift({
    name: 'minus_one_const',
    opType: 'Constant',
    input: [],
    output: ['minus_one'],
    attribute: [{ name: 'value_float', type: onnx.AttributeProto.AttributeType.FLOAT, f: -1 }],
  });
  return onnx.ModelProto.encode(model).finish();
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MLP_ONNX = path.join(ROOT, 'configs/examples/mlp.onnx');

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const out = path.resolve(process.argv[2] ?? MLP_ONNX);
  writeFileSync(out, makeMlpOnnx());
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
}
