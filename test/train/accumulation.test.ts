/**
 * Gradient accumulation (train.accumulationFactor, PopART's): the batch
 * program is a repeat over the micro-batches (forward, backward, accum +=
 * grad) and an outer fragment that updates each weight once from its
 * accumulator and zeroes it; N micro-batches accumulated give the weights of
 * one step on the whole batch of N x micro.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { encodeNpy } from '../../src/report/npy.js';
import { UserError } from '../../src/errors.js';
import { compile, run, TrainingSession, type Compiled } from '../../src/session.js';
import type { ProgramStep } from '../../sim/program.js';
import { ROOT } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

const FILE = path.join(ROOT, 'configs/examples/accumulation-test.yaml');

/** A two-layer MLP, `micro` samples per micro-batch, random data drawn per micro-batch from fixed seeds. */
function mlp(opts: { micro: number; accumulation?: number; reduction?: 'mean' | 'sum'; lossReduction?: 'mean' | 'sum'; optimizer?: string; batchesPerStep?: number }): string {
  const { micro } = opts;
  return `
device: {preset: tiny, tiles: 16}
model:
  graph:
    inputs:
      x: {shape: [${micro}, 12]}
      label: {shape: [${micro}], dtype: int32}
    initializers:
      w1: {shape: [12, 16], init: {normal: {std: 0.3, seed: 1}}}
      b1: {shape: [16], init: {constant: 0.1}}
      w2: {shape: [16, 5], init: {normal: {std: 0.3, seed: 2}}}
    nodes:
      - {op: MatMul, inputs: [x, w1], outputs: [h1]}
      - {op: Add, inputs: [h1, b1], outputs: [a1]}
      - {op: Relu, inputs: [a1], outputs: [r1]}
      - {op: MatMul, inputs: [r1, w2], outputs: [logits]}
    outputs: [logits]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}
  label: {random: {distribution: integers, low: 0, high: 4, seed: 4}}
train:
  loss: {type: softmaxCrossEntropy, input: logits, labels: label, reduction: ${opts.lossReduction ?? 'mean'}}
  optimizer: ${opts.optimizer ?? '{type: sgd, lr: 0.1, momentum: 0.9}'}
  batchesPerStep: ${opts.batchesPerStep ?? 1}
  accumulationFactor: ${opts.accumulation ?? 1}
  gradientReduction: ${opts.reduction ?? 'mean'}
`;
}

async function train(text: string, steps: number): Promise<{ weights: Map<string, Float32Array>; losses: number[]; compiled: Compiled; cycles: number[] }> {
  const compiled = await compile(loadConfigText(text, FILE));
  const s = await TrainingSession.create(compiled, { workers: 1, numerics: true });
  const losses: number[] = [];
  const cycles: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const r = await s.runStep();
      losses.push(r.loss!);
      cycles.push(r.cycles);
    }
    return { weights: new Map([...s.readWeights()].map(([k, v]) => [k, v as Float32Array])), losses, compiled, cycles };
  } finally {
    await s.close();
  }
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [k, v] of a) {
    const w = b.get(k)!;
    expect(w.length, k).toBe(v.length);
    for (let i = 0; i < v.length; i++) d = Math.max(d, Math.abs(v[i] - w[i]));
  }
  return d;
}

// Tolerance: the whole batch's weight gradient is one fp32 sum over 32 samples; accumulated, it is
// 4 sums of 8 added in turn, and the mean divides by 32 once instead of by 8 then 4. Each gradient
// element differs by a few ulps of the sum of its terms' magnitudes (32 terms, |term| < 1:
// about 32 x 2^-24 x 1 = 2e-6), times lr 0.1, over 3 steps with momentum 0.9 (a factor < 3):
// under 1e-6 (measured: 3e-8). A wrong reduction (the sum, or one micro-batch) moves weights by 1e-3 or more.
const TOL = 1e-6;

