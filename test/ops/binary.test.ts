/**
 * The binary family with NumPy broadcasting: Add, Sub, Mul, Div, Where,
 * Expand, Sum. Forward against onnxruntime-node over random broadcastable
 * shapes (fast-check, fixed seeds so a failure reproduces), gradients against
 * central finite differences, the broadcast helpers against brute force, the
 * lowering's structure (1-D fast path, minimal exchange, estimates) and the
 * error paths.
 *
 * Tolerances:
 * - Forward Add/Sub/Mul/Div/Where/Expand: exact (atol 0, rtol 0). Each output
 *   element is one IEEE fp32 operation on both sides (ours in double, rounded
 *   once to fp32, which equals the fp32 result for + - x /), or a copy.
 * - Forward Sum of 3 inputs: exact too; both add in input order in fp32.
 * - Gradients: the harness's 2e-3 absolute (reasoning in
 *   test/autodiff/gradcheck.test.ts: h = 1e-2, ops linear or bilinear in any
 *   one element, so only the loss's fp32 rounding remains). Div is not linear
 *   in B: the central difference's truncation error is h^2 |A| / |B|^4 per
 *   element; with |B| in [1.5, 2.5] that is <= 2e-5, times at most 8 summed
 *   elements here: <= 2e-4.
 */
import fc from 'fast-check';
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import type { Codelet } from '../../sim/codelet.js';
import { broadcastIndex, broadcastMultiVertex, divCodelet } from '../../sim/codelets/binary.js';
import { addLoop, binaryMultiVertex, innerLoop, vectorWidth } from '../../sim/codelets/estimators.js';
import { UserError } from '../../src/errors.js';
import { broadcastShapes, broadcastStrides, indexExtent, mergeAxes, rowMajorStrides } from '../../src/lower/broadcast.js';
import { linearStartTile } from '../../src/lower/linear.js';
import { tiny } from '../helpers.js';
import { checkForward, checkGrad, f32, i32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { copyList } from '../../sim/copies.js';
import { vertexList } from '../../sim/vertex-table.js';

const { onnx } = onnxProto;

// ---------------------------------------------------------------------------
// Shape generators: operands broadcast to a common base shape. Each drops some
// leading axes and turns some dims to 1.

const baseShape = fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 0, maxLength: 4 });
const operandOf = (base: number[]) =>
  fc.tuple(fc.integer({ min: 0, max: base.length }), fc.array(fc.boolean(), { minLength: base.length, maxLength: base.length })).map(([drop, ones]) => base.slice(drop).map((d, i) => (ones[drop + i] ? 1 : d)));
const shapes = (k: number) => baseShape.chain((base) => fc.tuple(...Array.from({ length: k }, () => operandOf(base))));
const seed = fc.integer({ min: 1, max: 1_000_000 });
const RUNS = { numRuns: 8, seed: 20240611 };

const nelms = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
/** A constant int32 0/1 condition, a deterministic mix of both values. */
const bits = (shape: number[], s: number) => i32(shape, Array.from({ length: nelms(shape) }, (_, i) => (((i + 1) * 2654435761 + s) % 7 < 3 ? 1 : 0)), true);

// ---------------------------------------------------------------------------
// Where's oracle: ONNX needs a bool condition; ours is int32 0/1. The
// condition goes to onnxruntime as a constant bool initializer.

async function whereOrt(cond: TensorSpec, x: TensorSpec, y: TensorSpec): Promise<Float32Array> {
  const T = onnx.TensorProto.DataType;
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 18 }],
    graph: {
      name: 'where',
      node: [{ opType: 'Where', input: ['c', 'x', 'y'], output: ['out'] }],
      initializer: [{ name: 'c', dims: cond.shape, dataType: T.BOOL, int32Data: Array.from(cond.data) }],
      input: [
        { name: 'x', type: { tensorType: { elemType: T.FLOAT, shape: { dim: x.shape.map((d) => ({ dimValue: d })) } } } },
        { name: 'y', type: { tensorType: { elemType: T.FLOAT, shape: { dim: y.shape.map((d) => ({ dimValue: d })) } } } },
      ],
      output: [{ name: 'out', type: { tensorType: { elemType: T.FLOAT } } }],
    },
  });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const r = await session.run({ x: new ort.Tensor('float32', x.data as Float32Array, x.shape), y: new ort.Tensor('float32', y.data as Float32Array, y.shape) });
  await session.release();
  return r.out.data as Float32Array;
}

