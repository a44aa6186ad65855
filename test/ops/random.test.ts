/**
 * RandomUniform, RandomNormal, their Like forms and Multinomial (src/ops/random.ts,
 * sim/codelets/random.ts). onnxruntime's generator is not ours, so the
 * values are checked as a sample of the distribution, and the seeding as
 * the contract says:
 * - 16384 draws: the sample mean within 5 standard errors of the true mean,
 *   the sample variance within 5% of the true one (its standard error is
 *   sqrt(2 / n) ~ 1.1% for a normal, less for a uniform), every value of a
 *   uniform in [low, high), and each tenth of [low, high) holding 10% +- 1%
 *   (5 standard errors of a binomial proportion);
 * - the same values however the tensor is split over tiles, other values
 *   for another seed and on the next run.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compile, InferenceSession } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { f32, runOurs, type OpCase } from './harness.js';

const N = 16384;
const moments = (y: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i];
  const mean = s / y.length;
  let v = 0;
  for (let i = 0; i < y.length; i++) v += (y[i] - mean) ** 2;
  return { mean, variance: v / (y.length - 1) };
};
const draw = async (c: Omit<OpCase, 'inputs'> & { inputs?: OpCase['inputs'] }) => (await runOurs({ inputs: {}, ...c })).get('y')!;

describe('random ops', () => {
  it('RandomUniform: values in [low, high), mean, variance and tenths as a uniform sample', async () => {
    const [low, high] = [-2, 3];
    const y = await draw({ op: 'RandomUniform', attributes: { shape: [128, 128], low, high, seed: 5 }, device: tiny({ tilesPerIpu: 16 }) });
    expect(y.length).toBe(N);
    expect(Array.from(y).every((v) => v >= low && v < high)).toBe(true);
    const { mean, variance } = moments(y);
    const trueVar = (high - low) ** 2 / 12;
    expect(Math.abs(mean - (low + high) / 2)).toBeLessThan(5 * Math.sqrt(trueVar / N));
    expect(Math.abs(variance / trueVar - 1)).toBeLessThan(0.05);
    const tenths = new Array<number>(10).fill(0);
    for (const v of y) tenths[Math.min(9, Math.floor(((v - low) / (high - low)) * 10))]++;
    for (const t of tenths) expect(Math.abs(t / N - 0.1)).toBeLessThan(0.01);
  });

  it('RandomNormal: mean, variance and the share within one standard deviation', async () => {
    const [mean0, scale] = [1.5, 0.5];
    const y = await draw({ op: 'RandomNormal', attributes: { shape: [N], mean: mean0, scale, seed: 9 }, device: tiny({ tilesPerIpu: 16 }) });
    const { mean, variance } = moments(y);
    expect(Math.abs(mean - mean0)).toBeLessThan(5 * (scale / Math.sqrt(N)));
    expect(Math.abs(variance / scale ** 2 - 1)).toBeLessThan(0.05);
    // P(|z| < 1) = 0.6827; its standard error at n = 16384 is 0.0036.
    const within = Array.from(y).filter((v) => Math.abs(v - mean0) < scale).length / N;
    expect(Math.abs(within - 0.6827)).toBeLessThan(0.018);
  });

  it('the same values on 1 tile and on 16, others for another seed; Like ops take the shape and dtype of their input', async () => {
    const at = (tiles: number, seed: number) => draw({ op: 'RandomNormal', attributes: { shape: [40, 30], seed }, device: tiny({ tilesPerIpu: tiles }) });
    const a = Array.from(await at(1, 3));
    expect(Array.from(await at(16, 3))).toEqual(a);
    expect(Array.from(await at(1, 4))).not.toEqual(a);
    const like = await draw({ op: 'RandomUniformLike', attributes: { seed: 3 }, inputs: { x: { ...f32([6, 7], 1), dtype: 'float16' } }, outputDtype: 'float16' });
    expect(like.length).toBe(42);
    expect(Array.from(like).every((v) => v >= 0 && v < 1)).toBe(true);
    const likeFloat = await draw({ op: 'RandomNormalLike', attributes: { dtype: 1, seed: 3 }, inputs: { x: f32([40, 30], 2) } });
    expect(Array.from(likeFloat)).toEqual(a);
  });

  it('draws new values on each run, from a seed derived from run.seed when none is given', async () => {
    const yaml = (seed: number) => `
name: noise
device: tiny
model:
  graph:
    nodes:
      - {op: RandomNormal, outputs: [y], attributes: {shape: [4, 8]}}
    outputs: [y]
run: {seed: ${seed}}
anchors: {y: final}
`;
    const values = async (seed: number) => {
      const s = await InferenceSession.create(await compile(loadConfigText(yaml(seed), '/tmp/noise.yaml')), { workers: 1, numerics: true });
      try {
        return [Array.from((await s.runStep()).anchors.get('y')!.data), Array.from((await s.runStep()).anchors.get('y')!.data)];
      } finally {
        await s.close();
      }
    };
    const [first, second] = await values(1);
    expect(second).not.toEqual(first);
    expect((await values(1))[0]).toEqual(first);
    expect((await values(2))[0]).not.toEqual(first);
  });

  it('Multinomial: each class drawn as often as its softmax probability, rows independent, split over tiles the same', async () => {
    // 2 rows of 4 classes, log-probabilities of [0.1, 0.2, 0.3, 0.4] and [0.7, 0.1, 0.1, 0.1]; 4096 draws a row.
    const p = [
      [0.1, 0.2, 0.3, 0.4],
      [0.7, 0.1, 0.1, 0.1],
    ];
    const x: OpCase['inputs'][string] = { shape: [2, 4], data: Float32Array.from(p.flat().map(Math.log)) };
    const draws = 4096;
    const run = (tiles: number) => draw({ op: 'Multinomial', attributes: { sample_size: draws, seed: 3 }, inputs: { x }, device: tiny({ tilesPerIpu: tiles }) });
    const y = await run(16);
    expect(Array.from(await run(1))).toEqual(Array.from(y));
    for (const [row, probs] of p.entries()) {
      const counts = [0, 0, 0, 0];
      for (let i = 0; i < draws; i++) counts[y[row * draws + i]]++;
      // 5 standard errors of a proportion at n = 4096: at most 5 sqrt(0.25 / 4096) = 0.039.
      for (const [k, q] of probs.entries()) expect(Math.abs(counts[k] / draws - q), `row ${row} class ${k}`).toBeLessThan(5 * Math.sqrt((q * (1 - q)) / draws));
    }
  });

  it('refuses a non-float dtype and a negative scale, naming the node', async () => {
    await expect(draw({ op: 'RandomUniform', attributes: { shape: [2], dtype: 6 } })).rejects.toThrow(/op 'RandomUniform_0' .*dtype 6 is not a float type/);
    await expect(draw({ op: 'RandomNormal', attributes: { shape: [2], scale: -1 } })).rejects.toThrow(/scale must be >= 0, got -1/);
  });
});
