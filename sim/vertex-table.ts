/**
 * A compute set's vertices as columns (issue 8's columnar device program):
 * no JS object per vertex, field or region. A model's program holds hundreds
 * of thousands to millions of vertices; as objects (a vertex, its fields
 * record, a Region per field, its params) they were half of a compiled
 * ResNet-50's heap, and every full collection walked them all.
 *
 * Plain data (typed arrays, a list of names, a record of the rare vector
 * parameters), so it is structured-cloned to the workers (its columns moved
 * into shared memory first, sim/shared-columns.ts: each worker maps them) and written as JSON
 * lists by sim/copies.ts's programJsonReplacer. vertexAt() gives one vertex
 * as the object codelets' cycles() and compute() see; it is made on demand
 * and is garbage soon after.
 */
import { doubled } from './copies.js';
import { rowEndingAfter } from './intervals.js';
import type { DeviceDType, FieldValue, Region, Vertex } from './program.js';

/** Dtype codes of regionDtype. */
export const REGION_DTYPES: readonly DeviceDType[] = ['float32', 'float16', 'int32', 'uint8'];
const DTYPE_CODE: Record<DeviceDType, number> = { float32: 0, float16: 1, int32: 2, uint8: 3 };

export interface VertexTable {
  count: number;
  /** The codelet, field and parameter names the columns index. */
  names: string[];
  /** Per vertex: its codelet (index into names) and tile. Sorted by tile in a program. */
  codelet: Int32Array;
  tile: Int32Array;
  /** Per vertex, count + 1 entries: its fields are [fieldStart[v], fieldStart[v + 1]). */
  fieldStart: Int32Array;
  /** Per field: its name (index into names), whether it is a list of regions (1) or one region (0). */
  fieldName: Int32Array;
  fieldList: Uint8Array;
  /** Per field, fields + 1 entries: its regions are [regionStart[f], regionStart[f + 1]). */
  regionStart: Int32Array;
  /** Per region: byte offset in the tile's memory, element count, dtype (index into REGION_DTYPES). */
  regionOffset: Int32Array;
  regionCount: Int32Array;
  regionDtype: Uint8Array;
  /** Per vertex, count + 1 entries: its scalar parameters are [paramStart[v], paramStart[v + 1]). */
  paramStart: Int32Array;
  paramName: Int32Array;
  paramValue: Float64Array;
  /** Vector parameters of the few vertices that have them, by vertex index. */
  arrays: Record<number, Record<string, number[]>>;
}

/** The codelet name of vertex `i`. */
export function vertexCodelet(t: VertexTable, i: number): string {
  return t.names[t.codelet[i]];
}

/** The codelets the table's vertices use, each once. */
export function tableCodelets(t: VertexTable): string[] {
  const used = new Uint8Array(t.names.length);
  for (let i = 0; i < t.count; i++) used[t.codelet[i]] = 1;
  return t.names.filter((_, k) => used[k] === 1);
}

/** Region `r` of the table as the object a codelet sees. */
export function regionAt(t: VertexTable, r: number): Region {
  return { offset: t.regionOffset[r], count: t.regionCount[r], dtype: REGION_DTYPES[t.regionDtype[r]] };
}

/** Vertex `i` as an object (fields, params, arrays), made on demand. */
export function vertexAt(t: VertexTable, i: number): Vertex {
  const fields: Record<string, FieldValue> = {};
  for (let f = t.fieldStart[i]; f < t.fieldStart[i + 1]; f++) {
    const r0 = t.regionStart[f];
    const r1 = t.regionStart[f + 1];
    if (t.fieldList[f]) {
      const list: Region[] = [];
      for (let r = r0; r < r1; r++) list.push(regionAt(t, r));
      fields[t.names[t.fieldName[f]]] = list;
    } else fields[t.names[t.fieldName[f]]] = regionAt(t, r0);
  }
  const params: Record<string, number> = {};
  for (let p = t.paramStart[i]; p < t.paramStart[i + 1]; p++) params[t.names[t.paramName[p]]] = t.paramValue[p];
  const arrays = t.arrays[i];
  const v: Vertex = { codelet: vertexCodelet(t, i), tile: t.tile[i], fields, params };
  if (arrays) v.arrays = arrays;
  return v;
}

