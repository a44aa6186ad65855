/**
 * The unary op family: forward against onnxruntime-node, grad ops against
 * central finite differences (test/ops/harness.ts), Dropout's training
 * behaviour, ONNX version resolution, `sim ops` rows and the cycle estimates.
 *
 * Forward tolerances (|ours - ref| <= atol + rtol |ref|):
 * - exact (0, 0) for ops that are one correctly rounded fp32 operation or none
 *   on both sides: Neg, Abs, Relu, LeakyRelu (alpha x), Sqrt (IEEE sqrt), Identity,
 *   Dropout at inference, Pow with exponent 2 (x*x);
 * - rtol 1e-6 (~8 ulp), atol 1e-7 for Exp, Log, Tanh, Erf, Pow: we evaluate in
 *   double and round once; onnxruntime's fp32 kernels were measured within 1 ulp
 *   (Exp, Log, Erf) and 4 ulp (Tanh) of that over dense grids;
 * - Sigmoid: atol 2e-7, rtol 1e-6. onnxruntime's logistic (MLAS) is accurate in
 *   absolute terms, ~1.3e-7 at worst over [-16, 16], not relative: in the left tail
 *   (y ~ 1e-3) it is 6e-5 relative off the correctly rounded value;
 * - Gelu (both forms): atol 1e-6, rtol 1e-6. onnxruntime evaluates x/2 (1 + f) in
 *   fp32 with f = erf or tanh near -1 for x < 0: the cancellation leaves an absolute
 *   error of |x|/2 x a few ulp(1), measured <= 5.4e-7 over [-6, 6];
 * - float16: one float16 ulp (rtol 2^-10, atol 1e-6): both sides round a more
 *   precise value to float16 and may round differently near a boundary.
 *
 * Grad tolerance: checkGrad's default, 2e-3 absolute (reasoning in
 * test/autodiff/gradcheck.test.ts: fp32 rounding of the loss over 2h is
 * <= 3e-4 here); with h = 1e-2 the central-difference truncation error,
 * h^2/6 |f'''| |R| with |R| <= 1, stays below 3e-4 for the input ranges used
 * (kept away from kinks and singularities: |x| >= 0.05 for Abs, Relu and
 * LeakyRelu; x in [0.5, 2] for Sqrt, Log and Pow's base).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { autodiff } from '../../src/autodiff/autodiff.js';
import { loadConfigText } from '../../src/config/load.js';
import type { GraphDecl, NodeDecl } from '../../src/config/types.js';
import { Graph } from '../../src/ir/graph.js';
import { fmtOpid } from '../../src/ir/opid.js';
import type { OpRegistry } from '../../src/ir/registry.js';
import { lowerGraph } from '../../src/lower/lower.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { AddOp } from '../../src/ops/add.js';
import { L1Op } from '../../src/ops/loss.js';
import { MulOp } from '../../src/ops/mul.js';
import { compile, runGraph, TrainingSession } from '../../src/session.js';
import { CodeletRegistry, type ElemArray } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { dropoutBits } from '../../sim/codelets/dropout.js';
import { erf } from '../../sim/codelets/unary-math.js';
import { Engine } from '../../sim/engine.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import type { DeviceSpec } from '../../sim/device.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import { LEAKY_MODULE, randomData, tiny } from '../helpers.js';
import { checkForward, checkGrad, f32, i32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { vertexList } from '../../sim/vertex-table.js';

const EXACT = { atol: 0, rtol: 0 };
const TRANSCENDENTAL = { atol: 1e-7, rtol: 1e-6 };
const SIGMOID = { atol: 2e-7, rtol: 1e-6 };
const GELU = { atol: 1e-6, rtol: 1e-6 };

/** A few random shapes of rank 1 to 3 (small: every case builds an onnxruntime session). */
const shapes = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 });
/** Spans all 4 tiles of `tiny`: 231 floats, at least 32 (128 bytes) per tile. */
const WIDE = [7, 33];

interface ForwardCase {
  op: string;
  low: number;
  high: number;
  gap?: number;
  tol: { atol: number; rtol: number };
  attributes?: OpCase['attributes'];
  opset?: number;
}

