/**
 * A run with remote buffers reports its Streaming Memory cycles in every
 * table, not only in the run totals: profile/steps.csv and ops.csv carry a
 * streamingMemory column whose sums are the engine's streamingMemory phases,
 * and summary.json's op rows carry them too. Timing only: the cycles do not
 * depend on the data.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { profileCsvs } from '../../src/report/csv.js';
import { buildSummary, profileTables } from '../../src/report/summary.js';
import { compile, run } from '../../src/session.js';
import { ROOT } from '../helpers.js';

describe('Streaming Memory in the profile tables', () => {
  it('mlp-rts-offchip: steps and ops rows sum to the streamingMemory phases; the CSVs and summary ops carry them', async () => {
    const file = path.join(ROOT, 'configs/examples/mlp-rts-offchip.yaml');
    const steps = 2;
    const r = await run(await compile(loadConfigText(readFileSync(file, 'utf8'), file, { steps })), { workers: 1, numerics: false, steps });
    const remote = r.phases.filter((p) => p.kind === 'streamingMemory');
    expect(remote.length).toBeGreaterThan(0);
    const tables = profileTables(r);
    for (const row of tables.steps) {
      const want = remote.filter((p) => p.step === row.step && !p.overlapped).reduce((a, p) => a + p.cycles, 0);
      expect(row.streamingMemory, `step ${row.step}`).toBe(want);
      expect(row.cycles).toBe(row.compute + row.exchange + row.sync + row.streamCopy + want);
    }
    const byOp = tables.ops.reduce((a, o) => a + (o.streamingMemory ?? 0), 0);
    expect(byOp).toBe(remote.reduce((a, p) => a + p.cycles, 0));
    const csv = profileCsvs(tables);
    expect(csv.get('profile/steps.csv')!.split('\n')[0]).toBe('step,loss,cycles,compute,exchange,sync,streamCopy,streamingMemory');
    expect(csv.get('profile/ops.csv')!.split('\n')[0]).toBe('name,type,domain,compute,exchange,sync,streamingMemory,flops,memoryBytes');
    const s = buildSummary(r, tables, {}, 1);
    expect(s.ops.reduce((a, o) => a + (o.cycles.streamingMemory ?? 0), 0)).toBe(byOp);
  });
});
