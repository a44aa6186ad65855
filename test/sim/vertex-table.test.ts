/**
 * The columnar vertex table (sim/vertex-table.ts) holds exactly the vertices
 * given to it: a property over random vertices (one-region and list fields,
 * empty lists, scalar and vector parameters, every dtype), and the
 * per-vertex queries the engine and reports use agree with the objects.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { vertexElements } from '../../sim/codelet.js';
import type { DeviceDType, FieldValue, Region, Vertex } from '../../sim/program.js';
import { tableCodelets, VertexTableBuilder, vertexAt, vertexCodelet, vertexElementsAt, vertexList, vertexRange, vertexRegions, vertexTable } from '../../sim/vertex-table.js';

const dtype = fc.constantFrom<DeviceDType>('float32', 'float16', 'int32', 'uint8');
const region: fc.Arbitrary<Region> = fc.record({ offset: fc.nat(1 << 20), count: fc.nat(4096), dtype });
const field: fc.Arbitrary<FieldValue> = fc.oneof(region, fc.array(region, { maxLength: 4 }));
const name = fc.constantFrom('in', 'out', 'a', 'b', 'partials', 'weights');
const vertex: fc.Arbitrary<Vertex> = fc
  .record({
    codelet: fc.constantFrom('Add', 'AmpMatMul', 'custom.ops::LeakyRelu'),
    tile: fc.nat(1471),
    fields: fc.dictionary(name, field, { maxKeys: 4 }),
    params: fc.dictionary(fc.constantFrom('alpha', 'n', 'offset'), fc.double({ noNaN: true }), { maxKeys: 3 }),
    arrays: fc.option(fc.dictionary(fc.constantFrom('shape', 'strides'), fc.array(fc.integer(), { maxLength: 5 }), { minKeys: 1, maxKeys: 2 }), { nil: undefined }),
  })
  .map((v) => {
    if (v.arrays === undefined) delete (v as Partial<Vertex>).arrays;
    return v as Vertex;
  });

describe('VertexTable', () => {
  it('gives back every vertex it was built from, field by field, in order', () => {
    fc.assert(
      fc.property(fc.array(vertex, { maxLength: 30 }), (vs) => {
        const t = vertexTable(vs);
        expect(t.count).toBe(vs.length);
        expect(vertexList(t)).toEqual(vs);
        vs.forEach((v, i) => {
          expect(vertexCodelet(t, i)).toBe(v.codelet);
          expect(t.tile[i]).toBe(v.tile);
          expect(vertexElementsAt(t, i)).toBe(vertexElements(v));
          expect(vertexRegions(t, i)).toBe(Object.values(v.fields).reduce((n, f) => n + (Array.isArray(f) ? f.length : 1), 0));
        });
        expect(new Set(tableCodelets(t))).toEqual(new Set(vs.map((v) => v.codelet)));
      }),
    );
  });

  it('gives the same table whatever sizes its builder starts from: exact (as finalize gives), none, or any', () => {
    fc.assert(
      fc.property(fc.array(vertex, { maxLength: 30 }), fc.record({ vertices: fc.nat(40), fields: fc.nat(80), regions: fc.nat(120), params: fc.nat(60) }), (vs, size) => {
        const exact = vertexTable(vs);
        const sizes = [size, { vertices: 0, fields: 0, regions: 0, params: 0 }, { vertices: exact.count, fields: exact.fieldName.length, regions: exact.regionOffset.length, params: exact.paramName.length }];
        for (const s of sizes) {
          const b = new VertexTableBuilder(s);
          for (const v of vs) b.push(v);
          expect(b.finish()).toEqual(exact);
        }
      }),
    );
  });

  it('survives a structured clone (the workers get it in workerData) as plain data', () => {
    const vs: Vertex[] = [
      { codelet: 'Add', tile: 3, fields: { a: { offset: 0, count: 4, dtype: 'float32' }, out: [{ offset: 16, count: 2, dtype: 'float16' }] }, params: { offset: 1 } },
      { codelet: 'Gather', tile: 5, fields: {}, params: {}, arrays: { shape: [2, 3] } },
    ];
    const copy = structuredClone(vertexTable(vs));
    expect(vertexAt(copy, 0)).toEqual(vs[0]);
    expect(vertexAt(copy, 1)).toEqual(vs[1]);
  });

  it('finds the vertices of a tile range in a table sorted by tile', () => {
    fc.assert(
      fc.property(fc.array(vertex, { maxLength: 40 }), fc.nat(1472), fc.nat(1472), (vs, x, y) => {
        const sorted = [...vs].sort((a, b) => a.tile - b.tile);
        const t = vertexTable(sorted);
        const [lo, hi] = [Math.min(x, y), Math.max(x, y)];
        const [a, b] = vertexRange(t, lo, hi);
        const inside = sorted.map((v, i) => (v.tile >= lo && v.tile < hi ? i : -1)).filter((i) => i >= 0);
        expect(b - a).toBe(inside.length);
        if (inside.length) expect([a, b - 1]).toEqual([inside[0], inside[inside.length - 1]]);
      }),
    );
  });
});
