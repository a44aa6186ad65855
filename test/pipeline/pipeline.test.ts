/**
 * Pipelining (model.pipelining, PopART's enablePipelining; src/shard/pipeline.ts):
 * stages, the fill / main / flush schedule, stash and restore, PopART's checks,
 * and the numerics: a pipelined run gives bit for bit the weights of the same
 * sharded, accumulated run without pipelining. Each stage processes the
 * micro-batches in order, so every accumulator sums the same gradients in the
 * same order, and the stash returns each micro-batch's own activations:
 * anything else (a wrong slot, a copy read a cycle late) changes the weights.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { RunConfig } from '../../src/config/types.js';
import { UserError } from '../../src/errors.js';
import { compile, TrainingSession, type Compiled } from '../../src/session.js';
import type { PipelineStep } from '../../sim/program.js';
import { ROOT } from '../helpers.js';
import path from 'node:path';
import { exportOnnx } from '../../src/onnx/export.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { attr, f32, modelBytes, node, userErrorOf } from '../onnx/helpers.js';
import { intervalList } from '../../sim/intervals.js';

const FILE = path.join(ROOT, 'configs/examples/pipeline-test.yaml');

/** A 3-layer MLP, a layer per IPU; `extra` goes under model:, `train` under train:. */
function mlp(opts: { pipelining?: boolean; accumulation?: number; extraModel?: string; nodes?: string; train?: string; replicas?: number } = {}): RunConfig {
  const R = opts.replicas ?? 1;
  const nodes =
    opts.nodes ??
    `      - {op: MatMul, inputs: [x, w1], outputs: [h1], ipu: 0}
      - {op: Relu, inputs: [h1], outputs: [r1], ipu: 0}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2], ipu: 1}
      - {op: Tanh, inputs: [h2], outputs: [r2], ipu: 1}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3], ipu: 2}
      - {op: Add, inputs: [h3, b3], outputs: [logits], ipu: 2}`;
  return loadConfigText(
    `name: pipe
device: ${R > 1 ? `{preset: pod16, ipus: ${3 * R}, tiles: 8}\nreplicas: ${R}` : '{preset: m2000, ipus: 3, tiles: 8}'}
model:
${opts.pipelining ? '  pipelining: true\n' : ''}${opts.extraModel ?? ''}  graph:
    inputs:
      x: {shape: [8, 16]}
      label: {shape: [8], dtype: int32}
    initializers:
      w1: {shape: [16, 24], init: {normal: {std: 0.3, seed: 1}}}
      w2: {shape: [24, 24], init: {normal: {std: 0.3, seed: 2}}}
      w3: {shape: [24, 6], init: {normal: {std: 0.3, seed: 3}}}
      b3: {shape: [6], init: {constant: 0}}
    nodes:
${nodes}
    outputs: [logits]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 4}}
  label: {random: {distribution: integers, low: 0, high: 5, seed: 5}}
train:
  loss: {type: softmaxCrossEntropy, input: logits, labels: label}
  optimizer: {type: sgd, lr: 0.1, momentum: 0.9}
  steps: 2
  accumulationFactor: ${opts.accumulation ?? 6}
${opts.train ?? ''}anchors: {loss: all}
`,
    FILE,
  );
}

async function train(c: Compiled, steps: number): Promise<{ weights: Map<string, Float32Array>; losses: number[] }> {
  const s = await TrainingSession.create(c, { workers: 1, numerics: true });
  const losses: number[] = [];
  try {
    for (let i = 0; i < steps; i++) losses.push((await s.runStep()).loss!);
    return { weights: new Map([...s.readWeights()].map(([k, v]) => [k, v as Float32Array])), losses };
  } finally {
    await s.close();
  }
}

function pipelineOf(c: Compiled): PipelineStep {
  const p = c.program.programs.batch.find((s) => s.kind === 'pipeline');
  if (!p || p.kind !== 'pipeline') throw new Error('no pipeline step');
  return p;
}

