/**
 * Sharding (src/shard, ipu-architecture.md §7): ops placed on IPUs by `ipu`,
 * `__ipu_number` or auto by weight bytes; an op on IPU k uses only IPU k's
 * tiles; IpuCopy ops, one per (tensor, destination IPU), merged per
 * superstep into one exchange costed by the link model after the inter-IPU
 * sync; a sharded training run gives exactly the weights of the same model
 * on one IPU of the same size.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exchangeCost } from '../../sim/cost.js';
import { interIpuSyncCycles } from '../../sim/links.js';
import { loadConfigText } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import type { RunConfig } from '../../src/config/types.js';
import { compile, InferenceSession, TrainingSession, type Compiled } from '../../src/session.js';
import { isIpuCopy } from '../../src/shard/ipu-copy.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { shardGraph } from '../../src/shard/place.js';
import { varUpdateOp } from '../../src/train/optimizer.js';
import { runsOf } from '../../sim/copies.js';
import { ROOT } from '../helpers.js';
import { attr, f32, modelBytes, node, userErrorOf } from '../onnx/helpers.js';
import { vertexList } from '../../sim/vertex-table.js';
import { intervalList } from '../../sim/intervals.js';

const EXAMPLE = path.join(ROOT, 'configs/examples/mlp-sharded-2ipu.yaml');
const exampleText = readFileSync(EXAMPLE, 'utf8');
const TWO_IPUS = 'device: {preset: m2000, ipus: 2, tiles: 16}';

function config(text: string): RunConfig {
  return loadConfigText(text, EXAMPLE);
}

/** The example with `model:` given extra keys (virtualGraphMode) and the device replaced. */
function variant(opts: { device?: string; mode?: string; text?: string }): RunConfig {
  let text = opts.text ?? exampleText;
  if (opts.device) text = text.replace(TWO_IPUS, opts.device);
  if (opts.mode) text = text.replace('model:\n', `model:\n  virtualGraphMode: ${opts.mode}\n`);
  return config(text);
}

