/**
 * TileMapping (src/lower/tile-mapping.ts): a tensor's tile mapping as
 * columns. Checked against plain lists of {tile, begin, end}, what
 * lowerings give and take.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TileMapping, TileMappingBuilder } from '../../src/lower/tile-mapping.js';
import { DeviceGraph, type TileRange } from '../../src/lower/devicegraph.js';
import { tiny } from '../helpers.js';

/** A partition of [0, size) into ranges on tiles below `tiles`, in element order. */
const partition = (tiles: number) =>
  fc.array(fc.record({ tile: fc.nat(tiles - 1), len: fc.integer({ min: 1, max: 9 }) }), { minLength: 1, maxLength: 40 }).map((parts) => {
    let at = 0;
    return parts.map(({ tile, len }) => ({ tile, begin: at, end: (at += len) }));
  });

describe('TileMapping', () => {
  it('holds the ranges it was made of, finds the first range ending after an element, and moves its tiles', () => {
    fc.assert(
      fc.property(partition(16), fc.nat(400), fc.integer({ min: -8, max: 8 }), (ranges, pos, by) => {
        const m = TileMapping.of(ranges);
        expect(m.length).toBe(ranges.length);
        expect(m.toArray()).toEqual(ranges);
        expect([...m]).toEqual(ranges);
        const linear = ranges.findIndex((r) => r.end > pos);
        expect(m.firstEndingAfter(pos)).toBe(linear < 0 ? ranges.length : linear);
        const moved = m.shifted(by);
        expect(moved.toArray()).toEqual(ranges.map((r) => ({ ...r, tile: r.tile + by })));
        expect(m.equalsShifted(moved, by)).toBe(true);
        expect(m.equalsShifted(moved, by + 1)).toBe(false);
        const lo = Math.min(...ranges.map((r) => r.tile));
        const hi = Math.max(...ranges.map((r) => r.tile));
        expect(m.within(lo, hi + 1)).toBe(true);
        expect(m.within(lo + 1, hi + 1) || m.within(lo, hi)).toBe(false);
      }),
    );
  });

  it('orders ranges given in any order by first element, dropping empty ones, as setTileMapping keeps them', () => {
    fc.assert(
      fc.property(
        partition(4).chain((ranges) => fc.shuffledSubarray(ranges, { minLength: ranges.length, maxLength: ranges.length })),
        fc.nat(3),
        (shuffled, emptyTile) => {
          const withEmpty = [...shuffled, { tile: emptyTile, begin: 3, end: 3 }];
          const b = new TileMappingBuilder();
          for (const r of withEmpty) b.push(r.tile, r.begin, r.end);
          const sorted = [...shuffled].sort((x, y) => x.begin - y.begin);
          expect(b.finish().inElementOrder().toArray()).toEqual(sorted);
          const size = sorted[sorted.length - 1].end;
          const g = new DeviceGraph(tiny());
          const [t1, t2] = [g.addTensor('a', 'float32', [size], 'activation'), g.addTensor('b', 'float32', [size], 'activation')];
          g.setTileMapping(t1, withEmpty);
          g.setTileMapping(t2, b.finish());
          expect(t1.mapping!.toArray()).toEqual(sorted);
          expect(t2.mapping!.toArray()).toEqual(sorted);
        },
      ),
    );
  });

  it('orders hundreds of thousands of ranges spanning a billion elements (every pass of its radix sort)', () => {
    // Ranges of varied length up to 2^30 elements, shuffled by a fixed permutation.
    const n = 200_000;
    const ranges: TileRange[] = [];
    let at = 0;
    for (let i = 0; i < n; i++) {
      const len = 1 + ((i * 2654435761) >>> 0) % 9000;
      ranges.push({ tile: i % 1472, begin: at, end: (at += len) });
    }
    expect(at).toBeGreaterThan(2 ** 29);
    const shuffled = ranges.map((_, i) => ranges[(i * 7919) % n]);
    expect(new Set(shuffled).size).toBe(n);
    expect(TileMapping.of(shuffled).inElementOrder().toArray()).toEqual(ranges);
  });

  it('is refused by setTileMapping when it leaves a gap or overlaps, as a list is', () => {
    const g = new DeviceGraph(tiny());
    const bad: TileRange[][] = [
      [{ tile: 0, begin: 0, end: 4 }, { tile: 1, begin: 5, end: 8 }],
      [{ tile: 0, begin: 0, end: 5 }, { tile: 1, begin: 4, end: 8 }],
    ];
    for (const ranges of bad) {
      const t = g.addTensor('t', 'float32', [8], 'activation', 'Op_1');
      expect(() => g.setTileMapping(t, TileMapping.of(ranges))).toThrow(/must cover its 8 elements once each/);
      expect(() => g.setTileMapping(t, ranges)).toThrow(/must cover its 8 elements once each/);
    }
    const t = g.addTensor('t', 'float32', [8], 'activation', 'Op_1');
    expect(() => g.setTileMapping(t, TileMapping.of([{ tile: 99, begin: 0, end: 8 }]))).toThrow(/mapped to tile 99/);
    // A fraction (a lowering's arithmetic gone wrong) is named, not cut to an integer.
    expect(() => g.setTileMapping(t, [{ tile: 0, begin: 0, end: 4.5 }, { tile: 1, begin: 4.5, end: 8 }])).toThrow(/tensor 't' has a mapped range \{tile: 0, begin: 0, end: 4.5\}: tiles and element indices must be whole numbers/);
    expect(() => g.setTileMapping(t, [{ tile: NaN, begin: 0, end: 8 }])).toThrow(/must be whole numbers/);
  });
});
