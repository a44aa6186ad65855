/**
 * Golden cycle counts of a few fixed programs: totals, per step, per op and
 * per compute set. The cycle model is deterministic, so any change here is a
 * change of the model or the lowering: update the goldens in the same commit
 * (UPDATE_GOLDENS=1 npx vitest run test/cycles/golden.test.ts) and say why in
 * the commit message.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig, loadConfigText } from '../../src/config/load.js';
import type { RunConfig } from '../../src/config/types.js';
import { compile, run } from '../../src/session.js';
import { profileTables } from '../../src/report/summary.js';
import { addPhase, emptyTotals } from '../../sim/profile.js';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';

const GOLDENS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'goldens');

/** fp16 matmul + bias + ReLU forward on a 64-tile Mk2: the AMP planner, broadcast and fp16 casts at scale. */
const FP16_MK2 = `
name: fp16-mlp-mk2
device: {preset: mk2, tiles: 64}
model:
  graph:
    inputs: {x: {shape: [256, 512], dtype: float16}}
    initializers:
      w: {shape: [512, 384], dtype: float16, init: {normal: {std: 0.05, seed: 1}}}
      b: {shape: [384], dtype: float16, init: {constant: 0.1}}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [h]}
      - {op: Add, inputs: [h, b], outputs: [hb]}
      - {op: Relu, inputs: [hb], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
`;

const PROGRAMS: { name: string; config: () => RunConfig }[] = [
  { name: 'leaky-relu-train', config: () => loadConfig(EXAMPLE_CONFIG, { steps: 2, numerics: false }) },
  { name: 'mlp-adam', config: () => loadConfig(path.join(ROOT, 'configs/examples/mlp-adam.yaml'), { steps: 2, numerics: false }) },
  { name: 'fp16-mlp-mk2', config: () => loadConfigText(FP16_MK2, path.join(ROOT, 'test/cycles/fp16-mlp-mk2.yaml'), { steps: 2, numerics: false }) },
];

describe('cycle goldens', () => {
  for (const p of PROGRAMS) {
    it(`${p.name}: totals, per step, per op and per compute set`, async () => {
      const compiled = await compile(p.config());
      const r = await run(compiled, { workers: 1, numerics: false, steps: 2 });
      const totals = emptyTotals();
      for (const ph of r.phases) addPhase(totals, ph);
      const tables = profileTables(r);
      const computeSets: Record<string, number> = {};
      for (const ph of r.phases) if (ph.kind === 'compute' && ph.step === 0) computeSets[ph.name] = ph.cycles;
      const actual = {
        totals,
        steps: r.steps.map((s) => s.cycles),
        ops: Object.fromEntries(tables.ops.map((o) => [o.name, { compute: o.compute, exchange: o.exchange, sync: o.sync }])),
        computeSets,
        maxTileBytes: Math.max(...compiled.program.tileBytes),
      };
      const file = path.join(GOLDENS, `${p.name}.json`);
      if (process.env.UPDATE_GOLDENS) writeFileSync(file, JSON.stringify(actual, null, 2) + '\n');
      // A missing golden fails: writing it here would make the test pass against whatever the code gives today.
      expect(existsSync(file), `no golden ${path.relative(ROOT, file)}: write it with UPDATE_GOLDENS=1 npx vitest run test/cycles/golden.test.ts and commit it with the reason`).toBe(true);
      expect(actual).toEqual(JSON.parse(readFileSync(file, 'utf8')));
      // Every step of a static program costs the same.
      expect(actual.steps[0]).toBe(actual.steps[1]);
    });
  }
});