const FORWARD: ForwardCase[] = [
  { op: 'Neg', low: -3, high: 3, tol: EXACT },
  { op: 'Abs', low: -3, high: 3, tol: EXACT },
  { op: 'Sqrt', low: 0, high: 9, tol: EXACT },
  { op: 'Exp', low: -6, high: 6, tol: TRANSCENDENTAL },
  { op: 'Log', low: 0.01, high: 100, tol: TRANSCENDENTAL },
  { op: 'Relu', low: -3, high: 3, tol: EXACT },
  { op: 'LeakyRelu', low: -3, high: 3, tol: EXACT, attributes: { alpha: 0.13 } },
  { op: 'LeakyRelu', low: -3, high: 3, tol: EXACT }, // default alpha 0.01
  { op: 'Sigmoid', low: -8, high: 8, tol: SIGMOID },
  { op: 'Tanh', low: -4, high: 4, tol: TRANSCENDENTAL },
  { op: 'Erf', low: -3, high: 3, tol: TRANSCENDENTAL },
  { op: 'Gelu', low: -5, high: 5, tol: GELU, opset: 20 },
  { op: 'Gelu', low: -5, high: 5, tol: GELU, opset: 20, attributes: { approximate: 'tanh' } },
  { op: 'Identity', low: -3, high: 3, tol: EXACT },
  { op: 'Dropout', low: -3, high: 3, tol: EXACT },
];

function label(c: ForwardCase): string {
  return `${c.op}${c.attributes ? ` ${JSON.stringify(c.attributes)}` : ''}`;
}

describe('forward vs onnxruntime', () => {
  for (const c of FORWARD) {
    it(`${label(c)} over random shapes and one spanning 4 tiles`, async () => {
      const run = (shape: number[], seed: number) =>
        checkForward({ op: c.op, opset: c.opset, attributes: c.attributes, inputs: { x: f32(shape, seed, c.gap ?? 0, c.low, c.high) }, ...c.tol });
      await fc.assert(
        fc.asyncProperty(shapes, fc.integer({ min: 1, max: 1000 }), (shape, seed) => run(shape, seed)),
        { numRuns: 3, seed: 42 },
      );
      await run(WIDE, 7);
    });
  }

  it('in float16 every op agrees with onnxruntime to one float16 ulp', async () => {
    // Both sides round one more precise value to float16; near a rounding boundary they may
    // round differently: one float16 ulp, 2^-10 ~ 9.8e-4 relative (atol for results near 0).
    for (const c of FORWARD) {
      const low = Math.max(c.low, -4);
      const x = { ...f32(WIDE, 12, 0, low, Math.min(c.high, 4)), dtype: 'float16' as const };
      await checkForward({ op: c.op, opset: c.opset, attributes: c.attributes, inputs: { x }, outputDtype: 'float16', atol: 1e-6, rtol: 9.8e-4 });
    }
  });

  it('a 231-element tensor puts vertices on all 4 tiles of tiny', async () => {
    const registry = await createRegistry([]);
    const graph = buildGraph(decl([node('Tanh', ['x'], ['y'])], { x: f32(WIDE, 1) }), registry);
    const { program } = await runGraph({ graph, registry, device: tiny(), inputs: { x: f32(WIDE, 1).data }, outputs: ['y'] });
    const cs = program.computeSets.find((s) => s.name.endsWith('/Tanh'))!;
    expect(new Set(vertexList(cs.vertices).map((v) => v.tile))).toEqual(new Set([0, 1, 2, 3]));
  });

  it('Sqrt and Log of negative numbers and zero give NaN and -inf as onnxruntime does', async () => {
    const x: TensorSpec = { shape: [4], data: Float32Array.from([-1, 0, -0, 4]) };
    await checkForward({ op: 'Sqrt', inputs: { x }, ...EXACT });
    await checkForward({ op: 'Log', inputs: { x }, ...EXACT });
  });

  it('Erf is accurate in double precision (reference values to 1e-15)', () => {
    const ref: [number, number][] = [[1e-5, 1.1283791670578999e-5], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2.5, 0.999593047982555], [3, 0.9999779095030014], [-4, -0.9999999845827421]];
    for (const [x, v] of ref) expect(Math.abs(erf(x) - v)).toBeLessThan(1e-15 * Math.max(1, Math.abs(v)) + 1e-20);
  });
});

