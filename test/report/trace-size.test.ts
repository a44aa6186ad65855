/**
 * trace.json scales to a full mk2 (issue 12): 5 steps of this MLP used to write
 * 114 MB (18 MB a step, half of it per-tile sync slices), which Perfetto cannot
 * load at 100 steps. With the default sampling (64 traced tiles) and syncs and
 * host copies drawn once per superstep, a step is ~290 KB.
 */
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { AUTO_TRACE_TILES, sampleTiles, type TraceEvent, type TraceMetadata } from '../../src/report/trace.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run, type RunResult } from '../../src/session.js';
import { MLP_MK2_YAML } from './mlp-mk2.js';

const STEPS = 3;
/**
 * Per step: ~113 phases, ~40% of them compute or exchange, on at most 64 traced tiles at
 * ~130 B a slice (~600 KB at worst, ~290 KB measured), plus the program tracks.
 * 512 KB a step keeps 100 steps near 50 MB, which Perfetto opens.
 */
const BYTES_PER_STEP = 512 * 1024;

const dir = path.join(mkdtempSync(path.join(tmpdir(), 'tilesim-trace-')), 'run');
let result: RunResult;
let trace: { traceEvents: TraceEvent[]; otherData: TraceMetadata };

beforeAll(async () => {
  const config = loadConfigText(MLP_MK2_YAML, path.join(dir, 'mlp-mk2.yaml'), { steps: STEPS });
  result = await run(await compile(config), { workers: 1, numerics: false, steps: STEPS });
  await writeRun(dir, result, 1);
  trace = JSON.parse(readFileSync(path.join(dir, 'trace.json'), 'utf8'));
}, 120_000);

describe('trace.json on a full mk2', () => {
  it(`stays under ${BYTES_PER_STEP / 1024} KB a step`, () => {
    expect(result.compiled.program.device.tilesPerIpu * result.compiled.program.device.ipus).toBe(1472);
    const bytes = statSync(path.join(dir, 'trace.json')).size;
    expect(bytes / STEPS).toBeLessThan(BYTES_PER_STEP);
  });

  it('traces a sample of 64 tiles by default and says which', () => {
    const tiles = sampleTiles(1472, AUTO_TRACE_TILES);
    expect(trace.otherData.tracedTiles).toEqual(tiles);
    expect(trace.otherData.traceTiles).toMatch(/^64 of 1472 tiles/);
    const tileTids = new Set(trace.traceEvents.filter((e) => e.ph === 'X' && e.pid === 0).map((e) => e.tid));
    for (const t of tileTids) expect(tiles).toContain(t);
    expect(tileTids.size).toBeGreaterThan(32); // the MLP spreads over the chip: most sampled tiles work
  });

  it('draws each sync once per superstep, on no tile', () => {
    const syncs = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'sync');
    const syncPhases = result.phases.filter((p) => p.kind === 'sync' && p.cycles > 0);
    expect(syncPhases.length).toBeGreaterThan(STEPS * 10);
    expect(syncs).toHaveLength(syncPhases.length);
    expect(syncs.every((e) => e.pid === 1)).toBe(true); // the program process (pid = ipus)
  });

  it('has a step track with one slice per step and an op track', () => {
    const steps = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'step');
    expect(steps.map((e) => e.args?.step)).toEqual([0, 1, 2]);
    const ops = trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'op');
    const names = new Set(ops.map((e) => e.name));
    for (const o of result.compiled.schedule) if (result.phases.some((p) => p.op === o.name)) expect(names).toContain(o.name);
  });
});
