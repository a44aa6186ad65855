/** configs/examples/mlp-onnx.yaml: an ONNX model built by a committed script, imported and trained. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compile, run } from '../../src/session.js';
import { makeMlpOnnx, MLP_ONNX } from '../../scripts/make-mlp-onnx.js';
import { ROOT } from '../helpers.js';

describe('the ONNX example', () => {
  it('configs/examples/mlp.onnx is what scripts/make-mlp-onnx.ts writes', () => {
    expect(MLP_ONNX).toBe(path.join(ROOT, 'configs/examples/mlp.onnx'));
    expect(Buffer.from(makeMlpOnnx()).equals(readFileSync(MLP_ONNX))).toBe(true);
  });

  it('mlp-onnx.yaml imports the model and trains it: the loss falls', async () => {
    const config = loadConfig(path.join(ROOT, 'configs/examples/mlp-onnx.yaml'));
    expect(config.model.onnx).toBe(MLP_ONNX);
    expect(config.train?.steps).toBe(20);
    const r = await run(await compile(config), { workers: 1, numerics: true, steps: config.steps! });
    const losses = r.steps.map((s) => s.loss!);
    expect(losses).toHaveLength(20);
    expect(losses[19]).toBeLessThan(0.6 * losses[0]);
    for (let i = 1; i < losses.length; i++) expect(losses[i]).toBeLessThan(losses[i - 1] + 1e-6);
  });
});
