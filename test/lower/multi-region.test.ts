/**
 * Multi-region (2-D) elementwise vertices (src/lower/elementwise.ts
 * placeByTile, sim/codelets/multi-region.ts): PopLibs' region split, the
 * vertex structure per tile on a layout with many runs per tile (a
 * convolution's output), the numbers, and the 2-D estimates.
 *
 * Numerics: a Conv -> BatchNormalization -> Relu -> Sum(relu, bn) -> Sigmoid
 * model, with Relu's output also scaled by a scalar (Mul, popops'
 * BroadcastScalar2D), against onnxruntime-node. The elementwise outputs are checked exactly
 * against our own conv output (BatchNorm in onnxruntime's fp32 order, Relu a
 * select, Sum one fp32 add; Sigmoid computed in double and rounded once, as the
 * 1-D codelet does), and every output against onnxruntime within 1e-5
 * absolute: the conv's fp32 sums are ordered differently on the two sides (27
 * products of values in [-1, 1], each partial rounded: a few ulps of sums
 * below 10), which the ops after it carry through with slope at most about 2
 * (BatchNorm's scale / sqrt(var + eps) with scale in [0.5, 1.5], var in
 * [0.5, 1.5]).
 */
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { CodeletRegistry, type Codelet } from '../../sim/codelet.js';
import { addCodelet, sumCodelet } from '../../sim/codelets/binary.js';
import { castCodelet } from '../../sim/codelets/cast.js';
import { addLoop, binaryMultiVertex, innerLoop, unaryMultiVertex, vectorWidth } from '../../sim/codelets/estimators.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { batchNorm2DCodelet, channelsTouched } from '../../sim/codelets/norm.js';
import { reluCodelet } from '../../sim/codelets/unary.js';
import { computeSetCost } from '../../sim/cost.js';
import type { DeviceProgram, Region, Vertex } from '../../sim/program.js';
import type { GraphDecl } from '../../src/config/types.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { splitRegions } from '../../src/lower/split-regions.js';
import { runGraph } from '../../src/session.js';
import { randomData, tiny } from '../helpers.js';
import { roundHalf } from '../../sim/half.js';
import { vertexList, vertexTable } from '../../sim/vertex-table.js';
import { intervalList } from '../../sim/intervals.js';

const { onnx } = onnxProto;

describe('splitRegions (PopLibs splitRegionsBetweenWorkers)', () => {
  it('splits the example of PopLibs Util.cpp: 42 elements, grain 4, up to 8 parts of at least 6', () => {
    // Regions {0,10}, {15,20}, {33,60}: 11 grains, at least 2 a part, so 4 parts (fewer parts, same largest),
    // grains spread evenly as PopLibs' loop does (2, 3, 3, 3; the comment beside it says 3, 3, 3, 2).
    expect(splitRegions([10, 5, 27], 4, 8, 6)).toEqual([
      [[0, 0, 8]],
      [[0, 8, 2], [1, 0, 5], [2, 0, 5]],
      [[2, 5, 12]],
      [[2, 17, 10]],
    ]);
  });

  it('covers every element once, in order, in at most maxParts parts of whole grains but the last', () => {
    for (const lengths of [[1], [3, 1, 7], [64, 64, 64, 64, 64, 64, 64], [5, 0, 9, 2], [1000], Array.from({ length: 40 }, (_, i) => 1 + (i % 5))]) {
      for (const grain of [1, 2, 4]) {
        const parts = splitRegions(lengths, grain, 6, 2 * grain);
        expect(parts.length).toBeLessThanOrEqual(6);
        const flat = parts.flat();
        const seen = lengths.map(() => 0);
        for (const [r, off, n] of flat) {
          expect(off).toBe(seen[r]);
          seen[r] += n;
        }
        expect(seen).toEqual(lengths);
        const sizes = parts.map((p) => p.reduce((s, [, , n]) => s + n, 0));
        for (const s of sizes.slice(0, -1)) expect(s % grain).toBe(0);
      }
    }
  });
});

/** Conv (3 -> C channels, 3x3, pad 1) -> BatchNormalization -> Relu -> Sum(relu, bn) -> Sigmoid. */
const C = 24;
const H = 10;
const W = 10;
const X = randomData(3 * H * W, 11);
const WEIGHTS = randomData(C * 3 * 9, 12, -0.5, 0.5);
const BN = { scale: randomData(C, 13, 0.5, 1.5), bias: randomData(C, 14), mean: randomData(C, 15, -0.2, 0.2), var: randomData(C, 16, 0.5, 1.5) };
const EPS = 1e-5;
const SCALE = Float32Array.of(0.37);
const OUTS = ['c', 'n', 'r', 's', 'y', 'm'];

