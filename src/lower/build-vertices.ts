/**
 * The vertices of a compute set while the graph is built, as columns: per
 * vertex its codelet, tile and whether it was checked; per field its name and
 * slices; per slice its tensor and element range; its scalar parameters. An
 * op's lowering hands ctx.vertex() objects (fields of Slices, a params
 * record), which are copied in here and die young: a model's hundreds of
 * thousands of vertices kept as objects were most of the objects every full
 * collection walked while the later ops lowered. finalize resolves the slices
 * into sim/vertex-table.ts's regions.
 */
import { doubled, roomy } from '../../sim/copies.js';
import type { Names } from '../../sim/vertex-table.js';
import type { Slice } from './devicegraph.js';

export class BuildVertices {
  count = 0;
  private nf = 0;
  private ns = 0;
  private np = 0;
  codelet = new Int32Array(16);
  tile = new Int32Array(16);
  checked = new Uint8Array(16);
  fieldStart = new Int32Array(17);
  paramStart = new Int32Array(17);
  fieldName = new Int32Array(16);
  fieldList = new Uint8Array(16);
  sliceStart = new Int32Array(17);
  sliceTensor = new Int32Array(16);
  sliceBegin = new Int32Array(16);
  sliceEnd = new Int32Array(16);
  paramName = new Int32Array(16);
  paramValue = new Float64Array(16);
  /** Vector parameters of the vertices that have them. */
  readonly arrays = new Map<number, Record<string, number[]>>();

  constructor(readonly names: Names) {}

  push(codelet: string, tile: number, fields: Record<string, Slice | Slice[]>, params: Record<string, number>, arrays: Record<string, number[]> | undefined, checked: boolean): void {
    const i = this.begin(this.names.id(codelet), tile, checked);
    for (const name in fields) {
      const f = fields[name];
      if (Array.isArray(f)) {
        this.field(this.names.id(name), true);
        for (let k = 0; k < f.length; k++) this.slice(f[k].tensor, f[k].begin, f[k].end);
      } else {
        this.field(this.names.id(name), false);
        this.slice(f.tensor, f.begin, f.end);
      }
    }
    for (const k in params) this.param(this.names.id(k), params[k]);
    if (arrays) this.arrays.set(i, arrays);
  }

  /** Vertex `i` of `from` (another compute set's) appended, its tiles moved by `tileShift` and its tensors renumbered. */
  pushClone(from: BuildVertices, i: number, tileShift: number, tensor: (id: number) => number): void {
    const j = this.begin(from.codelet[i], from.tile[i] + tileShift, from.checked[i] === 1);
    for (let f = from.fieldStart[i]; f < from.fieldStart[i + 1]; f++) {
      this.field(from.fieldName[f], from.fieldList[f] === 1);
      for (let s = from.sliceStart[f]; s < from.sliceStart[f + 1]; s++) this.slice(tensor(from.sliceTensor[s]), from.sliceBegin[s], from.sliceEnd[s]);
    }
    for (let p = from.paramStart[i]; p < from.paramStart[i + 1]; p++) this.param(from.paramName[p], from.paramValue[p]);
    // Never written after the vertex is added: shared.
    const a = from.arrays.get(i);
    if (a) this.arrays.set(j, a);
  }

  /**
   * Slices in the vertices from index `from` on of each tensor of `bases`, moved on by its base[tile]
   * elements, the vertex's tile (exchange buffers' tile blocks placed, src/lower/context.ts): one pass
   * for all of them (a pass per buffer was quadratic in a compute set that gathers from a thousand partials).
   */
  shiftSlices(from: number, bases: ReadonlyMap<number, Int32Array>): void {
    if (bases.size === 0) return;
    for (let i = from; i < this.count; i++) {
      const tile = this.tile[i];
      for (let s = this.sliceStart[this.fieldStart[i]]; s < this.sliceStart[this.fieldStart[i + 1]]; s++) {
        const base = bases.get(this.sliceTensor[s]);
        if (base === undefined) continue;
        // 0 for a tile without a block of that buffer; undefined for one off the device (finalize names it).
        const by = base[tile];
        if (!by) continue;
        this.sliceBegin[s] += by;
        this.sliceEnd[s] += by;
      }
    }
  }