/** Each op's IPU by name, and the IPU of every vertex of the op's compute sets. */
function vertexIpus(c: Compiled): Map<string, Set<number>> {
  const per = c.program.device.tilesPerIpu;
  const out = new Map<string, Set<number>>();
  for (const cs of c.program.computeSets) {
    const s = out.get(cs.op) ?? new Set<number>();
    for (const v of vertexList(cs.vertices)) s.add(Math.floor(v.tile / per));
    out.set(cs.op, s);
  }
  return out;
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

describe('placing ops on IPUs', () => {
  it('manual: each op runs on its IPU, grad ops on their forward op\'s, updates on their weight\'s, every vertex and tensor on that IPU', async () => {
    const c = await compile(config(exampleText));
    const ipuOf = new Map(c.graph.ops.map((op) => [op.name, op.settings.ipu]));
    expect(ipuOf.get('MatMul_0')).toBe(0);
    expect(ipuOf.get('Relu_2')).toBe(0);
    expect(ipuOf.get('MatMul_3')).toBe(1);
    expect(ipuOf.get('SoftmaxCrossEntropyLoss')).toBe(1);
    for (const op of c.graph.ops) {
      if (op.name.includes('(MatMul_0)') || op.name.includes('(Relu_2)')) expect(op.settings.ipu, op.name).toBe(0);
      if (op.name.includes('(MatMul_3)')) expect(op.settings.ipu, op.name).toBe(1);
    }
    const updates = c.graph.ops.filter((op) => op.modifiedInputs().length > 0);
    expect(updates.length).toBe(4);
    for (const u of updates) expect(u.settings.ipu, u.name).toBe(['w1', 'b1'].includes(u.inId(0)) ? 0 : 1);
    // Every vertex of an op lies on the op's IPU.
    for (const [op, ipus] of vertexIpus(c)) {
      const placed = c.graph.ops.find((o) => o.name === op)?.settings.ipu;
      expect([...ipus], op).toEqual([placed]);
    }
    // Weights live wholly on their IPU.
    const per = c.program.device.tilesPerIpu;
    for (const [w, ipu] of [['w1', 0], ['w2', 1]] as const) {
      const t = c.program.tensors[c.tensorOf.get(w)!];
      expect(new Set(intervalList(t.intervals).map((i) => Math.floor(i.tile / per))), w).toEqual(new Set([ipu]));
    }
  });

  it('reads PopART\'s attribute __ipu_number as ipu', async () => {
    const text = exampleText.replace(/, ipu: (\d)\}/g, ', attributes: {__ipu_number: $1}}');
    expect(text).not.toContain('ipu: ');
    const c = await compile(config(text));
    expect(c.graph.ops.find((o) => o.name === 'MatMul_3')!.settings.ipu).toBe(1);
    expect(c.graph.ops.filter(isIpuCopy).length).toBe(2);
  });

  it('takes __ipu_number off an imported ONNX node into its ipu, and refuses one that is not an IPU number', () => {
    const nodes = [node('Relu', ['x'], ['a'], [attr.i('__ipu_number', 0)], { name: 'r' }), node('Sigmoid', ['a'], ['y'], [attr.i('__ipu_number', 1)], { name: 's' })];
    const { graph } = parseOnnx(modelBytes({ inputs: [f32('x', [4])], nodes, outputs: [f32('y', [4])] }), { file: 'm.onnx' });
    expect(graph.nodes.map((n) => [n.ipu, n.attributes])).toEqual([[0, {}], [1, {}]]);
    const bad = [node('Relu', ['x'], ['y'], [attr.f('__ipu_number', 1.5)], { name: 'r' })];
    expect(userErrorOf(() => parseOnnx(modelBytes({ inputs: [f32('x', [4])], nodes: bad, outputs: [f32('y', [4])] }), { file: 'm.onnx' }))).toMatch(
      /node 'r' \(Relu\): attribute __ipu_number must be a non-negative integer \(the IPU the op runs on\), got 1\.5/,
    );
  });

  it('ONNX export writes each op\'s IPU as __ipu_number and leaves the IpuCopies out', async () => {
    const c = await compile(config(exampleText));
    const bytes = exportOnnx(c.graph, { registry: c.registry, outputs: ['logits'] });
    const { graph } = parseOnnx(bytes, { file: 'sharded.onnx' });
    expect(graph.nodes.map((n) => [n.name, n.ipu, n.inputs])).toEqual([
      ['MatMul_0', 0, ['x', 'w1']],
      ['Add_1', 0, ['h1', 'b1']],
      ['Relu_2', 0, ['a1']],
      ['MatMul_3', 1, ['r1', 'w2']],
      ['Add_4', 1, ['h2', 'b2']],
    ]);
  });

  it('an op writing a tensor in place on another IPU than the tensor\'s is an error naming the op and both IPUs', async () => {
    const loc = { file: 'x.yaml', line: 1, col: 1 };
    const graph = buildGraph(
      {
        inputs: [{ name: 'g', shape: [4], dtype: 'float32', loc }],
        initializers: [{ name: 'w', shape: [4], dtype: 'float32', loc, init: { kind: 'constant', value: 1 }, trainable: true }],
        nodes: [{ op: 'Relu', domain: '', name: 'relu', inputs: ['w'], outputs: ['y'], attributes: {}, loc, ipu: 0 }],
        outputs: ['y'],
        opset: 18,
      },
      await createRegistry([]),
    );
    const update = varUpdateOp({ type: 'sgd', lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, loc }, 'w');
    update.settings.ipu = 1;
    graph.addOp(update, ['w', 'g'], []);
    let error: unknown;
    try {
      shardGraph(graph, 2);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toMatch(/op 'SGDUpdate\(w\)' \(ai\.graphcore::SGDVarUpdate:1\) on IPU 1 writes 'w' in place, but 'w' lives on IPU 0/);
  });

  it('auto: splits the forward ops contiguously where the weight bytes pass half', async () => {
    const text = exampleText.replace(/, ipu: \d\}/g, '}');
    const c = await compile(variant({ text, mode: 'auto' }));
    const order = ['MatMul_0', 'Add_1', 'Relu_2', 'MatMul_3', 'Add_4'].map((n) => c.graph.ops.find((o) => o.name === n)!.settings.ipu);
    // w1 is 32 KiB of the 37 KiB of weights: its MatMul takes the cumulative bytes past half, so IPU 1 starts after it.
    expect(order).toEqual([0, 1, 1, 1, 1]);
  });

  it('manual: an op without an ipu, or with one the device lacks, is an error naming the op', async () => {
    const missing = exampleText.replace('outputs: [a1], ipu: 0}', 'outputs: [a1]}');
    await expect(compile(config(missing))).rejects.toThrow(UserError);
    await expect(compile(config(missing))).rejects.toThrow(/op 'Add_1' \(ai\.onnx::Add:\d+\) has no ipu: with virtualGraphMode manual every node/);
    const beyond = exampleText.replace('outputs: [logits], ipu: 1}', 'outputs: [logits], ipu: 2}');
    await expect(compile(config(beyond))).rejects.toThrow(/op 'Add_4' .*ipu 2 is not an IPU of the device, which has 2 \(0 to 1\)/);
  });
});