describe('Pow (constant exponent)', () => {
  const base = (seed: number, shape = [4, 5]) => f32(shape, seed, 0, 0.5, 2);
  const exponent = (v: number): TensorSpec => ({ shape: [], data: Float32Array.from([v]), constant: true });

  it('agrees with onnxruntime for fractional, negative and integer exponents', async () => {
    for (const [p, seed] of [[2.5, 1], [-1.5, 2], [0.5, 3], [3, 4]] as const) {
      await checkForward({ op: 'Pow', inputs: { x: base(seed), y: exponent(p) }, outputs: ['z'], ...TRANSCENDENTAL });
    }
    // x^2 is one rounding of x*x on both sides, for negative bases too.
    await checkForward({ op: 'Pow', inputs: { x: f32(WIDE, 5, 0, -3, 3), y: exponent(2) }, outputs: ['z'], ...EXACT });
    // Pow-7 at opset 11.
    await checkForward({ op: 'Pow', opset: 11, inputs: { x: base(6), y: exponent(1.7) }, outputs: ['z'], ...TRANSCENDENTAL });
  });

  it('takes a constant exponent tensor broadcast to the base (same shape, trailing axes, leading 1s, int32)', async () => {
    const t = (shape: number[], seed: number): TensorSpec => ({ ...f32(shape, seed, 0, -2, 3), constant: true });
    await checkForward({ op: 'Pow', inputs: { x: base(11, [3, 4, 5]), y: t([3, 4, 5], 12) }, outputs: ['z'], ...TRANSCENDENTAL });
    await checkForward({ op: 'Pow', inputs: { x: base(13, WIDE), y: t([33], 14) }, outputs: ['z'], ...TRANSCENDENTAL });
    await checkForward({ op: 'Pow', inputs: { x: base(15, [4, 5]), y: t([1, 5], 16) }, outputs: ['z'], ...TRANSCENDENTAL });
    await checkForward({ op: 'Pow', inputs: { x: f32([3, 4], 17, 0, -2, 2), y: i32([4], [0, 1, 2, 3], true) }, outputs: ['z'], ...TRANSCENDENTAL });
  });

  it('has a gradient for the base', async () => {
    await checkGrad({ op: 'Pow', inputs: { x: base(7, [3, 4]), y: exponent(2.5) }, outputs: ['z'] });
    await checkGrad({ op: 'Pow', inputs: { x: f32([3, 4], 8, 0.05, -1, 1), y: exponent(3) }, outputs: ['z'] });
    await checkGrad({ op: 'Pow', inputs: { x: base(18, [3, 4]), y: { ...f32([4], 19, 0, -2, 3), constant: true } }, outputs: ['z'] });
  });

  it('rejects an exponent that is not a constant, or does not broadcast to the base, naming the node', async () => {
    const c = { op: 'Pow', inputs: { x: base(9), y: f32([], 10) }, outputs: ['z'] };
    await expect(runOurs(c)).rejects.toThrow(/op 'Pow_0' \(ai\.onnx::Pow:15\): the exponent 'y' must be a constant \(an initializer with trainable: false\), but it is a streamed input/);
    const v = { op: 'Pow', inputs: { x: base(9), y: { shape: [2], data: Float32Array.from([1, 2]), constant: true } }, outputs: ['z'] };
    await expect(runOurs(v)).rejects.toThrow(/op 'Pow_0' \(ai\.onnx::Pow:15\): the exponent 'y' float32\[2\] must broadcast to the base float32\[4, 5\]/);
  });
});

describe('gradients vs finite differences', () => {
  const grads: { op: string; x: TensorSpec; attributes?: OpCase['attributes']; opset?: number }[] = [
    { op: 'Neg', x: f32([3, 4], 11) },
    { op: 'Abs', x: f32([3, 4], 12, 0.05) },
    { op: 'Sqrt', x: f32([3, 4], 13, 0, 0.5, 2) },
    { op: 'Exp', x: f32([3, 4], 14) },
    { op: 'Log', x: f32([3, 4], 15, 0, 0.5, 2) },
    { op: 'Relu', x: f32([3, 4], 16, 0.05) },
    { op: 'LeakyRelu', x: f32([3, 4], 17, 0.05), attributes: { alpha: 0.2 } },
    { op: 'Sigmoid', x: f32([3, 4], 18, 0, -3, 3) },
    { op: 'Tanh', x: f32([3, 4], 19, 0, -2, 2) },
    { op: 'Erf', x: f32([3, 4], 20, 0, -2, 2) },
    { op: 'Gelu', x: f32([3, 4], 21, 0, -3, 3), opset: 20 },
    { op: 'Gelu', x: f32([3, 4], 22, 0, -3, 3), opset: 20, attributes: { approximate: 'tanh' } },
    { op: 'Identity', x: f32([3, 4], 23) },
    { op: 'Dropout', x: f32([3, 4], 24) }, // inference: the identity
  ];
  for (const g of grads) {
    it(`${g.op}${g.attributes ? ` ${JSON.stringify(g.attributes)}` : ''}`, async () => {
      await checkGrad({ op: g.op, opset: g.opset, attributes: g.attributes, inputs: { x: g.x } });
    });
  }
});