async function userError(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(UserError);
    return (e as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('pipelining', () => {
  it('training has 2F - 1 stages, forward on increasing IPUs, backward on the same IPUs in reverse, PopART stash depths', async () => {
    const c = await compile(mlp({ pipelining: true }));
    const p = pipelineOf(c);
    expect(p.microBatches).toBe(6);
    expect(p.stages.map((s) => [s.stage, s.ipu, s.pass])).toEqual([
      [0, 0, 'forward'],
      [1, 1, 'forward'],
      [2, 2, 'forward+backward'],
      [3, 1, 'backward'],
      [4, 0, 'backward'],
    ]);
    // 2(F - k) - 1: 5 on IPU 0, 3 on IPU 1, none on the last.
    expect(p.stages.map((s) => s.stashDepth)).toEqual([5, 3, 0, 0, 0]);
    // IPU 0 stashes x (the matmul's gradient reads it) and h1 (Relu's gradient reads its input or output).
    expect(p.stages[0].stashBytes).toBeGreaterThanOrEqual(5 * 8 * 16 * 4);
    // The stash buffers sit on the stage's IPU.
    const per = c.program.device.tilesPerIpu;
    for (const t of c.program.tensors.filter((t) => t.name.includes('/stash'))) {
      const ipus = new Set(intervalList(t.intervals).map((iv) => Math.floor(iv.tile / per)));
      expect(t.op === 'Stash(stage 0)' ? [...ipus] : [1]).toEqual([...ipus]);
      expect(t.live).toBeUndefined();
    }
  });

  it('gives bit for bit the weights and losses of the same run without pipelining', async () => {
    const plain = await train(await compile(mlp()), 2);
    const piped = await train(await compile(mlp({ pipelining: true })), 2);
    expect(piped.losses).toEqual(plain.losses);
    for (const [k, v] of plain.weights) expect(Array.from(piped.weights.get(k)!), k).toEqual(Array.from(v));
    // Trained at all: the weights moved.
    const init = await train(await compile(mlp()), 0);
    expect(Array.from(plain.weights.get('w1')!)).not.toEqual(Array.from(init.weights.get('w1')!));
  });

  it('charges the stages side by side: G + P - 1 cycles of the busiest IPU, less than running them one after the other', async () => {
    const cfg = mlp({ pipelining: true });
    const piped = await compile(cfg);
    const s = await TrainingSession.create(piped, { workers: 1, numerics: false });
    try {
      await s.runStep();
      const phases = s.phases;
      const lanes = new Set(phases.filter((p) => p.lane !== undefined).map((p) => p.lane));
      expect([...lanes].sort()).toEqual([0, 1, 2]);
      const overlapped = phases.filter((p) => p.overlapped);
      expect(overlapped.length).toBeGreaterThan(0);
      const total = phases.filter((p) => !p.overlapped).reduce((a, p) => a + p.cycles, 0);
      const serial = phases.reduce((a, p) => a + p.cycles, 0);
      expect(total).toBeLessThan(serial);
      // The engine clock is the non-overlapped phases' sum: the summary's total is the run's time.
      const last = phases[phases.length - 1];
      expect(last.start + last.cycles - phases[0].start).toBe(total);
      // Every cycle ends with the one merged IpuCopy exchange: G + P - 1 of them.
      const copies = phases.filter((p) => p.kind === 'exchange' && p.name.startsWith('IpuCopy'));
      expect(copies.length).toBe(6 + 5 - 1);
    } finally {
      await s.close();
    }
  });

  it("PopART's checks: accumulation factor at least the stages, stages on increasing IPUs, copies between neighbours", async () => {
    expect(await userError(() => compile(mlp({ pipelining: true, accumulation: 4 })))).toMatch(/train\.accumulationFactor: 4 is less than the 5 pipeline stages.*give train\.accumulationFactor: 5/);
    const swapped = mlp({
      pipelining: true,
      nodes: `      - {op: MatMul, inputs: [x, w1], outputs: [h1], ipu: 1, pipelineStage: 0}
      - {op: Relu, inputs: [h1], outputs: [r1], ipu: 1, pipelineStage: 0}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2], ipu: 0, pipelineStage: 1}
      - {op: Tanh, inputs: [h2], outputs: [r2], ipu: 0, pipelineStage: 1}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3], ipu: 2}
      - {op: Add, inputs: [h3, b3], outputs: [logits], ipu: 2}`,
    });
    expect(await userError(() => compile(swapped))).toMatch(/op 'MatMul_2'.*forward pipeline stages must run on increasing IPUs.*stage 1 is on IPU 0 after stage 0 on IPU 1/);
    const skip = mlp({
      pipelining: true,
      nodes: `      - {op: MatMul, inputs: [x, w1], outputs: [h1], ipu: 0}
      - {op: Relu, inputs: [h1], outputs: [r1], ipu: 0}
      - {op: ReduceSum, inputs: [h1], outputs: [h1sum], attributes: {keepdims: 1}, ipu: 0}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2], ipu: 1}
      - {op: Tanh, inputs: [h2], outputs: [r2], ipu: 1}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3], ipu: 2}
      - {op: Add, inputs: [h3, b3], outputs: [h4], ipu: 2}
      - {op: Add, inputs: [h4, h1sum], outputs: [logits], ipu: 2}`,
    });
    expect(await userError(() => compile(skip))).toMatch(/op 'Add_7' .*in pipeline stage 2 \(IPU 2\) reads 'h1sum' from stage 0 \(IPU 0\): with pipelining, IpuCopies go only between neighbouring stages/);
    const unsharded = loadConfigText(
      `name: p
device: {preset: m2000, ipus: 2, tiles: 8}
model:
  pipelining: true
  graph:
    inputs: {x: {shape: [2, 2]}}
    nodes: [{op: Relu, inputs: [x], outputs: [y]}]
    outputs: [y]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1, seed: 1}}}
train: {loss: {type: l1, input: y}, optimizer: {type: sgd, lr: 0.1}, accumulationFactor: 3}
`,
      FILE,
    );
    expect(await userError(() => compile(unsharded))).toMatch(/model\.pipelining needs the model sharded over IPUs/);
  });

  it('recompute: pipeline stashes only the stage inputs, recomputes the forward in the backward stage, and gives the same weights', async () => {
    const plainC = await compile(mlp({ pipelining: true }));
    const rc = await compile(mlp({ pipelining: true, train: '  recompute: pipeline\n' }));
    // IPU 0 stashes only x (its stage input), IPU 1 only r1 copied in: fewer bytes than stashing the activations too.
    const stash = (c: Compiled) => pipelineOf(c).stages.map((s) => s.stashBytes);
    expect(stash(rc)[0]).toBe(5 * 8 * 16 * 4);
    expect(stash(rc)[1]).toBe(3 * 8 * 24 * 4);
    expect(stash(rc)[0]).toBeLessThan(stash(plainC)[0]);
    // The forward ops of stages 0 and 1 run again in their backward stages.
    expect(rc.graph.ops.filter((o) => o.name.endsWith('/recompute')).map((o) => o.name).sort()).toEqual(['MatMul_0/recompute', 'MatMul_2/recompute', 'Relu_1/recompute', 'Tanh_3/recompute']);
    const plain = await train(await compile(mlp()), 2);
    const piped = await train(rc, 2);
    expect(piped.losses).toEqual(plain.losses);
    for (const [k, v] of plain.weights) expect(Array.from(piped.weights.get(k)!), k).toEqual(Array.from(v));
  });

  it('replicated, each replica a pipeline: the same weights as the replicated run without pipelining', async () => {
    const plain = await train(await compile(mlp({ replicas: 2, accumulation: 5 })), 2);
    const piped = await train(await compile(mlp({ replicas: 2, accumulation: 5, pipelining: true })), 2);
    expect(piped.losses).toEqual(plain.losses);
    for (const [k, v] of plain.weights) expect(Array.from(piped.weights.get(k)!), k).toEqual(Array.from(v));
  });

  it("takes PopART's enablePipelining and __pipeline_stage, and ONNX export writes each op's stage", async () => {
    const alias = mlp({ extraModel: '  enablePipelining: true\n' });
    expect(alias.model.pipelining).toBe(true);
    const byAttr = mlp({
      pipelining: true,
      nodes: `      - {op: MatMul, inputs: [x, w1], outputs: [h1], ipu: 0, attributes: {__pipeline_stage: 0}}
      - {op: Relu, inputs: [h1], outputs: [r1], ipu: 0, attributes: {__pipeline_stage: 0}}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2], ipu: 1, attributes: {__pipeline_stage: 1}}
      - {op: Tanh, inputs: [h2], outputs: [r2], ipu: 1, attributes: {__pipeline_stage: 1}}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3], ipu: 2, attributes: {__pipeline_stage: 2}}
      - {op: Add, inputs: [h3, b3], outputs: [logits], ipu: 2, attributes: {__pipeline_stage: 2}}`,
    });
    expect(byAttr.model.graph.nodes.map((n) => [n.pipelineStage, n.attributes])).toEqual([0, 0, 1, 1, 2, 2].map((s) => [s, {}]));
    const c = await compile(byAttr);
    expect(pipelineOf(c).stages).toHaveLength(5);
    const { graph } = parseOnnx(exportOnnx(c.graph, { registry: c.registry, outputs: ['logits'] }), { file: 'p.onnx' });
    expect(graph.nodes.map((n) => [n.ipu, n.pipelineStage])).toEqual([[0, 0], [0, 0], [1, 1], [1, 1], [2, 2], [2, 2]]);
    const bad = [node('Relu', ['x'], ['y'], [attr.i('__pipeline_stage', -1)], { name: 'r' })];
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [4])], nodes: bad, outputs: [f32('y', [4])] }), { file: 'm.onnx' }))).toMatch(
      /node 'r' \(Relu\): attribute __pipeline_stage must be a non-negative integer/,
    );
    expect(await userError(() => compile(mlp({ extraModel: '  pipelining: true\n  enablePipelining: false\n' })))).toMatch(/disagree/);
    expect(await userError(() => compile(mlp({ train: '  recompute: pipeline\n' })))).toMatch(/train\.recompute.*recompute: pipeline recomputes the stages of a pipeline: set model\.pipelining: true/);
  });
});
