/** The README's example end to end: training, determinism across worker counts, the run folder. */
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { writeRun } from '../../src/report/write.js';
import { compile, run } from '../../src/session.js';
import { decodeNpy } from '../../src/report/npy.js';
import { EXAMPLE_CONFIG } from '../helpers.js';

async function runExample(workers: number, dir: string, steps?: number) {
  const config = loadConfig(EXAMPLE_CONFIG, { steps });
  const compiled = await compile(config);
  // inlineBelow 0: every compute set and exchange goes through the pool when there is one.
  const result = await run(compiled, { workers, numerics: true, steps: config.steps ?? 1, inlineBelow: 0 });
  const summary = await writeRun(dir, result, workers);
  return { result, summary };
}

describe('the leaky-relu training example', () => {
  const base = mkdtempSync(path.join(tmpdir(), 'tilesim-train-'));

  it('trains: the loss falls over 20 SGD steps', async () => {
    const { result } = await runExample(1, path.join(base, 'w1'));
    const losses = result.steps.map((s) => s.loss!);
    expect(losses).toHaveLength(20);
    expect(losses.every((l) => Number.isFinite(l))).toBe(true);
    // Falls every step (full-batch SGD with a small lr on a fixed batch), and by a clear margin overall.
    for (let i = 1; i < losses.length; i++) expect(losses[i]).toBeLessThan(losses[i - 1]);
    expect(losses[19]).toBeLessThan(0.85 * losses[0]);
  });

  it('gives byte-identical outputs and summary (host aside) with 1, 2 and 3 workers', async () => {
    const one = path.join(base, 'w1');
    const strip = (f: string) => {
      const s = JSON.parse(readFileSync(f, 'utf8'));
      expect(s.host.workers).toBeGreaterThan(0);
      delete s.host;
      return s;
    };
    const files = readdirSync(path.join(one, 'outputs')).sort();
    expect(files).toEqual(['Gradient___w.npy', 'loss.npy', 'y.npy']);
    for (const workers of [2, 3]) {
      const two = path.join(base, `w${workers}`);
      await runExample(workers, two);
      expect(strip(path.join(two, 'summary.json'))).toEqual(strip(path.join(one, 'summary.json')));
      expect(readdirSync(path.join(two, 'outputs')).sort()).toEqual(files);
      for (const f of files) expect(readFileSync(path.join(two, 'outputs', f)).equals(readFileSync(path.join(one, 'outputs', f)))).toBe(true);
      for (const f of ['trace.json', 'profile/ops.csv', 'profile/steps.csv', 'profile/tiles.csv']) {
        expect(readFileSync(path.join(two, f), 'utf8')).toBe(readFileSync(path.join(one, f), 'utf8'));
      }
    }
  });

  it('writes the run folder of the SPEC', () => {
    const dir = path.join(base, 'w1');
    const s = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8'));
    expect(s.schemaVersion).toBe(1);
    expect(s.device).toMatchObject({ name: 'tiny', ipus: 1, tilesPerIpu: 4, bytesPerTile: 638976, workersPerTile: 6 });
    const c = s.cycles;
    expect(c.total).toBe(c.compute + c.exchange + c.sync + c.streamCopy);
    expect(s.seconds).toBeCloseTo(c.total / s.device.clockHz, 12);
    expect(s.steps.reduce((a: number, st: { cycles: number }) => a + st.cycles, 0)).toBe(c.total);
    const opNames = s.ops.map((o: { name: string }) => o.name);
    expect(opNames).toContain('MatMul_0');
    expect(opNames).toContain('LeakyRelu_2');
    expect(s.ops.find((o: { name: string }) => o.name === 'MatMul_0').flops).toBe(2 * 16 * 32 * 8 * 20);
    expect(s.memory.maxTileBytes).toBeLessThanOrEqual(s.memory.tileCapacity);
    const y = decodeNpy(readFileSync(path.join(dir, s.outputs.y.file)));
    expect(y.shape).toEqual([16, 8]);
    const loss = decodeNpy(readFileSync(path.join(dir, s.outputs.loss.file)));
    expect(loss.data[0]).toBeCloseTo(s.steps[19].loss, 6);
    // The trace opens in Perfetto: trace events with one thread per tile (and the program's tracks).
    const trace = JSON.parse(readFileSync(path.join(dir, 'trace.json'), 'utf8'));
    const threads = trace.traceEvents.filter((e: { ph: string; name: string; args: { name: string } }) => e.ph === 'M' && e.name === 'thread_name' && e.args.name.startsWith('tile '));
    expect(threads).toHaveLength(4);
  });

  it('anchors the gradient of a weight, consistent with the update SGD applied', async () => {
    // One step: w1 = w0 - lr * Gradient___w (plain SGD, lr 0.05 in the example).
    const config = loadConfig(EXAMPLE_CONFIG, { steps: 1 });
    const compiled = await compile(config);
    const w0 = Float32Array.from(compiled.graph.tensor('w').data as Float32Array);
    const r = await run(compiled, { workers: 1, numerics: true, steps: 1 });
    const g = r.anchors.get('Gradient___w')!.data;
    const w1 = r.weights.get('w')!;
    for (let i = 0; i < w0.length; i++) expect(w1[i]).toBeCloseTo(w0[i] - 0.05 * g[i], 6);
    expect(Math.max(...Array.from(g).map(Math.abs))).toBeGreaterThan(1e-3);
  });
});
