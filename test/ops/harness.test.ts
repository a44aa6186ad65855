/** The harness itself, on ops that exist since the spine: it must pass good ops and catch bad ones. */
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32 } from './harness.js';

describe('op harness', () => {
  it('MatMul forward agrees with onnxruntime (fp32, double accumulation on our side)', async () => {
    await checkForward({ op: 'MatMul', inputs: { a: f32([5, 7], 1), b: f32([7, 3], 2) }, atol: 1e-6, rtol: 1e-5 });
  });

  it('Add with a bias and Mul broadcast agree with onnxruntime', async () => {
    await checkForward({ op: 'Add', inputs: { a: f32([4, 6], 3), b: f32([6], 4) } });
    await checkForward({ op: 'Mul', inputs: { a: f32([3], 5), b: f32([2, 4, 3], 6) } });
  });

  it('MatMul grads agree with finite differences', async () => {
    await checkGrad({ op: 'MatMul', inputs: { a: f32([3, 4], 7), b: f32([4, 2], 8) } });
  });

  it('catches a wrong forward (compares against a different op)', async () => {
    const c = { op: 'Add', inputs: { a: f32([4], 9), b: f32([4], 10) } };
    const { runOurs, runOrt } = await import('./harness.js');
    const ours = (await runOurs(c)).get('y')!;
    const ref = (await runOrt({ ...c, op: 'Mul' })).y;
    expect(Array.from(ours)).not.toEqual(Array.from(ref as Float32Array));
  });
});
