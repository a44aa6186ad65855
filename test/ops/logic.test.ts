/**
 * Comparisons, logic, Max / Min / Mean, PRelu, Clip, CastLike and Shape
 * (issue 15; src/ops/logic.ts, Clip in src/ops/unary.ts): forward against
 * onnxruntime-node over random broadcastable shapes (fast-check, fixed
 * seeds), gradients against central finite differences.
 *
 * Tolerances:
 * - everything forward is exact (atol 0, rtol 0): comparisons and logic write
 *   0/1 (onnxruntime's bool); Max, Min, Clip, PRelu's x >= 0 side and CastLike
 *   are selects or copies; PRelu's slope x is one fp32 multiply; Mean adds in
 *   input order in fp32, then multiplies by the float 1 / k, as onnxruntime
 *   does (a divide by k differs by an ulp: seen);
 * - gradients: the harness's 2e-3 absolute (test/autodiff/gradcheck.test.ts),
 *   the ops are piecewise linear; inputs keep x away from 0 (PRelu), from the
 *   Clip bounds and from ties between Max / Min inputs (random data, gap 0.05
 *   between inputs made sure below).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/model/modules.js';
import { UserError } from '../../src/errors.js';
import { checkForward, checkGrad, f32, i32, runOurs, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';

const EXACT = { atol: 0, rtol: 0 };
const baseShape = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 4 });
const operandOf = (base: number[]) =>
  fc.tuple(fc.integer({ min: 0, max: base.length }), fc.array(fc.boolean(), { minLength: base.length, maxLength: base.length })).map(([drop, ones]) => base.slice(drop).map((d, i) => (ones[drop + i] ? 1 : d)));
const shapes = (k: number) => baseShape.chain((base) => fc.tuple(...Array.from({ length: k }, () => operandOf(base))));
const seed = fc.integer({ min: 1, max: 1_000_000 });
const RUNS = { numRuns: 6, seed: 20250115 };
const nelms = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** Small integers as floats, so comparisons meet equal values too. */
const ints = (shape: number[], s: number): TensorSpec => ({ shape, data: Float32Array.from({ length: nelms(shape) }, (_, i) => ((i * 7 + s * 13) % 5) - 2) });
const bools = (shape: number[], s: number): TensorSpec => ({ shape, data: Int32Array.from({ length: nelms(shape) }, (_, i) => (((i + 1) * 2654435761 + s) % 7 < 3 ? 1 : 0)), dtype: 'bool' });

describe('comparisons (int32 0/1 against onnxruntime bool)', () => {
  for (const op of ['Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal']) {
    it(`${op}: float32 with ties, float16 and int32, broadcast`, async () => {
      await fc.assert(
        fc.asyncProperty(shapes(2), seed, async ([sa, sb], s) => {
          await checkForward({ op, inputs: { a: ints(sa, s), b: ints(sb, s + 1) }, outputDtype: 'bool', ...EXACT });
        }),
        RUNS,
      );
      await checkForward({ op, inputs: { a: { ...ints([4, 6], 1), dtype: 'float16' }, b: { ...ints([6], 2), dtype: 'float16' } }, outputDtype: 'bool', ...EXACT });
      await checkForward({ op, inputs: { a: i32([3, 4], [...Array(12).keys()].map((i) => i % 3)), b: i32([4], [0, 1, 2, 1]) }, outputDtype: 'bool', ...EXACT });
    });
  }

  it('Less and Greater at opset 11 (version 9), Equal at 11', async () => {
    for (const op of ['Less', 'Greater', 'Equal']) await checkForward({ op, opset: 11, inputs: { a: ints([3, 4], 1), b: ints([4], 2) }, outputDtype: 'bool', ...EXACT });
  });
});

describe('logic on bools', () => {
  for (const op of ['And', 'Or', 'Xor']) {
    it(`${op}, broadcast`, async () => {
      await fc.assert(
        fc.asyncProperty(shapes(2), seed, async ([sa, sb], s) => {
          await checkForward({ op, inputs: { a: bools(sa, s), b: bools(sb, s + 3) }, outputDtype: 'bool', ...EXACT });
        }),
        RUNS,
      );
    });
  }
  it('Not', async () => {
    await checkForward({ op: 'Not', inputs: { x: bools([7, 33], 5) }, outputDtype: 'bool', ...EXACT });
  });
  it('refuses float inputs to And, naming the node', async () => {
    await expect(runOurs({ op: 'And', inputs: { a: f32([2], 1), b: f32([2], 2) } })).rejects.toThrow(/op 'And_0' \(ai\.onnx::And:7\): inputs must be int32 0\/1/);
  });
});

