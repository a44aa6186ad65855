/**
 * Loss scaling for float16 training (train.lossScaling, PopART's semantics):
 * the loss gradient is seeded with the scaling and the optimizer divides the
 * gradient by it before the update, so anchored Gradient___ tensors are the
 * scaled ones and the updates are those of the unscaled loss.
 *
 * Model: float16 throughout, y = x w (x [4, 8], w [8, 2]), loss = s x sum |y|
 * (L1, reduction sum), plain SGD. Then dy = s sign(y) and
 * dw = s c with c = x^T sign(y). The data is chosen so that float16 holds
 * every intermediate exactly where it does not underflow: x in multiples of
 * 1/8 (c a multiple of 1/8, |c| <= 4), w in [0.26, 0.48] in multiples of
 * 2^-12 (float16's spacing there), powers of two for s, lr and the scaling.
 * The reference update lr s c is then exact too, and so are the comparisons;
 * the tolerance is still one float16 ulp of w (2^-12) so that a correct
 * rounding elsewhere would not fail the test.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { decodeHalf } from '../../sim/half.js';
import { compile, TrainingSession } from '../../src/session.js';
import { Rng } from '../../src/util/random.js';

const rng = new Rng(5);
const X = Array.from({ length: 4 }, () => Array.from({ length: 8 }, () => (rng.uniform(0, 1) < 0.5 ? -1 : 1) * (1 + Math.floor(rng.uniform(0, 8))) / 8));
const W = Array.from({ length: 8 }, () => Array.from({ length: 2 }, () => (1065 + Math.floor(rng.uniform(0, 900))) * 2 ** -12));

/** y = x w in double (exact here), and c = x^T sign(y). */
function host(): { y: number[]; c: number[] } {
  const y: number[] = [];
  for (let r = 0; r < 4; r++) for (let j = 0; j < 2; j++) y.push(X[r].reduce((s, xv, k) => s + xv * W[k][j], 0));
  const c: number[] = [];
  for (let k = 0; k < 8; k++) for (let j = 0; j < 2; j++) c.push([0, 1, 2, 3].reduce((s, r) => s + X[r][k] * Math.sign(y[r * 2 + j]), 0));
  return { y, c };
}

const ULP = 2 ** -12;

async function step(s: number, lr: number, lossScaling: number) {
  const yaml = `device: tiny
model:
  graph:
    inputs: {x: {shape: [4, 8], dtype: float16}}
    initializers: {w: {shape: [8, 2], dtype: float16, init: {value: ${JSON.stringify(W)}}}}
    nodes: [{op: MatMul, inputs: [x, w], outputs: [y]}]
    outputs: [y]
inputs: {x: {value: ${JSON.stringify(X)}}}
train:
  loss: {type: l1, input: y, scale: ${JSON.stringify(s)}, reduction: sum}
  optimizer: {type: sgd, lr: ${JSON.stringify(lr)}}
  lossScaling: ${lossScaling}
anchors: {Gradient___w: final, Gradient___y: final}
`;
  const session = await TrainingSession.create(await compile(loadConfigText(yaml, 'ls.yaml')), { workers: 1, numerics: true });
  try {
    const r = await session.runStep();
    const half = (name: string) => decodeHalf(r.anchors.get(name)!.data as Uint16Array);
    return { w: Array.from(session.readWeights().get('w')!), gw: Array.from(half('Gradient___w')), gy: Array.from(half('Gradient___y')) };
  } finally {
    await session.close();
  }
}

describe('loss scaling with float16 weights', () => {
  const { y, c } = host();
  const w0 = W.flat();

  it('the data is what the reasoning needs', () => {
    expect(Math.min(...y.map(Math.abs))).toBeGreaterThan(0.01);
    for (const v of c) expect(Number.isInteger(v * 8)).toBe(true);
  });

  it('gives the same updates as no scaling when nothing underflows; anchored gradients are the scaled ones', async () => {
    // s = 2^-6, lr = 2^-3: update lr s c = 2^-9 c.
    const plain = await step(2 ** -6, 2 ** -3, 1);
    const scaled = await step(2 ** -6, 2 ** -3, 128);
    for (let i = 0; i < w0.length; i++) {
      const want = w0[i] - 2 ** -9 * c[i];
      expect(Math.abs(plain.w[i] - want)).toBeLessThanOrEqual(ULP);
      expect(Math.abs(scaled.w[i] - plain.w[i])).toBeLessThanOrEqual(ULP);
      expect(plain.gw[i]).toBe(2 ** -6 * c[i]);
      expect(scaled.gw[i]).toBe(128 * plain.gw[i]);
    }
    expect(Math.max(...w0.map((v, i) => Math.abs(plain.w[i] - v)))).toBeGreaterThan(4 * ULP);
  });

  it('keeps a gradient that float16 flushes to zero without it', async () => {
    // s = 2^-27: dy = 2^-27 is below half the smallest float16 subnormal (2^-25) and rounds to 0;
    // scaled by 128 it is 2^-20, a subnormal float16 holds exactly, and so is dw = 2^-20 c.
    // lr = 2^18 makes the true update lr s c = 2^-9 c, a whole number of float16 ulps of w.
    const s = 2 ** -27;
    const plain = await step(s, 2 ** 18, 1);
    expect(plain.gy.every((v) => v === 0)).toBe(true);
    expect(plain.gw.every((v) => v === 0)).toBe(true);
    expect(plain.w).toEqual(w0);

    const scaled = await step(s, 2 ** 18, 128);
    y.forEach((v, i) => expect(scaled.gy[i]).toBe(2 ** -20 * Math.sign(v)));
    for (let i = 0; i < w0.length; i++) {
      expect(scaled.gw[i]).toBe(128 * s * c[i]);
      expect(Math.abs(scaled.w[i] - (w0[i] - 2 ** -9 * c[i]))).toBeLessThanOrEqual(ULP);
    }
    expect(Math.max(...w0.map((v, i) => Math.abs(scaled.w[i] - v)))).toBeGreaterThan(4 * ULP);
  });

  it('rejects a scaling that is not positive', () => {
    const bad = `model:\n  graph:\n    inputs: {x: {shape: [2]}}\n    nodes: [{op: L1, domain: ai.graphcore, inputs: [x], outputs: [l]}]\n    outputs: [l]\ninputs: {x: {value: [1, 2]}}\ntrain: {loss: l, optimizer: {type: sgd, lr: 0.1}, lossScaling: 0}\n`;
    expect(() => loadConfigText(bad, 'bad.yaml')).toThrow(/bad\.yaml:7:\d+: train\.lossScaling: .*expected a number > 0/);
  });
});
