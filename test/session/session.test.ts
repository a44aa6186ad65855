/** The TypeScript session API: steps, feeds, weights between steps, inference vs training. */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { compile, InferenceSession, run, TrainingSession } from '../../src/session.js';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';

describe('TrainingSession', () => {
  it('steps, reads and writes weights between steps, and takes feeds', async () => {
    const compiled = await compile(loadConfig(EXAMPLE_CONFIG));
    const s = await TrainingSession.create(compiled, { workers: 1, numerics: true });
    try {
      const w0 = s.readWeights().get('w')!;
      const first = await s.runStep();
      const second = await s.runStep();
      expect(second.step).toBe(1);
      expect(second.loss!).toBeLessThan(first.loss!);
      const w1 = s.readWeights().get('w')!;
      expect(Array.from(w1)).not.toEqual(Array.from(w0));

      // Zero weights and bias: h = 0, hb = 0, y = leaky(0) = 0, so the L1 loss is exactly 0.
      s.writeWeights({ w: new Float32Array(w0.length), b: new Float32Array(8) });
      const zero = await s.runStep();
      expect(zero.loss).toBe(0);
      expect(Array.from(zero.anchors.get('y')!.data).every((v) => v === 0)).toBe(true);

      // Feeds replace the config's data: with b = 1 and x = 0, y = 1 everywhere and loss = mean|y| = 1.
      s.writeWeights({ b: new Float32Array(8).fill(1) });
      const fed = await s.runStep({ x: new Float32Array(16 * 32) });
      expect(fed.loss).toBeCloseTo(1, 6);
    } finally {
      await s.close();
    }
  });

  it('rejects bad weights and feeds with clear messages', async () => {
    const s = await TrainingSession.create(await compile(loadConfig(EXAMPLE_CONFIG)), { workers: 1, numerics: true });
    try {
      expect(() => s.writeWeights({ ww: new Float32Array(1) })).toThrow(/'ww' is not a variable of the model; did you mean 'w'\?/);
      expect(() => s.writeWeights({ w: new Float32Array(3) })).toThrow(/'w' has 256 elements, got 3/);
      await expect(s.runStep({ x: new Float32Array(5) })).rejects.toThrow(/'x' needs 512 elements per batch, got 5/);
      await expect(s.runStep({ h: new Float32Array(5) })).rejects.toThrow(/'h' is not a streamed input/);
    } finally {
      await s.close();
    }
  });

  it('is refused for an inference config, and InferenceSession for a training one', async () => {
    const compiled = await compile(loadConfig(EXAMPLE_CONFIG));
    await expect(InferenceSession.create(compiled, { workers: 1, numerics: true })).rejects.toThrow(/use a TrainingSession/);
    const infer = await compile(loadConfig(path.join(ROOT, 'configs/examples/leaky-relu-infer.yaml')));
    await expect(TrainingSession.create(infer, { workers: 1, numerics: true })).rejects.toThrow(/needs a config with a train section/);
    const s = await InferenceSession.create(infer, { workers: 1, numerics: true });
    try {
      const r = await s.runStep();
      expect(r.loss).toBeUndefined();
      expect(r.anchors.get('y')!.shape).toEqual([16, 8]);
    } finally {
      await s.close();
    }
  });
});

describe('configs/examples', () => {
  const dir = path.join(ROOT, 'configs/examples');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    // Full-chip examples (bert-layer on mk2) run one step timing-only here: their numerics on a
    // 2-core machine take minutes; test/session/timing-only.test.ts shows the cycles are the same.
    const fullChip = loadConfig(path.join(dir, f)).device.tilesPerIpu > 256;
    it(`${f} runs (${fullChip ? '1 step, timing only' : '2 steps'})`, async () => {
      const steps = fullChip ? 1 : 2;
      const config = loadConfig(path.join(dir, f), { steps });
      const r = await run(await compile(config), { workers: 1, numerics: !fullChip, steps });
      expect(r.steps).toHaveLength(steps);
      for (const st of r.steps) expect(st.cycles).toBeGreaterThan(0);
      if (config.train && !fullChip) expect(r.steps[1].loss!).toBeLessThanOrEqual(r.steps[0].loss!);
    }, 240_000);
  }
});