describe('IsNaN, IsInf', () => {
  const special: TensorSpec = { shape: [3, 4], data: Float32Array.from([0, NaN, Infinity, -Infinity, 1.5, -2, NaN, 3.4e38, -Infinity, Infinity, -0, 1e-45]) };
  it('IsNaN and IsInf (every detect flag) against onnxruntime, float32 and float16, on 1 and 4 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 4 })]) {
      await checkForward({ op: 'IsNaN', opset: 13, inputs: { x: special }, outputDtype: 'bool', device, ...EXACT });
      await checkForward({ op: 'IsInf', inputs: { x: special }, outputDtype: 'bool', device, ...EXACT });
      for (const [p, n] of [[1, 0], [0, 1], [0, 0]]) {
        await checkForward({ op: 'IsInf', attributes: { detect_positive: p, detect_negative: n }, inputs: { x: special }, outputDtype: 'bool', device, ...EXACT });
      }
    }
    const half: TensorSpec = { ...special, data: special.data.map((v) => (v === 3.4e38 ? 6e4 : v === 1e-45 ? 1e-7 : v)), dtype: 'float16' };
    await checkForward({ op: 'IsNaN', opset: 13, inputs: { x: half }, outputDtype: 'bool', ...EXACT });
    await checkForward({ op: 'IsInf', opset: 20, inputs: { x: half }, outputDtype: 'bool', ...EXACT }); // float16 from IsInf-20
  });
  it('refuses an int32 input, naming the node', async () => {
    await expect(runOurs({ op: 'IsNaN', inputs: { x: { shape: [2], data: Int32Array.of(1, 2) } } })).rejects.toThrow(/op 'IsNaN_0' .*input must be float32 or float16/);
  });
});

describe('Max, Min, Mean', () => {
  for (const op of ['Max', 'Min', 'Mean']) {
    it(`${op} of 1 to 3 broadcast inputs (exact)`, async () => {
      await fc.assert(
        fc.asyncProperty(shapes(3), seed, fc.integer({ min: 1, max: 3 }), async (ss, s, k) => {
          const inputs = Object.fromEntries(ss.slice(0, k).map((sh, j) => [`x${j}`, f32(sh, s + j)]));
          await checkForward({ op, inputs, ...EXACT });
        }),
        RUNS,
      );
      await checkForward({ op, inputs: { a: f32([7, 33], 1), b: f32([7, 33], 2), c: f32([33], 3) }, ...EXACT });
      await checkForward({ op, opset: 11, inputs: { a: f32([3, 4], 1), b: f32([4], 2) }, ...EXACT });
    });
  }

  it('Max and Min of int32 and float16', async () => {
    for (const op of ['Max', 'Min']) {
      await checkForward({ op, inputs: { a: i32([2, 3], [1, -5, 3, 8, 0, -2]), b: i32([3], [2, 2, 2]) }, outputDtype: 'int32', ...EXACT });
      await checkForward({ op, inputs: { a: { ...f32([4, 5], 1), dtype: 'float16' }, b: { ...f32([5], 2), dtype: 'float16' } }, outputDtype: 'float16', ...EXACT });
    }
  });

  it('gradients: to the input holding the max / min, and y\' / k for Mean, summed over broadcast axes', async () => {
    for (const op of ['Max', 'Min', 'Mean']) {
      await checkGrad({ op, inputs: { a: f32([3, 4], 1), b: f32([3, 4], 2) } });
      // Distinct magnitudes so no two inputs tie within h: a in [-1, 1], b in [1.1, 2] or [-2, -1.1], c in [2.1, 3].
      await checkGrad({ op, inputs: { a: f32([4, 5], 3), b: f32([4, 1], 4, 1.1, -2, 2), c: f32([5], 5, 0, 2.1, 3) } });
    }
  });
});

describe('PRelu', () => {
  it('forward, slope broadcast to X (exact)', async () => {
    for (const [sx, ss] of [[[3, 4], [3, 4]], [[2, 3, 4, 5], [3, 1, 1]], [[2, 3, 4, 5], [5]], [[7, 33], []], [[7, 33], [1]]] as [number[], number[]][]) {
      await checkForward({ op: 'PRelu', inputs: { x: f32(sx, 1, 0, -3, 3), slope: f32(ss, 2) }, ...EXACT });
    }
    await checkForward({ op: 'PRelu', opset: 11, inputs: { x: f32([3, 4], 1), slope: f32([4], 2) }, ...EXACT });
  });
  it('gradients for X and the slope', async () => {
    await checkGrad({ op: 'PRelu', inputs: { x: f32([3, 4], 3, 0.05), slope: f32([3, 4], 4) } });
    await checkGrad({ op: 'PRelu', inputs: { x: f32([2, 3, 4], 5, 0.05), slope: f32([3, 1], 6) } });
  });
  it('refuses a slope that would grow X', async () => {
    await expect(runOurs({ op: 'PRelu', inputs: { x: f32([3], 1), slope: f32([2, 3], 2) } })).rejects.toThrow(/slope 'slope' float32\[2, 3\] must broadcast to X float32\[3\]/);
  });
});