describe('Gelu (opset 20)', () => {
  it('does not exist before opset 20 and rejects an unknown approximation', async () => {
    await expect(runOurs({ op: 'Gelu', opset: 18, inputs: { x: f32([3], 1) } })).rejects.toThrow(/op ai\.onnx::Gelu has no version <= 18; registered versions: 20/);
    await expect(runOurs({ op: 'Gelu', opset: 20, attributes: { approximate: 'fast' }, inputs: { x: f32([3], 1) } })).rejects.toThrow(
      /op 'Gelu_0' \(ai\.onnx::Gelu:20\): attribute approximate must be 'none' or 'tanh', got 'fast'/,
    );
  });
});

// ------------------------------------------------------------------ Dropout

function node(op: string, inputs: string[], outputs: string[], attributes: NodeDecl['attributes'] = {}, name = `${op}_0`): NodeDecl {
  return { op, domain: '', name, inputs, outputs, attributes, loc: { file: '<test>', line: 1, col: 1 } };
}

/** A graph declaration: non-constant specs are streamed inputs (or trainable variables with `trainable`). */
function decl(nodes: NodeDecl[], tensors: Record<string, TensorSpec>, opts: { outputs?: string[]; trainable?: string[]; opset?: number } = {}): GraphDecl {
  const loc = { file: '<test>', line: 1, col: 1 };
  const entries = Object.entries(tensors);
  const dtype = (t: TensorSpec) => (t.data instanceof Int32Array ? 'int32' : 'float32');
  const isInit = (name: string, t: TensorSpec) => t.constant || opts.trainable?.includes(name);
  return {
    inputs: entries.filter(([n, t]) => !isInit(n, t)).map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc })),
    initializers: entries
      .filter(([n, t]) => isInit(n, t))
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc, init: { kind: 'data', data: t.data }, trainable: !t.constant })),
    nodes,
    outputs: opts.outputs ?? nodes[nodes.length - 1].outputs,
    opset: opts.opset ?? 18,
  } as GraphDecl;
}

const scalar = (v: number, dtype: 'float32' | 'int32' = 'float32'): TensorSpec => ({ shape: [], data: dtype === 'int32' ? Int32Array.from([v]) : Float32Array.from([v]), constant: true });

/** Lower a graph and run `batches` batches on one engine; the requested tensors of every batch. */
async function runBatches(
  graph: Graph,
  registry: OpRegistry,
  device: DeviceSpec,
  outputs: string[],
  batches: number,
  feeds: Record<string, Float32Array> = {},
  workers = 1,
): Promise<Map<string, ElemArray>[]> {
  const codelets = new CodeletRegistry();
  registerBuiltinCodelets(codelets);
  const { program, streamTensor } = lowerGraph({ graph, schedule: graph.schedule(), registry, codelets, device, anchors: outputs, codeletModules: [] });
  // With 2 workers, inlineBelow 0 sends every compute set through the thread pool.
  const engine = await Engine.create(program, { workers, numerics: true, inlineBelow: workers > 1 ? 0 : undefined });
  const results: Map<string, ElemArray>[] = [];
  let got = new Map<string, ElemArray>();
  const io = {
    toDevice: (s: { id: number }) => {
      const t = graph.tensor(streamTensor.get(s.id)!);
      return t.kind === 'stream' ? feeds[t.id] : t.data!;
    },
    fromDevice: (s: { id: number }, _t: unknown, data: ElemArray) => void got.set(streamTensor.get(s.id)!, data),
  };
  try {
    await engine.run('weightsFromHost', io, -1);
    for (let b = 0; b < batches; b++) {
      got = new Map();
      await engine.run('batch', io, b);
      results.push(got);
    }
  } finally {
    await engine.destroy();
  }
  return results;
}

