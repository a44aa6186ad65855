/**
 * The ONNX project's backend node tests (../shared/conformance/onnx-node):
 * every case tilesim supports runs on the simulator and must match the
 * expected outputs with the ONNX runner's tolerances (rtol 1e-3, atol 1e-7).
 * Cases whose ops are not registered yet are counted as unsupported; as ops
 * land they are picked up with no change here. Every case named in
 * floor.json must pass, by name, so a case that stops passing is never hidden
 * by another that starts to; the list only ever grows (UPDATE_FLOOR=1 adds
 * newly passing cases).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { createRegistry } from '../../src/model/modules.js';
import { knowsOp, MAX_KNOWN_OPSET, schemaVersion } from '../../src/onnx/versions.js';
import { checkFloor, floor, suiteDir } from './paths.js';
import { report, runSuite } from './runner.js';

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

describe('ONNX backend node tests (onnx-node)', () => {
  it('every supported case passes, and every case on the committed floor', async () => {
    const results = await runSuite(suiteDir('onnx-node'), registry);
    console.log(report('onnx-node', results));
    expect(results.length).toBe(784);
    expect(results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.reason}`)).toEqual([]);
    const { lost, gained } = checkFloor('onnx-node', results.filter((r) => r.status === 'passed').map((r) => r.name));
    if (gained.length > 0) console.log(`passing beyond floor.json (UPDATE_FLOOR=1 adds them): ${gained.join(', ')}`);
    const why = new Map(results.map((r) => [r.name, `${r.status}${r.reason ? `: ${r.reason}` : ''}`]));
    expect(lost.map((n) => `${n} (now ${why.get(n) ?? 'missing from the suite'})`), 'cases on floor.json that no longer pass').toEqual([]);
  });

  it('the floor check names a case that stopped passing, even when another started to', () => {
    const [first, ...rest] = floor('onnx-node');
    const { lost, gained } = checkFloor('onnx-node', [...rest, 'test_not_on_the_floor'], false);
    expect(lost).toEqual([first]);
    expect(gained).toEqual(['test_not_on_the_floor']);
  });

  it("the importer's table of op versions agrees with the opsets ONNX wrote its node tests at", () => {
    // ONNX writes each single-op test at the op's newest version: the table must know that version.
    const dir = suiteDir('onnx-node');
    const newest = new Map<string, number>();
    for (const d of readdirSync(dir)) {
      if (d.includes('expanded')) continue;
      const m = onnxProto.onnx.ModelProto.decode(readFileSync(path.join(dir, d, 'model.onnx')));
      if (m.graph?.node?.length !== 1) continue;
      const op = m.graph.node[0].opType!;
      newest.set(op, Math.max(newest.get(op) ?? 0, Number(m.opsetImport[0].version)));
    }
    const checked: string[] = [];
    for (const [op, v] of newest) {
      if (!knowsOp(op) || v > MAX_KNOWN_OPSET) continue;
      expect(schemaVersion(op, MAX_KNOWN_OPSET), `newest version of ${op}`).toBe(v);
      checked.push(op);
    }
    expect(checked.length).toBeGreaterThan(100);
  });
});
