/**
 * Golden cycle counts of the example. The cycle model is deterministic, so
 * any change here is a change of the model or the lowering: update the
 * golden in the same commit (UPDATE_GOLDENS=1 npx vitest run test/cycles)
 * and say why in the commit message.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compile, run } from '../../src/session.js';
import { profileTables } from '../../src/report/summary.js';
import { addPhase, emptyTotals } from '../../sim/profile.js';
import { EXAMPLE_CONFIG } from '../helpers.js';

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'goldens/leaky-relu-train.json');

describe('cycle goldens', () => {
  it('leaky-relu-train on tiny: totals, per step, per op and per compute set', async () => {
    const config = loadConfig(EXAMPLE_CONFIG, { steps: 2, numerics: false });
    const compiled = await compile(config);
    const r = await run(compiled, { workers: 1, numerics: false, steps: 2 });
    const totals = emptyTotals();
    for (const p of r.phases) addPhase(totals, p);
    const tables = profileTables(r);
    const computeSets: Record<string, number> = {};
    for (const p of r.phases) if (p.kind === 'compute' && p.step === 0) computeSets[p.name] = p.cycles;
    const actual = {
      totals,
      steps: r.steps.map((s) => s.cycles),
      ops: Object.fromEntries(tables.ops.map((o) => [o.name, { compute: o.compute, exchange: o.exchange, sync: o.sync }])),
      computeSets,
    };
    if (process.env.UPDATE_GOLDENS || !existsSync(GOLDEN)) writeFileSync(GOLDEN, JSON.stringify(actual, null, 2) + '\n');
    expect(actual).toEqual(JSON.parse(readFileSync(GOLDEN, 'utf8')));
    // Every step of a static program costs the same.
    expect(actual.steps[0]).toBe(actual.steps[1]);
  });
});