  /**
   * Columns cut to what they hold, and a little room (a compute set is closed, or rarely added to): their
   * capacity doubles as vertices come, and a BERT layer's closed compute sets held a third of it unused.
   */
  trim(): void {
    // Each group of columns grown together is cut together, to the sizes its growth test expects.
    const v = this.count + 16;
    if (roomy(this.codelet, v)) {
      this.codelet = this.codelet.slice(0, v);
      this.tile = this.tile.slice(0, v);
      this.checked = this.checked.slice(0, v);
      this.fieldStart = this.fieldStart.slice(0, v + 1);
      this.paramStart = this.paramStart.slice(0, v + 1);
    }
    const f = this.nf + 16;
    if (roomy(this.fieldName, f)) {
      this.fieldName = this.fieldName.slice(0, f);
      this.fieldList = this.fieldList.slice(0, f);
      this.sliceStart = this.sliceStart.slice(0, f + 1);
    }
    const sl = this.ns + 16;
    if (roomy(this.sliceTensor, sl)) {
      this.sliceTensor = this.sliceTensor.slice(0, sl);
      this.sliceBegin = this.sliceBegin.slice(0, sl);
      this.sliceEnd = this.sliceEnd.slice(0, sl);
    }
    const pr = this.np + 16;
    if (roomy(this.paramName, pr)) {
      this.paramName = this.paramName.slice(0, pr);
      this.paramValue = this.paramValue.slice(0, pr);
    }
  }

  codeletName(i: number): string {
    return this.names.list[this.codelet[i]];
  }

  /** Vertex `i`'s fields as objects (error messages and rare paths; not per vertex of a model). */
  fields(i: number): Record<string, Slice | Slice[]> {
    const out: Record<string, Slice | Slice[]> = {};
    for (let f = this.fieldStart[i]; f < this.fieldStart[i + 1]; f++) {
      const list: Slice[] = [];
      for (let s = this.sliceStart[f]; s < this.sliceStart[f + 1]; s++) list.push({ tensor: this.sliceTensor[s], begin: this.sliceBegin[s], end: this.sliceEnd[s] });
      out[this.names.list[this.fieldName[f]]] = this.fieldList[f] ? list : list[0];
    }
    return out;
  }

  /** Vertex `i`'s scalar parameters as a record. */
  params(i: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (let p = this.paramStart[i]; p < this.paramStart[i + 1]; p++) out[this.names.list[this.paramName[p]]] = this.paramValue[p];
    return out;
  }

  private begin(codelet: number, tile: number, checked: boolean): number {
    if (this.count === this.codelet.length) {
      this.codelet = doubled(this.codelet);
      this.tile = doubled(this.tile);
      this.checked = doubled(this.checked);
      this.fieldStart = doubled(this.fieldStart);
      this.paramStart = doubled(this.paramStart);
    }
    const i = this.count++;
    this.codelet[i] = codelet;
    this.tile[i] = tile;
    this.checked[i] = checked ? 1 : 0;
    this.fieldStart[i + 1] = this.nf;
    this.paramStart[i + 1] = this.np;
    return i;
  }

  private field(name: number, list: boolean): void {
    if (this.nf + 1 >= this.fieldName.length) {
      this.fieldName = doubled(this.fieldName);
      this.fieldList = doubled(this.fieldList);
      this.sliceStart = doubled(this.sliceStart);
    }
    this.fieldName[this.nf] = name;
    this.fieldList[this.nf] = list ? 1 : 0;
    this.nf++;
    this.fieldStart[this.count] = this.nf;
    this.sliceStart[this.nf] = this.ns;
  }

  private slice(tensor: number, begin: number, end: number): void {
    if (this.ns === this.sliceTensor.length) {
      this.sliceTensor = doubled(this.sliceTensor);
      this.sliceBegin = doubled(this.sliceBegin);
      this.sliceEnd = doubled(this.sliceEnd);
    }
    this.sliceTensor[this.ns] = tensor;
    this.sliceBegin[this.ns] = begin;
    this.sliceEnd[this.ns] = end;
    this.ns++;
    this.sliceStart[this.nf] = this.ns;
  }

  private param(name: number, value: number): void {
    if (typeof value !== 'number') throw new Error(`internal: vertex parameter '${this.names.list[name]}' is ${String(value)}, not a number`);
    if (this.np === this.paramName.length) {
      this.paramName = doubled(this.paramName);
      this.paramValue = doubled(this.paramValue);
    }
    this.paramName[this.np] = name;
    this.paramValue[this.np] = value;
    this.np++;
    this.paramStart[this.count] = this.np;
  }
}
