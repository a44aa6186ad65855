/**
 * Replication (replicas, PopART's replicatedGraphCount): the replicas share
 * one compiled program, each runs it on its own tile memory with its own
 * data ([batchesPerStep, accumulationFactor, replicas, microBatch, ...]), and
 * the gradients are all-reduced across them before each update, the
 * all-reduce costed as ring steps over the IPU-Links (sim/collectives.ts).
 * R replicas give the weights of one replica on the whole batch.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { allReducePhases, chooseMethod, ringSteps } from '../../sim/collectives.js';
import { groupBytesPerCycle, interIpuSyncCycles } from '../../sim/links.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import { loadConfigText } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import { ringSum } from '../../src/replicas.js';
import { buildSummary, profileTables } from '../../src/report/summary.js';
import { compile, run, TrainingSession, type Compiled } from '../../src/session.js';
import type { ProgramStep } from '../../sim/program.js';
import { ROOT } from '../helpers.js';
import { tensorIntervals } from '../../sim/intervals.js';

const FILE = path.join(ROOT, 'configs/examples/replication-test.yaml');

function mlp(opts: { micro: number; ipus?: number; replicas?: number; accumulation?: number; optimizer?: string; extra?: string }): string {
  const { micro } = opts;
  return `
device: {preset: m2000, ipus: ${opts.ipus ?? 1}, tiles: 16}
replicas: ${opts.replicas ?? 1}
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
  loss: {type: softmaxCrossEntropy, input: logits, labels: label}
  optimizer: ${opts.optimizer ?? '{type: sgd, lr: 0.1, momentum: 0.9}'}
  accumulationFactor: ${opts.accumulation ?? 1}
${opts.extra ?? ''}`;
}

async function train(
  text: string,
  steps: number,
  numerics = true,
  pool?: { workers: number; check: (s: TrainingSession) => void },
): Promise<{ weights: Map<string, Float32Array>; losses: number[]; compiled: Compiled; cycles: number[] }> {
  const compiled = await compile(loadConfigText(text, FILE));
  // inlineBelow 0 with a pool: every compute set and exchange goes to the workers.
  const s = await TrainingSession.create(compiled, pool ? { workers: pool.workers, numerics, inlineBelow: 0 } : { workers: 1, numerics });
  pool?.check(s);
  const losses: number[] = [];
  const cycles: number[] = [];
  try {
    for (let i = 0; i < steps; i++) {
      const r = await s.runStep();
      if (r.loss !== undefined) losses.push(r.loss);
      cycles.push(r.cycles);
    }
    return { weights: numerics ? new Map([...s.readWeights()].map(([k, v]) => [k, v as Float32Array])) : new Map(), losses, compiled, cycles };
  } finally {
    await s.close();
  }
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [k, v] of a) {
    const w = b.get(k)!;
    for (let i = 0; i < v.length; i++) d = Math.max(d, Math.abs(v[i] - w[i]));
  }
  return d;
}

// As for accumulation (test/train/accumulation.test.ts): the whole batch's gradient is one fp32 sum
// over 32 samples, the replicated one R sums of 32/R added in ring order and divided by R in the
// update; a few ulps of a sum of 32 terms under 1 (~2e-6) x lr 0.1 x 3 steps of momentum: < 1e-6.
const TOL = 1e-6;

describe('replication: data-parallel training', () => {
  it('4 replicas of 8 samples give the weights of one replica on 32 (SGD with momentum), the loss their mean', async () => {
    const whole = await train(mlp({ micro: 32 }), 3);
    const rep = await train(mlp({ micro: 8, ipus: 4, replicas: 4 }), 3);
    expect(maxDiff(rep.weights, whole.weights)).toBeLessThan(TOL);
    rep.losses.forEach((l, i) => expect(Math.abs(l - whole.losses[i])).toBeLessThan(1e-5));
    // The test can fail: without the all-reduce, replica 0 alone (its 8 samples) is far off.
    const one = await train(mlp({ micro: 8 }), 3);
    expect(maxDiff(one.weights, whole.weights)).toBeGreaterThan(1e-3);
  });

  it('4 replicas share one pool of 2 workers, each task in its own replica\'s memory: the weights of the run on one thread, bit for bit', async () => {
    const text = mlp({ micro: 8, ipus: 4, replicas: 4 });
    const inline = await train(text, 2);
    const pooled = await train(text, 2, true, {
      workers: 2,
      check: (s) => {
        const engines = s.replicaEngines;
        expect(engines).toHaveLength(4);
        expect(engines[0].workerPool).toBeDefined();
        for (const e of engines) expect(e.workerPool).toBe(engines[0].workerPool);
        expect(engines[0].workerPool!.workers).toBe(2);
      },
    });
    for (const [k, v] of inline.weights) expect(Array.from(pooled.weights.get(k)!), k).toEqual(Array.from(v));
    expect(pooled.losses).toEqual(inline.losses);
  });

  it('2 replicas x accumulation 2 (Adam): [accumulation, replicas, micro] data give the weights of the whole batch', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const whole = await train(mlp({ micro: 32, optimizer: adam }), 2);
    const rep = await train(mlp({ micro: 8, ipus: 2, replicas: 2, accumulation: 2, optimizer: adam }), 2);
    expect(maxDiff(rep.weights, whole.weights)).toBeLessThan(TOL);
    const batch = rep.compiled.program.programs.batch;
    // The all-reduce runs once per step, in the outer fragment after the accumulation loop.
    const outerSteps = batch.slice(1).map((s) => s.kind);
    expect(outerSteps.filter((k) => k === 'allReduce')).toHaveLength(3);
    const inLoop = (batch[0] as Extract<ProgramStep, { kind: 'repeat' }>).body;
    expect(inLoop.some((s) => s.kind === 'allReduce')).toBe(false);
  });

  it('the replicas share one program compiled for one replica\'s IPUs; without accumulation an all-reduce per gradient per micro-batch', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, ipus: 4, replicas: 4 }), FILE));
    expect(c.program.device.ipus).toBe(1);
    expect(c.program.replication).toEqual({ replicas: 4, systemIpus: 4, method: 'auto' });
    expect(c.program.programs.batch.filter((s) => s.kind === 'allReduce')).toHaveLength(3);
    const one = await compile(loadConfigText(mlp({ micro: 8 }), FILE));
    expect(c.program.computeSets.length).toBe(one.program.computeSets.length);
  });

  it('timing only runs one replica: the same cycles as with numerics', async () => {
    const text = mlp({ micro: 8, ipus: 4, replicas: 4 });
    const a = await train(text, 1, true);
    const b = await train(text, 1, false);
    expect(b.cycles).toEqual(a.cycles);
  });

  it('anchors: all is [accumulationFactor, replicas, ...]; summary has the collectives', async () => {
    const text = mlp({ micro: 8, ipus: 2, replicas: 2, accumulation: 3, extra: 'anchors: {logits: all}\n' });
    const r = await run(await compile(loadConfigText(text, FILE)), { workers: 1, numerics: true, steps: 1 });
    expect(r.anchors.get('logits')!.shape).toEqual([3, 2, 8, 5]);
  });

  it('each replica draws its own dropout masks (its own random stream, as PopART seeds replicas apart); replica 0 the unreplicated run\'s', async () => {
    const yaml = (replicas: number) => `
device: {preset: m2000, ipus: ${replicas}, tiles: 16}
replicas: ${replicas}
model:
  graph:
    inputs:
      x: {shape: [8, 16]}
    initializers:
      w: {shape: [16, 16], init: {normal: {std: 0.3, seed: 1}}}
      r: {shape: [], init: {constant: 0.5}, trainable: false}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [h]}
      - {op: Dropout, inputs: [h, r], outputs: [y, mask]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
train:
  loss: {type: l1, input: y, scale: 1.0, reduction: mean}
  optimizer: {type: sgd, lr: 0.01}
anchors: {mask: all}
`;
    const masks = async (replicas: number, steps: number): Promise<number[][]> => {
      const s = await TrainingSession.create(await compile(loadConfigText(yaml(replicas), FILE)), { workers: 1, numerics: true });
      const out: number[][] = [];
      try {
        for (let i = 0; i < steps; i++) out.push(Array.from((await s.runStep()).anchors.get('mask')!.data as ArrayLike<number>));
      } finally {
        await s.close();
      }
      return out;
    };
    const [rep] = await masks(2, 1);
    const [one] = await masks(1, 1);
    // [replicas, 8, 16]: replica 0's half, then replica 1's.
    expect(rep).toHaveLength(2 * 128);
    const r0 = rep.slice(0, 128);
    const r1 = rep.slice(128);
    expect(r0).toEqual(one);
    expect(r1).not.toEqual(r0);
    // About half dropped in each (ratio 0.5): 128 draws, 4 standard deviations is +-23.
    for (const m of [r0, r1]) expect(Math.abs(m.filter((v) => v === 0).length - 64)).toBeLessThan(23);
  });

  it("summary FLOPs count every replica's: 2 replicas of 8 samples do the forward MatMul's work of one of 16", async () => {
    const flops = async (text: string) => {
      const r = await run(await compile(loadConfigText(text, FILE)), { workers: 1, numerics: false, steps: 1 });
      return buildSummary(r, profileTables(r), {}, 1).ops.find((o) => o.type === 'MatMul')!.flops;
    };
    const two = await flops(mlp({ micro: 8, ipus: 2, replicas: 2 }));
    expect(two).toBe(2 * 8 * 12 * 16 * 2);
    expect(two).toBe(await flops(mlp({ micro: 16, ipus: 1 })));
  });
});

describe('replication with sharding, and inference', () => {
  it('2 replicas of the 2-IPU sharded MLP on 4 IPUs give the weights of one on the whole batch', async () => {
    const file = path.join(ROOT, 'configs/examples/mlp-sharded-2ipu.yaml');
    const base = readFileSync(file, 'utf8').replace('steps: 5', 'steps: 2');
    const text = base
      .replace('device: {preset: m2000, ipus: 2, tiles: 16}', 'device: {preset: m2000, tiles: 16}\nreplicas: 2')
      .replace('x: {shape: [32, 64]}', 'x: {shape: [16, 64]}')
      .replace('label: {shape: [32], dtype: int32}', 'label: {shape: [16], dtype: int32}');
    const rep = await train(text, 2);
    const whole = await train(base, 2);
    expect(rep.compiled.program.device.ipus).toBe(2);
    // More than one IPU per replica: PopLibs' choice is the clockwise ring.
    const w1 = rep.compiled.program.tensors.find((t) => t.name === 'w1')!;
    expect(allReducePhases(w1, rep.compiled.program.device, rep.compiled.program.replication!, await loadCodeletRegistry([])).length).toBe(2 * 5);
    expect(maxDiff(rep.weights, whole.weights)).toBeLessThan(TOL);
  });

  it('inference: each replica its own data, anchors all stacked [replicas, ...]', async () => {
    const text = `
device: {preset: m2000, tiles: 16}
replicas: 4
model:
  graph:
    inputs: {x: {shape: [2, 3]}}
    initializers: {w: {shape: [3, 2], init: {constant: 1}}}
    nodes: [{op: MatMul, inputs: [x, w], outputs: [y]}]
    outputs: [y]
inputs: {x: {random: {distribution: uniform, low: 0, high: 1, seed: 1}}}
anchors: {x: all, y: all}
`;
    const r = await run(await compile(loadConfigText(text, FILE)), { workers: 1, numerics: true, steps: 1 });
    const x = r.anchors.get('x')!;
    const y = r.anchors.get('y')!;
    expect(y.shape).toEqual([4, 2, 2]);
    const xs = x.data as Float32Array;
    const ys = y.data as Float32Array;
    // y = x @ ones: each row's sum, per replica on its own rows.
    for (let row = 0; row < 8; row++) expect(ys[2 * row]).toBeCloseTo(xs[3 * row] + xs[3 * row + 1] + xs[3 * row + 2], 5);
    expect(new Set(Array.from({ length: 4 }, (_, r) => ys[4 * r])).size).toBe(4);
  });
});

describe('the all-reduce ring (sim/collectives.ts)', () => {
  it('sums in the clockwise ring order: fragment j from replica j + 1 round to j', () => {
    const xs = [Float32Array.of(1, 2, 3), Float32Array.of(10, 20, 30), Float32Array.of(100, 200, 300)];
    expect([...ringSum(xs, false)]).toEqual([111, 222, 333]);
    // Rounding shows the order: with n = 3 and one element, fragment 2 holds it, summed from replica 0:
    // (2^24 + 1) + 1 = 2^24 in fp32; starting at replica 1 it would be (1 + 1) + 2^24 = 2^24 + 2.
    const big = 2 ** 24;
    expect(ringSum([Float32Array.of(big), Float32Array.of(1), Float32Array.of(1)], false)[0]).toBe(big);
    expect(ringSum([Float32Array.of(1), Float32Array.of(1), Float32Array.of(big)], false)[0]).toBe(big + 2);
  });

  it('PopLibs\' automatic choice (§7)', () => {
    expect(chooseMethod(2, 1, 1e9, 'reduceScatter')).toBe('clockwise');
    expect(chooseMethod(8, 2, 1e3, 'reduceScatter')).toBe('clockwise');
    expect(chooseMethod(4, 1, 1_000_000, 'reduceScatter')).toBe('meetInMiddle');
    expect(chooseMethod(4, 1, 1_000_000, 'allGather')).toBe('bidirectional');
    expect(chooseMethod(4, 1, 2_000_000, 'reduceScatter')).toBe('bidirectional');
    expect(chooseMethod(32, 1, 1e9, 'reduceScatter')).toBe('meetInMiddle');
    expect(ringSteps('clockwise', 4, true)).toHaveLength(3);
    expect(ringSteps('meetInMiddle', 4, true)).toHaveLength(2);
    expect(ringSteps('bidirectional', 4, false)[0]).toEqual({ fraction: 1 / 8, directions: [1, -1], reduce: false });
  });

  it('a clockwise ring step: slice, inter-IPU sync, an exchange as long as the link group takes, reduce', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, ipus: 4, replicas: 4, extra: 'collectiveMethod: clockwise\n' }), FILE));
    const codelets = await loadCodeletRegistry([]);
    const w1 = c.program.tensors.find((t) => t.name === 'w1')!;
    const phases = allReducePhases(w1, c.program.device, c.program.replication!, codelets);
    // 3 reduce-scatter + 3 all-gather steps of 5 phases each.
    expect(phases).toHaveLength(6 * 5);
    expect(phases.slice(0, 5).map((p) => p.kind)).toEqual(['sync', 'compute', 'sync', 'exchange', 'compute']);
    const system = { ...c.program.device, ipus: 4 };
    expect(phases[2].cycles).toBe(c.program.device.syncCycles + interIpuSyncCycles(system));
    // w1 (12 x 16 fp32 = 768 B) in quarters of 192 B. Replica 3's IPU sends to IPU 0 by walking the rail
    // (IPU 3 -> 1 -> 0: rail down, then the pair); each group carries at most 192 B.
    const link = Math.ceil(192 / groupBytesPerCycle(0, system));
    const ex = phases[3];
    expect(ex.cycles).toBeGreaterThanOrEqual(link);
    expect(phases.some((p) => p.name.includes('reduce-scatter 3/3 reduce'))).toBe(true);
    expect(phases.some((p) => p.name.includes('all-gather 3/3 copy'))).toBe(true);
  });
});

describe('all-reduce costs on the link model', () => {
  it('a big tensor: the clockwise ring step is link-bound on the rail, the bidirectional pair halves each step', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, ipus: 4, replicas: 4 }), FILE));
    const device = c.program.device;
    const codelets = await loadCodeletRegistry([]);
    // 1M float32 elements over the 16 tiles, 65536 each.
    const t = { id: 0, name: 'g', dtype: 'float32' as const, shape: [1 << 20], category: 'gradient' as const, intervals: tensorIntervals(Array.from({ length: 16 }, (_, k) => ({ tile: k, begin: k << 16, end: (k + 1) << 16, offset: 0 }))) };
    const exchange = (method: 'clockwise' | 'bidirectional') => allReducePhases(t, device, { replicas: 4, systemIpus: 4, method }, codelets).filter((p) => p.kind === 'exchange');
    const cw = exchange('clockwise');
    const bi = exchange('bidirectional');
    expect(cw).toHaveLength(6);
    expect(bi).toHaveLength(6);
    // Clockwise on the ladder: 1 -> 2 and 3 -> 0 each walk one rail group (2 links), the busiest: a quarter of 4 MiB through it.
    const system = { ...device, ipus: 4 };
    expect(cw[0].cycles).toBe(Math.ceil((1 << 20) / groupBytesPerCycle(1, system)));
    for (const [k, p] of bi.entries()) expect(p.cycles, `step ${k}`).toBeLessThan(cw[k].cycles);
  });

  it('tensors laid out alike share their phases (computed once), each named for its own tensor', async () => {
    const c = await compile(loadConfigText(mlp({ micro: 8, ipus: 4, replicas: 4 }), FILE));
    const device = c.program.device;
    const codelets = await loadCodeletRegistry([]);
    const rep = { replicas: 4, systemIpus: 4, method: 'clockwise' as const };
    const tensor = (name: string, tiles: number) => ({ id: 0, name, dtype: 'float32' as const, shape: [1024], category: 'gradient' as const, intervals: tensorIntervals(Array.from({ length: tiles }, (_, k) => ({ tile: k, begin: (k * 1024) / tiles, end: ((k + 1) * 1024) / tiles, offset: 0 }))) });
    const a = allReducePhases(tensor('a', 16), device, rep, codelets);
    const b = allReducePhases(tensor('b$&', 16), device, rep, codelets);
    expect(b.map((p) => p.name)).toEqual(a.map((p) => p.name.replace('allReduce(a)', () => 'allReduce(b$&)')));
    expect(b.map((p) => p.cycles)).toEqual(a.map((p) => p.cycles));
    expect(a.some((p) => p.name.startsWith('allReduce(a) reduce-scatter 1/3'))).toBe(true);
    // Another layout is costed on its own: on 4 tiles each holds 4x the elements.
    const fewer = allReducePhases(tensor('a', 4), device, rep, codelets);
    expect(fewer.find((p) => p.kind === 'compute')!.cycles).toBeGreaterThan(a.find((p) => p.kind === 'compute')!.cycles);
  });
});

describe("PopART's checks on replicas", () => {
  it('replicas must divide the device\'s IPUs', () => {
    expect(() => loadConfigText(mlp({ micro: 8, ipus: 4, replicas: 3 }), FILE)).toThrow(/replicas: 3 does not divide the device's 4 IPUs/);
  });

  it('replicas x IPUs per replica must fit the device', () => {
    const text = mlp({ micro: 8, ipus: 2, replicas: 2 }).replace('outputs: [h1]}', 'outputs: [h1], ipu: 0}').replace('outputs: [logits]}', 'outputs: [logits], ipu: 1}');
    let err: unknown;
    try {
      loadConfigText(text, FILE);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/replicas: 2 x 2 IPUs per replica \(a node names ipu 1\) need 4 IPUs, the device has 2/);
  });
});