async function userError(c: OpCase): Promise<UserError> {
  const e = await runOurs(c).then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(UserError);
  return e as UserError;
}

// ---------------------------------------------------------------------------

describe('broadcast helpers', () => {
  it('broadcastShapes follows NumPy', () => {
    expect(broadcastShapes([[3, 1, 5], [4, 1]])).toEqual([3, 4, 5]);
    expect(broadcastShapes([[], [2, 3]])).toEqual([2, 3]);
    expect(broadcastShapes([[2, 1], [1, 3], [4, 1, 1]])).toEqual([4, 2, 3]);
    expect(broadcastShapes([[2, 3], [4]])).toBeNull();
  });

  it('merged axes and broadcast strides index like brute force', () => {
    fc.assert(
      fc.property(shapes(2), fc.nat(), fc.nat(), ([sa, sb], r1, r2) => {
        const out = broadcastShapes([sa, sb])!;
        const n = nelms(out);
        const strides = [broadcastStrides(sa, out), broadcastStrides(sb, out)];
        const m = mergeAxes(out, strides);
        const begin = n === 0 ? 0 : r1 % n;
        const count = n - begin === 0 ? 0 : 1 + (r2 % (n - begin));
        const outStrides = rowMajorStrides(out);
        for (const [j, s] of strides.entries()) {
          const idx = broadcastIndex(m.shape, m.strides[j], begin, 0, count);
          for (let i = 0; i < count; i++) {
            // brute force: coordinates of begin + i in `out`, dotted with the unmerged strides
            const flat = begin + i;
            const want = out.reduce((acc, _d, k) => acc + (Math.floor(flat / outStrides[k]) % out[k]) * s[k], 0);
            expect(idx[i]).toBe(want);
          }
        }
      }),
      { numRuns: 200, seed: 7 },
    );
  });

  it('indexExtent is the exact min and max over the range', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 }).chain((shape) => fc.tuple(fc.constant(shape), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: shape.length, maxLength: shape.length }), fc.nat(), fc.nat())),
        ([shape, strides, r1, r2]) => {
          const n = nelms(shape);
          const begin = r1 % n;
          const end = begin + 1 + (r2 % (n - begin));
          const idx = broadcastIndex(shape, strides, begin, 0, end - begin);
          expect(indexExtent(shape, strides, begin, end)).toEqual([Math.min(...idx), Math.max(...idx) + 1]);
        },
      ),
      { numRuns: 300, seed: 11 },
    );
  });
});

describe('forward against onnxruntime over random broadcastable shapes', () => {
  for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
    it(`${op} (exact)`, async () => {
      await fc.assert(
        fc.asyncProperty(shapes(2), seed, async ([sa, sb], s) => {
          await checkForward({ op, inputs: { a: f32(sa, s), b: op === 'Div' ? f32(sb, s + 1, 0.25) : f32(sb, s + 1) }, atol: 0, rtol: 0 });
        }),
        RUNS,
      );
    });
  }

  it('Where (exact; condition a constant, bool for onnxruntime)', async () => {
    await fc.assert(
      fc.asyncProperty(shapes(3), seed, async ([sc, sx, sy], s) => {
        const c = bits(sc, s);
        const a = f32(sx, s + 1);
        const b = f32(sy, s + 2);
        const ours = (await runOurs({ op: 'Where', inputs: { c, a, b } })).get('y')!;
        expect(Array.from(ours)).toEqual(Array.from(await whereOrt(c, a, b)));
      }),
      RUNS,
    );
  });

  it('Expand (exact), both directions of broadcasting', async () => {
    await fc.assert(
      fc.asyncProperty(shapes(2), seed, async ([sx, target], s) => {
        await checkForward({ op: 'Expand', inputs: { x: f32(sx, s), shape: i32([target.length], target, true) }, atol: 0, rtol: 0 });
      }),
      RUNS,
    );
  });

  it('Sum of three inputs (exact: fp32 adds in input order on both sides)', async () => {
    await fc.assert(
      fc.asyncProperty(shapes(3), seed, async ([s0, s1, s2], s) => {
        await checkForward({ op: 'Sum', inputs: { a: f32(s0, s), b: f32(s1, s + 1), c: f32(s2, s + 2) }, atol: 0, rtol: 0 });
      }),
      RUNS,
    );
  });

  it('Sum of one input is the input; at opset 11 Sum-8 and Add-7 resolve', async () => {
    await checkForward({ op: 'Sum', inputs: { a: f32([3, 4], 1) }, atol: 0, rtol: 0 });
    await checkForward({ op: 'Sum', opset: 11, inputs: { a: f32([3, 4], 1), b: f32([4], 2) }, atol: 0, rtol: 0 });
    await checkForward({ op: 'Add', opset: 11, inputs: { a: f32([3, 1], 1), b: f32([4], 2) }, atol: 0, rtol: 0 });
  });
});

