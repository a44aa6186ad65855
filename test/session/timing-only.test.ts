/**
 * Timing-only runs (`--no-numerics`) hold no tile data and run no codelet, yet
 * charge exactly the cycles of a numerics run: cycles come from the program
 * alone (sim/cost.ts). Checked phase by phase on every small example and on a
 * 64-tile mk2 slice of the BERT-style layer.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig, loadConfigText } from '../../src/config/load.js';
import { compile, run, Session } from '../../src/session.js';
import { ROOT } from '../helpers.js';

const examples = ['leaky-relu-train.yaml', 'mlp-adam.yaml', 'leaky-relu-infer.yaml'];

async function phases(file: string, numerics: boolean, device?: string) {
  const at = path.join(ROOT, 'configs/examples', file);
  const text = readFileSync(at, 'utf8');
  const config = device ? loadConfigText(text.replace(/^device: .*$/m, `device: ${device}`), at, { steps: 2 }) : loadConfig(at, { steps: 2 });
  const r = await run(await compile(config), { workers: 1, numerics, steps: 2 });
  return { steps: r.steps.map((s) => s.cycles), phases: r.phases.map((p) => [p.kind, p.name, p.cycles, p.start]) };
}

describe('timing only', () => {
  for (const f of examples) {
    it(`${f}: the same cycles, phase by phase, with and without numerics`, async () => {
      const a = await phases(f, true);
      const b = await phases(f, false);
      expect(b.phases.length).toBeGreaterThan(0);
      expect(b).toEqual(a);
    });
  }

  it('bert-layer.yaml on a 256-tile mk2: the same cycles with and without numerics', async () => {
    const a = await phases('bert-layer.yaml', true, '{preset: mk2, tiles: 256}');
    const b = await phases('bert-layer.yaml', false, '{preset: mk2, tiles: 256}');
    expect(b.phases.length).toBeGreaterThan(100);
    expect(b).toEqual(a);
  }, 240_000);

  it('holds no tile data: the engine has no memory allocated', async () => {
    const config = loadConfig(path.join(ROOT, 'configs/examples/mlp-adam.yaml'), { steps: 1 });
    const compiled = await compile(config);
    const s = await Session.create(compiled, { workers: 1, numerics: false });
    try {
      expect(compiled.program.tileBytes.some((b) => b > 0)).toBe(true);
      expect(s.engine.memory.buffer.byteLength).toBeLessThanOrEqual(8);
    } finally {
      await s.close();
    }
  });
});
