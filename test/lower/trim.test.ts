/**
 * A closed compute set's vertex columns and a closed exchange's copy columns
 * are cut to what they hold (BuildVertices.trim, SliceCopies.trim): what they
 * hold is unchanged, and adding more afterwards (a clone's compute set, a
 * test's graph) still grows them, losing nothing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BuildVertices } from '../../src/lower/build-vertices.js';
import { SliceCopies } from '../../src/lower/slice-copies.js';
import { Names } from '../../sim/vertex-table.js';

const vertexOf = (v: BuildVertices, i: number) => ({ codelet: v.codeletName(i), tile: v.tile[i], fields: v.fields(i), params: v.params(i) });

/** `count` vertices and copies of every kind, trimmed before each of `trimAt` and at the end (none: never). */
function build(count: number, trimAt: number[] | undefined): { v: BuildVertices; c: SliceCopies } {
  const v = new BuildVertices(new Names());
  const c = new SliceCopies();
  for (let k = 0; k < count; k++) {
    if (trimAt?.includes(k)) {
      v.trim();
      c.trim();
    }
    const slices = Array.from({ length: 1 + (k % 3) }, (_, j) => ({ tensor: j, begin: k, end: k + j + 1 }));
    v.push(k % 2 ? 'A' : 'B', k % 7, { in: slices, out: { tensor: 9, begin: k, end: k + 1 } }, k % 5 ? { alpha: k / 2, beta: -k } : {}, undefined, false);
    if (k % 4 === 3) c.pushStrided(1, k, 2, 2 * k, 3, 2 + (k % 3), 5, 3);
    else c.push(1, k, 2, k, 1 + (k % 6));
    if (k % 9 === 8) c.repeats(c.length - 1, 0);
  }
  if (trimAt) {
    v.trim();
    c.trim();
  }
  return { v, c };
}

describe('trimming build columns', () => {
  it('keeps every vertex and copy, trimmed at any point and added to after', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 }), fc.array(fc.nat(200), { maxLength: 4 }), (before, after, trimAt) => {
        // The same columns built trimmed at those points (and at the end), and never trimmed.
        const { v, c } = build(before + after, [before, ...trimAt]);
        const { v: v2, c: c2 } = build(before + after, undefined);
        expect(v.count).toBe(v2.count);
        for (let i = 0; i < v.count; i++) expect(vertexOf(v, i)).toEqual(vertexOf(v2, i));
        expect(c.list()).toEqual(c2.list());
        for (let i = 0; i < c.length; i++) {
          expect([c.runs(i), c.srcStride(i), c.dstStride(i), c.repeatOf(i)]).toEqual([c2.runs(i), c2.srcStride(i), c2.dstStride(i), c2.repeatOf(i)]);
        }
      }),
      { numRuns: 200 },
    );
  });
});