function decl(): GraphDecl {
  const loc = { file: '<multi-region test>', line: 1, col: 1 };
  const node = (op: string, name: string, inputs: string[], outputs: string[], attributes = {}) => ({ op, domain: '', name, inputs, outputs, attributes, loc });
  return {
    inputs: [{ name: 'x', shape: [1, 3, H, W], dtype: 'float32', loc }],
    initializers: [
      { name: 'w', shape: [C, 3, 3, 3], dtype: 'float32', loc, init: { kind: 'data', data: WEIGHTS }, trainable: false },
      ...Object.entries(BN).map(([name, data]) => ({ name, shape: [C], dtype: 'float32', loc, init: { kind: 'data', data }, trainable: false })),
      { name: 'k', shape: [1], dtype: 'float32', loc, init: { kind: 'data', data: SCALE }, trainable: false },
    ],
    nodes: [
      node('Conv', 'conv', ['x', 'w'], ['c'], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }),
      node('BatchNormalization', 'bn', ['c', 'scale', 'bias', 'mean', 'var'], ['n'], { epsilon: EPS }),
      node('Relu', 'relu', ['n'], ['r']),
      node('Sum', 'sum', ['r', 'n'], ['s']),
      node('Sigmoid', 'sigmoid', ['s'], ['y']),
      node('Mul', 'scale', ['r', 'k'], ['m']),
    ],
    outputs: OUTS,
    opset: 18,
  } as unknown as GraphDecl;
}

async function ortRun(): Promise<Record<string, Float32Array>> {
  const T = onnx.TensorProto.DataType;
  const info = (name: string) => ({ name, type: { tensorType: { elemType: T.FLOAT } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 18 }],
    graph: {
      name: 'multi-region',
      node: [
        { opType: 'Conv', input: ['x', 'w'], output: ['c'], attribute: [{ name: 'pads', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 1, 1, 1] }] },
        { opType: 'BatchNormalization', input: ['c', 'scale', 'bias', 'mean', 'var'], output: ['n'], attribute: [{ name: 'epsilon', type: onnx.AttributeProto.AttributeType.FLOAT, f: EPS }] },
        { opType: 'Relu', input: ['n'], output: ['r'] },
        { opType: 'Sum', input: ['r', 'n'], output: ['s'] },
        { opType: 'Sigmoid', input: ['s'], output: ['y'] },
        { opType: 'Mul', input: ['r', 'k'], output: ['m'] },
      ],
      initializer: [
        { name: 'w', dims: [C, 3, 3, 3], dataType: T.FLOAT, floatData: Array.from(WEIGHTS) },
        ...Object.entries(BN).map(([name, data]) => ({ name, dims: [C], dataType: T.FLOAT, floatData: Array.from(data) })),
        { name: 'k', dims: [1], dataType: T.FLOAT, floatData: Array.from(SCALE) },
      ],
      input: [{ name: 'x', type: { tensorType: { elemType: T.FLOAT, shape: { dim: [1, 3, H, W].map((d) => ({ dimValue: d })) } } } }],
      output: OUTS.map(info),
    },
  });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const r = await session.run({ x: new ort.Tensor('float32', X, [1, 3, H, W]) });
  await session.release();
  return Object.fromEntries(OUTS.map((k) => [k, r[k].data as Float32Array]));
}

/** Vertices of the compute sets of op `op`, by tile. */
function verticesByTile(program: DeviceProgram, op: string): Map<number, Vertex[]> {
  const m = new Map<number, Vertex[]>();
  for (const cs of program.computeSets) {
    if (cs.op !== op) continue;
    for (const v of vertexList(cs.vertices)) m.set(v.tile, [...(m.get(v.tile) ?? []), v]);
  }
  return m;
}