describe('IpuCopy', () => {
  it('one copy per (tensor, destination IPU), however many ops read it there; a superstep\'s copies in one exchange', async () => {
    const text = `
device: {preset: m2000, ipus: 2, tiles: 8}
model:
  graph:
    inputs: {x: {shape: [64]}}
    nodes:
      - {op: Relu, inputs: [x], outputs: [a], ipu: 0}
      - {op: Sigmoid, inputs: [x], outputs: [b], ipu: 0}
      - {op: Add, inputs: [a, b], outputs: [c], ipu: 1}
      - {op: Mul, inputs: [a, b], outputs: [d], ipu: 1}
      - {op: Add, inputs: [c, d], outputs: [y], ipu: 1}
    outputs: [y]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1, seed: 1}}}
`;
    const c = await compile(config(text));
    const copies = c.graph.ops.filter(isIpuCopy);
    expect(copies.map((op) => op.inId(0)).sort()).toEqual(['a', 'b']);
    const exchanges = c.program.programs.batch.filter((s) => s.kind === 'exchange').map((s) => c.program.exchanges[(s as { exchange: number }).exchange]);
    const ipuCopyExchanges = exchanges.filter((e) => e.name.startsWith('IpuCopy'));
    expect(ipuCopyExchanges).toHaveLength(1);
    expect(ipuCopyExchanges[0].name).toBe('IpuCopy/exchange (2 tensors)');
    // Both tensors' bytes cross in it: 2 x 64 floats.
    const ex = ipuCopyExchanges[0];
    let bytes = 0;
    for (let i = 0; i < ex.copies.count; i++) bytes += runsOf(ex.copies, i) * ex.copies.bytes[i];
    expect(bytes).toBe(2 * 64 * 4);
    // And the numbers: y = (relu(x) + sigmoid(x)) + relu(x) sigmoid(x), float32 ops against float64 (a few ulps).
    const s = await InferenceSession.create(c, { workers: 1, numerics: true });
    try {
      const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * 2);
      const y = (await s.runStep({ x })).anchors.get('y')!.data as Float32Array;
      x.forEach((v, i) => {
        const a = Math.max(v, 0);
        const b = 1 / (1 + Math.exp(-v));
        expect(Math.abs(y[i] - (a + b + a * b))).toBeLessThan(1e-6);
      });
    } finally {
      await s.close();
    }
  });

  it('the copy\'s exchange lasts as the IPU pair\'s links take for its bytes, after the on-chip and inter-IPU sync', async () => {
    const c = await compile(config(exampleText));
    const device = c.program.device;
    const ex = c.program.exchanges.find((e) => e.op === 'IpuCopy(r1 to IPU 1)')!;
    expect(ex).toBeDefined();
    let bytes = 0;
    for (let i = 0; i < ex.copies.count; i++) {
      expect(Math.floor(ex.copies.srcTile[i] / device.tilesPerIpu)).toBe(0);
      expect(Math.floor(ex.copies.dstTile[i] / device.tilesPerIpu)).toBe(1);
      // The copy keeps the tile layout: tile t of IPU 0 sends to tile t of IPU 1.
      expect(ex.copies.dstTile[i] - ex.copies.srcTile[i]).toBe(device.tilesPerIpu);
      bytes += runsOf(ex.copies, i) * ex.copies.bytes[i];
    }
    expect(bytes).toBe(32 * 128 * 4);
    // §7: IPUs 0 and 1 are a pair joined by 4 links of 128 Gbit/s (2^30-based) at 85% efficiency.
    const pairBytesPerCycle = (4 * (128 * 2 ** 30) / 8 * 0.85) / device.clockHz;
    const linkCycles = Math.ceil(bytes / pairBytesPerCycle);
    const cost = exchangeCost(ex, device);
    expect(cost.linkCycles).toBe(linkCycles);
    // 16 KiB over 16 tiles is 1 KiB a tile, 256 cycles at 4 B/cycle: the links (16384 / 43.9 = 374 cycles) are the bottleneck.
    expect(Math.max(...cost.tiles.map(([, t]) => t))).toBe(256);
    expect(linkCycles).toBe(374);
    expect(cost.cycles).toBe(linkCycles);
    expect(interIpuSyncCycles(device)).toBe(40);
    expect(cost.syncCycles).toBe(device.syncCycles + 40);
    // The engine records exactly that: the sync before the exchange, then the exchange.
    const s = await TrainingSession.create(c, { workers: 1, numerics: false });
    try {
      await s.runStep();
      const phases = s.phases;
      const at = phases.findIndex((p) => p.kind === 'exchange' && p.op === ex.op);
      expect(phases[at].cycles).toBe(linkCycles);
      expect(phases[at - 1]).toMatchObject({ kind: 'sync', cycles: device.syncCycles + 40 });
    } finally {
      await s.close();
    }
  });
});