describe('Dropout', () => {
  const N = [64, 64]; // 4096 elements over 4 tiles

  it('is the identity at inference (Dropout-13 with a ratio input, Dropout-10 at opset 11) like onnxruntime', async () => {
    await checkForward({ op: 'Dropout', inputs: { x: f32([5, 6], 1), r: f32([], 2, 0, 0.1, 0.9) }, ...EXACT });
    await checkForward({ op: 'Dropout', inputs: { x: f32(WIDE, 3), r: scalar(0.3) }, ...EXACT });
    await checkForward({ op: 'Dropout', opset: 11, attributes: { ratio: 0.4 }, inputs: { x: f32([4, 9], 4) }, ...EXACT });
    await checkForward({ op: 'Dropout', opset: 12, attributes: { seed: 5 }, inputs: { x: f32([4, 9], 5) }, ...EXACT });
  });

  it('gives a mask of ones at inference', async () => {
    const out = await runOurs({ op: 'Dropout', inputs: { x: f32(WIDE, 6) }, outputs: ['y', 'mask'] });
    expect(Array.from(out.get('mask')!).every((m) => m === 1)).toBe(true);
    expect(Array.from(out.get('y')!)).toEqual(Array.from(f32(WIDE, 6).data));
  });

  async function trainingMasks(device: DeviceSpec, batches: number, opts: { ratio?: number; name?: string; seed?: number; runSeed?: number; workers?: number } = {}) {
    const registry = await createRegistry([]);
    const x = f32(N, 7, 0, 0.5, 1.5);
    const attrs: NodeDecl['attributes'] = opts.seed !== undefined ? { seed: opts.seed } : {};
    const graph = buildGraph(decl([node('Dropout', ['x', 'r'], ['y', 'mask'], attrs, opts.name)], { x, r: scalar(opts.ratio ?? 0.25) }), registry);
    graph.training = true;
    graph.randomSeed = opts.runSeed ?? 0;
    const runs = await runBatches(graph, registry, device, ['y', 'mask'], batches, { x: x.data as Float32Array }, opts.workers);
    return { x: x.data as Float32Array, runs: runs.map((m) => ({ y: m.get('y') as Float32Array, mask: m.get('mask') as Int32Array })) };
  }

  it('drops a fraction ratio in training, scales the rest by 1 / (1 - ratio), and changes the mask every batch', async () => {
    const { x, runs } = await trainingMasks(tiny(), 3, { ratio: 0.25 });
    const n = x.length;
    const scale = Math.fround(1 / (1 - Math.fround(0.25)));
    for (const { y, mask } of runs) {
      let kept = 0;
      for (let i = 0; i < n; i++) {
        expect(mask[i] === 0 || mask[i] === 1).toBe(true);
        kept += mask[i];
        expect(y[i]).toBe(mask[i] ? Math.fround(x[i] * scale) : 0);
      }
      // Binomial(4096, 0.75): sd = sqrt(4096 x 0.75 x 0.25) / 4096 = 0.0068; allow 4 sd.
      expect(Math.abs(kept / n - 0.75)).toBeLessThan(4 * 0.0068);
      // Neighbouring elements are independent: P(both kept) = 0.5625, sd 0.0078.
      let both = 0;
      for (let i = 0; i + 1 < n; i++) both += mask[i] & mask[i + 1];
      expect(Math.abs(both / (n - 1) - 0.5625)).toBeLessThan(4 * 0.0078);
    }
    // Independent masks from batch to batch: P(differ) = 2 x 0.75 x 0.25 = 0.375, sd 0.0076.
    for (const [a, b] of [[0, 1], [1, 2], [0, 2]]) {
      let differ = 0;
      for (let i = 0; i < n; i++) differ += runs[a].mask[i] !== runs[b].mask[i] ? 1 : 0;
      expect(Math.abs(differ / n - 0.375)).toBeLessThan(4 * 0.0076);
    }
  });

  it('draws the same masks however the tensor is split over tiles and threads', async () => {
    const four = await trainingMasks(tiny(), 2);
    const one = await trainingMasks(tiny({ tilesPerIpu: 1 }), 2);
    const three = await trainingMasks(tiny({ tilesPerIpu: 3 }), 2);
    const pooled = await trainingMasks(tiny(), 2, { workers: 2 });
    for (let b = 0; b < 2; b++) {
      expect(Array.from(pooled.runs[b].mask)).toEqual(Array.from(four.runs[b].mask));
      expect(Array.from(one.runs[b].mask)).toEqual(Array.from(four.runs[b].mask));
      expect(Array.from(three.runs[b].mask)).toEqual(Array.from(four.runs[b].mask));
      expect(Array.from(one.runs[b].y)).toEqual(Array.from(four.runs[b].y));
    }
  });

  it('takes its seed from the seed attribute, else from run.seed and the node name', async () => {
    const same = (a: Int32Array, b: Int32Array) => a.every((v, i) => v === b[i]);
    const base = (await trainingMasks(tiny(), 1, { name: 'd1' })).runs[0].mask;
    expect(same((await trainingMasks(tiny(), 1, { name: 'd1' })).runs[0].mask, base)).toBe(true);
    expect(same((await trainingMasks(tiny(), 1, { name: 'd2' })).runs[0].mask, base)).toBe(false);
    expect(same((await trainingMasks(tiny(), 1, { name: 'd1', runSeed: 9 })).runs[0].mask, base)).toBe(false);
    const s1 = (await trainingMasks(tiny(), 1, { name: 'd1', seed: 77 })).runs[0].mask;
    expect(same((await trainingMasks(tiny(), 1, { name: 'd2', seed: 77 })).runs[0].mask, s1)).toBe(true);
  });

  it("grad in training is y' x mask / (1 - ratio), with the forward's mask", async () => {
    const registry = await createRegistry([]);
    const shape = [16, 20]; // 320 elements: 4 tiles
    const x = f32(shape, 8);
    const graph = buildGraph(decl([node('Dropout', ['x', 'r'], ['y', 'mask'])], { x, r: scalar(0.4) }, { trainable: ['x'] }), registry);
    graph.training = true;
    // loss = sum(y R + C), so y' = R with every element different.
    const R = randomData(320, 9);
    graph.addTensor('R', { dtype: 'float32', shape }, 'constant', { data: R });
    graph.addTensor('C', { dtype: 'float32', shape }, 'constant', { data: new Float32Array(320).fill(10) });
    graph.addOp(new MulOp({ name: 'p' }), ['y', 'R'], ['p']);
    graph.addOp(new AddOp({ name: 'q' }), ['p', 'C'], ['q']);
    graph.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'loss' }), ['q'], ['loss']);
    autodiff(graph, 'loss');
    const [first, second] = await runBatches(graph, registry, tiny(), ['mask', 'Gradient___x'], 2);
    const scale = Math.fround(1 / (1 - Math.fround(0.4)));
    for (const b of [first, second]) {
      const mask = b.get('mask') as Int32Array;
      const dx = b.get('Gradient___x') as Float32Array;
      for (let i = 0; i < 320; i++) expect(dx[i]).toBe(mask[i] ? Math.fround(R[i] * scale) : 0);
    }
    expect(Array.from(first.get('mask')!)).not.toEqual(Array.from(second.get('mask')!));
  });

  it('drops in a training session and not in an inference one (session sets Graph.training)', async () => {
    const yaml = (train: boolean) => `
name: dropout
device: tiny
model:
  graph:
    inputs:
      x: {shape: [8, 16], dtype: float32}
    initializers:
      w: {shape: [16, 16], init: {normal: {std: 0.3, seed: 1}}}
      r: {shape: [], init: {constant: 0.5}, trainable: false}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [h]}
      - {op: Dropout, inputs: [h, r], outputs: [y, mask]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
${train ? 'train:\n  loss: {type: l1, input: y, scale: 1.0, reduction: mean}\n  optimizer: {type: sgd, lr: 0.01}\n  steps: 2\n' : ''}anchors: {mask: final, y: final}
`;
    const trained = await compile(loadConfigText(yaml(true), '/tmp/dropout.yaml'));
    expect(trained.graph.training).toBe(true);
    const s = await TrainingSession.create(trained, { workers: 1, numerics: true });
    try {
      const m1 = Array.from((await s.runStep()).anchors.get('mask')!.data);
      const m2 = Array.from((await s.runStep()).anchors.get('mask')!.data);
      expect(m1.some((v) => v === 0) && m1.some((v) => v === 1)).toBe(true);
      expect(m2).not.toEqual(m1);
    } finally {
      await s.close();
    }
    const inferred = await compile(loadConfigText(yaml(false), '/tmp/dropout.yaml'));
    expect(inferred.graph.training).toBe(false);
    expect(inferred.program.computeSets.some((c) => vertexList(c.vertices).some((v) => v.codelet === 'Dropout' && v.params.training === 1))).toBe(false);
  });

  it('follows a constant training_mode, and rejects a streamed one or a streamed ratio when training', async () => {
    const registry = await createRegistry([]);
    const x = f32([4, 8], 10);
    const off = buildGraph(decl([node('Dropout', ['x', 'r', 't'], ['y', 'mask'])], { x, r: scalar(0.5), t: scalar(0, 'int32') }), registry);
    off.training = true;
    const [r0] = await runBatches(off, registry, tiny(), ['y', 'mask'], 1, { x: x.data as Float32Array });
    expect(Array.from(r0.get('y')!)).toEqual(Array.from(x.data));
    expect(Array.from(r0.get('mask')!).every((m) => m === 1)).toBe(true);
    // training_mode = 1 drops even in an inference graph (ONNX semantics).
    const on = buildGraph(decl([node('Dropout', ['x', 'r', 't'], ['y', 'mask'])], { x, r: scalar(0.5), t: scalar(1, 'int32') }), registry);
    const [r1] = await runBatches(on, registry, tiny(), ['mask'], 1, { x: x.data as Float32Array });
    expect(Array.from(r1.get('mask')!).some((m) => m === 0)).toBe(true);

    expect(() => buildGraph(decl([node('Dropout', ['x', 'r', 't'], ['y'])], { x, r: scalar(0.5), t: { shape: [], data: Float32Array.from([1]) } }), registry)).toThrow(
      /op 'Dropout_0' \(ai\.onnx::Dropout:13\): training_mode 't' must be a constant/,
    );
    expect(() => buildGraph(decl([node('Dropout', ['x', 'r'], ['y'])], { x, r: scalar(1) }), registry)).toThrow(/ratio must be in \[0, 1\), got 1/);
    const streamedRatio = buildGraph(decl([node('Dropout', ['x', 'r'], ['y'])], { x, r: f32([], 11) }), registry);
    streamedRatio.training = true;
    await expect(runBatches(streamedRatio, registry, tiny(), ['y'], 1)).rejects.toThrow(/op 'Dropout_0' \(ai\.onnx::Dropout:13\): ratio 'r' must be a constant .* when the dropout is training/);
  });

  it('hashes (seed, counter, index) to well-spread bits', () => {
    // Top bit of 20000 hashes: fair coin within 4 sd (sd = 0.0035).
    let ones = 0;
    for (let i = 0; i < 20000; i++) ones += dropoutBits(123, 1, i) >>> 31;
    expect(Math.abs(ones / 20000 - 0.5)).toBeLessThan(0.014);
    expect(dropoutBits(123, 1, 5)).not.toBe(dropoutBits(123, 2, 5));
    expect(dropoutBits(123, 1, 5)).not.toBe(dropoutBits(124, 1, 5));
  });
});

