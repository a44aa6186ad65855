/**
 * DeviceGraph (src/lower/devicegraph.ts), allocation (src/lower/memory.ts) and
 * LowerContext.onTile (src/lower/context.ts): linear tile mapping, region and
 * copy resolution in finalize(), out-of-memory errors, and bringing operands
 * to a tile through the exchange.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { Engine, type HostIO } from '../../sim/engine.js';
import { TileMemory } from '../../sim/memory.js';
import { DTYPE_BYTES, type DeviceDType } from '../../sim/program.js';
import { RunError } from '../../src/errors.js';
import { Op } from '../../src/ir/op.js';
import { LowerContext } from '../../src/lower/context.js';
import { DeviceGraph, type BuildTensor, type TileRange } from '../../src/lower/devicegraph.js';
import { linearStartTile } from '../../src/lower/linear.js';
import { allocate } from '../../src/lower/memory.js';
import { tiny } from '../helpers.js';
import { copyList } from '../../sim/copies.js';
import { addCodelet } from '../../sim/codelets/binary.js';
import { UserError } from '../../src/errors.js';
import { vertexList } from '../../sim/vertex-table.js';
import { intervalList } from '../../sim/intervals.js';

function codelets(): CodeletRegistry {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  return r;
}

const ranges = (t: BuildTensor): [number, number, number][] => t.mapping!.toArray().map((m) => [m.tile, m.begin, m.end]);

class NopOp extends Op {
  constructor(name = 'nop') {
    super({ domain: 'test', type: 'Nop', version: 1 }, { name });
  }
  setup(): void {}
}

function context(g: DeviceGraph, name = 'nop'): LowerContext {
  return new LowerContext(g, new NopOp(name), new Map(), () => 'activation');
}

describe('mapLinearly', () => {
  it('gives every used tile but the last at least minBytesPerTile', () => {
    const g = new DeviceGraph(tiny());
    for (const size of [33, 100]) {
      const t = g.addTensor(`t${size}`, 'float32', [size], 'activation');
      g.mapLinearly(t);
      for (const r of t.mapping!.toArray().slice(0, -1)) expect((r.end - r.begin) * 4).toBeGreaterThanOrEqual(128);
    }
  });
  // tiny: 4 tiles, minBytesPerTile 128. float32: grain 2 (the vector width), min 128 / 4 = 32 elements.

  it('gives each tile an equal share of whole grains, tiles in order from 0', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [10, 100], 'variable');
    g.mapLinearly(t);
    // 1000 elements = 500 grains of 2; 4 tiles; 125 grains = 250 elements (1000 bytes >= 128) each
    expect(ranges(t)).toEqual([
      [0, 0, 250],
      [1, 250, 500],
      [2, 500, 750],
      [3, 750, 1000],
    ]);
  });

  it('leaves the remainder on the last tile', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [1001], 'variable');
    g.mapLinearly(t);
    // ceil(1001 / 2) = 501 grains; ceil(501 / 4) = 126 grains = 252 elements per tile; last: 1001 - 756 = 245
    expect(ranges(t)).toEqual([
      [0, 0, 252],
      [1, 252, 504],
      [2, 504, 756],
      [3, 756, 1001],
    ]);
  });

  it('uses fewer tiles when a tensor is small: 64 float32 = two tiles of exactly 128 bytes, from the start tile of 64 elements', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [64], 'activation');
    g.mapLinearly(t);
    // ceil(64 / 32) = 2 tiles; 32 grains / 2 = 16 grains = 32 elements = 128 bytes each
    expect(linearStartTile(64, 2, 4, 2)).toBe(2);
    expect(ranges(t)).toEqual([
      [2, 0, 32],
      [3, 32, 64],
    ]);
  });

  it('keeps a tensor of at most minBytesPerTile on one tile: the start tile of its element count', () => {
    const g = new DeviceGraph(tiny());
    // float16: grain 4, min 128 / 2 = 64 elements
    const h = g.addTensor('h', 'float16', [64], 'activation');
    g.mapLinearly(h);
    expect(ranges(h)).toEqual([[2, 0, 64]]);
    const u = g.addTensor('u', 'uint8', [128], 'activation');
    g.mapLinearly(u);
    expect(ranges(u)).toEqual([[0, 0, 128]]);
  });

  it('maps a scalar to the start tile of one element', () => {
    const g = new DeviceGraph(tiny());
    const s = g.addTensor('s', 'float32', [], 'constant');
    expect(s.size).toBe(1);
    g.mapLinearly(s);
    expect(ranges(s)).toEqual([[linearStartTile(1, 1, 4, 2), 0, 1]]);
    expect(linearStartTile(1, 1, 4, 2)).toBe(2);
  });

  it('honours an explicit grain', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [100], 'activation');
    g.mapLinearly(t, 8);
    // min = max(8, ceil(32 / 8) x 8) = 32; 13 grains of 8 over ceil(100 / 32) = 4 tiles: 4 grains = 32 each
    expect(ranges(t)).toEqual([
      [0, 0, 32],
      [1, 32, 64],
      [2, 64, 96],
      [3, 96, 100],
    ]);
  });

  it('spreads a tensor bigger than all tiles over all of them, and finalize reports the overflow', () => {
    const dev = tiny();
    const g = new DeviceGraph(dev);
    // 638978 float32 = 2555912 bytes > 4 x 638976
    const t = g.addTensor('huge', 'float32', [638978], 'variable');
    g.mapLinearly(t);
    // 319489 grains; ceil(319489 / 4) = 79873 grains = 159746 elements = 638984 bytes per tile
    expect(ranges(t)).toEqual([
      [0, 0, 159746],
      [1, 159746, 319492],
      [2, 319492, 479238],
      [3, 479238, 638978],
    ]);
    // tiles 0-2 hold 638984 bytes each; the first of the fullest tiles is named
    expect(() => g.finalize(codelets(), [])).toThrow(
      'Out of memory on tile 0: 638984 bytes used but tiles only have 638976 bytes of memory',
    );
  });

  it('covers every element once, in order, on consecutive tiles from the start tile (0 when it needs them all), wrapping, with equal whole-grain shares but the last (property)', () => {
    const dtypes: DeviceDType[] = ['float32', 'float16', 'int32', 'uint8'];
    fc.assert(
      fc.property(
        fc.constantFrom(...dtypes),
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 16 }),
        fc.constantFrom<number | undefined>(undefined, 1, 3, 8),
        (dtype, size, tiles, grainArg) => {
          const dev = tiny({ tilesPerIpu: tiles });
          const g = new DeviceGraph(dev);
          const t = g.addTensor('t', dtype, [size], 'activation');
          g.mapLinearly(t, grainArg);
          const grain = grainArg ?? 8 / DTYPE_BYTES[dtype];
          const m = t.mapping!.toArray();
          expect(m.length).toBeGreaterThanOrEqual(1);
          expect(m.length).toBeLessThanOrEqual(tiles);
          const start = linearStartTile(size, m.length, tiles, dev.tilesPerSharedBus);
          if (m.length === tiles) expect(start).toBe(0);
          expect(start).toBeGreaterThanOrEqual(0);
          expect(start).toBeLessThan(tiles);
          let next = 0;
          m.forEach((r, i) => {
            expect(r.tile).toBe((start + i) % tiles);
            expect(r.begin).toBe(next);
            expect(r.end).toBeGreaterThan(r.begin);
            next = r.end;
          });
          expect(next).toBe(size);
          const share = m[0].end - m[0].begin;
          for (const r of m.slice(0, -1)) {
            expect(r.end - r.begin).toBe(share);
            expect((r.end - r.begin) % grain).toBe(0);
          }
          expect(m[m.length - 1].end - m[m.length - 1].begin).toBeLessThanOrEqual(share);
          // a tensor that fits in minBytesPerTile stays on one tile
          if (size * DTYPE_BYTES[dtype] <= dev.minBytesPerTile) expect(m.length).toBe(1);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('setTileMapping', () => {
  it('rejects a mapping that misses or repeats elements or names a tile that does not exist', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [8], 'activation');
    expect(() => g.setTileMapping(t, [{ tile: 0, begin: 0, end: 7 }])).toThrow(/must cover its 8 elements once each \(it covers 7, with a gap or overlap at element 7\)/);
    // The right count with an overlap and a hole is still wrong.
    expect(() => g.setTileMapping(t, [{ tile: 0, begin: 0, end: 4 }, { tile: 1, begin: 2, end: 6 }])).toThrow(/once each \(it covers 8, with a gap or overlap at element 4\)/);
    expect(() => g.setTileMapping(t, [{ tile: 4, begin: 0, end: 8 }])).toThrow(/mapped to tile 4, but the device has tiles 0 to 3/);
  });

  it('sorts ranges by element and drops empty ones', () => {
    const g = new DeviceGraph(tiny());
    const t = g.addTensor('t', 'float32', [8], 'activation');
    g.setTileMapping(t, [
      { tile: 2, begin: 5, end: 8 },
      { tile: 1, begin: 5, end: 5 },
      { tile: 3, begin: 0, end: 5 },
    ]);
    expect(ranges(t)).toEqual([
      [3, 0, 5],
      [2, 5, 8],
    ]);
    expect(g.rangesOf(t, 3, 6)).toEqual<TileRange[]>([
      { tile: 3, begin: 3, end: 5 },
      { tile: 2, begin: 5, end: 6 },
    ]);
  });
});

describe('finalize: allocation', () => {
  function fourOnTile0(alignment: number) {
    const g = new DeviceGraph(tiny({ allocationAlignment: alignment }));
    const ts = [
      g.addTensor('h', 'float16', [3], 'activation'), // 6 bytes
      g.addTensor('f', 'float32', [2], 'activation'), // 8 bytes
      g.addTensor('u', 'uint8', [5], 'activation'), // 5 bytes
      g.addTensor('s', 'float32', [], 'activation'), // 4 bytes
    ];
    for (const t of ts) g.mapToTile(t, 0);
    return g.finalize(codelets(), []);
  }

  it('aligns every interval to allocationAlignment (8)', () => {
    const p = fourOnTile0(8);
    // h [0, 6); f at ceil(6/8) x 8 = 8 -> [8, 16); u [16, 21); s at 24 -> [24, 28)
    expect(p.tensors.map((t) => intervalList(t.intervals)[0].offset)).toEqual([0, 8, 16, 24]);
    expect(p.tileBytes).toEqual([28, 0, 0, 0]);
  });

  it('aligns every interval to allocationAlignment (16)', () => {
    const p = fourOnTile0(16);
    // h [0, 6); f at 16 -> [16, 24); u at 32 -> [32, 37); s at 48 -> [48, 52)
    expect(p.tensors.map((t) => intervalList(t.intervals)[0].offset)).toEqual([0, 16, 32, 48]);
    expect(p.tileBytes).toEqual([52, 0, 0, 0]);
  });

  it('allocates each tile separately, in tensor order', () => {
    const g = new DeviceGraph(tiny());
    const a = g.addTensor('a', 'float32', [6], 'variable');
    g.setTileMapping(a, [
      { tile: 1, begin: 0, end: 2 },
      { tile: 2, begin: 2, end: 6 },
    ]);
    const b = g.addTensor('b', 'float32', [3], 'variable');
    g.setTileMapping(b, [
      { tile: 2, begin: 0, end: 1 },
      { tile: 1, begin: 1, end: 3 },
    ]);
    const p = g.finalize(codelets(), []);
    expect(intervalList(p.tensors[0].intervals)).toEqual([
      { tile: 1, begin: 0, end: 2, offset: 0 },
      { tile: 2, begin: 2, end: 6, offset: 0 },
    ]);
    expect(intervalList(p.tensors[1].intervals)).toEqual([
      { tile: 2, begin: 0, end: 1, offset: 16 },
      { tile: 1, begin: 1, end: 3, offset: 8 },
    ]);
    expect(p.tileBytes).toEqual([0, 16, 20, 0]);
  });

  it("carries every tensor's intervals as views of one set of columns (allocation's table: no copy, no object per interval)", () => {
    const g = new DeviceGraph(tiny());
    const a = g.addTensor('a', 'float32', [6], 'variable');
    g.setTileMapping(a, [
      { tile: 1, begin: 0, end: 2 },
      { tile: 2, begin: 2, end: 6 },
    ]);
    g.mapToTile(g.addTensor('b', 'float32', [3], 'variable'), 3);
    const p = g.finalize(codelets(), []);
    const [ta, tb] = p.tensors.map((t) => t.intervals);
    expect([ta.count, tb.count]).toEqual([2, 1]);
    for (const col of ['tile', 'begin', 'end', 'offset'] as const) expect(ta[col].buffer).toBe(tb[col].buffer);
    expect([...tb.tile, ...tb.begin, ...tb.end]).toEqual([3, 0, 3]);
  });

  it('requires every tensor to be mapped', () => {
    const g = new DeviceGraph(tiny());
    g.addTensor('loose', 'float32', [2], 'activation');
    expect(() => g.finalize(codelets(), [])).toThrow(/'loose' has no tile mapping/);
  });
});

describe('finalize: out of memory', () => {
  function overflow() {
    const g = new DeviceGraph(tiny({ bytesPerTile: 1000 }));
    g.mapToTile(g.addTensor('w', 'float32', [200], 'variable', 'W'), 2); // 800 bytes at 0
    g.mapToTile(g.addTensor('small', 'uint8', [3], 'temporary'), 2); // 3 bytes at 800
    g.mapToTile(g.addTensor('b', 'float16', [3, 40], 'activation', 'B'), 2); // 240 bytes at 808 -> 1048
    g.mapToTile(g.addTensor('other', 'float32', [100], 'variable'), 1); // 400 bytes on tile 1: fits
    return g;
  }

  it('names the tile, the bytes used (alignment included) and the bytes per tile, as Poplar does', () => {
    let err: unknown;
    try {
      overflow().finalize(codelets(), []);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RunError);
    const msg = (err as RunError).message;
    expect((err as RunError).exitCode).toBe(1);
    expect(msg.split('\n')[0]).toMatch(/^Out of memory on tile 2: 1048 bytes used but tiles only have 1000 bytes of memory\b/);
    // the largest tensors on that tile, largest first, and nothing from other tiles
    const w = msg.indexOf('  w (variable, op W, float32[200]): 800 bytes');
    const b = msg.indexOf('  b (activation, op B, float16[3, 40]): 240 bytes');
    const s = msg.indexOf('  small (temporary, uint8[3]): 3 bytes');
    expect(msg).toContain('Largest tensors on tile 2:');
    expect(w).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(w);
    expect(s).toBeGreaterThan(b);
    expect(msg).not.toContain('other');
  });

  it('names the fullest tile when several overflow', () => {
    const dev = tiny({ bytesPerTile: 100 });
    const g = new DeviceGraph(dev);
    g.mapToTile(g.addTensor('x', 'float32', [30], 'variable'), 1); // 120
    g.mapToTile(g.addTensor('y', 'float32', [40], 'variable'), 3); // 160
    expect(() => allocate(g.tensors, dev, g.numTiles)).toThrow(/^Out of memory on tile 3: 160 bytes used but tiles only have 100 bytes of memory/);
  });

  it('accepts a tile filled exactly', () => {
    const dev = tiny({ bytesPerTile: 100 });
    const g = new DeviceGraph(dev);
    g.mapToTile(g.addTensor('x', 'float32', [25], 'variable'), 0);
    expect(allocate(g.tensors, dev, g.numTiles).tileBytes).toEqual([100, 0, 0, 0]);
  });
});

describe('finalize: vertex regions', () => {
  function twoTileX() {
    const g = new DeviceGraph(tiny());
    const pad = g.addTensor('pad', 'uint8', [3], 'temporary');
    g.mapToTile(pad, 1); // tile 1 [0, 3)
    const x = g.addTensor('x', 'float32', [8], 'activation');
    g.setTileMapping(x, [
      { tile: 0, begin: 0, end: 4 },
      { tile: 1, begin: 4, end: 8 }, // at offset 8 on tile 1
    ]);
    const y = g.addTensor('y', 'float32', [3], 'activation');
    g.mapToTile(y, 1); // at offset 24 on tile 1
    return { g, x, y };
  }

  it('resolves a slice to the region of its tile interval', () => {
    const { g, x, y } = twoTileX();
    const cs = g.addComputeSet('cs', 'op');
    const s = (begin: number, end: number) => ({ tensor: x.id, begin, end });
    g.addVertex(cs, 'Add', 1, { a: s(5, 8), b: s(4, 7), out: { tensor: y.id, begin: 0, end: 3 } }, { offset: 0 });
    g.addVertex(cs, 'Add', 0, { a: s(0, 2), b: s(2, 4), out: s(1, 3) }, { offset: 0 });
    const p = g.finalize(codelets(), []);
    // vertices sorted by tile
    expect(vertexList(p.computeSets[0].vertices).map((v) => v.tile)).toEqual([0, 1]);
    expect(vertexList(p.computeSets[0].vertices)[1].fields).toEqual({
      a: { offset: 8 + 1 * 4, count: 3, dtype: 'float32' },
      b: { offset: 8, count: 3, dtype: 'float32' },
      out: { offset: 24, count: 3, dtype: 'float32' },
    });
    expect(vertexList(p.computeSets[0].vertices)[0].fields.out).toEqual({ offset: 4, count: 2, dtype: 'float32' });
  });

  it('says which vertex reads data that is not on its tile, and where the data is', () => {
    const { g, x, y } = twoTileX();
    const cs = g.addComputeSet('add/cs', 'add');
    g.addVertex(cs, 'Add', 1, { a: { tensor: x.id, begin: 2, end: 6 }, b: { tensor: x.id, begin: 4, end: 8 }, out: { tensor: y.id, begin: 0, end: 3 } });
    expect(() => g.finalize(codelets(), [])).toThrow(
      "vertex Add of 'add/cs' field 'a' reads 'x' elements [2, 6) on tile 1, but they are not all there " +
        '(mapped: tile 0 [0, 4), tile 1 [4, 8)); bring them with onTile()',
    );
  });

  it('lists at most 8 of the intervals holding the elements a misplaced vertex reads, and counts the rest', () => {
    const g = new DeviceGraph(tiny());
    const x = g.addTensor('x', 'float32', [64], 'activation');
    g.setTileMapping(x, Array.from({ length: 16 }, (_, i) => ({ tile: i % 4, begin: 4 * i, end: 4 * i + 4 })));
    const y = g.addTensor('y', 'float32', [48], 'activation');
    g.mapToTile(y, 0);
    const cs = g.addComputeSet('copy/cs', 'copy');
    g.addVertex(cs, 'Add', 0, { a: { tensor: x.id, begin: 2, end: 50 }, b: { tensor: y.id, begin: 0, end: 48 }, out: { tensor: y.id, begin: 0, end: 48 } });
    const listed = Array.from({ length: 8 }, (_, i) => `tile ${i % 4} [${4 * i}, ${4 * i + 4})`).join(', ');
    expect(() => g.finalize(codelets(), [])).toThrow(
      `reads 'x' elements [2, 50) on tile 0, but they are not all there (mapped: ${listed}, and 5 more; 3 other intervals of the tensor hold other elements); bring them with onTile()`,
    );
  });

  it('rejects unknown and unconnected fields', () => {
    const { g, y } = twoTileX();
    const cs = g.addComputeSet('cs', 'op');
    const s = { tensor: y.id, begin: 0, end: 3 };
    g.addVertex(cs, 'Add', 1, { a: s, b: s, out: s, bogus: s });
    expect(() => g.finalize(codelets(), [])).toThrow(/the codelet has no field 'bogus'/);
    const g2 = twoTileX();
    const cs2 = g2.g.addComputeSet('cs', 'op');
    const s2 = { tensor: g2.y.id, begin: 0, end: 3 };
    g2.g.addVertex(cs2, 'Add', 1, { a: s2, out: s2 });
    expect(() => g2.g.finalize(codelets(), [])).toThrow(/field 'b' is not connected/);
  });
});

describe('finalize: exchange copies', () => {
  it('splits a copy of a slice spanning 3 tiles at every source and destination boundary', () => {
    const g = new DeviceGraph(tiny());
    g.mapToTile(g.addTensor('pad', 'uint8', [3], 'temporary'), 1); // tile 1 [0, 3)
    const src = g.addTensor('src', 'float32', [12], 'activation');
    g.setTileMapping(src, [
      { tile: 0, begin: 0, end: 4 }, // tile 0 offset 0
      { tile: 1, begin: 4, end: 8 }, // tile 1 offset 8
      { tile: 2, begin: 8, end: 12 }, // tile 2 offset 0
    ]);
    const dst = g.addTensor('dst', 'float32', [8], 'activation');
    g.setTileMapping(dst, [
      { tile: 3, begin: 0, end: 5 }, // tile 3 offset 0
      { tile: 1, begin: 5, end: 8 }, // tile 1 offset 8 + 16 = 24
    ]);
    const ex = g.addExchange('ex', 'op');
    g.addCopy(ex, { tensor: src.id, begin: 2, end: 10 }, { tensor: dst.id, begin: 0, end: 8 });
    const p = g.finalize(codelets(), []);
    // src element i goes to dst element i - 2
    expect(copyList(p.exchanges[0].copies)).toEqual([
      // src [2, 4) on tile 0 -> dst [0, 2) on tile 3
      { srcTile: 0, srcOffset: 2 * 4, dstTile: 3, dstOffset: 0, bytes: 8 },
      // src [4, 7) on tile 1 -> dst [2, 5) on tile 3
      { srcTile: 1, srcOffset: 8, dstTile: 3, dstOffset: 2 * 4, bytes: 12 },
      // src [7, 8) on tile 1 -> dst [5, 6) on tile 1 (an on-tile copy)
      { srcTile: 1, srcOffset: 8 + 3 * 4, dstTile: 1, dstOffset: 24, bytes: 4 },
      // src [8, 10) on tile 2 -> dst [6, 8) on tile 1
      { srcTile: 2, srcOffset: 0, dstTile: 1, dstOffset: 24 + 1 * 4, bytes: 8 },
    ]);
  });

  it('moves exactly the slice, whatever the mappings (property)', () => {
    const dtypes: DeviceDType[] = ['float32', 'float16', 'int32', 'uint8'];
    const mapping = (size: number, cuts: number[], tiles: number[]): TileRange[] => {
      const points = size > 1 ? [...new Set(cuts.map((c) => 1 + (c % (size - 1))))].sort((a, b) => a - b) : [];
      const bounds = [0, ...points, size];
      return bounds.slice(0, -1).map((b, i) => ({ tile: tiles[i % tiles.length], begin: b, end: bounds[i + 1] }));
    };
    const tileList = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 6 });
    const cutList = fc.array(fc.nat(1000), { maxLength: 5 });
    fc.assert(
      fc.property(
        fc.constantFrom(...dtypes),
        fc.record({ len: fc.integer({ min: 1, max: 20 }), sBegin: fc.nat(6), dBegin: fc.nat(6), sExtra: fc.nat(6), dExtra: fc.nat(6) }),
        cutList,
        tileList,
        cutList,
        tileList,
        (dtype, { len, sBegin, dBegin, sExtra, dExtra }, sCuts, sTiles, dCuts, dTiles) => {
          const g = new DeviceGraph(tiny());
          const src = g.addTensor('src', dtype, [sBegin + len + sExtra], 'activation');
          g.setTileMapping(src, mapping(src.size, sCuts, sTiles));
          const dst = g.addTensor('dst', dtype, [dBegin + len + dExtra], 'activation');
          g.setTileMapping(dst, mapping(dst.size, dCuts, dTiles));
          const ex = g.addExchange('ex', 'op');
          g.addCopy(ex, { tensor: src.id, begin: sBegin, end: sBegin + len }, { tensor: dst.id, begin: dBegin, end: dBegin + len });
          const p = g.finalize(codelets(), []);
          const copies = copyList(p.exchanges[0].copies);
          const size = DTYPE_BYTES[dtype];
          expect(copies.reduce((s, c) => s + c.bytes, 0)).toBe(len * size);
          for (const c of copies) expect(c.bytes).toBeGreaterThan(0);

          // Fill src with 1, 2, 3, ..., run the copies on real tile memory, gather dst.
          const mem = new TileMemory(p.tileBytes);
          for (const iv of intervalList(p.tensors[0].intervals)) {
            const v = mem.view(iv.tile, { offset: iv.offset, count: iv.end - iv.begin, dtype });
            for (let i = iv.begin; i < iv.end; i++) v[i - iv.begin] = i + 1;
          }
          for (const c of copies) mem.copy(c.srcTile, c.srcOffset, c.dstTile, c.dstOffset, c.bytes);
          const out = new Array<number>(dst.size).fill(-1);
          for (const iv of intervalList(p.tensors[1].intervals)) {
            const v = mem.view(iv.tile, { offset: iv.offset, count: iv.end - iv.begin, dtype });
            for (let i = iv.begin; i < iv.end; i++) out[i] = v[i - iv.begin];
          }
          const expected = Array.from({ length: dst.size }, (_, i) => (i >= dBegin && i < dBegin + len ? i - dBegin + sBegin + 1 : 0));
          expect(out).toEqual(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('LowerContext.onTile', () => {
  function setup() {
    const g = new DeviceGraph(tiny());
    const x = g.addTensor('x', 'float32', [16], 'activation');
    g.setTileMapping(x, [
      { tile: 0, begin: 0, end: 8 },
      { tile: 1, begin: 8, end: 16 },
    ]);
    return { g, x, ctx: context(g, 'op') };
  }

  it('returns the slice itself when all of it is on the tile: no tensor, no exchange', () => {
    const { g, x, ctx } = setup();
    ctx.computeSet('cs');
    expect(ctx.onTile(x, 2, 6, 0)).toEqual({ tensor: x.id, begin: 2, end: 6 });
    expect(ctx.onTile(x, 8, 16, 1)).toEqual({ tensor: x.id, begin: 8, end: 16 });
    expect(g.tensors).toHaveLength(1);
    expect(g.exchanges).toHaveLength(0);
    expect(ctx.finish()).toEqual([{ kind: 'execute', computeSet: 0 }]);
  });

  it('otherwise adds one tile-local copy and one exchange copy, reused on the next request', () => {
    const { g, x, ctx } = setup();
    ctx.computeSet('cs');
    const s = ctx.onTile(x, 6, 10, 1); // spans tiles 0 and 1
    expect(g.tensors).toHaveLength(2);
    // The compute set's buffer of x's copies on tile 1: one tensor, each copy a run of it.
    const buf = g.tensors[1];
    expect(buf.name).toBe('x@exchange');
    expect(buf.category).toBe('exchange');
    expect(buf.op).toBe('op');
    expect(s).toEqual({ tensor: buf.id, begin: 0, end: 4 });
    expect(g.exchanges).toHaveLength(1);
    expect(g.exchanges[0].name).toBe('op/cs/exchange');
    expect(g.exchanges[0].copies.list()).toEqual([{ src: { tensor: x.id, begin: 6, end: 10 }, dst: { tensor: buf.id, begin: 0, end: 4 } }]);

    // the same request again: the same slice, nothing new
    expect(ctx.onTile(x, 6, 10, 1)).toEqual(s);
    expect(g.tensors).toHaveLength(2);
    expect(g.exchanges[0].copies).toHaveLength(1);

    // data wholly on another tile: a second copy in the same exchange, the next run of the same buffer
    const t = ctx.onTile(x, 2, 6, 1);
    expect(t).toEqual({ tensor: buf.id, begin: 4, end: 8 });
    expect(g.tensors).toHaveLength(2);
    expect(g.exchanges).toHaveLength(1);
    expect(g.exchanges[0].copies).toHaveLength(2);

    // the exchange runs before its compute set
    expect(ctx.finish()).toEqual([
      { kind: 'exchange', exchange: 0 },
      { kind: 'execute', computeSet: 0 },
    ]);
    // closing the compute set sizes the buffer and maps it to its tile
    expect(buf.shape).toEqual([8]);
    expect(ranges(buf)).toEqual([[1, 0, 8]]);
  });

  it('needs an open compute set to make a copy', () => {
    const { x, ctx } = setup();
    expect(() => ctx.onTile(x, 6, 10, 1)).toThrow(/asks for data before opening a compute set/);
    expect(ctx.onTile(x, 0, 8, 0)).toEqual({ tensor: x.id, begin: 0, end: 8 }); // no copy needed: fine
  });

  it('refuses a codelet given by name, naming the op', () => {
    const { x, ctx } = setup();
    ctx.computeSet('add');
    const byName = () => ctx.vertex('Add' as never, 0, { a: ctx.slice(x, 0, 4), b: ctx.slice(x, 0, 4), out: ctx.slice(x, 4, 8) });
    expect(byName).toThrow(UserError);
    expect(byName).toThrow(/names codelet "Add": give ctx.vertex the codelet object/);
  });

  it('brings the right data: a lowered Add over a cross-tile operand runs correctly', async () => {
    const { g, x, ctx } = setup();
    const y = ctx.addTensor('y', 'float32', [4], 'variable');
    g.mapToTile(y, 1);
    const z = ctx.addTensor('z', 'float32', [4], 'activation');
    g.mapToTile(z, 1);
    ctx.computeSet('add');
    ctx.vertex(addCodelet, 1, { a: ctx.onTile(x, 6, 10, 1), b: ctx.onTile(y, 0, 4, 1), out: ctx.slice(z) }, { offset: 0 });
    g.program('step').push(...ctx.finish());
    const p = g.finalize(codelets(), []);

    // x[6:8] comes from tile 0 (8 bytes sent, 2 cycles), x[8:10] is an on-tile copy (free)
    expect(copyList(p.exchanges[0].copies).map((c) => [c.srcTile, c.dstTile, c.bytes])).toEqual([
      [0, 1, 8],
      [1, 1, 8],
    ]);
    const engine = await Engine.create(p, { workers: 1, numerics: true });
    engine.write(engine.tensorByName('x'), Float32Array.from({ length: 16 }, (_, i) => i));
    engine.write(engine.tensorByName('op/y'), new Float32Array([10, 20, 30, 40]));
    const io: HostIO = {
      toDevice: () => {
        throw new Error('no streams');
      },
      fromDevice: () => {},
    };
    await engine.run('step', io, 0);
    expect([...engine.read(engine.tensorByName('op/z'))]).toEqual([6 + 10, 7 + 20, 8 + 30, 9 + 40]);
    expect(engine.phases.map((ph) => [ph.kind, ph.cycles])).toEqual([
      ['sync', 500],
      ['exchange', 2], // ceil(8 / 4)
      ['compute', 214], // Add, N = 4: 6 x (29 + 3) + 11 + 11 supervisor
    ]);
    await engine.destroy();
  });
});
