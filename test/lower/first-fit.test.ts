import { describe, expect, it } from 'vitest';
import { FirstFit } from '../../src/lower/first-fit.js';

/** The plain definition: the lowest aligned offset >= base overlapping no placed item whose lifetime overlaps. */
function reference(items: { bytes: number; from: number; to: number }[], base: number, alignment: number): number[] {
  const align = (n: number) => Math.ceil(n / alignment) * alignment;
  const placed: { offset: number; end: number; to: number }[] = [];
  return items.map(({ bytes, from, to }) => {
    const live = placed.filter((p) => p.to >= from).sort((a, b) => a.offset - b.offset);
    let offset = base;
    for (const p of live) {
      if (offset + bytes <= p.offset) break;
      offset = Math.max(offset, align(p.end));
    }
    placed.push({ offset, end: offset + bytes, to });
    return offset;
  });
}

/** A small deterministic generator (mulberry32). */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FirstFit', () => {
  it('places every item where a plain first-fit scan of the live items does', () => {
    const fit = new FirstFit(8);
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const base = 8 * Math.floor(r() * 4);
      // Items in order of first step, some zero-sized, lifetimes short and long: holes open and close.
      let from = 0;
      const items = Array.from({ length: 300 }, () => {
        from += r() < 0.5 ? 0 : Math.floor(r() * 3);
        const bytes = r() < 0.05 ? 0 : 1 + Math.floor(r() * (r() < 0.2 ? 400 : 40));
        return { bytes, from, to: from + Math.floor(r() * (r() < 0.1 ? 200 : 10)) };
      });
      fit.reset(base);
      const got = items.map((it) => fit.place(it.bytes, it.from, it.to));
      expect(got, `seed ${seed}`).toEqual(reference(items, base, 8));
    }
  });

  it('reuses the bytes of an expired item and keeps what is still live', () => {
    const fit = new FirstFit(4);
    fit.reset(0);
    expect(fit.place(10, 0, 1)).toBe(0);
    expect(fit.place(6, 0, 5)).toBe(12);
    // The first item's last step is 1: at step 2 its 12 bytes (aligned) are free again.
    expect(fit.place(12, 2, 3)).toBe(0);
    expect(fit.place(13, 2, 3)).toBe(20);
  });
});
