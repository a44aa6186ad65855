/**
 * MatMul with NumPy semantics against onnxruntime-node (forward) and central
 * finite differences (grads), through the simulator on the tiny device (the
 * planner's splits over more tiles are tested in
 * test/lower/matmul-planner.test.ts), plus the AMP vertex's fp32
 * accumulation and the op's errors and registered versions.
 *
 * Tolerances. Forward: both sides accumulate in fp32 but in different orders
 * (ours sequentially with a rounding after each multiply-accumulate, ORT in
 * SIMD lanes), so results may differ by a few ulps of the partial sums: with
 * |a|, |b| <= 1 and K <= 32 the partial sums stay below 32, whose ulp is
 * 3.8e-6; atol 2e-5 allows about 5 of them, rtol 1e-5 as the harness default.
 * Grads: the harness default (2e-3, reasoned in test/autodiff/gradcheck.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createRegistry } from '../../src/model/modules.js';
import { matMulDims } from '../../src/ops/matmul.js';
import { ampMatMulCodelet } from '../../sim/codelets/amp.js';
import { checkForward, checkGrad, f32, runOurs } from './harness.js';

const TOL = { atol: 2e-5, rtol: 1e-5 };

describe('MatMul forward vs onnxruntime', () => {
  const cases: [string, number[], number[]][] = [
    ['2-D', [5, 7], [7, 3]],
    ['1-D x 2-D (a row)', [7], [7, 3]],
    ['2-D x 1-D (a column)', [5, 7], [7]],
    ['1-D x 1-D (a dot product, scalar result)', [7], [7]],
    ['1-D x 3-D', [7], [2, 7, 3]],
    ['3-D x 1-D', [2, 5, 7], [7]],
    ['batched, same batch', [3, 4, 5], [3, 5, 2]],
    ['batched x 2-D (B broadcast over the batch)', [3, 4, 5], [5, 6]],
    ['2-D x batched (A broadcast)', [4, 5], [2, 5, 6]],
    ['4-D x 3-D, size-1 dimensions broadcast both ways', [2, 1, 4, 5], [3, 5, 6]],
  ];
  cases.forEach(([name, a, b], i) => {
    it(`${name}: ${JSON.stringify(a)} x ${JSON.stringify(b)}`, async () => {
      await checkForward({ op: 'MatMul', inputs: { a: f32(a, 10 + i), b: f32(b, 40 + i) }, ...TOL });
    });
  });

  it('a contraction longer than one AMP group (K = 40: three input-channel groups, the last partial)', async () => {
    await checkForward({ op: 'MatMul', inputs: { a: f32([6, 40], 3), b: f32([40, 20], 4) }, atol: 5e-5, rtol: 1e-5 });
  });

  for (const opset of [8, 9, 11, 13, 18]) {
    it(`resolves at opset ${opset} and agrees with onnxruntime there`, async () => {
      await checkForward({ op: 'MatMul', opset, inputs: { a: f32([2, 3, 4], 1), b: f32([4, 5], 2) }, ...TOL });
    });
  }
});

describe('MatMul grads vs finite differences', () => {
  const cases: [string, number[], number[]][] = [
    ['2-D', [3, 4], [4, 2]],
    ['1-D x 2-D', [4], [4, 3]],
    ['2-D x 1-D', [3, 4], [4]],
    ['1-D x 1-D', [5], [5]],
    ['batched x 2-D: dB sums over the batch', [2, 3, 4], [4, 2]],
    ['2-D x batched: dA sums over the batch', [3, 4], [2, 4, 2]],
    ['size-1 dimensions broadcast both ways', [2, 1, 3, 4], [3, 4, 2]],
  ];
  cases.forEach(([name, a, b], i) => {
    it(`${name}: ${JSON.stringify(a)} x ${JSON.stringify(b)}`, async () => {
      await checkGrad({ op: 'MatMul', inputs: { a: f32(a, 70 + i), b: f32(b, 90 + i) } });
    });
  });
});

describe('MatMul shapes and errors', () => {
  it('infers NumPy output shapes', () => {
    const shape = (a: number[], b: number[]) => {
      const d = matMulDims(a, b);
      return typeof d === 'string' ? d : d.outShape;
    };
    expect(shape([5, 7], [7, 3])).toEqual([5, 3]);
    expect(shape([7], [7, 3])).toEqual([3]);
    expect(shape([5, 7], [7])).toEqual([5]);
    expect(shape([7], [7])).toEqual([]);
    expect(shape([2, 1, 4, 5], [3, 5, 6])).toEqual([2, 3, 4, 6]);
    expect(shape([7], [2, 7, 3])).toEqual([2, 3]);
    expect(shape([2, 4, 5], [3, 5, 6])).toMatch(/batch dimensions \[2\] and \[3\] do not broadcast/);
    expect(shape([], [3])).toMatch(/at least one dimension/);
  });

  it('names the operands when inner dimensions differ', async () => {
    await expect(runOurs({ op: 'MatMul', inputs: { x: f32([16, 32], 1), w: f32([31, 8], 2) } })).rejects.toThrow(
      /inner dimensions differ: x is float32\[16, 32\], w is float32\[31, 8\]; w needs 32 rows/,
    );
    await expect(runOurs({ op: 'MatMul', inputs: { x: f32([3, 4], 1), w: f32([5], 2) } })).rejects.toThrow(/w needs 4 elements/);
  });

  it('rejects batch dimensions that do not broadcast', async () => {
    await expect(runOurs({ op: 'MatMul', inputs: { a: f32([2, 3, 4], 1), b: f32([3, 4, 5], 2) } })).rejects.toThrow(
      /batch dimensions \[2\] and \[3\] do not broadcast.*a is float32\[2, 3, 4\], b is float32\[3, 4, 5\]/,
    );
  });

  it('registers ai.onnx MatMul 1, 9 and 13; opsets 1 to 18 resolve to the highest version not above them', async () => {
    const reg = await createRegistry([]);
    for (let opset = 1; opset <= 18; opset++) {
      expect(reg.resolve('ai.onnx', 'MatMul', opset).id.version, `opset ${opset}`).toBe(opset >= 13 ? 13 : opset >= 9 ? 9 : 1);
    }
    expect(reg.list().filter((d) => d.id.type === 'MatMul').map((d) => d.id.version)).toEqual([1, 9, 13]);
  });
});

describe('AmpMatMul numerics', () => {
  const run = (a: number[], b: number[], params: Record<string, number>, outLengths: number[]) => {
    const outs = outLengths.map((n) => new Float32Array(n));
    ampMatMulCodelet.compute({ fields: { a: [Float32Array.from(a)], b: [Float32Array.from(b)], out: outs }, params, arrays: {} });
    return outs;
  };

  it('accumulates in fp32, rounding after every multiply-accumulate (not in float64)', () => {
    // 2^24 + 1 + 1: each +1 is lost to fp32 round-to-even at 2^24; float64 would give 16777218.
    const [out] = run([2 ** 24, 1, 1], [1, 1, 1], { rows: 1, k: 3, n: 1 }, [1]);
    expect(out[0]).toBe(2 ** 24);
  });

  it('fp16 inputs keep fp32 partials: 4096 products of 1 sum to 4096 (fp16 accumulation would stop at 2048)', () => {
    const [out] = run(new Array(4096).fill(1), new Array(4096).fill(1), { rows: 1, k: 4096, n: 1 }, [1]);
    expect(out[0]).toBe(4096);
  });

  it('reads transposed operands and writes a list of output regions back to back', () => {
    // op(A) = [[1, 2], [3, 4]] stored transposed [[1, 3], [2, 4]]; op(B) = [[5, 6], [7, 8]] stored transposed [[5, 7], [6, 8]].
    const outs = run([1, 3, 2, 4], [5, 7, 6, 8], { rows: 2, k: 2, n: 2, transA: 1, transB: 1 }, [3, 1]);
    // [[1*5 + 2*7, 1*6 + 2*8], [3*5 + 4*7, 3*6 + 4*8]] = [[19, 22], [43, 50]]
    expect([...outs[0], ...outs[1]]).toEqual([19, 22, 43, 50]);
  });

  it('multiplies every group by its own blocks', () => {
    // group 0: [1 2] x [[1], [1]] = 3; group 1: [3 4] x [[2], [0]] = 6
    const [out] = run([1, 2, 3, 4], [1, 1, 2, 0], { groups: 2, rows: 1, k: 2, n: 1 }, [2]);
    expect([...out]).toEqual([3, 6]);
  });
});
