/**
 * Gemm, a composite: expanded at import into Transpose / MatMul / Mul / Add,
 * checked against onnxruntime-node (forward) and finite differences (grads,
 * which come from the simpler ops).
 *
 * Tolerances: fp32 forward atol 1e-5, rtol 1e-4: each output is a K <= 7 term
 * fp32 dot product scaled by alpha plus beta C, rounded in different orders
 * on each side (a few ulp of values up to ~10). Grads: the harness default 2e-3.
 */
import { describe, expect, it } from 'vitest';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkForward, checkGrad, f32, runOurs, type OpCase } from './harness.js';
import { declOf } from './nn-util.js';

const tol = { atol: 1e-5, rtol: 1e-4 };
const gemm = (a: number[], b: number[], c: number[] | null, attributes: OpCase['attributes'] = {}, seed = 1): OpCase => ({
  op: 'Gemm',
  attributes,
  inputs: { a: f32(a, seed), b: f32(b, seed + 1), ...(c ? { c: f32(c, seed + 2) } : {}) },
  ...tol,
});

describe('Gemm', () => {
  it('agrees with onnxruntime: alpha, beta, transA, transB, no C', async () => {
    await checkForward(gemm([3, 5], [5, 4], null));
    await checkForward(gemm([3, 5], [5, 4], [3, 4], { alpha: 0.5, beta: 2 }));
    await checkForward(gemm([5, 3], [5, 4], [4], { transA: 1 }, 3));
    await checkForward(gemm([3, 5], [4, 5], [3, 1], { transB: 1, beta: -1.5 }, 4));
    await checkForward(gemm([6, 3], [4, 6], [1], { transA: 1, transB: 1, alpha: 0.25, beta: 0.5 }, 5));
    await checkForward(gemm([3, 5], [5, 4], [1, 4], { beta: 0 }, 6));
    await checkForward({ ...gemm([2, 7], [7, 3], [2, 3], { alpha: 3 }, 7), opset: 11 });
  });

  it('expands into the simpler ops, only those needed', async () => {
    const registry = await createRegistry([]);
    const types = (c: OpCase) => buildGraph(declOf(c), registry).ops.map((o) => o.opid.type);
    expect(types(gemm([3, 5], [5, 4], null))).toEqual(['MatMul']);
    expect(types(gemm([3, 5], [5, 4], [4]))).toEqual(['MatMul', 'Add']);
    expect(types(gemm([5, 3], [4, 5], [3, 4], { transA: 1, transB: 1, alpha: 2, beta: 3 }))).toEqual(['MatMulT', 'Mul', 'Mul', 'Add']);
  });

  it('grads for A, B and C (C broadcast) agree with finite differences', async () => {
    await checkGrad(gemm([3, 4], [4, 2], [2], { alpha: 0.5, beta: 2 }, 10));
    await checkGrad(gemm([4, 3], [2, 4], [3, 1], { transA: 1, transB: 1 }, 11));
    // MatMulT's grads take a different pair of transposes for each flag.
    await checkGrad(gemm([4, 3], [4, 2], [2], { transA: 1 }, 12));
    await checkGrad(gemm([3, 4], [2, 4], null, { transB: 1 }, 13));
  });

  it('reads operands that are views of another shape (Reshape) by their IR shapes', async () => {
    // B reaches Gemm as a Reshape of [1, 1, 2, 3]: its device tensor keeps that shape (a view), as in
    // Inception v1's classifier; op(B) must still be [3, 2].
    const { runGraph } = await import('../../src/session.js');
    const { tiny } = await import('../helpers.js');
    const loc = { file: '<gemm view test>', line: 1, col: 1 };
    const a = f32([2, 3], 50);
    const w = f32([1, 1, 2, 3], 51);
    const decl = {
      inputs: [{ name: 'a', shape: [2, 3], dtype: 'float32', loc }],
      initializers: [
        { name: 'w4', shape: [1, 1, 2, 3], dtype: 'float32', loc, init: { kind: 'data', data: w.data }, trainable: false },
        { name: 'shape', shape: [2], dtype: 'int32', loc, init: { kind: 'data', data: Int32Array.of(2, 3) }, trainable: false },
      ],
      nodes: [
        { op: 'Reshape', domain: '', name: 'view', inputs: ['w4', 'shape'], outputs: ['w'], attributes: {}, loc },
        { op: 'Gemm', domain: '', name: 'fc', inputs: ['a', 'w'], outputs: ['y'], attributes: { transB: 1 }, loc },
      ],
      outputs: ['y'],
      opset: 13,
    } as unknown as Parameters<typeof buildGraph>[0];
    const registry = await createRegistry([]);
    const r = await runGraph({ graph: buildGraph(decl, registry), registry, device: tiny(), inputs: { a: a.data }, outputs: ['y'] });
    const y = r.outputs.get('y')!;
    expect(y.length).toBe(4);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 2; j++) {
        let want = 0;
        for (let k = 0; k < 3; k++) want += a.data[i * 3 + k] * w.data[j * 3 + k];
        expect(Math.abs(y[i * 2 + j] - want)).toBeLessThan(1e-6);
      }
  });

  it('rejects mismatched inner dims and a C that does not broadcast, naming the node', async () => {
    await expect(runOurs(gemm([3, 5], [4, 4], null))).rejects.toThrow(/node 'Gemm_0' \(Gemm\): op\(A\) is \[3, 5\] but op\(B\) is \[4, 4\]/);
    await expect(runOurs(gemm([3, 5], [5, 4], [2, 4]))).rejects.toThrow(/node 'Gemm_0' \(Gemm\): C float32\[2, 4\] does not broadcast to the output \[3, 4\]/);
  });
});