describe('elementwise ops on a layout with many runs per tile', () => {
  const device = tiny();
  const run = (async () => {
    const registry = await createRegistry([]);
    return runGraph({ graph: buildGraph(decl(), registry), registry, device, inputs: { x: X }, outputs: OUTS });
  })();

  it('places at most one vertex per worker on each tile, 1-D where a tile holds one run', async () => {
    const { program } = await run;
    const relu = program.tensors.find((t) => t.name === 'r' || t.name.endsWith('/r'));
    expect(relu, 'the Relu output tensor').toBeDefined();
    // The premise: the conv's output (and so Relu's) lies in several runs on some tile.
    const runsPerTile = new Map<number, number>();
    for (const iv of intervalList(relu!.intervals)) runsPerTile.set(iv.tile, (runsPerTile.get(iv.tile) ?? 0) + 1);
    expect(Math.max(...runsPerTile.values())).toBeGreaterThan(device.workersPerTile);
    for (const op of ['bn', 'relu', 'sum', 'sigmoid', 'scale']) {
      const byTile = verticesByTile(program, op);
      expect(byTile.size, op).toBeGreaterThan(0);
      for (const [tile, vs] of byTile) {
        expect(vs.length, `${op} on tile ${tile}`).toBeLessThanOrEqual(device.workersPerTile);
        const multi = vs.filter((v) => v.codelet.endsWith('2D'));
        // A tile holding one run gets one 1-D vertex; one holding several gets only 2-D ones.
        if (multi.length === 0) expect(vs.length).toBe(1);
        else expect(multi.length).toBe(vs.length);
      }
      const total = [...byTile.values()].reduce((s, vs) => s + vs.filter((v) => v.codelet.endsWith('2D')).length, 0);
      expect(total, `${op}: some tiles use 2-D vertices`).toBeGreaterThan(0);
    }
  });

  it('computes what onnxruntime does, the elementwise ops exactly on our conv output', async () => {
    const ours = (await run).outputs;
    const ref = await ortRun();
    const [c, n, r, s, y, m] = OUTS.map((k) => ours.get(k) as Float32Array);
    const f = Math.fround;
    for (let i = 0; i < c.length; i++) {
      const ch = Math.floor(i / (H * W));
      // onnxruntime's order: k = scale / sqrt(var + eps), y = x k + (bias - mean k), each step in fp32.
      const k = f(BN.scale[ch] / f(Math.sqrt(f(BN.var[ch] + f(EPS)))));
      expect(n[i]).toBe(f(f(c[i] * k) + f(BN.bias[ch] - f(BN.mean[ch] * k))));
      expect(r[i]).toBe(Math.max(n[i], 0));
      expect(s[i]).toBe(f(r[i] + n[i]));
      expect(y[i]).toBe(f(1 / (1 + Math.exp(-s[i]))));
      expect(m[i]).toBe(f(r[i] * SCALE[0]));
    }
    for (const k of OUTS) {
      const o = ours.get(k) as Float32Array;
      let worst = 0;
      for (let i = 0; i < o.length; i++) worst = Math.max(worst, Math.abs(o[i] - ref[k][i]));
      expect(worst, k).toBeLessThanOrEqual(1e-5);
    }
  });
});

describe('float16 elementwise ops on a layout with many runs per tile', () => {
  // Conv -> Cast to float16 -> Relu -> Sum(relu, h): each region's halves decoded, computed and rounded back as the 1-D vertex does.
  it('rounds each region as the 1-D codelets do (Cast2D, Relu2D, Sum2D on float16)', async () => {
    const registry = await createRegistry([]);
    const g = decl();
    const loc = g.nodes[0].loc;
    const node = (op: string, name: string, inputs: string[], outputs: string[], attributes = {}) => ({ op, domain: '', name, inputs, outputs, attributes, loc });
    const graph = {
      ...g,
      initializers: g.initializers.slice(0, 1),
      nodes: [g.nodes[0], node('Cast', 'cast', ['c'], ['h'], { to: 10 }), node('Relu', 'relu', ['h'], ['r']), node('Sum', 'sum', ['r', 'h'], ['s'])],
      outputs: ['c', 'h', 'r', 's'],
    } as unknown as GraphDecl;
    const { outputs, program } = await runGraph({ graph: buildGraph(graph, registry), registry, device: tiny(), inputs: { x: X }, outputs: ['c', 'h', 'r', 's'] });
    for (const op of ['cast', 'relu', 'sum']) expect([...verticesByTile(program, op).values()].flat().some((v) => v.codelet.endsWith('2D')), op).toBe(true);
    const [c, h, r, s] = ['c', 'h', 'r', 's'].map((k) => outputs.get(k) as Float32Array);
    for (let i = 0; i < c.length; i++) {
      expect(h[i]).toBe(roundHalf(c[i]));
      expect(r[i]).toBe(Math.max(h[i], 0));
      expect(s[i]).toBe(roundHalf(Math.fround(r[i] + h[i])));
    }
  });
});

