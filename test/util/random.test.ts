/**
 * The Rng's fill methods draw the very values (bit for bit, in order) that
 * one call per element gives, so initializers and random inputs did not
 * change when they moved to them; and they leave the state where the
 * per-element calls would.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/util/random.js';
import { hostKernels, kernelModule } from '../../sim/wasm/kernels.js';

beforeAll(async () => {
  await kernelModule();
});
afterEach(() => {
  delete process.env.TILESIM_WASM;
});

const SEEDS = [0, 1, 7, 0x7fffffff, 0x80000000, 0xffffffff];

describe('Rng fill methods', () => {
  for (const wasm of [true, false])
  it(`fillUniform, fillNormal and fillIntegers equal per-element draws, and continue the same sequence (${wasm ? 'uniform and integers on the kernels' : 'TILESIM_WASM=0: all in TypeScript'})`, () => {
    if (!wasm) process.env.TILESIM_WASM = '0';
    expect(hostKernels() !== undefined).toBe(wasm);
    for (const seed of SEEDS) {
      for (const make of [(n: number) => new Float32Array(n), (n: number) => new Float64Array(n), (n: number) => new Int32Array(n)]) {
        const cases: [(r: Rng, a: Float32Array | Float64Array | Int32Array) => void, (r: Rng) => number][] = [
          [(r, a) => r.fillUniform(a, -1.5, 3), (r) => r.uniform(-1.5, 3)],
          [(r, a) => r.fillNormal(a, 0.25, 2), (r) => r.normal(0.25, 2)],
          [(r, a) => r.fillIntegers(a, -3, 9), (r) => r.integer(-3, 9)],
          [(r, a) => r.fillIntegers(a, -(2 ** 31), 2 ** 31 - 1), (r) => r.integer(-(2 ** 31), 2 ** 31 - 1)],
          [(r, a) => r.fillUniform(a, -3e9, 3e9), (r) => r.uniform(-3e9, 3e9)],
          [(r, a) => r.fillUniform(a, 1e-40, 2e-38), (r) => r.uniform(1e-40, 2e-38)],
        ];
        for (const [fill, one] of cases)
          for (const n of [1000, 63, 64, 67, 262141, 262147]) {
          if (n > 1000 && seed > 1) continue;
          const a = make(n);
          const b = make(n);
          const ra = new Rng(seed);
          const rb = new Rng(seed);
          fill(ra, a);
          for (let i = 0; i < b.length; i++) b[i] = one(rb);
          expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
          expect(ra.next()).toBe(rb.next());
        }
      }
    }
  });

  it('keeps the sequence it always had (seed 1, values from before the fill methods)', () => {
    const u = new Float64Array(3);
    new Rng(1).fillUniform(u, 0, 1);
    expect([...u]).toEqual([0.3678755429573357, 0.08161311969161034, 0.8205357783008367]);
    const n = new Float64Array(2);
    new Rng(1).fillNormal(n, 0, 1);
    expect([...n]).toEqual([0.8345872265302164, -0.5592761073613468]);
  });
});