/** Regions of vertex `i` in all its fields (vertex state is counted per region). */
export function vertexRegions(t: VertexTable, i: number): number {
  return t.regionStart[t.fieldStart[i + 1]] - t.regionStart[t.fieldStart[i]];
}

/** Elements vertex `i` touches in all its fields (as sim/codelet.ts's vertexElements). */
export function vertexElementsAt(t: VertexTable, i: number): number {
  let n = 0;
  for (let r = t.regionStart[t.fieldStart[i]]; r < t.regionStart[t.fieldStart[i + 1]]; r++) n += t.regionCount[r];
  return n;
}

/** Index range [lo, hi) of the vertices on tiles [tileLo, tileHi) of a table sorted by tile. */
export function vertexRange(t: VertexTable, tileLo: number, tileHi: number): [number, number] {
  // The first vertex on a tile >= `tile` is the first whose tile is above tile - 1 (tiles are integers).
  return [rowEndingAfter(t.tile, 0, t.count, tileLo - 1), rowEndingAfter(t.tile, 0, t.count, tileHi - 1)];
}

/** Names (codelets, fields, params) as numbers: a table's, or a graph's while it is built (src/lower/build-vertices.ts). */
export class Names {
  readonly list: string[] = [];
  private readonly ids = new Map<string, number>();

  id(s: string): number {
    let id = this.ids.get(s);
    if (id === undefined) {
      id = this.list.length;
      this.list.push(s);
      this.ids.set(s, id);
    }
    return id;
  }
}

/** How many vertices, fields, regions and scalar params a builder makes room for (it grows past them). */
export interface VertexTableSize {
  vertices: number;
  fields: number;
  regions: number;
  params: number;
}

/**
 * Builds a table vertex by vertex: begin(), then its fields' regions and its
 * params, in any order of fields; finish() trims the columns. Given the sizes
 * (finalize knows them), it allocates each column once, at its final length.
 */
export class VertexTableBuilder {
  private n = 0;
  private nf = 0;
  private nr = 0;
  private np = 0;
  private readonly names = new Names();
  private codelet: Int32Array;
  private tile: Int32Array;
  private fieldStart: Int32Array;
  private paramStart: Int32Array;
  private fieldName: Int32Array;
  private fieldList: Uint8Array;
  private regionStart: Int32Array;
  private regionOffset: Int32Array;
  private regionCount: Int32Array;
  private regionDtype: Uint8Array;
  private paramName: Int32Array;
  private paramValue: Float64Array;
  private readonly arrays: Record<number, Record<string, number[]>> = {};

  constructor(size: VertexTableSize = { vertices: 64, fields: 64, regions: 64, params: 16 }) {
    // At least one of each: a column of length 0 would never grow.
    const v = Math.max(1, size.vertices);
    const f = Math.max(1, size.fields);
    const r = Math.max(1, size.regions);
    const p = Math.max(1, size.params);
    this.codelet = new Int32Array(v);
    this.tile = new Int32Array(v);
    this.fieldStart = new Int32Array(v + 1);
    this.paramStart = new Int32Array(v + 1);
    this.fieldName = new Int32Array(f);
    this.fieldList = new Uint8Array(f);
    this.regionStart = new Int32Array(f + 1);
    this.regionOffset = new Int32Array(r);
    this.regionCount = new Int32Array(r);
    this.regionDtype = new Uint8Array(r);
    this.paramName = new Int32Array(p);
    this.paramValue = new Float64Array(p);
  }

  /** The index of a name in the table's names. */
  name(s: string): number {
    return this.names.id(s);
  }

  /** Start vertex number `count` (the vertices so far). */
  begin(codelet: string, tile: number): void {
    if (this.n === this.codelet.length) {
      this.codelet = doubled(this.codelet);
      this.tile = doubled(this.tile);
    }
    if (this.n + 1 >= this.fieldStart.length) {
      this.fieldStart = doubled(this.fieldStart);
      this.paramStart = doubled(this.paramStart);
    }
    this.codelet[this.n] = this.name(codelet);
    this.tile[this.n] = tile;
    this.n++;
    this.fieldStart[this.n] = this.nf;
    this.paramStart[this.n] = this.np;
  }

