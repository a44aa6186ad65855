/**
 * Single PyTorch layers exported to ONNX with their weights
 * (../shared/conformance/onnx-pytorch-converted, opset 6): every case whose
 * ops tilesim supports runs and must match its expected output (rtol 1e-3,
 * atol 1e-7). The number passed must reach floor.json, which only grows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { createRegistry } from '../../src/model/modules.js';
import { floor, suiteDir } from './paths.js';
import { report, runSuite } from './runner.js';

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

describe('PyTorch-converted layers (onnx-pytorch-converted)', () => {
  it('every supported layer matches its output, and at least the committed floor', async () => {
    const results = await runSuite(suiteDir('onnx-pytorch-converted'), registry);
    console.log(report('onnx-pytorch-converted', results));
    expect(results.length).toBe(9);
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.reason}`)).toEqual([]);
    const passed = results.filter((r) => r.status === 'passed').length;
    expect(passed, 'layers passed (floor.json: raise the floor when more pass, never lower it)').toBeGreaterThanOrEqual(floor('onnx-pytorch-converted'));
  });
});