describe('numerics', () => {
  it('5 SGD steps sharded over 2 IPUs of 16 tiles give exactly the weights and losses of one 16-tile IPU', async () => {
    const sharded = await train(await compile(config(exampleText)), 5);
    const one = await train(await compile(variant({ device: 'device: {preset: m2000, ipus: 1, tiles: 16}', mode: 'off' })), 5);
    // Each op sees a 16-tile IPU either way, so it plans, lays out and sums identically: bit-equal, no tolerance.
    expect(sharded.losses).toEqual(one.losses);
    expect(sharded.losses[4]).toBeLessThan(sharded.losses[0]);
    expect([...sharded.weights.keys()].sort()).toEqual(['b1', 'b2', 'w1', 'w2']);
    for (const [k, v] of one.weights) expect([...sharded.weights.get(k)!], k).toEqual([...v]);
  });

  it('auto placement trains to the same weights too', async () => {
    const text = exampleText.replace(/, ipu: \d\}/g, '}');
    const auto = await train(await compile(variant({ text, mode: 'auto' })), 3);
    const one = await train(await compile(variant({ text, device: 'device: {preset: m2000, ipus: 1, tiles: 16}' })), 3);
    expect(auto.losses).toEqual(one.losses);
    for (const [k, v] of one.weights) expect([...auto.weights.get(k)!], k).toEqual([...v]);
  });
});
