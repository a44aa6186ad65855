/** RunList: the flat list of element runs plans build and ctx.gather reads. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunList } from '../../src/lower/layout.js';

describe('RunList', () => {
  it('merges a run continuing the last, drops empty ones, and keeps from() lists as they are', () => {
    const r = new RunList();
    r.push(0, 4);
    r.push(4, 6); // continues [0, 4)
    r.push(7, 7); // empty
    r.push(8, 10);
    expect(r.pairs()).toEqual([
      [0, 6],
      [8, 10],
    ]);
    expect(RunList.from([[0, 4], [4, 6]]).pairs()).toEqual([
      [0, 4],
      [4, 6],
    ]);
  });

  it('clear() empties it for reuse: what is pushed after is all it holds', () => {
    const r = RunList.from([[3, 5], [9, 12]]);
    r.clear();
    expect(r.n).toBe(0);
    expect(r.pairs()).toEqual([]);
    r.push(5, 6);
    expect(r.pairs()).toEqual([[5, 6]]);
    expect(r.same(RunList.from([[5, 6]]))).toBe(true);
  });

  it('equal lists hash alike and are the same(); a list differing in one bound is not', () => {
    const runs = fc.array(fc.tuple(fc.nat(1000), fc.integer({ min: 1, max: 50 })), { minLength: 1, maxLength: 20 }).map((xs) => xs.map(([b, n]): [number, number] => [b, b + n]));
    fc.assert(
      fc.property(runs, fc.nat(), (pairs, at) => {
        const a = RunList.from(pairs);
        const b = RunList.from(pairs);
        expect(a.hash()).toBe(b.hash());
        expect(a.same(b)).toBe(true);
        const changed = pairs.map((p, i): [number, number] => (i === at % pairs.length ? [p[0], p[1] + 1] : p));
        expect(a.same(RunList.from(changed))).toBe(false);
      }),
      { seed: 11, numRuns: 200 },
    );
  });
});
