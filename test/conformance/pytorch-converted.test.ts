/**
 * Single PyTorch layers exported to ONNX with their weights
 * (../shared/conformance/onnx-pytorch-converted, opset 6): every case whose
 * ops tilesim supports runs and must match its expected output (rtol 1e-3,
 * atol 1e-7). Every layer named in floor.json must pass; the list only grows.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkFloor, suiteDir } from './paths.js';
import { report, runSuite } from './runner.js';

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

describe('PyTorch-converted layers (onnx-pytorch-converted)', () => {
  it('every supported layer matches its output, and every layer on the committed floor', async () => {
    const results = await runSuite(suiteDir('onnx-pytorch-converted'), registry);
    console.log(report('onnx-pytorch-converted', results));
    expect(results.length).toBe(9);
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.reason}`)).toEqual([]);
    const { lost, gained } = checkFloor('onnx-pytorch-converted', results.filter((r) => r.status === 'passed').map((r) => r.name));
    if (gained.length > 0) console.log(`passing beyond floor.json (UPDATE_FLOOR=1 adds them): ${gained.join(', ')}`);
    const why = new Map(results.map((r) => [r.name, `${r.status}${r.reason ? `: ${r.reason}` : ''}`]));
    expect(lost.map((n) => `${n} (now ${why.get(n) ?? 'missing from the suite'})`), 'cases on floor.json that no longer pass').toEqual([]);
  });
});
