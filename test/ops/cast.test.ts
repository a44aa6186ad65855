/**
 * Cast and float16 numerics end to end, against onnxruntime-node's float16
 * results. float16 has an 11-bit significand: one rounding is at most half an
 * ulp, 2^-11 ~ 4.9e-4 relative. Tolerances below allow the rounding steps each
 * computation has on each side and are stated per test.
 */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/ir/graph.js';
import { createRegistry } from '../../src/model/modules.js';
import { CastOp } from '../../src/ops/cast.js';
import { runGraph } from '../../src/session.js';
import { roundHalf } from '../../sim/half.js';
import { randomData, tiny } from '../helpers.js';
import { checkForward, checkGrad, f32, i32 } from './harness.js';

const half = (shape: number[], seed: number, low = -4, high = 4) => ({ ...f32(shape, seed, 0, low, high), dtype: 'float16' as const });

describe('Cast', () => {
  it('float32 -> float16 rounds exactly like onnxruntime (bitwise: one correctly rounded step)', async () => {
    await checkForward({ op: 'Cast', attributes: { to: 10 }, inputs: { x: f32([7, 9], 1, 0, -70000, 70000) }, outputDtype: 'float16', atol: 0, rtol: 0 });
    await checkForward({ op: 'Cast', attributes: { to: 10 }, inputs: { x: f32([300], 2, 0, -1e-4, 1e-4) }, outputDtype: 'float16', atol: 0, rtol: 0 });
  });

  it('float16 -> float32 is exact', async () => {
    await checkForward({ op: 'Cast', attributes: { to: 1 }, inputs: { x: half([5, 40], 3) }, atol: 0, rtol: 0 });
  });

  it('float32 -> int32 truncates toward zero; int32 -> float32 is exact', async () => {
    await checkForward({ op: 'Cast', attributes: { to: 6 }, inputs: { x: f32([50], 4, 0, -100, 100) }, outputDtype: 'int32', atol: 0, rtol: 0 });
    await checkForward({ op: 'Cast', attributes: { to: 1 }, inputs: { x: i32([6], [-3, -1, 0, 2, 1 << 20, 123456]) }, atol: 0, rtol: 0 });
  });

  it('to bool: 1 where the input is nonzero (a fraction, a negative, an int), as onnxruntime; no gradient', async () => {
    const x = f32([40], 7, 0, -2, 2);
    x.data.set([0, -0, 0.25, -0.5, 1e-30], 0);
    await checkForward({ op: 'Cast', attributes: { to: 9 }, inputs: { x }, outputDtype: 'bool', atol: 0, rtol: 0 });
    await checkForward({ op: 'Cast', attributes: { to: 9 }, inputs: { x: i32([5], [-3, 0, 2, 0, 1]) }, outputDtype: 'bool', atol: 0, rtol: 0 });
    await checkForward({ op: 'Cast', attributes: { to: 9 }, inputs: { x: half([30], 8, -2, 2) }, outputDtype: 'bool', atol: 0, rtol: 0 });
    // And back: bool as int32 0/1 casts to float as 0 and 1.
    await checkForward({ op: 'Cast', attributes: { to: 1 }, inputs: { x: { ...i32([4], [1, 0, 0, 1]), dtype: 'bool' } }, atol: 0, rtol: 0 });
  });

  it('has a gradient between float types (cast back) and none to int', async () => {
    await checkGrad({ op: 'Cast', attributes: { to: 1 }, inputs: { x: f32([4, 3], 5) } });
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape: [2] }, 'stream');
    const op = new CastOp('int32', { name: 'c' });
    g.addOp(op, ['x'], ['y']);
    expect(op.getGradOps()).toEqual([]);
  });

  it('rejects an unsupported target type naming the node and the supported ones', async () => {
    await expect(checkForward({ op: 'Cast', attributes: { to: 11 }, inputs: { x: f32([2], 6) } })).rejects.toThrow(/node 'Cast_0' \(Cast\): 'to' = 11 is not supported; supported: 1 \(float32\), 6 \(int32\), 7 \(int32\), 9 \(bool, as int32 0\/1\), 10 \(float16\)/);
  });
});

describe('float16 tensors end to end', () => {
  it('Add in float16 agrees with onnxruntime within one float16 rounding', async () => {
    // Both sides round the exact sum of two float16 values once: identical results expected,
    // but onnxruntime may compute in float32 and round, as we do: allow one half-ulp.
    await checkForward({ op: 'Add', inputs: { a: half([6, 10], 7), b: half([10], 8) }, outputDtype: 'float16', atol: 1e-3, rtol: 4.9e-4 });
  });

  it('MatMul in float16 agrees with onnxruntime within float16 tolerance (fp32 accumulation)', async () => {
    // k = 16 products accumulated in fp32 then rounded once to float16 on store: error <= half
    // an ulp of the result plus onnxruntime's own accumulation order: rtol 2e-3, atol 2e-3.
    await checkForward({ op: 'MatMul', inputs: { a: half([8, 16], 9, -1, 1), b: half([16, 12], 10, -1, 1) }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('stores host floats rounded to nearest even and reads back exact float16 values', async () => {
    const registry = await createRegistry([]);
    const g = new Graph();
    g.addTensor('x', { dtype: 'float32', shape: [1000] }, 'stream');
    g.addOp(new CastOp('float16', { name: 'toHalf' }), ['x'], ['h']);
    g.addOp(new CastOp('float32', { name: 'toFloat' }), ['h'], ['y']);
    const x = randomData(1000, 11, -100, 100);
    const r = await runGraph({ graph: g, registry, device: tiny(), inputs: { x }, outputs: ['y', 'h'] });
    const y = r.outputs.get('y')!;
    for (let i = 0; i < 1000; i++) expect(y[i]).toBe(roundHalf(x[i]));
    // A float16 tensor takes 2 bytes per element on the tiles.
    const h = r.program.tensors.find((t) => t.name === 'h')!;
    expect(h.dtype).toBe('float16');
  });
});
