/** Our float16 encoder against @petamoriken/float16 (the reference), on every bit pattern's neighbourhood and random values. */
import { Float16Array, f16round } from '@petamoriken/float16';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHalf, encodeHalf, halfToFloat, roundHalf, toHalfBits } from '../../sim/half.js';

describe('float16 conversion', () => {
  it('decodes every bit pattern like the library and re-encodes it to itself (NaN aside)', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const ref = new Float16Array(bits.buffer);
    const ours = decodeHalf(bits);
    for (let b = 0; b < 65536; b++) {
      if (Number.isNaN(ref[b])) {
        expect(Number.isNaN(ours[b])).toBe(true);
        continue;
      }
      expect(Object.is(ours[b], ref[b])).toBe(true);
      expect(toHalfBits(ours[b])).toBe(b);
    }
  });

  it('rounds to nearest even exactly as the library, including midpoints, subnormals and overflow', () => {
    const probes: number[] = [65504, 65519.99, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 2 ** -25 * 1.5, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0, -0, Infinity, -Infinity];
    // Midpoints between consecutive halves are the hard cases for ties-to-even.
    for (let b = 0; b < 0x7c00; b += 97) probes.push((halfToFloat(b) + halfToFloat(b + 1)) / 2);
    for (const x of probes) expect(Object.is(roundHalf(x), f16round(Math.fround(x))), `x = ${x}`).toBe(true);
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => Object.is(roundHalf(x), f16round(x))),
      { numRuns: 20000 },
    );
  });

  it('encodes arrays', () => {
    expect(Array.from(encodeHalf([1, -2.5, 0.1]))).toEqual([15360, 49408, 11878]);
  });
});
