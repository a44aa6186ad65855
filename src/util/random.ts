/**
 * Seeded random numbers for initializers and input data: splitmix32 for
 * uniform bits, Box-Muller for normals. Reproducible across machines and
 * worker counts; not for cryptography.
 *
 * The fill methods draw a whole typed array in one tight loop (the state in
 * a local, the generator inlined): the same values, in the same order, as
 * calling next(), uniform(), normal() or integer() once per element, at
 * memory speed for uniform and integers. Normal keeps one Box-Muller pair per
 * element (the cosine only), so normal-initialised tensors keep their values.
 */

/** Arrays the fill methods draw into. */
export type FillArray = Float32Array | Float64Array | Int32Array;

export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z ^= z >>> 15;
    return (z >>> 0) / 4294967296;
  }

  uniform(low: number, high: number): number {
    return low + (high - low) * this.next();
  }

  normal(mean: number, std: number): number {
    const u1 = 1 - this.next(); // (0, 1]: log stays finite
    const u2 = this.next();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Integer in [low, high] inclusive. */
  integer(low: number, high: number): number {
    return low + Math.floor(this.next() * (high - low + 1));
  }

  /** out[i] = uniform(low, high), i ascending. */
  fillUniform(out: FillArray, low: number, high: number): void {
    const span = high - low;
    let st = this.state;
    for (let i = 0; i < out.length; i++) {
      st = (st + 0x9e3779b9) | 0;
      let z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      z ^= z >>> 15;
      out[i] = low + span * ((z >>> 0) / 4294967296);
    }
    this.state = st;
  }

  /** out[i] = normal(mean, std), i ascending (two draws each). */
  fillNormal(out: FillArray, mean: number, std: number): void {
    let st = this.state;
    for (let i = 0; i < out.length; i++) {
      st = (st + 0x9e3779b9) | 0;
      let z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      z ^= z >>> 15;
      const u1 = 1 - (z >>> 0) / 4294967296;
      st = (st + 0x9e3779b9) | 0;
      z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      z ^= z >>> 15;
      const u2 = (z >>> 0) / 4294967296;
      out[i] = mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    this.state = st;
  }

  /** out[i] = integer(low, high), i ascending. */
  fillIntegers(out: FillArray, low: number, high: number): void {
    const span = high - low + 1;
    let st = this.state;
    for (let i = 0; i < out.length; i++) {
      st = (st + 0x9e3779b9) | 0;
      let z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      z ^= z >>> 15;
      out[i] = low + Math.floor(((z >>> 0) / 4294967296) * span);
    }
    this.state = st;
  }
}