describe('gradient accumulation', () => {
  it('the batch program is repeat(N){inputs, forward, backward, accumulate, anchors} then the updates and the accumulator reset', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, accumulation: 4 }), FILE));
    const batch = c.program.programs.batch;
    expect(batch[0].kind).toBe('repeat');
    const loop = batch[0] as Extract<ProgramStep, { kind: 'repeat' }>;
    expect(loop.count).toBe(4);
    const opsIn = (steps: ProgramStep[]): string[] =>
      steps.flatMap((s) => (s.kind === 'execute' ? [c.program.computeSets[s.computeSet].op] : s.kind === 'repeat' ? opsIn(s.body) : []));
    const inLoop = opsIn(loop.body);
    const after = opsIn(batch.slice(1));
    expect(inLoop).toContain('Accumulate(w1)');
    expect(inLoop.some((o) => o.startsWith('SGDUpdate'))).toBe(false);
    expect(after).toEqual(expect.arrayContaining(['SGDUpdate(w1)', 'SGDUpdate(b1)', 'SGDUpdate(w2)', 'AccumulatorZero(w1)']));
    expect(after.indexOf('SGDUpdate(w1)')).toBeLessThan(after.indexOf('AccumulatorZero(w1)'));
    expect(after.some((o) => !o.startsWith('SGDUpdate') && !o.startsWith('AccumulatorZero'))).toBe(false);
    // The accumulators are device variables mapped like their weights, not weights of the model.
    const acc = c.program.tensors.find((t) => t.name === 'Accum___w1')!;
    const w1 = c.program.tensors.find((t) => t.name === 'w1')!;
    expect(acc.category).toBe('variable');
    expect(intervalList(acc.intervals).map((i) => [i.tile, i.begin, i.end])).toEqual(intervalList(w1.intervals).map((i) => [i.tile, i.begin, i.end]));
  });

  it('4 micro-batches of 8 accumulated (mean) give the weights of steps on the whole batch of 32', async () => {
    const whole = await train(mlp({ micro: 32 }), 3);
    const acc = await train(mlp({ micro: 8, accumulation: 4 }), 3);
    expect(maxDiff(acc.weights, whole.weights)).toBeLessThan(TOL);
    // The step's loss is the mean over its micro-batches: the whole batch's mean loss.
    acc.losses.forEach((l, i) => expect(Math.abs(l - whole.losses[i])).toBeLessThan(1e-5));
    expect([...acc.weights.keys()].sort()).toEqual(['b1', 'w1', 'w2']);
    // The test can fail: one step on only the first micro-batch is far off.
    const one = await train(mlp({ micro: 8 }), 3);
    expect(maxDiff(one.weights, whole.weights)).toBeGreaterThan(1e-3);
  });

  it('with a sum loss and gradientReduction sum, accumulation equals the whole batch with a sum loss (Adam)', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const whole = await train(mlp({ micro: 32, lossReduction: 'sum', optimizer: adam }), 2);
    const acc = await train(mlp({ micro: 8, accumulation: 4, reduction: 'sum', lossReduction: 'sum', optimizer: adam }), 2);
    expect(maxDiff(acc.weights, whole.weights)).toBeLessThan(TOL);
  });

  it('batchesPerStep x accumulation: each batch accumulates its own micro-batches and updates once', async () => {
    // Random data is drawn per micro-batch of a batch, and every batch reuses it (as without accumulation):
    // 2 batches of 2 x 8 are 2 updates on the same 16 samples, as 2 batches of 16.
    const whole = await train(mlp({ micro: 16, batchesPerStep: 2 }), 2);
    const acc = await train(mlp({ micro: 8, accumulation: 2, batchesPerStep: 2 }), 2);
    expect(maxDiff(acc.weights, whole.weights)).toBeLessThan(TOL);
    acc.losses.forEach((l, i) => expect(Math.abs(l - whole.losses[i])).toBeLessThan(1e-5));
  });

  it('anchors come back per micro-batch: all is [batchesPerStep, accumulationFactor, ...]', async () => {
    const text = mlp({ micro: 8, accumulation: 3, batchesPerStep: 2 }) + 'anchors: {logits: all, loss: final}\n';
    const r = await run(await compile(loadConfigText(text, FILE)), { workers: 1, numerics: true, steps: 1 });
    expect(r.anchors.get('logits')!.shape).toEqual([2, 3, 8, 5]);
    expect(r.anchors.get('loss')!.shape).toEqual([]);
  });

  it('an npy input whose micro-batches do not fill whole batches is an error naming the input and the option', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tilesim-accum-'));
    writeFileSync(path.join(dir, 'x.npy'), encodeNpy(new Float32Array(5 * 8 * 12), [5, 8, 12], 'float32'));
    const text = mlp({ micro: 8, accumulation: 2 }).replace('x: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}', `x: {npy: ${path.join(dir, 'x.npy')}}`);
    const c = await compile(loadConfigText(text, FILE));
    const e = await TrainingSession.create(c, { workers: 1, numerics: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(/inputs\.x: 5 micro-batches .*train\.accumulationFactor/);
  });

  it('feeds are micro-batches: 2 of them fill a batch of accumulation 2, 3 is an error', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, accumulation: 2 }), FILE));
    const s = await TrainingSession.create(c, { workers: 1, numerics: true });
    try {
      const x = (k: number) => Array.from({ length: k }, (_, i) => new Float32Array(8 * 12).fill(i / 10));
      expect(Number.isFinite((await s.runStep({ x: x(2) })).loss)).toBe(true);
      await expect(s.runStep({ x: x(3) })).rejects.toThrow(/feeds: 'x' has 3 micro-batches, not whole batches of 2/);
    } finally {
      await s.close();
    }
  });

  it('sharded over 2 IPUs: the accumulators lie on their weights\' IPU and 2 x 16 accumulated give the weights of 32', async () => {
    const file = path.join(ROOT, 'configs/examples/mlp-sharded-2ipu.yaml');
    const base = readFileSync(file, 'utf8');
    const text = base.replace('x: {shape: [32, 64]}', 'x: {shape: [16, 64]}').replace('label: {shape: [32], dtype: int32}', 'label: {shape: [16], dtype: int32}').replace('steps: 5', 'steps: 2\n  accumulationFactor: 2');
    const acc = await train(text.replace('anchors: {loss: final, logits: final}', ''), 2);
    const whole = await train(base.replace('steps: 5', 'steps: 2'), 2);
    const t = (name: string) => acc.compiled.program.tensors.find((x) => x.name === name)!;
    expect([...t('Accum___w2').intervals.tile]).toEqual([...t('w2').intervals.tile]);
    expect(maxDiff(acc.weights, whole.weights)).toBeLessThan(TOL);
  });
});
