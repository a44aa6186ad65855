/**
 * Whole architectures (../shared/conformance/onnx-light: AlexNet, DenseNet-121,
 * Inception v1/v2, ResNet-50, ShuffleNet, SqueezeNet, VGG-19, ZFNet-512, at
 * opset 9, weights replaced by ConstantOfShape). What is true today, checked
 * per model:
 *
 * - it imports: one streamed input [1, 3, 224, 224], one output, the
 *   ConstantOfShape weights folded into constants;
 * - either some ops are missing, and the import check names the first one
 *   (printed: the missing ops per model), or every op resolves and the graph
 *   builds with the expected output's shape, or an op refuses it with a
 *   UserError (printed). Models above 30M weights (AlexNet, VGG-19,
 *   ZFNet-512) are not built here, to keep the test fast.
 *
 * Lowering the full-size models for mk2 and reporting their memory takes
 * minutes and GBs: test/models/light-compile.test.ts (`npm run test:models`).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { UserError } from '../../src/errors.js';
import type { OpRegistry } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkOnnxGraph, readOnnxFile, unsupportedNodes } from '../../src/onnx/import.js';
import { decodeTensor } from '../../src/onnx/tensor.js';
import { suiteDir } from './paths.js';

/** Models with more weights than this are not built here: building fills every weight (VGG-19: 144M, ~8 s). */
const BUILD_PARAM_LIMIT = 30e6;

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

describe('light models (onnx-light)', () => {
  it('each model imports; missing ops are named, and complete graphs build with the expected output shape', () => {
    const dir = suiteDir('onnx-light');
    const models = readdirSync(dir)
      .filter((f) => f.endsWith('.onnx'))
      .sort();
    expect(models).toHaveLength(9);
    const lines: string[] = [];
    for (const f of models) {
      const name = f.replace(/\.onnx$/, '');
      const { graph, info } = readOnnxFile(path.join(dir, f));
      const expected = decodeTensor(onnxProto.onnx.TensorProto.decode(readFileSync(path.join(dir, `${name}_output_0.pb`))), `${name} output`);
      expect(graph.inputs.map((i) => [i.shape, i.dtype]), name).toEqual([[[1, 3, 224, 224], 'float32']]);
      expect(graph.outputs, name).toHaveLength(1);
      expect(info.folded, `${name}: ConstantOfShape weights folded`).toBeGreaterThan(0);
      const head = `${name}: ${graph.nodes.length} nodes, ${graph.initializers.length} initializers`;
      const bad = unsupportedNodes(graph, registry);
      if (bad.length > 0) {
        const missing = [...new Set(bad.map((b) => b.op))];
        lines.push(`${head}; missing ops: ${missing.join(', ')}`);
        expect(() => checkOnnxGraph(graph, registry), name).toThrow(UserError);
        expect(() => checkOnnxGraph(graph, registry), name).toThrow(`op type ${bad[0].op}`);
        continue;
      }
      const params = graph.initializers.reduce((a, i) => a + i.shape.reduce((x, y) => x * y, 1), 0);
      if (params > BUILD_PARAM_LIMIT) {
        lines.push(`${head}; every op resolves; not built here: ${(params / 1e6).toFixed(1)}M weights (building allocates them all; this test stays fast)`);
        continue;
      }
      try {
        const g = buildGraph(graph, registry);
        const shape = g.tensor(graph.outputs[0]).info.shape;
        expect(shape, `${name} output shape`).toEqual(expected.shape);
        lines.push(`${head}; every op resolves; builds: ${g.ops.length} ops, output [${shape.join(', ')}] as expected`);
      } catch (e) {
        if (!(e instanceof UserError)) throw e;
        lines.push(`${head}; every op resolves; refused at build: ${e.message.split('\n')[0]}`);
      }
    }
    console.log(`onnx-light:\n  ${lines.join('\n  ')}`);
  });
});
