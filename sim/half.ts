/**
 * float16 <-> float32 conversion for tile memory, which stores float16 as raw
 * bits. Decoding is a 65536-entry table built with @petamoriken/float16;
 * encoding (round to nearest even, overflow to infinity, subnormals kept)
 * is a bit-level routine, because the library's Float16Array costs about
 * 1 us per element, too slow for vertex boundaries. test/sim/half.test.ts
 * checks it against the library.
 */
import { getFloat16 } from '@petamoriken/float16';
import { kernelsFor, type Kernels } from './wasm/kernels.js';

/** Fewer elements than this convert in TypeScript (a kernel call costs more). */
const MIN_WASM = 8;

/** The kernels when src and out are both in their memory, apart; else undefined. */
function kernelsOver(src: Uint16Array | Float32Array, out: Uint16Array | Float32Array): Kernels | undefined {
  if (src.length < MIN_WASM) return undefined;
  const K = kernelsFor(out);
  if (!K || src.buffer !== K.buffer) return undefined;
  const a = src.byteOffset;
  const b = out.byteOffset;
  return a + src.byteLength <= b || b + out.byteLength <= a ? K : undefined;
}

let table: Float32Array | undefined;

function decodeTable(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    const view = new DataView(new ArrayBuffer(2));
    for (let b = 0; b < 65536; b++) {
      view.setUint16(0, b, true);
      table[b] = getFloat16(view, 0, true);
    }
  }
  return table;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float16 bits nearest to x (ties to even). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf or NaN
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    if (e < -10) return sign; // underflows to zero
    mant |= 0x800000; // implicit bit
    const shift = 14 - e;
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (rem > mid || (rem === mid && (half & 1)) ? half + 1 : half);
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to infinity).
  return sign | (rem > 0x1000 || (rem === 0x1000 && (half & 1)) ? half + 1 : half);
}

export function halfToFloat(bits: number): number {
  return decodeTable()[bits & 0xffff];
}

/** Decode float16 bits into `out` (a new Float32Array by default). */
export function decodeHalf(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  // In tile memory (a vertex's fp16 fields, sim/execute.ts): the half_decode kernel, the table's bits.
  const K = kernelsOver(src, out);
  if (K) {
    K.x.half_decode(src.byteOffset, out.byteOffset, Math.min(src.length, out.length));
    return out;
  }
  const t = decodeTable();
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** Encode values as float16 bits into `out` (a new Uint16Array by default). */
export function encodeHalf(src: ArrayLike<number>, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  // In tile memory: the half_encode kernel, toHalfBits' bits.
  const K = src instanceof Float32Array ? kernelsOver(src, out) : undefined;
  if (K) {
    K.x.half_encode((src as Float32Array).byteOffset, out.byteOffset, Math.min(src.length, out.length));
    return out;
  }
  for (let i = 0; i < src.length; i++) out[i] = toHalfBits(src[i]);
  return out;
}

/** x rounded to the nearest float16 value. */
export function roundHalf(x: number): number {
  return halfToFloat(toHalfBits(x));
}
