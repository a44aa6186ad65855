/**
 * Tensor locations (PopART's TensorLocationSettings): replicated tensor
 * sharding of the optimizer state (reduce-scatter, the update on the shard,
 * all-gather) and OffChip storage in Streaming Memory (remote loads and
 * stores around each use). Neither changes the arithmetic: the sharded
 * reduce-scatter sums each fragment in the all-reduce's ring order and the
 * update is elementwise, so the weights are bit for bit those of the
 * unsharded, on-chip run.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import { compile, TrainingSession, type Compiled, type SessionState } from '../../src/session.js';
import { remoteCopyCycles } from '../../sim/streaming-memory.js';
import { DTYPE_BYTES, type DeviceProgram, type ProgramStep } from '../../sim/program.js';
import type { Phase } from '../../sim/profile.js';
import { buildTrace } from '../../src/report/trace.js';
import { ROOT } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

const FILE = path.join(ROOT, 'configs/examples/tensor-locations-test.yaml');

function mlp(opts: { micro?: number; replicas?: number; accumulation?: number; optimizer?: string; train?: string }): string {
  const micro = opts.micro ?? 8;
  const replicas = opts.replicas ?? 1;
  return `
device: {preset: m2000, ipus: ${replicas}, tiles: 16}
replicas: ${replicas}
model:
  graph:
    inputs:
      x: {shape: [${micro}, 12]}
      label: {shape: [${micro}], dtype: int32}
    initializers:
      w1: {shape: [12, 18], init: {normal: {std: 0.3, seed: 1}}}
      b1: {shape: [18], init: {constant: 0.1}}
      w2: {shape: [18, 5], init: {normal: {std: 0.3, seed: 2}}}
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
${opts.train ?? ''}`;
}

/** A train: line setting one kind's location (thresholds 0, so every tensor of the tiny model qualifies). */
function location(key: string, storage: 'onChip' | 'offChip', rts = false): string {
  return `  ${key}: {location: {storage: ${storage}, replicatedTensorSharding: ${rts}}, minElementsForOffChip: 0, minElementsForReplicatedTensorSharding: 0}\n`;
}

async function train(text: string, steps: number, numerics = true): Promise<{ weights: Map<string, Float32Array>; compiled: Compiled; cycles: number[]; phases: Phase[] }> {
  const compiled = await compile(loadConfigText(text, FILE));
  const s = await TrainingSession.create(compiled, { workers: 1, numerics });
  const cycles: number[] = [];
  try {
    for (let i = 0; i < steps; i++) cycles.push((await s.runStep()).cycles);
    return { weights: numerics ? new Map([...s.readWeights()].map(([k, v]) => [k, v as Float32Array])) : new Map(), compiled, cycles, phases: [...s.engine.phases] };
  } finally {
    await s.close();
  }
}

function expectSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  for (const [k, v] of a) expect(Array.from(v), k).toEqual(Array.from(b.get(k)!));
}

function leaves(steps: readonly ProgramStep[]): ProgramStep[] {
  return steps.flatMap((s) => (s.kind === 'repeat' ? leaves(s.body) : [s]));
}

/** Tile bytes of the optimizer state (tensors the update ops made, named after their state). */
function stateBytes(p: DeviceProgram, names: RegExp): number {
  return p.tensors.filter((t) => names.test(t.name)).reduce((a, t) => a + intervalList(t.intervals).reduce((b, iv) => b + (iv.end - iv.begin) * DTYPE_BYTES[t.dtype], 0), 0);
}

const SGD_STATE = /\/velocity$/;
const ADAM_STATE = /\/exp_avg(_sq)?$/;

