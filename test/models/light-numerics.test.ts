/**
 * Light models run with numerics on a full mk2 and compared with the output
 * the ONNX project ships (`<model>_output_0.pb`, from its reference
 * evaluator), with the conformance runner's tolerances (rtol 1e-3, atol 1e-7).
 *
 * What this can and cannot catch: the light models' weights are constants
 * (ConstantOfShape), so every class's logit is equal and the softmax output is
 * 1/1000 for any input; the input used for the file is not shipped, so ours is
 * random. The comparison checks that the whole forward pass (every conv, pool,
 * concat, shuffle and the softmax, with their exchanges) produces finite,
 * correctly normalised values of the right shape on the full chip; op-level
 * numerics are checked against onnxruntime in test/ops. The models run here
 * are those ending in a softmax whose numerics run takes seconds to a minute;
 * the larger ones are compiled only (light-compile.test.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkOnnxGraph, readOnnxFile } from '../../src/onnx/import.js';
import { decodeTensor } from '../../src/onnx/tensor.js';
import { runGraph } from '../../src/session.js';
import { Rng } from '../../src/util/random.js';
import { ATOL, RTOL } from '../conformance/runner.js';
import { suiteDir } from '../conformance/paths.js';

const RUN = ['light_squeezenet', 'light_shufflenet'];

describe('light models run with numerics and match the shipped output', () => {
  for (const name of RUN) {
    it(name, async () => {
      const dir = suiteDir('onnx-light');
      const registry = await createRegistry([]);
      const { graph: decl } = readOnnxFile(path.join(dir, `${name}.onnx`));
      checkOnnxGraph(decl, registry);
      const graph = buildGraph(decl, registry);
      const want = decodeTensor(onnxProto.onnx.TensorProto.decode(readFileSync(path.join(dir, `${name}_output_0.pb`))), `${name} output`);
      const input = decl.inputs[0];
      const x = new Float32Array(input.shape.reduce((a, b) => a * b, 1));
      const rng = new Rng(11);
      for (let i = 0; i < x.length; i++) x[i] = rng.uniform(0, 1);
      const { outputs } = await runGraph({ graph, registry, device: loadDevicePreset('mk2'), inputs: { [input.name]: x }, outputs: decl.outputs, workers: 2 });
      const ours = outputs.get(decl.outputs[0])!;
      expect(ours.length).toBe(want.data.length);
      expect(graph.tensor(decl.outputs[0]).info.shape).toEqual(want.shape);
      const bad: string[] = [];
      for (let k = 0; k < ours.length; k++) {
        const a = ours[k];
        const b = want.data[k];
        if (!(Math.abs(a - b) <= ATOL + RTOL * Math.abs(b))) bad.push(`[${k}] ours ${a}, expected ${b}`);
      }
      expect(bad.slice(0, 5), `${bad.length} of ${ours.length} outputs differ`).toEqual([]);
    });
  }
});