describe('gradients against central finite differences', () => {
  // [a, b] shape pairs covering: equal shapes (aliases), a bias (sum over leading axes),
  // a middle axis reduced across tiles (two stages), both operands broadcast, a scalar.
  const pairs: [number[], number[]][] = [
    [[3, 4], [3, 4]],
    [[4, 6], [6]],
    [[6, 4, 5], [6, 1, 5]],
    [[3, 1], [1, 4]],
    [[], [2, 3]],
  ];
  for (const op of ['Add', 'Sub', 'Mul']) {
    it(`${op}`, async () => {
      for (const [i, [sa, sb]] of pairs.entries()) await checkGrad({ op, inputs: { a: f32(sa, 10 + i), b: f32(sb, 20 + i) } });
    });
  }

  it('Div (B kept in [1.5, 2.5] in magnitude)', async () => {
    for (const [i, [sa, sb]] of pairs.entries()) await checkGrad({ op: 'Div', inputs: { a: f32(sa, 30 + i), b: f32(sb, 40 + i, 1.5, -2.5, 2.5) } });
  });

  it('Where (gradients for X and Y; the condition is a constant)', async () => {
    await checkGrad({ op: 'Where', inputs: { c: bits([4, 1], 3), a: f32([1, 5], 1), b: f32([4, 5], 2) } });
    await checkGrad({ op: 'Where', inputs: { c: bits([6, 4, 5], 4), a: f32([6, 1, 5], 3), b: f32([5], 4) } });
  });

  it('Expand (sum over the expanded axes)', async () => {
    await checkGrad({ op: 'Expand', inputs: { x: f32([3, 1], 1), shape: i32([3], [2, 3, 4], true) } });
    await checkGrad({ op: 'Expand', inputs: { x: f32([6, 1, 5], 2), shape: i32([3], [6, 4, 5], true) } });
  });

  it('Sum of three broadcast inputs', async () => {
    await checkGrad({ op: 'Sum', inputs: { a: f32([6, 4, 5], 1), b: f32([6, 1, 5], 2), c: f32([5], 3) } });
  });
});