describe('replicated tensor sharding of the optimizer state', () => {
  it('4 replicas, SGD with momentum: the weights of the unsharded replicated run, bit for bit; the state a quarter', async () => {
    const plain = await train(mlp({ replicas: 4 }), 3);
    const rts = await train(mlp({ replicas: 4, train: location('optimizerStateTensorLocationSettings', 'onChip', true) }), 3);
    expectSameWeights(rts.weights, plain.weights);
    // w1 has 216 elements: 54 per replica; b1 18: 5 (ceil(18 / 4)); w2 90: 23.
    const full = stateBytes(plain.compiled.program, SGD_STATE);
    const shard = stateBytes(rts.compiled.program, SGD_STATE);
    expect(full).toBe((216 + 18 + 90) * 4);
    expect(shard).toBe((54 + 5 + 23) * 4);
    // The steps: per weight a reduce-scatter, the replica's shard, the update, an all-gather; no all-reduce.
    const kinds = leaves(rts.compiled.program.programs.batch).map((s) => s.kind);
    expect(kinds.filter((k) => k === 'allReduce')).toHaveLength(0);
    for (const k of ['reduceScatter', 'replicaShard', 'allGather'] as const) expect(kinds.filter((x) => x === k), k).toHaveLength(3);
    // The test can fail: each replica updating only its shard without the all-gather leaves the others stale.
    const names = rts.phases.map((p) => p.name);
    expect(names.some((n) => /^reduceScatter\(.* reduce-scatter 1\/\d reduce$/.test(n))).toBe(true);
    expect(names.some((n) => /^allGather\(.* all-gather 1\/\d copy$/.test(n))).toBe(true);
  });

  it('2 replicas x accumulation 2, Adam: bit for bit the unsharded run; Adam moments halved; tile memory drops', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const plain = await train(mlp({ replicas: 2, accumulation: 2, optimizer: adam }), 2);
    const rts = await train(mlp({ replicas: 2, accumulation: 2, optimizer: adam, train: location('optimizerStateTensorLocationSettings', 'onChip', true) }), 2);
    expectSameWeights(rts.weights, plain.weights);
    expect(stateBytes(rts.compiled.program, ADAM_STATE)).toBe(2 * (108 + 9 + 45) * 4);
    expect(stateBytes(plain.compiled.program, ADAM_STATE)).toBe(2 * (216 + 18 + 90) * 4);
    const alwaysLive = (p: DeviceProgram) => p.memory!.reduce((a, m) => a + m.alwaysLive, 0);
    expect(alwaysLive(rts.compiled.program)).toBeLessThan(alwaysLive(plain.compiled.program));
  });

  it('costs: the reduce-scatter and all-gather are the halves of the all-reduce; timing only charges the same', async () => {
    const text = mlp({ replicas: 4, train: location('optimizerStateTensorLocationSettings', 'onChip', true) });
    const a = await train(text, 1, true);
    const b = await train(text, 1, false);
    expect(b.cycles).toEqual(a.cycles);
    const plain = await train(mlp({ replicas: 4 }), 1, false);
    const sum = (ps: Phase[], re: RegExp) => ps.filter((p) => re.test(p.name)).reduce((x, p) => x + p.cycles, 0);
    // The gradients' reduce-scatters cost what the all-reduces' first halves did (the same tensors); the all-gathers move the weights.
    expect(sum(b.phases, /^reduceScatter\(/)).toBe(sum(plain.phases, /^allReduce\(.* reduce-scatter /));
    expect(sum(b.phases, /^allGather\(/)).toBeGreaterThan(0);
    expect(b.phases.some((p) => p.name.startsWith('allReduce('))).toBe(false);
  });
});

/** Tile bytes of the program's tensors named by `names`. */
function bytesOf(p: DeviceProgram, names: (n: string) => boolean): number {
  return stateBytes(p, { test: names } as unknown as RegExp);
}

describe('replicated tensor sharding of weights and accumulators', () => {
  const WEIGHTS = ['w1', 'b1', 'w2'];

  it('4 replicas, SGD with momentum, sharded weights: bit for bit the unsharded run; each weight a quarter, gathered before each use', async () => {
    const plain = await train(mlp({ replicas: 4 }), 3);
    const rts = await train(mlp({ replicas: 4, train: location('weightTensorLocationSettings', 'onChip', true) }), 3);
    expectSameWeights(rts.weights, plain.weights);
    const p = rts.compiled.program;
    // The weights live as their shards: w1 216 elements, 54 per replica; b1 18: 5; w2 90: 23.
    expect(bytesOf(p, (n) => WEIGHTS.map((w) => `${w}/shard`).includes(n))).toBe((54 + 5 + 23) * 4);
    expect(bytesOf(plain.compiled.program, (n) => WEIGHTS.includes(n))).toBe((216 + 18 + 90) * 4);
    // Their state is sharded with the update.
    expect(stateBytes(p, SGD_STATE)).toBe((54 + 5 + 23) * 4);
    for (const w of WEIGHTS) {
      const whole = p.tensors.find((t) => t.name === w)!;
      expect(whole.gatheredFrom, w).toBe(p.tensors.find((t) => t.name === `${w}/shard`)!.id);
      // The whole weight is a temporary: on tiles from its all-gather to its last use.
      expect(whole.live, w).toBeDefined();
    }
    const alwaysLive = (q: DeviceProgram) => q.memory!.reduce((a, m) => a + m.alwaysLive, 0);
    expect(alwaysLive(p)).toBeLessThanOrEqual(alwaysLive(plain.compiled.program) - (216 + 18 + 90 - 54 - 5 - 23) * 4 * 2);
    // The steps: each weight gathered before the forward op reading it and before the backward op reading it
    // (w2 by the input-gradient matmul; w1's and b1's grad ops read no weight), reduce-scattered gradients, no all-reduce.
    const steps = leaves(p.programs.batch);
    const gathers = steps.filter((s) => s.kind === 'allGather').map((s) => p.tensors[(s as { tensor: number }).tensor].name);
    expect(gathers.sort()).toEqual(['b1', 'w1', 'w2', 'w2']);
    expect(steps.filter((s) => s.kind === 'reduceScatter')).toHaveLength(3);
    expect(steps.filter((s) => s.kind === 'allReduce' || s.kind === 'replicaShard')).toHaveLength(0);
    // The all-gather of a weight is its own costed phases.
    const ag = rts.phases.filter((x) => x.name.startsWith('allGather(w1) all-gather'));
    expect(ag.length).toBeGreaterThan(0);
    expect(ag.reduce((a, x) => a + x.cycles, 0)).toBeGreaterThan(0);
  });

  it('costs: timing only charges what the numerics run does; a gather costs the all-reduce half it replaces', async () => {
    const text = mlp({ replicas: 4, train: location('weightTensorLocationSettings', 'onChip', true) });
    const a = await train(text, 1, true);
    const b = await train(text, 1, false);
    expect(b.cycles).toEqual(a.cycles);
    const plain = await train(mlp({ replicas: 4 }), 1, false);
    const sum = (ps: Phase[], re: RegExp) => ps.filter((p) => re.test(p.name)).reduce((x, p) => x + p.cycles, 0);
    // The gradients' reduce-scatters cost what the all-reduces' first halves did; each use's all-gather of a weight costs what its all-reduce's second half did.
    expect(sum(b.phases, /^reduceScatter\(/)).toBe(sum(plain.phases, /^allReduce\(.* reduce-scatter /));
    expect(sum(b.phases, /^allGather\(w1\)/)).toBe(sum(plain.phases, /^allReduce\(Gradient___w1.* all-gather /));
  });

  it("an anchored sharded weight is gathered for its stream: each replica's value after the update, as unsharded", async () => {
    const anchors = async (text: string): Promise<number[][]> => {
      const s = await TrainingSession.create(await compile(loadConfigText(text + 'anchors: {w2: all, loss: final}\n', FILE)), { workers: 1, numerics: true });
      try {
        const out: number[][] = [];
        for (let i = 0; i < 2; i++) out.push(Array.from((await s.runStep()).anchors.get('w2')!.data));
        return out;
      } finally {
        await s.close();
      }
    };
    const plain = await anchors(mlp({ replicas: 2 }));
    const rts = await anchors(mlp({ replicas: 2, train: location('weightTensorLocationSettings', 'offChip', true) }));
    expect(rts).toEqual(plain);
    // The anchor moved: step 2's value is the weight after step 1's update, not the initial one.
    expect(plain[1]).not.toEqual(plain[0]);
  });

  it('2 replicas x accumulation 2, Adam, sharded weights (accumulators whole): bit for bit the unsharded run', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const plain = await train(mlp({ replicas: 2, accumulation: 2, optimizer: adam }), 2);
    const rts = await train(mlp({ replicas: 2, accumulation: 2, optimizer: adam, train: location('weightTensorLocationSettings', 'onChip', true) }), 2);
    expectSameWeights(rts.weights, plain.weights);
    expect(stateBytes(rts.compiled.program, ADAM_STATE)).toBe(2 * (108 + 9 + 45) * 4);
  });

  it('sharded accumulators: each micro-batch reduce-scattered into the shard; the unsharded weights up to rounding; a half of the memory', async () => {
    const base = { replicas: 2, accumulation: 2 };
    const plain = await train(mlp(base), 2);
    const rts = await train(mlp({ ...base, train: location('accumulatorTensorLocationSettings', 'onChip', true) }), 2);
    // The sums differ in order only: (gA1 + gB1) + (gA2 + gB2) per element here, (gA1 + gA2) + (gB1 + gB2) unsharded,
    // each add rounded to float32: the weights (about 0.3) within a few float32 steps after SGD's lr 0.1.
    for (const [k, v] of plain.weights) {
      const got = rts.weights.get(k)!;
      const worst = Math.max(...Array.from(v, (x, i) => Math.abs(x - got[i])));
      expect(worst, k).toBeLessThan(1e-6);
    }
    const p = rts.compiled.program;
    expect(bytesOf(p, (n) => n.startsWith('Accum___'))).toBe((108 + 9 + 45) * 4);
    // The reduce-scatters run in the accumulation loop (once per micro-batch), the update and its all-gather in the outer fragment.
    const batch = p.programs.batch;
    const loop = batch.find((s) => s.kind === 'repeat')!;
    expect(leaves([loop]).filter((s) => s.kind === 'reduceScatter')).toHaveLength(3);
    const outer = leaves(batch.filter((s) => s.kind !== 'repeat'));
    expect(outer.filter((s) => s.kind === 'reduceScatter' || s.kind === 'allReduce')).toHaveLength(0);
    expect(outer.filter((s) => s.kind === 'allGather')).toHaveLength(3);
  });

  it('weights, accumulators and optimizer state all sharded and off chip, Adam: each replica loads and stores its own shards', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const base = { replicas: 2, accumulation: 2, optimizer: adam };
    const sharded = location('weightTensorLocationSettings', 'onChip', true) + location('optimizerStateTensorLocationSettings', 'onChip', true);
    const onChip = await train(mlp({ ...base, train: sharded }), 2);
    const all = location('optimizerStateTensorLocationSettings', 'offChip', true) + location('accumulatorTensorLocationSettings', 'offChip', true) + location('weightTensorLocationSettings', 'offChip', true);
    const off = await train(mlp({ ...base, train: all }), 2);
    const plain = await train(mlp(base), 2);
    // Weights and state sharded: the plain run's, bit for bit.
    expectSameWeights(onChip.weights, plain.weights);
    for (const [k, v] of plain.weights) {
      const got = off.weights.get(k)!;
      expect(Math.max(...Array.from(v, (x, i) => Math.abs(x - got[i]))), k).toBeLessThan(1e-6);
    }
    const p = off.compiled.program;
    for (const w of WEIGHTS) {
      expect(p.tensors.find((t) => t.name === `${w}/shard`)!.remote, w).toBe(true);
      expect(p.tensors.find((t) => t.name === w)!.remote, w).toBeUndefined();
      expect(p.tensors.find((t) => t.name === `Accum___${w}`)!.remote, w).toBe(true);
    }
    // Before the forward matmul of w1: its shard loaded, then gathered.
    const steps = leaves(p.programs.batch);
    const shard = p.tensors.find((t) => t.name === 'w1/shard')!.id;
    const load = steps.findIndex((s) => s.kind === 'remoteLoad' && s.tensor === shard);
    expect(steps[load + 1]).toMatchObject({ kind: 'allGather', shard });
    // The remote loads move a shard's bytes: half the weight.
    const sm = off.phases.find((x) => x.name === 'remoteLoad(w1/shard)')!;
    expect(sm.cycles).toBe(remoteCopyCycles(p.tensors[shard], p.device));
    expect(p.tensors[shard].shape).toEqual([108]);
  });
});

describe('replicated tensor sharding of a model placed over IPUs', () => {
  const text = (train: string) => `
device: {preset: pod16, ipus: 6, tiles: 8}
replicas: 2
model:
  graph:
    inputs:
      x: {shape: [8, 16]}
      label: {shape: [8], dtype: int32}
    initializers:
      w1: {shape: [16, 24], init: {normal: {std: 0.3, seed: 1}}}
      w2: {shape: [24, 24], init: {normal: {std: 0.3, seed: 2}}}
      w3: {shape: [24, 6], init: {normal: {std: 0.3, seed: 3}}}
    nodes:
      - {op: MatMul, inputs: [x, w1], outputs: [h1], ipu: 0}
      - {op: Relu, inputs: [h1], outputs: [r1], ipu: 0}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2], ipu: 1}
      - {op: Tanh, inputs: [h2], outputs: [r2], ipu: 1}
      - {op: MatMul, inputs: [r2, w2], outputs: [h3], ipu: 2}
      - {op: MatMul, inputs: [h3, w3], outputs: [logits], ipu: 2}
    outputs: [logits]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 4}}
  label: {random: {distribution: integers, low: 0, high: 5, seed: 5}}
train:
  loss: {type: softmaxCrossEntropy, input: logits, labels: label}
  optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
  accumulationFactor: 2
${train}`;

  // w2 is read on IPUs 1 and 2: it lives on IPU 1, and IPU 2 gets an IpuCopy of it, gathered first.
  it("3 IPUs x 2 replicas, sharded weights: bit for bit the unsharded run; each shard on its weight's IPU", async () => {
    const plain = await train(text(''), 2);
    const rts = await train(text(location('weightTensorLocationSettings', 'offChip', true)), 2);
    expectSameWeights(rts.weights, plain.weights);
    const p = rts.compiled.program;
    ['w1', 'w2', 'w3'].forEach((w, ipu) => {
      const tiles = p.tensors.find((t) => t.name === `${w}/shard`)!.intervals.tile.map((tile) => Math.floor(tile / 8));
      expect(new Set(tiles), w).toEqual(new Set([ipu]));
    });
    // Off chip and unsharded, w2's copy to IPU 2 reads it loaded from Streaming Memory.
    const off = await train(text(location('weightTensorLocationSettings', 'offChip')), 2);
    expectSameWeights(off.weights, plain.weights);
  });
});

describe('checkpoints of sharded state', () => {
  const adam = '{type: adam, lr: 0.01}';
  const base = { replicas: 2, accumulation: 2, optimizer: adam };
  // Weights and optimizer state sharded (accumulators whole): the plain run's numbers bit for bit, so resumed runs compare exactly.
  const shardedText = mlp({ ...base, train: location('weightTensorLocationSettings', 'onChip', true) + location('optimizerStateTensorLocationSettings', 'offChip', true) });
  const plainText = mlp(base);

  /** Open a session on `text`, optionally restore `state`, run `steps`; its snapshot and weights after. */
  async function session(text: string, steps: number, state?: SessionState): Promise<{ state: SessionState; weights: Map<string, Float32Array> }> {
    const s = await TrainingSession.create(await compile(loadConfigText(text, FILE)), { workers: 1, numerics: true });
    try {
      if (state) s.restore(state);
      for (let i = 0; i < steps; i++) await s.runStep();
      return { state: s.snapshot(), weights: new Map([...s.readWeights()].map(([k, v]) => [k, v as Float32Array])) };
    } finally {
      await s.close();
    }
  }

  it("a sharded run's checkpoint holds whole tensors: the unsharded run's, bit for bit", async () => {
    const sharded = await session(shardedText, 1);
    const plain = await session(plainText, 1);
    const byName = (st: SessionState) => new Map(st.tensors.map((t) => [t.name, t]));
    const a = byName(sharded.state);
    const b = byName(plain.state);
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, t] of b) {
      const got = a.get(name)!;
      // Adam's step counter, one per update vertex: as many as the (sharded) layout has vertices, each the same.
      if (/\/step$/.test(name)) expect(new Set(got.data), name).toEqual(new Set(t.data));
      else {
        expect(got.shape, name).toEqual(t.shape);
        expect(Array.from(got.data), name).toEqual(Array.from(t.data));
      }
    }
    expect(a.get('w1')!.shape).toEqual([12, 18]);
    expect(a.get('AdamUpdate(w1)/exp_avg')!.data).toHaveLength(216);
  });

  it('a checkpoint loads into a sharded or an unsharded run alike: both continue as the unsharded run never stopped', async () => {
    const straight = await session(plainText, 2);
    const fromSharded = await session(plainText, 1, (await session(shardedText, 1)).state);
    expectSameWeights(fromSharded.weights, straight.weights);
    const intoSharded = await session(shardedText, 1, (await session(plainText, 1)).state);
    expectSameWeights(intoSharded.weights, straight.weights);
    // And sharded to sharded (each replica its own fragment back).
    const shardedBoth = await session(shardedText, 1, (await session(shardedText, 1)).state);
    expectSameWeights(shardedBoth.weights, straight.weights);
  });

  it('sharded accumulators are kept whole too: the same tensors as the unsharded checkpoint', async () => {
    const text = mlp({ ...base, train: location('accumulatorTensorLocationSettings', 'onChip', true) + location('weightTensorLocationSettings', 'offChip', true) });
    const sharded = await session(text, 1);
    const plain = await session(plainText, 1);
    // (Adam's per-vertex step counters left out: sharding changes the vertices.)
    const shapes = (st: SessionState) => st.tensors.filter((t) => !t.name.endsWith('/step')).map((t) => `${t.name} ${t.shape.join('x')}`).sort();
    expect(shapes(sharded.state)).toEqual(shapes(plain.state));
    expect(sharded.state.tensors.find((t) => t.name === 'Accum___w1')!.data).toHaveLength(216);
    // It resumes in the plain run.
    await session(plainText, 1, sharded.state);
  });
});

describe('OffChip: tensors in Streaming Memory', () => {
  it('optimizer state off chip: bit for bit the on-chip weights; loaded and stored around the update; no longer always live', async () => {
    const onChip = await train(mlp({ optimizer: '{type: adam, lr: 0.01}' }), 3);
    const off = await train(mlp({ optimizer: '{type: adam, lr: 0.01}', train: location('optimizerStateTensorLocationSettings', 'offChip') }), 3);
    expectSameWeights(off.weights, onChip.weights);
    const p = off.compiled.program;
    const state = p.tensors.filter((t) => ADAM_STATE.test(t.name));
    expect(state).toHaveLength(6);
    for (const t of state) {
      expect(t.remote, t.name).toBe(true);
      expect(t.live, t.name).toBeDefined();
    }
    const steps = leaves(p.programs.batch);
    // Each update: its moments and step counter loaded before it, stored after it.
    expect(steps.filter((s) => s.kind === 'remoteLoad')).toHaveLength(9);
    expect(steps.filter((s) => s.kind === 'remoteStore')).toHaveLength(9);
    const alwaysLive = (q: DeviceProgram) => q.memory!.reduce((a, m) => a + m.alwaysLive, 0);
    expect(alwaysLive(p)).toBeLessThan(alwaysLive(onChip.compiled.program) - stateBytes(p, ADAM_STATE) / 2);
    // Its own phase kind, each costed by the Streaming Memory model.
    const remote = off.phases.filter((x) => x.kind === 'streamingMemory' && x.step === 0);
    expect(remote).toHaveLength(18);
    const m = p.tensors.find((t) => t.name.endsWith('/exp_avg') && t.name.includes('w1'))!;
    const cycles = remoteCopyCycles(m, p.device);
    expect(remote.find((x) => x.name === `remoteLoad(${m.name})`)!.cycles).toBe(cycles);
    // 2 us latency at 1.33 GHz plus 864 B at 16e9 B/s.
    expect(cycles).toBe(Math.ceil(2000 * 1.33) + Math.ceil(864 / (16e9 / 1.33e9)));
    // The trace shows them as slices of their own category.
    const trace = buildTrace(off.phases, { clockHz: p.device.clockHz, tilesPerIpu: p.device.tilesPerIpu, ipus: p.device.ipus, traceTiles: 'all', deviceName: p.device.name });
    expect(trace.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'streamingMemory' && e.name === `remoteStore(${m.name})`).length).toBeGreaterThan(0);
  });

  it('weights, accumulators and sharded optimizer state all off chip: bit for bit the on-chip replicated run', async () => {
    const adam = '{type: adam, lr: 0.01}';
    const base = { replicas: 2, accumulation: 2, optimizer: adam };
    const onChip = await train(mlp(base), 2);
    const all =
      location('optimizerStateTensorLocationSettings', 'offChip', true) + location('accumulatorTensorLocationSettings', 'offChip') + location('weightTensorLocationSettings', 'offChip');
    const off = await train(mlp({ ...base, train: all }), 2);
    expectSameWeights(off.weights, onChip.weights);
    const p = off.compiled.program;
    for (const name of ['w1', 'b1', 'w2']) {
      expect(p.tensors.find((t) => t.name === name)!.remote, name).toBe(true);
      expect(p.tensors.find((t) => t.name === `Accum___${name}`)!.remote, name).toBe(true);
    }
    // The weights' and accumulators' host streams fill their remote buffers, not tile memory; the inputs' stay on tiles.
    const remote = p.streams.filter((s) => s.remote).map((s) => s.name);
    expect(remote).toHaveLength(12);
    for (const n of ['w1<-host', 'w2->host', 'Accum___b1<-host']) expect(remote).toContain(n);
    expect(p.streams.find((s) => s.name === 'x<-host')!.remote).toBeUndefined();
  });

  it('accumulators off chip, 2 replicas: the all-reduce sums the loaded accumulators (on tiles, not their remote buffers)', async () => {
    const base = { replicas: 2, accumulation: 2 };
    const onChip = await train(mlp(base), 2);
    const off = await train(mlp({ ...base, train: location('accumulatorTensorLocationSettings', 'offChip') }), 2);
    expectSameWeights(off.weights, onChip.weights);
  });

  it('the device fields override the preset: a faster Streaming Memory costs fewer cycles', async () => {
    const text = mlp({ train: location('optimizerStateTensorLocationSettings', 'offChip') });
    const slow = await train(text, 1, false);
    const fast = await train(text.replace('tiles: 16}', 'tiles: 16, streamingMemoryLatencyNs: 100, streamingMemoryBytesPerSecond: 1e11}'), 1, false);
    const sm = (ps: Phase[]) => ps.filter((p) => p.kind === 'streamingMemory').reduce((a, p) => a + p.cycles, 0);
    expect(sm(fast.phases)).toBeLessThan(sm(slow.phases));
    expect(sm(fast.phases)).toBeGreaterThan(0);
  });
});

describe("PopART's checks on tensor locations", () => {
  const error = (text: string): string => {
    try {
      loadConfigText(text, FILE);
    } catch (e) {
      expect(e).toBeInstanceOf(UserError);
      return (e as Error).message;
    }
    throw new Error('no error');
  };

  it('sharding needs replicas', () => {
    expect(error(mlp({ train: location('optimizerStateTensorLocationSettings', 'onChip', true) }))).toMatch(
      /train\.optimizerStateTensorLocationSettings\.location\.replicatedTensorSharding: .*set replicas: 2 or more/,
    );
  });

  it('accumulators (off chip or sharded) need accumulation; sharded weights or accumulators are refused with pipelining', () => {
    expect(error(mlp({ train: location('accumulatorTensorLocationSettings', 'offChip') }))).toMatch(/set train\.accumulationFactor above 1/);
    expect(error(mlp({ replicas: 2, train: location('accumulatorTensorLocationSettings', 'onChip', true) }))).toMatch(
      /train\.accumulatorTensorLocationSettings\.location\.replicatedTensorSharding: there are no accumulators to shard without gradient accumulation/,
    );
    expect(error(mlp({ train: location('weightTensorLocationSettings', 'onChip', true) }))).toMatch(/train\.weightTensorLocationSettings\.location\.replicatedTensorSharding: .*set replicas: 2 or more/);
    const pipelined = (key: string) => mlp({ replicas: 2, accumulation: 2, train: location(key, 'onChip', true) }).replace('model:\n', 'model:\n  pipelining: true\n');
    expect(error(pipelined('weightTensorLocationSettings'))).toMatch(/train\.weightTensorLocationSettings\.location\.replicatedTensorSharding: replicated tensor sharding of weights with pipelining is not supported/);
    expect(error(pipelined('accumulatorTensorLocationSettings'))).toMatch(/replicated tensor sharding of accumulators with pipelining is not supported/);
  });

  it('outlining with offChip or sharded weights is refused (a call would copy in a weight not loaded or gathered)', () => {
    expect(error(mlp({ train: location('weightTensorLocationSettings', 'offChip') }) + 'compile: {outlining: true}\n')).toMatch(/compile\.outlining: outlining with offChip weights is not supported yet/);
    expect(error(mlp({ replicas: 2, train: location('weightTensorLocationSettings', 'onChip', true) }) + 'compile: {outlining: true}\n')).toMatch(
      /compile\.outlining: outlining with sharded weights is not supported yet/,
    );
  });
});
