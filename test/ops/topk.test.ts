/**
 * TopK against onnxruntime-node: every axis (negative too), largest and
 * smallest, sorted 0 and 1, K from 0 to the whole axis, opsets 1, 10 and 11,
 * float32, float16 and int32, on 1 tile and spread over 16 tiles (each
 * tile's outputs read their columns' window through the exchange). Values
 * are copies of input elements and indices are integers, so both must be
 * equal (atol = rtol = 0), ties included: inputs drawn from {-2, ..., 2}
 * make many, and onnxruntime's order (equal values by lower index) must be
 * reproduced exactly.
 *
 * The gradient (dValues scattered to the selected indices) against central
 * finite differences, on inputs whose values are at least 0.05 apart, so the
 * perturbation (h = 1e-2) never changes which elements are selected; the
 * harness's 2e-3 tolerance (test/autodiff/gradcheck.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, i32, runOrt, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';
import { topKWindow } from '../../src/ops/topk.js';

const exact = { atol: 0, rtol: 0, outputs: ['values', 'indices'], outputDtypes: { indices: 'int64' as const } };

/** Values in {-2, ..., 2}: ties on every column. */
function ties(shape: number[], seed: number): TensorSpec {
  const t = f32(shape, seed);
  t.data = Float32Array.from(t.data, (v) => Math.round(v * 2));
  return t;
}

/** A shuffle of distinct values 0.05 apart. */
function distinct(shape: number[], seed: number): TensorSpec {
  const n = shape.reduce((a, b) => a * b, 1);
  const keys = f32([n], seed).data;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => keys[a] - keys[b]);
  const data = new Float32Array(n);
  order.forEach((j, i) => (data[j] = (i - n / 2) * 0.05));
  return { shape, data };
}

const K = (k: number) => i32([1], [k], true);

describe('TopK', () => {
  it('every axis, largest and smallest, with ties, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const axis of [0, 1, 2, -1]) {
        for (const largest of [0, 1]) {
          const A = [3, 5, 7][axis < 0 ? axis + 3 : axis];
          for (const k of [1, Math.ceil(A / 2), A]) {
            await checkForward({ op: 'TopK', opset: 11, attributes: { axis, largest }, inputs: { x: ties([3, 5, 7], 10 + axis), k: K(k) }, device, ...exact });
          }
        }
      }
      await checkForward({ op: 'TopK', opset: 11, attributes: { axis: 1 }, inputs: { x: f32([6, 40, 3], 3), k: K(9) }, device, ...exact });
    }
  });

  it('opsets 1 and 10, K = 0, float16 and int32', async () => {
    await checkForward({ op: 'TopK', opset: 1, attributes: { k: 3 }, inputs: { x: ties([4, 9], 5) }, ...exact });
    await checkForward({ op: 'TopK', opset: 10, attributes: { axis: 0 }, inputs: { x: ties([6, 4], 6), k: K(2) }, ...exact });
    await checkForward({ op: 'TopK', opset: 11, attributes: { axis: 1 }, inputs: { x: f32([3, 4], 8), k: K(0) }, ...exact });
    await checkForward({ op: 'TopK', opset: 11, attributes: { axis: 1 }, inputs: { x: { ...ties([4, 9, 2], 9), dtype: 'float16' }, k: K(4) }, ...exact, outputDtypes: { values: 'float16', indices: 'int64' } });
    await checkForward({ op: 'TopK', opset: 11, attributes: { axis: 0, largest: 0 }, inputs: { x: i32([4, 3], [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 9]), k: K(2) }, ...exact, outputDtypes: { values: 'int32', indices: 'int64' } });
  });

  it('sorted = 0: the same elements as onnxruntime (whose order then is its heap\'s or nth_element\'s, unspecified by ONNX)', async () => {
    for (const [shape, k, largest] of [[[3, 8], 3, 0], [[2, 10], 4, 1], [[1, 20], 6, 1], [[4, 6], 6, 0]] as const) {
      const c: OpCase = { op: 'TopK', opset: 11, attributes: { sorted: 0, largest }, inputs: { x: ties([...shape], 7 + k), k: K(k) }, ...exact };
      const [ours, ref] = await Promise.all([runOurs(c), runOrt(c)]);
      // Per row (the axis is last), the (index, value) pairs in index order.
      const rows = (idx: ArrayLike<number | bigint>, val: ArrayLike<number>) =>
        Array.from({ length: shape[0] }, (_, r) => Array.from({ length: k }, (_, j) => [Number(idx[r * k + j]), val[r * k + j]]).sort((a, b) => a[0] - b[0]));
      expect(rows(ours.get('indices')!, ours.get('values')!)).toEqual(rows(ref.indices, ref.values as Float32Array));
    }
  });

  it('the window of each range covers exactly the columns its outputs read', () => {
    for (const [outer, A, inner, Kk] of [[3, 5, 4, 2], [2, 7, 1, 3], [4, 3, 5, 3]]) {
      const g = { axis: 1, outer, A, inner, K: Kk };
      const n = outer * Kk * inner;
      for (let b = 0; b < n; b++) {
        for (let e = b + 1; e <= n; e++) {
          const [lo, hi] = topKWindow(g, b, e);
          let need = [Infinity, -Infinity];
          for (let o = b; o < e; o++) {
            const start = Math.floor(o / (Kk * inner)) * A * inner + (o % inner);
            need = [Math.min(need[0], start), Math.max(need[1], start + (A - 1) * inner)];
          }
          expect([lo, hi], `b ${b} e ${e}`).toEqual([need[0], need[1] + 1]);
        }
      }
    }
  });

  it('gradient: dValues scattered to the selected indices, every axis (fp32: the harness perturbs float32 variables)', async () => {
    for (const axis of [0, 1, -1]) {
      for (const largest of [0, 1]) {
        await checkGrad({ op: 'TopK', opset: 11, attributes: { axis, largest }, inputs: { x: distinct([3, 4, 5], 20 + axis), k: K(2) }, outputs: ['values', 'indices'], device: tiny({ tilesPerIpu: 4 }) });
      }
    }
  });

  it('a K that is not a constant, or out of range, is refused naming the op', async () => {
    const c: OpCase = { op: 'TopK', opset: 11, inputs: { x: f32([3, 4], 1), k: i32([1], [2]) }, ...exact };
    await expect(runOurs(c)).rejects.toThrow(/TopK.*K \(input 1 'k'\) must be a constant initializer/s);
    await expect(runOurs({ ...c, inputs: { x: f32([3, 4], 1), k: K(5) } })).rejects.toThrow(/K = 5 must be in \[0, 4\]/);
  });
});
