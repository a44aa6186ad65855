/**
 * The program view the report draws (src/report/program-view.ts) agrees with
 * the run it comes from: its rows' cycles add up to a step's, per-tile rows add
 * up to their program step's totals, and exchange bytes are the cost model's.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exchangeTraffic } from '../../sim/cost.js';
import { loadConfigText } from '../../src/config/load.js';
import { flattenBatch, keepProgramTiles, programView } from '../../src/report/program-view.js';
import { profileTables } from '../../src/report/summary.js';
import { compile, run, type RunResult } from '../../src/session.js';
import { ROOT } from '../helpers.js';
import { vertexList } from '../../sim/vertex-table.js';

const MLP = path.join(ROOT, 'configs/examples/mlp-adam.yaml');

async function runMlp(batchesPerStep: number, steps = 2): Promise<RunResult> {
  const text = readFileSync(MLP, 'utf8').replace('  steps: 30', `  steps: ${steps}\n  batchesPerStep: ${batchesPerStep}`);
  return run(await compile(loadConfigText(text, MLP, { steps })), { workers: 1, numerics: false, steps });
}

describe('programView', () => {
  for (const batches of [1, 3]) {
    it(`accounts for every cycle of a step (batchesPerStep ${batches})`, async () => {
      const r = await runMlp(batches);
      expect(r.compiled.config.train?.batchesPerStep).toBe(batches);
      const v = programView(r.compiled.program, r.phases);
      const { leaves } = flattenBatch(r.compiled.program);
      expect(v.rows).toHaveLength(leaves.length);
      const stepCycles = v.rows.reduce((a, row) => a + row.cycles + row.syncCycles, 0);
      expect(stepCycles).toBe(r.steps[0].cycles);
      for (const row of v.rows.filter((x) => x.kind === 'compute')) {
        const phases = r.phases.filter((p) => p.step === 0 && p.name === row.name);
        expect(row.cycles).toBe(phases.reduce((a, p) => a + p.cycles, 0));
        expect(row.maxTileCycles * phases.length).toBe(row.cycles); // a compute set lasts as long as its busiest tile
      }
    });
  }

  it('gives per-tile rows that add up to their program step, and the cost model exchange bytes', async () => {
    const r = await runMlp(1);
    const p = r.compiled.program;
    const v = programView(p, r.phases);
    for (const row of v.rows) {
      const tiles = v.tiles.filter((t) => t.programStep === row.programStep);
      expect(tiles.length).toBe(row.tiles);
      expect(tiles.reduce((a, t) => a + t.vertices, 0)).toBe(row.vertices);
      expect(tiles.reduce((a, t) => a + t.regions, 0)).toBe(row.regions);
      if (row.kind === 'compute') {
        const cs = p.computeSets.find((c) => c.name === row.name)!;
        expect(row.vertices).toBe(cs.vertices.count);
        expect(new Set(vertexList(cs.vertices).map((x) => x.tile)).size).toBe(row.tiles);
        const busiest = tiles.find((t) => t.tile === row.busiestTile)!;
        expect(busiest.cycles).toBe(row.maxTileCycles);
      }
      if (row.kind === 'exchange') {
        const traffic = exchangeTraffic(p.exchanges.find((e) => e.name === row.name)!, p.device);
        expect(tiles.map((t) => [t.tile, t.sentBytes, t.receivedBytes])).toEqual(traffic.map((t) => [t.tile, t.sent, t.received]));
        expect(row.bytes).toBe(traffic.reduce((a, t) => a + t.received, 0));
      }
    }
    // tiles.csv's sent and received sum every exchange over every step.
    const tables = profileTables(r, v);
    const perStep = v.tiles.reduce((a, t) => a + t.sentBytes, 0);
    expect(perStep).toBeGreaterThan(0);
    expect(tables.tiles.reduce((a, t) => a + t.sentBytes, 0)).toBe(perStep * r.steps.length);
    expect(tables.tiles.map((t) => t.alwaysLive + t.temporaries + t.code + t.vertexState)).toEqual(tables.tiles.map((t) => t.bytes));
  });

  it('keeps whole program steps, the most expensive first, within a row budget', async () => {
    const r = await runMlp(1);
    const v = programView(r.compiled.program, r.phases);
    expect(keepProgramTiles(v.rows, v.tiles)).toEqual(v.tiles); // small programs keep everything
    const budget = Math.floor(v.tiles.length / 2);
    const kept = keepProgramTiles(v.rows, v.tiles, budget);
    expect(kept.length).toBeLessThanOrEqual(budget);
    expect(kept.length).toBeGreaterThan(0);
    const steps = new Set(kept.map((t) => t.programStep));
    for (const s of steps) expect(kept.filter((t) => t.programStep === s)).toEqual(v.tiles.filter((t) => t.programStep === s));
    const top = [...v.rows].sort((a, b) => b.cycles - a.cycles)[0];
    expect(steps.has(top.programStep)).toBe(true);
  });
});