describe('2-D estimates (PopLibs UnaryOp2D, BinaryOp2D, Cast2d)', () => {
  const device = tiny();
  const codelets = new CodeletRegistry();
  registerBuiltinCodelets(codelets);
  const region = (offset: number, count: number): Region => ({ offset, count, dtype: 'float32' });
  const tileCost = (vertices: Omit<Vertex, 'tile'>[]) => computeSetCost({ id: 0, name: 'probe', op: 'probe', vertices: vertexTable(vertices.map((v) => ({ ...v, tile: 0 }))) }, codelets, device).cycles;
  const two = (c: Codelet) => c.multiRegion!;

  it('registers each multi-region form with its 1-D codelet', () => {
    for (const c of [reluCodelet, addCodelet, sumCodelet, castCodelet]) expect(codelets.get(`${c.name}2D`)).toBe(two(c));
  });

  it('Relu2D: 20 + inner per region, the tile W x its busiest worker + the supervisor', () => {
    const counts = [7, 16, 3];
    const regions = counts.map((n, j) => region(100 * j, n));
    const worker = 20 + counts.reduce((s, n) => s + innerLoop(n, vectorWidth('float32', device), { cyclesPerLoop: 3, vectorised: false, unroll: 2 }), 0);
    expect(worker).toBe(20 + 12 + 24 + 6);
    const v = { codelet: two(reluCodelet).name, fields: { in: regions.map((r) => ({ ...r, offset: r.offset + 1000 })), out: regions }, params: {} };
    expect(tileCost([v])).toBe(device.supervisorOverheadCycles + device.workersPerTile * worker);
    // Two such vertices run on two workers at once.
    expect(tileCost([v, v])).toBe(device.supervisorOverheadCycles + device.workersPerTile * worker);
  });

  it('Add2D: 5 + inner per region, 20 in place; Sum2D of k operands: k - 1 adds', () => {
    const a = [region(0, 8), region(50, 6)];
    const b = [region(200, 8), region(250, 6)];
    const o = [region(400, 8), region(450, 6)];
    const inner = innerLoop(8, 2, addLoop('float32')) + innerLoop(6, 2, addLoop('float32'));
    const add2D = two(addCodelet);
    expect(add2D.cycles({ fields: { a, b, out: o }, params: {} }, device)).toBe(5 + inner);
    expect(add2D.cycles({ fields: { a, b, out: a }, params: {} }, device)).toBe(20 + inner);
    const sum2D = two(sumCodelet);
    // `in` holds the k operand regions of each output region, pass after pass.
    expect(sum2D.cycles({ fields: { in: [a[0], b[0], o[0], a[1], b[1], o[1]], out: [region(600, 8), region(650, 6)] }, params: {} }, device)).toBe(5 + inner + 20 + inner);
  });

  it('Cast2d: 5 + (6 + ceil(n / 2)) per region', () => {
    const v = { fields: { in: [region(0, 9), region(20, 4)], out: [region(100, 9), region(120, 4)] }, params: {} };
    expect(two(castCodelet).cycles(v, device)).toBe(5 + 6 + 5 + 6 + 2);
  });

  it('NnBatchNorm2D: the per-channel steps over the channels its runs touch, then two BinaryOp2D passes', () => {
    // Runs of 8 and 6 elements from flat 0 and 100 with S = 16: channels 0 and 6, one each.
    const v = {
      fields: { in: [region(0, 8), region(100, 6)], out: [region(200, 8), region(300, 6)], scale: region(400, 7), bias: region(420, 7), mean: region(440, 7), var: region(460, 7) },
      params: { C: 8, S: 16, cMin: 0, eps: 1e-5 },
      arrays: { begin: [0, 100] },
    };
    // sqrt 20 + 10, divide 5 + 10, two mul/sub 2 x (5 + 3); ChannelMul and AddToChannel 2 x (5 + 12 + 9).
    expect(batchNorm2DCodelet.cycles(v, device)).toBe(30 + 15 + 16 + 52);
    expect(channelsTouched([0, 100, 30], [8, 6, 4], 16)).toBe(1 + 1 + 2);
  });

  it('a tile holding one run still costs the 1-D MultiVertex', () => {
    const n = 1000;
    const relu = { codelet: reluCodelet.name, fields: { in: region(0, n), out: region(4000, n) }, params: {} };
    expect(tileCost([relu])).toBe(device.supervisorOverheadCycles + unaryMultiVertex(n, 'float32', { cyclesPerLoop: 3, vectorised: false, unroll: 2 }, device));
    const add = { codelet: addCodelet.name, fields: { a: region(0, n), b: region(4000, n), out: region(8000, n) }, params: {} };
    expect(tileCost([add])).toBe(device.supervisorOverheadCycles + binaryMultiVertex(n, 'float32', addLoop('float32'), device));
  });
});