// ------------------------------------------------------------------ registry

const OPS: Record<string, number[]> = {
  Neg: [6, 13],
  Abs: [6, 13],
  Sqrt: [6, 13],
  Exp: [6, 13],
  Log: [6, 13],
  Pow: [7, 12, 13, 15],
  Relu: [6, 13, 14],
  LeakyRelu: [6, 16],
  Sigmoid: [6, 13],
  Tanh: [6, 13],
  Erf: [9, 13],
  Gelu: [20],
  Identity: [1, 13, 14, 16, 19, 21],
  Dropout: [10, 12, 13, 22],
};
const GRAD_OPS = ['NegGrad', 'AbsGrad', 'SqrtGrad', 'ExpGrad', 'LogGrad', 'PowArg0Grad', 'ReluGrad', 'LeakyReluGrad', 'SigmoidGrad', 'TanhGrad', 'ErfGrad', 'GeluGrad', 'IdentityGrad', 'DropoutGrad'];

describe('registry', () => {
  it('resolves every op at every opset from 11 to 18 (Gelu at 20) to the ONNX version in force', async () => {
    const registry = await createRegistry([]);
    for (const [type, versions] of Object.entries(OPS)) {
      for (let opset = 11; opset <= 22; opset++) {
        const expected = [...versions].reverse().find((v) => v <= opset);
        if (expected === undefined) {
          expect(() => registry.resolve('', type, opset)).toThrow(/has no version/);
          continue;
        }
        expect(registry.resolve('', type, opset).id.version, `${type} at opset ${opset}`).toBe(expected);
      }
    }
  });

  it("keeps ai.onnx LeakyRelu apart from the custom.ops one of examples/ (ops and codelets load side by side)", async () => {
    const registry = await createRegistry([LEAKY_MODULE]);
    expect(fmtOpid(registry.resolve('', 'LeakyRelu', 18).id)).toBe('ai.onnx::LeakyRelu:16');
    expect(fmtOpid(registry.resolve('custom.ops', 'LeakyRelu', Number.MAX_SAFE_INTEGER).id)).toBe('custom.ops::LeakyRelu:1');
    const codelets = await loadCodeletRegistry(registry.codeletModules);
    // A custom codelet's name is qualified by its domain: it cannot collide with a built-in.
    expect(codelets.has('custom.ops::LeakyRelu') && codelets.has('OnnxLeakyRelu')).toBe(true);
  });

  it('`sim ops` lists each op with grad true, its grad ops as grad ops, and grad agrees with getGradOps()', async () => {
    const registry = await createRegistry([]);
    const rows = registry.list();
    for (const [type, versions] of Object.entries(OPS)) {
      const mine = rows.filter((d) => d.id.domain === 'ai.onnx' && d.id.type === type);
      expect(mine.map((d) => d.id.version)).toEqual(versions);
      for (const d of mine) {
        expect(d.grad, fmtOpid(d.id)).toBe(true);
        expect(d.create).toBeDefined();
        // The column must tell the truth: an instance of the op has grad ops.
        const g = new Graph();
        g.addTensor('x', { dtype: 'float32', shape: [2] }, 'stream');
        const inputs = ['x'];
        if (type === 'Pow') {
          g.addTensor('p', { dtype: 'float32', shape: [] }, 'constant', { data: Float32Array.from([2]) });
          inputs.push('p');
        }
        const op = d.create!({ attributes: (await import('../../src/ir/registry.js')).checkAttributes(d, {}, 'n'), settings: { name: 'n' } });
        g.addOp(op, inputs, ['y']);
        expect(op.getGradOps().length, fmtOpid(d.id)).toBeGreaterThan(0);
      }
    }
    for (const type of GRAD_OPS) {
      const d = rows.find((r) => r.id.domain === 'ai.graphcore' && r.id.type === type);
      expect(d, type).toBeDefined();
      expect(d!.create, type).toBeUndefined(); // `sim ops` prints '-' in the grad column
    }
  });
});