describe('lowering', () => {
  const program = async (c: OpCase) => {
    const { buildGraph } = await import('../../src/model/build.js');
    const { createRegistry } = await import('../../src/model/modules.js');
    const { runGraph } = await import('../../src/session.js');
    const registry = await createRegistry([]);
    const decl = {
      inputs: Object.entries(c.inputs).map(([name, t]) => ({ name, shape: t.shape, dtype: 'float32', loc: { file: 't', line: 1, col: 1 } })),
      initializers: [],
      nodes: [{ op: c.op, domain: '', name: `${c.op}_0`, inputs: Object.keys(c.inputs), outputs: ['y'], attributes: {}, loc: { file: 't', line: 1, col: 1 } }],
      outputs: ['y'],
      opset: 18,
    };
    const graph = buildGraph(decl as never, registry);
    const inputs = Object.fromEntries(Object.entries(c.inputs).map(([k, t]) => [k, t.data]));
    return (await runGraph({ graph, registry, device: tiny(), inputs, outputs: ['y'] })).program;
  };

  it('equal shapes keep the 1-D path: no index arrays, BinaryOp1D estimate', async () => {
    const p = await program({ op: 'Mul', inputs: { a: f32([8, 16], 1), b: f32([8, 16], 2) } });
    const cs = p.computeSets.find((c) => c.name === 'Mul_0/Mul')!;
    expect(vertexList(cs.vertices)).toHaveLength(4);
    for (const v of vertexList(cs.vertices)) expect(v.arrays).toBeUndefined();
  });

  it('a broadcast operand brings only the interval each tile needs, with shape and strides as arrays', async () => {
    // a: [8, 16] on 4 tiles, 2 rows each; b: [8, 1] lives on tile 2 (a small tensor's start tile: linearStartTile(8, 1, 4, 2)).
    // Each tile needs 2 elements of b.
    expect(linearStartTile(8, 1, 4, 2)).toBe(2);
    const p = await program({ op: 'Mul', inputs: { a: f32([8, 16], 1), b: f32([8, 1], 2) } });
    const cs = p.computeSets.find((c) => c.name === 'Mul_0/Mul')!;
    const ex = p.exchanges.find((e) => e.op === 'Mul_0')!;
    expect(copyList(ex.copies).map((c) => [c.srcTile, c.dstTile, c.bytes])).toEqual([
      [2, 0, 8],
      [2, 1, 8],
      [2, 3, 8],
    ]);
    for (const v of vertexList(cs.vertices)) {
      expect(v.arrays).toEqual({ shape: [8, 16], a: [16, 1], b: [1, 0] });
      expect(v.params.bBase).toBe(2 * v.tile);
    }
  });

  it('general broadcast estimate: BroadcastVectorOuter by rows or by columns, whichever is cheaper', () => {
    const device = tiny();
    const W = device.workersPerTile;
    const vw = vectorWidth('float32', device);
    const loop = addLoop('float32');
    // 2 rows of 16: fewer rows than workers, so by columns: every row, ceil(16 / 6) = 3 columns each.
    expect(broadcastMultiVertex(2, 16, 'float32', loop, device)).toBe(W * (15 + 2 * (7 + innerLoop(3, vw, loop))) + 11);
    // 60 rows of 4: by rows, 10 rows per worker.
    expect(broadcastMultiVertex(60, 4, 'float32', loop, device)).toBe(W * (15 + 10 * (7 + innerLoop(4, vw, loop))) + 11);
    // The codelet picks it from its arrays; without arrays it is the 1-D estimate.
    const c: Codelet = divCodelet;
    const region = (offset: number) => ({ offset, count: 32, dtype: 'float32' as const });
    const shape = { fields: { a: region(0), b: region(128), out: region(256) }, params: {} };
    expect(c.cycles(shape, device)).toBe(binaryMultiVertex(32, 'float32', { cyclesPerLoop: 10, vectorised: false, unroll: 2 }, device));
    const bcast = { ...shape, params: { begin: 0 }, arrays: { shape: [2, 16], a: [16, 1], b: [1, 0] } };
    expect(c.cycles(bcast, device)).toBe(broadcastMultiVertex(2, 16, 'float32', { cyclesPerLoop: 10, vectorised: false, unroll: 2 }, device));
  });
});

