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
 *
 * Once the WebAssembly kernels are compiled in the process, uniform and
 * integer fills draw on them (random_fill: four splitmix32 counters per step,
 * the mapping in f64 lanes, the same IEEE operations as the loop) into a
 * scratch memory and copy out: the same bits (test/util/random.test.ts).
 * Normal fills stay here (log and cos are the host's).
 *
 * A RandomDraw is such a fill described but not drawn: the engine draws a
 * random input straight into tile memory from it (drawInto), the same bits.
 * It lives in sim/ for that reason (src/util/random.ts re-exports Rng).
 */

import { HOST_SCRATCH_BYTES, hostKernels, kernelsFor } from './wasm/kernels.js';

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

  /**
   * The fill on the kernels, chunk by chunk through their scratch: false
   * (nothing drawn) when they are not ready, or when an int32 array could get
   * values outside int32 (the loop's store wraps them; the kernel's saturates).
   */
  private fillWasm(out: FillArray, integer: boolean, low: number, span: number): boolean {
    if (out.length < 64) return false;
    const K = hostKernels();
    if (!K) return false;
    const int = out instanceof Int32Array;
    if (int && !(Math.abs(low) < 2 ** 31 && Math.abs(low + span) < 2 ** 31)) return false;
    const type = out instanceof Float32Array ? 0 : out instanceof Float64Array ? 1 : 2;
    const bytes = type === 1 ? 8 : 4;
    const chunk = Math.floor(HOST_SCRATCH_BYTES / bytes) - 4;
    const view = type === 0 ? K.f32 : type === 1 ? new Float64Array(K.buffer, 0, HOST_SCRATCH_BYTES / 8) : K.i32;
    let st = this.state;
    for (let at = 0; at < out.length; at += chunk) {
      const n = Math.min(chunk, out.length - at);
      K.x.random_fill(st, n, 0, integer ? 1 : 0, low, span, type);
      out.set(view.subarray(0, n), at);
      st = (st + Math.imul(n, 0x9e3779b9)) | 0;
    }
    this.state = st;
    return true;
  }

  /** out[i] = uniform(low, high), i ascending. */
  fillUniform(out: FillArray, low: number, high: number): void {
    this.fillSpan(out, false, low, high - low);
  }

  /**
   * The uniform (low + span u) or integer (low + floor(u span)) fill, its
   * span given: fillUniform and fillIntegers, and the draws a RandomDraw
   * describes (which keep the span they were made with, bit for bit).
   */
  fillSpan(out: FillArray, integer: boolean, low: number, span: number): void {
    if (this.fillWasm(out, integer, low, span)) return;
    let st = this.state;
    if (integer) {
      for (let i = 0; i < out.length; i++) {
        st = (st + 0x9e3779b9) | 0;
        let z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
        z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
        z ^= z >>> 15;
        out[i] = low + Math.floor(((z >>> 0) / 4294967296) * span);
      }
    } else {
      for (let i = 0; i < out.length; i++) {
        st = (st + 0x9e3779b9) | 0;
        let z = Math.imul(st ^ (st >>> 16), 0x21f0aaad);
        z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
        z ^= z >>> 15;
        out[i] = low + span * ((z >>> 0) / 4294967296);
      }
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
    this.fillSpan(out, true, low, high - low + 1);
  }
}

/** splitmix32's state step: the state before element i of a fill is the fill's first state + i x GOLDEN. */
const GOLDEN = 0x9e3779b9;

/**
 * A uniform or integer fill not yet drawn (plain data): element i is the
 * fill's element i from `state`, as Rng.fillSpan draws it. splitmix32 is
 * counter-based, so any run of elements can be drawn on its own: the engine
 * draws a streamed input straight into each of its tile intervals
 * (Engine.write), with no host array and no copy.
 */
export interface RandomDraw {
  kind: 'randomDraw';
  /** The generator's state before element 0. */
  state: number;
  integer: boolean;
  low: number;
  /** uniform: high - low; integers: high - low + 1. */
  span: number;
  /** Elements. */
  length: number;
}

export function isRandomDraw(x: unknown): x is RandomDraw {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'randomDraw';
}

/** The state before element `first` of a fill from `state`. */
export function stateAt(state: number, first: number): number {
  return (state + Math.imul(first, GOLDEN)) | 0;
}

/**
 * Elements [first, first + out.length) of `d` into `out`. When out lies in a
 * memory the kernels are bound to (tile memory), the kernel draws in place,
 * whole groups of four (it writes in fours, so the last < 4 go through the
 * loop and nothing past out is touched); else Rng's fill.
 */
export function drawInto(out: Float32Array | Int32Array, d: RandomDraw, first: number): void {
  const st = stateAt(d.state, first);
  const K = kernelsFor(out);
  const int = out instanceof Int32Array;
  // An int32 array could get values outside int32: the loop's store wraps them, the kernel's saturates.
  const safe = !int || (Math.abs(d.low) < 2 ** 31 && Math.abs(d.low + d.span) < 2 ** 31);
  const body = K && safe ? out.length & ~3 : 0;
  if (body > 0) K!.x.random_fill(st, body, out.byteOffset, d.integer ? 1 : 0, d.low, d.span, int ? 2 : 0);
  if (body < out.length) new Rng(stateAt(st, body)).fillSpan(out.subarray(body), d.integer, d.low, d.span);
}