describe('Clip', () => {
  const scalar = (v: number): TensorSpec => ({ shape: [], data: Float32Array.from([v]), constant: true });
  it('forward with both bounds, one, none, and min > max (exact)', async () => {
    const x = f32([7, 33], 1, 0, -3, 3);
    await checkForward({ op: 'Clip', inputs: { x, lo: scalar(-1), hi: scalar(0.5) }, ...EXACT });
    await checkForward({ op: 'Clip', inputs: { x, lo: scalar(-0.2) }, ...EXACT });
    await checkForward({ op: 'Clip', inputs: { x }, ...EXACT });
    await checkForward({ op: 'Clip', inputs: { x, lo: scalar(1), hi: scalar(-1) }, ...EXACT });
    await checkForward({ op: 'Clip', opset: 11, inputs: { x, lo: scalar(-1), hi: scalar(1) }, ...EXACT });
    await checkForward({ op: 'Clip', inputs: { x: { ...x, dtype: 'float16' }, lo: { ...scalar(-1), dtype: 'float16' }, hi: { ...scalar(1), dtype: 'float16' } }, outputDtype: 'float16', ...EXACT });
  });
  it('gradient: y\' inside the bounds, 0 outside', async () => {
    const x: TensorSpec = { shape: [2, 4], data: Float32Array.from([-2, -0.9, -0.3, 0.1, 0.45, 0.7, 1.5, -1.2]) };
    await checkGrad({ op: 'Clip', inputs: { x, lo: scalar(-1), hi: scalar(0.5) } });
  });
  it('refuses bounds that are not constant scalars', async () => {
    await expect(runOurs({ op: 'Clip', inputs: { x: f32([3], 1), lo: f32([], 2) } })).rejects.toThrow(/op 'Clip_0' \(ai\.onnx::Clip:13\): min 'lo' must be a constant/);
    await expect(runOurs({ op: 'Clip', inputs: { x: f32([3], 1), lo: { shape: [2], data: Float32Array.from([0, 1]), constant: true } } })).rejects.toThrow(/min 'lo' must be a scalar/);
  });
});

describe('CastLike and Shape', () => {
  it('CastLike to float16, int32 and float32 (exact)', async () => {
    const x = f32([4, 5], 1, 0, -100, 100);
    await checkForward({ op: 'CastLike', inputs: { x, t: { ...f32([1], 2), dtype: 'float16' } }, outputDtype: 'float16', ...EXACT });
    await checkForward({ op: 'CastLike', inputs: { x, t: i32([1], [0]) }, outputDtype: 'int32', ...EXACT });
    await checkForward({ op: 'CastLike', inputs: { x: { ...x, dtype: 'float16' }, t: f32([1], 3) }, ...EXACT });
    await checkGrad({ op: 'CastLike', inputs: { x: f32([3, 4], 4), t: { ...f32([1], 5), constant: true } } });
  });

  it('Shape with start and end, clamped as ONNX Shape-15 (int32 out)', async () => {
    const x = f32([2, 3, 4, 5], 1);
    const shape = async (attributes: Record<string, number>, opset = 18) => Array.from((await runOurs({ op: 'Shape', opset, attributes, inputs: { x } })).get('y')!);
    expect(await shape({})).toEqual([2, 3, 4, 5]);
    expect(await shape({}, 13)).toEqual([2, 3, 4, 5]);
    expect(await shape({ start: 1 })).toEqual([3, 4, 5]);
    expect(await shape({ start: 1, end: -1 })).toEqual([3, 4]);
    expect(await shape({ start: -10, end: 10 })).toEqual([2, 3, 4, 5]);
    expect(await shape({ start: 3, end: 1 })).toEqual([]);
  });

  it('none of the comparisons, logic ops or Shape has a grad op; Max, Min, Mean, PRelu, Clip, CastLike do', async () => {
    const registry = await createRegistry([]);
    for (const op of ['Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Equal', 'And', 'Or', 'Xor', 'Not', 'Shape']) expect(registry.resolve('', op, 18).grad, op).toBe(false);
    for (const op of ['Max', 'Min', 'Mean', 'PRelu', 'Clip', 'CastLike']) expect(registry.resolve('', op, 18).grad, op).toBe(true);
    const e = await runOurs({ op: 'Less', inputs: { a: f32([2], 1), b: i32([2], [1, 2]) } }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
  });
});