// ------------------------------------------------------------------ cycle estimates

describe('cycle estimates (PopLibs structure, ../shared/ipu-architecture.md §3)', () => {
  const mk2 = loadDevicePreset('mk2');
  const codelets = new CodeletRegistry();
  registerBuiltinCodelets(codelets);
  const est = (name: string, n: number, dtype: 'float32' | 'float16' = 'float32', params: Record<string, number> = {}) => {
    const c = codelets.get(name);
    const fields = Object.fromEntries(Object.keys(c.fields).filter((f) => c.fields[f].direction !== 'inout').map((f) => [f, { offset: 0, count: n, dtype }]));
    return c.cycles({ fields, params }, mk2);
  };

  it('forward: W x (17 + inner) + 20, 33 for exp, with the §3 loop costs', () => {
    // 1000 floats: 167 per worker.
    expect(est('Exp', 1000)).toBe(6 * (33 + Math.ceil(167 / 2) * 6) + 20);
    expect(est('Exp', 1000, 'float16')).toBe(6 * (33 + Math.ceil(167 / 4) * 4) + 20);
    expect(est('Log', 1000)).toBe(6 * (17 + 84 * 12) + 20);
    expect(est('Tanh', 1000)).toBe(6 * (17 + 84 * 12) + 20);
    expect(est('Sigmoid', 1000)).toBe(6 * (17 + 84 * 12) + 20);
    expect(est('Sigmoid', 1000, 'float16')).toBe(6 * (17 + 42 * 6) + 20);
    expect(est('Relu', 1000)).toBe(6 * (17 + 84 * 3) + 20);
    expect(est('Sqrt', 1000)).toBe(6 * (17 + 84 * 10) + 20);
    expect(est('Gelu', 1000, 'float32', { tanh: 1 })).toBeGreaterThan(est('Gelu', 1000));
  });

  it('grads: W x (29 float / 26 half + inner) + 11', () => {
    expect(est('ExpGrad', 1000)).toBe(6 * (29 + 84 * 3) + 11);
    expect(est('LogGrad', 1000)).toBe(6 * (29 + 84 * 10) + 11);
    expect(est('LogGrad', 1000, 'float16')).toBe(6 * (26 + 42 * 21) + 11);
    expect(est('ReluGrad', 1000)).toBe(6 * (29 + 84 * 3) + 11);
  });

  it('every unary codelet names its estimate source', () => {
    for (const name of ['Neg', 'Abs', 'Sqrt', 'Exp', 'Log', 'Pow', 'PowBroadcast', 'PowBroadcastGrad', 'Relu', 'OnnxLeakyRelu', 'Sigmoid', 'Tanh', 'Erf', 'Gelu', 'Dropout', 'AbsGrad', 'SqrtGrad', 'ExpGrad', 'LogGrad', 'PowGrad', 'ReluGrad', 'OnnxLeakyReluGrad', 'SigmoidGrad', 'TanhGrad', 'ErfGrad', 'GeluGrad', 'DropoutGrad']) {
      expect(codelets.get(name).estimateSource, name).toMatch(/PopLibs (Unary|Binary)Op1D MultiVertex/);
    }
  });
});