  /** Start a field of the current vertex: one region (list false) or a list of them. */
  field(name: number, list: boolean): void {
    if (this.nf === this.fieldName.length) {
      this.fieldName = doubled(this.fieldName);
      this.fieldList = doubled(this.fieldList);
    }
    if (this.nf + 1 >= this.regionStart.length) this.regionStart = doubled(this.regionStart);
    this.fieldName[this.nf] = name;
    this.fieldList[this.nf] = list ? 1 : 0;
    this.nf++;
    this.fieldStart[this.n] = this.nf;
    this.regionStart[this.nf] = this.nr;
  }

  /** A region of the current field. */
  region(offset: number, count: number, dtype: DeviceDType): void {
    if (this.nr === this.regionOffset.length) {
      this.regionOffset = doubled(this.regionOffset);
      this.regionCount = doubled(this.regionCount);
      this.regionDtype = doubled(this.regionDtype);
    }
    this.regionOffset[this.nr] = offset;
    this.regionCount[this.nr] = count;
    this.regionDtype[this.nr] = DTYPE_CODE[dtype];
    this.nr++;
    this.regionStart[this.nf] = this.nr;
  }

  /** The current vertex's scalar and vector parameters. */
  params(params: Record<string, number>, arrays?: Record<string, number[]>): void {
    for (const k in params) this.param(this.name(k), params[k]);
    if (arrays) this.vectors(arrays);
  }

  /** A scalar parameter of the current vertex (`name` from name()). */
  param(name: number, value: number): void {
    if (this.np === this.paramName.length) {
      this.paramName = doubled(this.paramName);
      this.paramValue = doubled(this.paramValue);
    }
    this.paramName[this.np] = name;
    this.paramValue[this.np] = value;
    this.np++;
    this.paramStart[this.n] = this.np;
  }

  /** The current vertex's vector parameters. */
  vectors(arrays: Record<string, number[]>): void {
    this.arrays[this.n - 1] = arrays;
  }

  /** A whole vertex given as an object. */
  push(v: Vertex): void {
    this.begin(v.codelet, v.tile);
    for (const name in v.fields) {
      const f = v.fields[name];
      this.field(this.name(name), Array.isArray(f));
      if (Array.isArray(f)) for (const r of f) this.region(r.offset, r.count, r.dtype);
      else this.region(f.offset, f.count, f.dtype);
    }
    this.params(v.params, v.arrays);
  }

  get count(): number {
    return this.n;
  }

  finish(): VertexTable {
    const n = this.n;
    // A column already at its length (the sizes given were exact) is the table's as it is.
    const trim = <T extends Int32Array | Uint8Array | Float64Array>(a: T, length: number): T => (a.length === length ? a : (a.slice(0, length) as T));
    return {
      count: n,
      names: this.names.list,
      codelet: trim(this.codelet, n),
      tile: trim(this.tile, n),
      fieldStart: trim(this.fieldStart, n + 1),
      fieldName: trim(this.fieldName, this.nf),
      fieldList: trim(this.fieldList, this.nf),
      regionStart: trim(this.regionStart, this.nf + 1),
      regionOffset: trim(this.regionOffset, this.nr),
      regionCount: trim(this.regionCount, this.nr),
      regionDtype: trim(this.regionDtype, this.nr),
      paramStart: trim(this.paramStart, n + 1),
      paramName: trim(this.paramName, this.np),
      paramValue: trim(this.paramValue, this.np),
      arrays: this.arrays,
    };
  }
}

/** A table of the given vertices, in their order (hand-made programs, tests, collectives' steps). */
export function vertexTable(vertices: readonly Vertex[]): VertexTable {
  const b = new VertexTableBuilder();
  for (const v of vertices) b.push(v);
  return b.finish();
}

/** Every vertex as an object, in order (tests and small tools; not for whole models). */
export function vertexList(t: VertexTable): Vertex[] {
  const out: Vertex[] = [];
  for (let i = 0; i < t.count; i++) out.push(vertexAt(t, i));
  return out;
}