describe('errors', () => {
  it('non-broadcastable shapes name both inputs and their shapes', async () => {
    const e = await userError({ op: 'Add', inputs: { a: f32([2, 3], 1), b: f32([4], 2) } });
    expect(e.message).toContain("input 0 'a' float32[2, 3]");
    expect(e.message).toContain("input 1 'b' float32[4]");
    expect(e.message).toMatch(/axis 1 of 'a' \(3\) meets axis 0 of 'b' \(4\)/);
  });

  it('names the conflicting pair among three inputs (Where, Sum)', async () => {
    const w = await userError({ op: 'Where', inputs: { c: bits([4, 1], 1), a: f32([1, 5], 1), b: f32([3, 5], 2) } });
    expect(w.message).toContain("input 0 'c' int32[4, 1]");
    expect(w.message).toContain("input 2 'b' float32[3, 5]");
    const s = await userError({ op: 'Sum', inputs: { a: f32([2, 3], 1), b: f32([3], 2), c: f32([2, 1, 4], 3) } });
    expect(s.message).toContain("input 0 'a' float32[2, 3]");
    expect(s.message).toContain("input 2 'c' float32[2, 1, 4]");
  });

  it("Expand: a target shape that does not broadcast, and a shape that is not a constant", async () => {
    const e = await userError({ op: 'Expand', inputs: { x: f32([3, 2], 1), shape: i32([1], [4], true) } });
    expect(e.message).toContain("cannot expand input 0 'x' float32[3, 2] to shape [4] (input 1 'shape')");
    const s = await userError({ op: 'Expand', inputs: { x: f32([3, 1], 1), shape: i32([2], [3, 4]) } });
    expect(s.message).toContain("the shape (input 1 'shape') must be a constant initializer");
    expect(s.message).toContain('streamed graph input');
  });

  it('Where needs an int32 condition; operands need one dtype', async () => {
    const w = await userError({ op: 'Where', inputs: { c: f32([3], 1), a: f32([3], 1), b: f32([3], 2) } });
    expect(w.message).toContain("condition 'c' must be int32");
    const d = await userError({ op: 'Add', inputs: { a: f32([3], 1), b: i32([3], [1, 2, 3], true) } });
    expect(d.message).toContain('must have one dtype, got float32 and int32');
  });
});

describe('Mod', () => {
  // Exact on both sides: fmod of two floats is exact in IEEE arithmetic, and integer remainders are exact.
  const EXACT = { atol: 0, rtol: 0 };
  const ints = (shape: number[], s: number, nonzero = false) =>
    i32(shape, Array.from({ length: nelms(shape) }, (_, i) => {
      const v = (((i + 3) * 2654435761 + s * 97) % 41) - 20;
      return nonzero && v === 0 ? 7 : v;
    }));
  it('fmod = 1 on floats (the sign of A), broadcast, on 1 and 4 tiles, and float16', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 4 })]) {
      await checkForward({ op: 'Mod', attributes: { fmod: 1 }, inputs: { a: f32([4, 6], 1, 0, -10, 10), b: f32([6], 2, 0.5, -3, 3) }, device, ...EXACT });
      await checkForward({ op: 'Mod', attributes: { fmod: 1 }, inputs: { a: f32([3, 1, 5], 3, 0, -10, 10), b: f32([4, 1], 4, 0.5, -3, 3) }, device, ...EXACT });
    }
    const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });
    await checkForward({ op: 'Mod', attributes: { fmod: 1 }, inputs: { a: half(f32([4, 6], 5, 0, -10, 10)), b: half(f32([6], 6, 0.5, -3, 3)) }, outputDtype: 'float16', ...EXACT });
  });
  it('int32, fmod 0 (the sign of B) and 1 (the sign of A), broadcast', async () => {
    for (const fmod of [0, 1]) {
      await checkForward({ op: 'Mod', attributes: { fmod }, inputs: { a: ints([5, 4], 1), b: ints([4], 2, true) }, outputDtype: 'int32', ...EXACT });
      await checkForward({ op: 'Mod', attributes: { fmod }, inputs: { a: ints([3, 1], 3), b: ints([2, 1, 4], 4, true) }, outputDtype: 'int32', ...EXACT });
    }
  });
  it('gradients (fmod): dA = dC, dB = -dC trunc(A / B), summed over broadcast axes', async () => {
    // A / B kept 0.1 or more from an integer, so a finite-difference step never crosses a jump of trunc.
    const a: TensorSpec = { shape: [2, 3], data: Float32Array.from([5.3, -7.4, 2.2, -1.3, 8.6, -4.7]) };
    const b: TensorSpec = { shape: [3], data: Float32Array.from([2, -3, 1.5]) };
    await checkGrad({ op: 'Mod', attributes: { fmod: 1 }, inputs: { a, b } });
  });
  it('refuses fmod = 0 on floats, as ONNX does, naming the node', async () => {
    await expect(runOurs({ op: 'Mod', inputs: { a: f32([2], 1), b: f32([2], 2) } })).rejects.toThrow(/op 'Mod_0' .*a float Mod needs fmod = 1/);
  });
});
