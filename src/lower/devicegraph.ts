/**
 * DeviceGraph: the Poplar-like graph that op lowerings build: tensors with
 * tile mappings, compute sets of vertices, exchanges and host streams, and
 * the control programs. finalize() allocates tile memory and resolves every
 * tensor slice to a region of one tile's memory, giving a DeviceProgram.
 */
import type { DeviceSpec } from '../../sim/device.js';
import { mustConnect, type Codelet, type CodeletRegistry } from '../../sim/codelet.js';
import {
  DTYPE_BYTES,
  type ComputeSet,
  type DeviceDType,
  type DeviceProgram,
  type DeviceTensor,
  type ProgramStep,
  type TensorCategory,
} from '../../sim/program.js';
import { vectorWidth } from '../../sim/codelets/estimators.js';
import { computeSetCost } from '../../sim/cost.js';
import { allocate } from './memory.js';
import { layoutTile, linearLayout } from './linear.js';
import { SliceCopies } from './slice-copies.js';
import { resolveAllCopies } from './resolve-copies.js';
import { TileMapping, TileMappingBuilder } from './tile-mapping.js';
import { firstRowEndingAfter, intervalList, tensorIntervalRows } from '../../sim/intervals.js';
import { UserError } from '../errors.js';
import { checkHostHeap, hostHeapCheckDue } from '../util/host-heap.js';
import { fieldDtypeError } from './vertex-check.js';
import { Names, VertexTableBuilder } from '../../sim/vertex-table.js';
import { BuildVertices } from './build-vertices.js';

/**
 * A vertex added by codelet name (DeviceGraph.addVertex, as tests do), checked as ctx.vertex checks one
 * placed with a codelet object: its fields' names, their dtypes, and every required field connected.
 */
function checkByName(cs: BuildComputeSet, codelet: Codelet, fields: Record<string, Slice | Slice[]>, tensors: readonly DeviceTensor[], required: number): void {
  let connected = 0;
  for (const name in fields) {
    const spec = codelet.fields[name];
    if (!spec) throw loweringError(cs.op, `vertex ${codelet.name} of '${cs.name}': the codelet has no field '${name}' (it has ${Object.keys(codelet.fields).join(', ')})`);
    if (mustConnect(spec)) connected++;
    const f = fields[name];
    for (const s of Array.isArray(f) ? f : [f]) {
      const wrongType = fieldDtypeError(cs.op, codelet, name, tensors[s.tensor].dtype, tensors[s.tensor].name);
      if (wrongType) throw wrongType;
    }
  }
  if (connected === required) return;
  for (const name of Object.keys(codelet.fields)) {
    if (!(name in fields) && mustConnect(codelet.fields[name])) throw loweringError(cs.op, `vertex ${codelet.name} of '${cs.name}': field '${name}' is not connected`);
  }
}

/** Indices of `vertices` in tile order, stably (ties keep their order): the program's vertices are sorted by tile. */
function byTile(vertices: BuildVertices): Int32Array {
  const n = vertices.count;
  const tile = vertices.tile;
  let sorted = true;
  for (let i = 1; i < n && sorted; i++) sorted = tile[i - 1] <= tile[i];
  if (sorted) return Int32Array.from({ length: n }, (_, i) => i);
  // Tile and index packed in one exact double: a numeric typed-array sort, no comparator calls.
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) keys[i] = tile[i] * 2 ** 24 + i;
  keys.sort();
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = keys[i] % 2 ** 24;
  return out;
}

/** Intervals listed in an error before the rest are counted: a whole model's tensor has thousands. */
const LISTED_INTERVALS = 8;

/** Where elements [begin, end) of a tensor are: its intervals holding them, at most LISTED_INTERVALS, the rest counted. */
function whereElements(intervals: readonly { tile: number; begin: number; end: number }[], begin: number, end: number): string {
  const holding = intervals.filter((i) => i.begin < end && begin < i.end);
  const listed = holding.slice(0, LISTED_INTERVALS).map((i) => `tile ${i.tile} [${i.begin}, ${i.end})`);
  if (holding.length > LISTED_INTERVALS) listed.push(`and ${holding.length - LISTED_INTERVALS} more`);
  if (holding.length === 0) listed.push('none of them');
  const others = intervals.length - holding.length;
  return listed.join(', ') + (others > 0 ? `; ${others} other interval${others === 1 ? '' : 's'} of the tensor hold other elements` : '');
}

/** A mistake in an op's lowering (a custom op author's, or ours): named by op, never an internal crash. */
function loweringError(op: string, message: string): UserError {
  return new UserError(`the lowering of op '${op}' is wrong: ${message}`);
}

/** Elements [begin, end) of device tensor `tensor` (row-major flat indices). */
export interface Slice {
  tensor: number;
  begin: number;
  end: number;
}

export interface TileRange {
  tile: number;
  begin: number;
  end: number;
}

export interface BuildTensor {
  id: number;
  name: string;
  dtype: DeviceDType;
  shape: number[];
  size: number;
  category: TensorCategory;
  op: string;
  /** Its tile mapping (set once, by setTileMapping and the map* helpers): columns, not an object per range. */
  mapping: TileMapping | undefined;
  /** Dropped (an op's output replaced by an alias before anything used it): no memory. */
  dropped?: boolean;
  /** Live throughout (liveness.ts): a pipeline's stash buffers and inter-stage copies. */
  alwaysLive?: boolean;
  /** A source tensor (variable, constant, stream) mapped as this consumer's createInput asked. */
  layoutBy?: { op: string; index: number };
  /** Its home is a remote buffer in Streaming Memory (DeviceTensor.remote). */
  remote?: boolean;
  /** Replicated tensor sharding: the whole tensor this is each replica's shard of (DeviceTensor.shardOf). */
  shardOf?: { name: string; shape: number[] };
  /** A sharded weight's whole tensor: its home is this shard, all-gathered before each use (DeviceTensor.gatheredFrom). */
  gatheredFrom?: BuildTensor;
  /** One value per vertex, all the same (DeviceTensor.perVertex). */
  perVertex?: boolean;
  /** An outlined function's parameter: the first call's tensor it is mapped like and filled from (src/lower/functions.ts). */
  paramOf?: BuildTensor;
}

interface BuildComputeSet {
  id: number;
  name: string;
  op: string;
  /** Columnar (src/lower/build-vertices.ts). A vertex is `checked` when its fields were checked against the codelet object as it was placed (checkVertex): finalize need not again. */
  vertices: BuildVertices;
}

interface BuildExchange {
  id: number;
  name: string;
  op: string;
  copies: SliceCopies;
  /** An outlined call's copies of whole tensors: resolved merging those that continue each other on both tiles, its on-tile copies charged. */
  call?: boolean;
}

export class DeviceGraph {
  readonly tensors: BuildTensor[] = [];
  readonly computeSets: BuildComputeSet[] = [];
  readonly exchanges: BuildExchange[] = [];
  readonly streams: { id: number; name: string; tensor: number; direction: 'toDevice' | 'fromDevice'; remote?: boolean }[] = [];
  readonly programs: Record<string, ProgramStep[]> = {};
  /** Outlined functions' tensors (src/lower/functions.ts): each function's placed as one block, by their lifetimes within a call. */
  readonly frames: { fn: string; tensors: number[] }[] = [];
  /** Why the lowering chose what it did (plans per op), for `sim compile`. */
  readonly notes: { op: string; kind: string; text: string }[] = [];
  /** Codelet, field and parameter names of the vertices (BuildVertices). */
  private readonly names = new Names();
  /** Tensors that some vertex, copy or stream uses. */
  private readonly referenced = new Set<number>();
  /** The device the lowering sees: the whole device, or one IPU of it inside onIpu(). */
  private view: DeviceSpec;
  private tiles: number;

  /** The device an op inside onIpu() sees: one IPU of the whole. */
  private readonly ipuView: DeviceSpec;

  constructor(private readonly whole: DeviceSpec) {
    this.view = whole;
    this.ipuView = { ...whole, ipus: 1 };
    this.tiles = whole.ipus * whole.tilesPerIpu;
  }

  get device(): DeviceSpec {
    return this.view;
  }

  get numTiles(): number {
    return this.tiles;
  }

  /**
   * Run `fn` (an op's lowering) on IPU `ipu` alone, as Poplar's virtual graph
   * of that IPU's tiles: the device it sees has one IPU whose tiles are
   * numbered from 0, the mappings of `inputs` (which must lie on that IPU)
   * read in those numbers, and afterwards the tensors and vertices it made
   * move to the IPU's tiles [ipu x tilesPerIpu, (ipu + 1) x tilesPerIpu).
   * Op lowerings need not know about IPUs at all.
   */
  onIpu<T>(ipu: number, inputs: Iterable<BuildTensor | undefined>, fn: () => T): T {
    const per = this.whole.tilesPerIpu;
    const base = ipu * per;
    const seen: { t: BuildTensor; global: TileMapping; local: TileMapping }[] = [];
    for (const t of new Set(inputs)) {
      if (!t?.mapping) continue;
      if (!t.mapping.within(base, base + per)) {
        const off = [...t.mapping].find((r) => r.tile < base || r.tile >= base + per)!;
        throw new Error(`internal: tensor '${t.name}' has elements on tile ${off.tile}, not on IPU ${ipu} where it is read`);
      }
      // IPU 0's tiles are numbered from 0 already: nothing moves (no copy of each mapping per op).
      if (base === 0) continue;
      const local = t.mapping.shifted(-base);
      seen.push({ t, global: t.mapping, local });
      t.mapping = local;
    }
    const tensorsBefore = this.tensors.length;
    const computeSetsBefore = this.computeSets.length;
    // One view for every IPU (its tiles numbered from 0): memos keyed by the device (src/lower/plan-memo.ts) hit across ops and IPUs.
    this.view = this.ipuView;
    this.tiles = per;
    try {
      return fn();
    } finally {
      this.view = this.whole;
      this.tiles = this.whole.ipus * per;
      for (const s of seen) s.t.mapping = s.t.mapping === s.local ? s.global : s.t.mapping?.shifted(base);
      for (let i = base === 0 ? this.tensors.length : tensorsBefore; i < this.tensors.length; i++) {
        const t = this.tensors[i];
        if (t.mapping) t.mapping = t.mapping.shifted(base);
      }
      if (base !== 0) {
        for (let c = computeSetsBefore; c < this.computeSets.length; c++) {
          const vs = this.computeSets[c].vertices;
          for (let i = 0; i < vs.count; i++) vs.tile[i] += base;
        }
      }
    }
  }

  /**
   * Copies of the tensors, compute sets and exchanges made in `made` (an
   * outlined function's lowering, src/lower/functions.ts cloneFunction), their
   * tiles shifted by `tileShift` (whole IPUs): the old-to-new id maps, or
   * undefined (nothing made) when a vertex or copy reads a tensor made
   * outside the range, which a clone could not move.
   */
  cloneShifted(
    made: { tensors: [number, number]; computeSets: [number, number]; exchanges: [number, number] },
    tileShift: number,
    rename: (name: string) => string,
    /** Tensors made outside the range that the clone reads in their place (an op's inputs), else none. */
    outside: ReadonlyMap<number, number> = new Map(),
    /** The op a clone's tensors, compute sets and exchanges are named for (a function's keep the template's). */
    renameOp: (op: string) => string = (op) => op,
  ): { tensor: (id: number) => number; computeSet: (id: number) => number; exchange: (id: number) => number } | undefined {
    const [t0, t1] = made.tensors;
    // The outside tensors the template reads: the clone reads their stand-ins, which are then used too.
    const read = new Set<number>();
    const inside = (id: number) => {
      if (id >= t0 && id < t1) return true;
      if (!outside.has(id)) return false;
      read.add(id);
      return true;
    };
    for (let c = made.computeSets[0]; c < made.computeSets[1]; c++) {
      const vs = this.computeSets[c].vertices;
      for (let s = 0; s < vs.sliceStart[vs.fieldStart[vs.count]]; s++) if (!inside(vs.sliceTensor[s])) return undefined;
    }
    for (let e = made.exchanges[0]; e < made.exchanges[1]; e++) {
      const c = this.exchanges[e].copies;
      for (let i = 0; i < c.length; i++) if (!inside(c.srcTensor(i)) || !inside(c.dstTensor(i))) return undefined;
    }
    const tBase = this.tensors.length;
    const tensor = (id: number) => (id >= t0 && id < t1 ? id - t0 + tBase : outside.get(id)!);
    for (let id = t0; id < t1; id++) {
      const s = this.tensors[id];
      const t = this.addTensor(rename(s.name), s.dtype, s.shape, s.category, renameOp(s.op));
      if (s.mapping) t.mapping = s.mapping.shifted(tileShift);
      if (s.dropped) t.dropped = true;
      if (s.alwaysLive) t.alwaysLive = true;
      if (s.layoutBy) t.layoutBy = s.layoutBy;
      if (s.remote) t.remote = true;
      // A cloned update's step counters are per vertex (restore broadcasts them); a shard keeps its whole tensor's name.
      if (s.perVertex) t.perVertex = true;
      if (s.shardOf) t.shardOf = s.shardOf;
      if (this.referenced.has(id)) this.referenced.add(t.id);
    }
    // Marked as the template's reads marked its own (finalize refuses a dropped tensor that is used).
    for (const id of read) this.referenced.add(outside.get(id)!);
    const csBase = this.computeSets.length;
    for (let c = made.computeSets[0]; c < made.computeSets[1]; c++) {
      const cs = this.computeSets[c];
      const id = this.addComputeSet(rename(cs.name), renameOp(cs.op));
      const to = this.computeSets[id].vertices;
      for (let i = 0; i < cs.vertices.count; i++) to.pushClone(cs.vertices, i, tileShift, tensor);
      to.trim();
    }
    const exBase = this.exchanges.length;
    for (let e = made.exchanges[0]; e < made.exchanges[1]; e++) {
      const ex = this.exchanges[e];
      const id = this.addExchange(rename(ex.name), renameOp(ex.op), { call: ex.call });
      const c = ex.copies;
      const to = this.exchanges[id].copies;
      // A strided copy keeps its runs and strides (elements, the same in the clone's tensors).
      for (let i = 0; i < c.length; i++) {
        if (c.runs(i) > 1) to.pushStrided(tensor(c.srcTensor(i)), c.srcBegin(i), tensor(c.dstTensor(i)), c.dstBegin(i), c.size(i), c.runs(i), c.srcStride(i), c.dstStride(i));
        else to.push(tensor(c.srcTensor(i)), c.srcBegin(i), tensor(c.dstTensor(i)), c.dstBegin(i), c.size(i));
        // A copy repeating another's source still does in the clone (finalize fans them out alike).
        if (c.repeatOf(i) >= 0) to.repeats(i, c.repeatOf(i));
      }
      to.trim();
    }
    return { tensor, computeSet: (id) => id - made.computeSets[0] + csBase, exchange: (id) => id - made.exchanges[0] + exBase };
  }

  addTensor(name: string, dtype: DeviceDType, shape: readonly number[], category: TensorCategory, op = ''): BuildTensor {
    if (hostHeapCheckDue(4096)) checkHostHeap(`lowering op '${op}'`);
    const t: BuildTensor = {
      id: this.tensors.length,
      name,
      dtype,
      shape: [...shape],
      size: shape.reduce((a, b) => a * b, 1),
      category,
      op,
      mapping: undefined,
    };
    this.tensors.push(t);
    return t;
  }

  /**
   * Map `t` (`by`: the op whose code chose the mapping, blamed if it is wrong; default the tensor's op):
   * ranges in any order, or a TileMapping (kept as it is when in element order: mappings are shared).
   */
  setTileMapping(t: BuildTensor, mapping: readonly TileRange[] | TileMapping, by = t.op): void {
    if (!(mapping instanceof TileMapping)) {
      // Kept as 32-bit integers: a fraction or NaN from a lowering's arithmetic would be cut silently.
      const bad = mapping.find((r) => !(Number.isInteger(r.tile) && Number.isInteger(r.begin) && Number.isInteger(r.end) && r.begin >= 0 && r.end <= 2 ** 31 - 1));
      if (bad) throw loweringError(by, `tensor '${t.name}' has a mapped range {tile: ${bad.tile}, begin: ${bad.begin}, end: ${bad.end}}: tiles and element indices must be whole numbers, 0 to 2^31 - 1`);
    }
    let m = mapping instanceof TileMapping ? mapping : TileMapping.of(mapping);
    let covered = 0;
    // Lowerings mostly build mappings in order, without empty ranges: kept as given then (no copy, no sort).
    let ordered = true;
    for (let i = 0; i < m.length; i++) {
      const k = m.tile(i);
      if (k < 0 || k >= this.numTiles) throw loweringError(by, `tensor '${t.name}' mapped to tile ${k}, but the device has tiles 0 to ${this.numTiles - 1}`);
      covered += m.end(i) - m.begin(i);
      if (ordered) ordered = m.end(i) > m.begin(i) && (i === 0 || m.begin(i - 1) < m.begin(i));
    }
    if (!ordered) m = m.inElementOrder();
    // Covering every element once: the count alone would pass an overlap that leaves a hole elsewhere.
    let at = 0;
    for (let i = 0; i < m.length; i++) {
      if (m.begin(i) !== at) break;
      at = m.end(i);
    }
    if (covered !== t.size || at !== t.size) throw loweringError(by, `the mapping of '${t.name}' must cover its ${t.size} elements once each (it covers ${covered}${at !== t.size ? `, with a gap or overlap at element ${at}` : ''})`);
    t.mapping = m;
  }

  /**
   * Poplar's mapTensorLinearly: whole grains (the vector width) in equal
   * shares over consecutive tiles, each used tile holding at least
   * minBytesPerTile. A tensor that needs every tile starts at tile 0; a
   * smaller one at a tile derived from its element count, wrapping past the
   * last tile, so small tensors spread over the chip while tensors of one
   * size (a weight, its gradient and update) share their tiles
   * (src/lower/linear.ts says why).
   */
  mapLinearly(t: BuildTensor, grain = vectorWidth(t.dtype, this.device)): void {
    const l = linearLayout(t.size, DTYPE_BYTES[t.dtype], grain, this.device.minBytesPerTile, this.numTiles, this.device.tilesPerSharedBus);
    const mapping = new TileMappingBuilder();
    for (let i = 0; i < l.tiles; i++) {
      const begin = Math.min(t.size, i * l.perTile);
      const end = Math.min(t.size, (i + 1) * l.perTile);
      if (end > begin) mapping.push(layoutTile(l, i, this.numTiles), begin, end);
    }
    this.setTileMapping(t, mapping.finish());
  }

  /**
   * Map `t` tile by tile like `like` (same element count). The two share one
   * mapping array: mappings are replaced whole, never changed in place, and a
   * copy per elementwise output was a tenth of a DenseNet's lowering heap.
   */
  mapLike(t: BuildTensor, like: BuildTensor): void {
    this.setTileMapping(t, like.mapping!);
  }

  /** Map all of `t` onto one tile. */
  mapToTile(t: BuildTensor, tile: number): void {
    this.setTileMapping(t, [{ tile, begin: 0, end: t.size }]);
  }

  /** The tile ranges of `t` that overlap [begin, end), clipped. */
  rangesOf(t: BuildTensor, begin = 0, end = t.size): TileRange[] {
    const out: TileRange[] = [];
    const m = t.mapping;
    if (!m) return out;
    // Mappings are sorted and disjoint: start at the first range ending after `begin`.
    for (let i = m.firstEndingAfter(begin); i < m.length && m.begin(i) < end; i++) {
      const b = Math.max(begin, m.begin(i));
      const e = Math.min(end, m.end(i));
      if (e > b) out.push({ tile: m.tile(i), begin: b, end: e });
    }
    return out;
  }

  /** Whether elements [begin, end) of `t` all live on `tile` in one mapped range (no allocation: asked per run). */
  isOnTile(t: BuildTensor, begin: number, end: number, tile: number): boolean {
    const m = t.mapping;
    if (!m || end <= begin) return false;
    const i = m.firstEndingAfter(begin);
    return i < m.length && m.tile(i) === tile && m.begin(i) <= begin && end <= m.end(i);
  }

  addComputeSet(name: string, op: string): number {
    this.computeSets.push({ id: this.computeSets.length, name, op, vertices: new BuildVertices(this.names) });
    return this.computeSets.length - 1;
  }

  addVertex(
    cs: number,
    codelet: string,
    tile: number,
    fields: Record<string, Slice | Slice[]>,
    params: Record<string, number> = {},
    arrays?: Record<string, number[]>,
    checked = false,
  ): void {
    if (hostHeapCheckDue(4096)) checkHostHeap(`lowering op '${this.computeSets[cs].op}'`);
    this.computeSets[cs].vertices.push(codelet, tile, fields, params, arrays, checked);
    for (const name in fields) {
      const f = fields[name];
      if (Array.isArray(f)) for (let k = 0; k < f.length; k++) this.referenced.add(f[k].tensor);
      else this.referenced.add(f.tensor);
    }
  }

  /** Whether any vertex, copy or stream uses `t` so far. */
  isReferenced(t: BuildTensor): boolean {
    return this.referenced.has(t.id);
  }

  /** Give `t` no memory: it was made but is not needed (finalize checks nothing uses it). */
  drop(t: BuildTensor): void {
    t.dropped = true;
  }

  addExchange(name: string, op: string, opts: { call?: boolean } = {}): number {
    this.exchanges.push({ id: this.exchanges.length, name, op, copies: new SliceCopies(), ...(opts.call ? { call: true } : {}) });
    return this.exchanges.length - 1;
  }

  addCopy(ex: number, src: Slice, dst: Slice): void {
    if (src.end - src.begin !== dst.end - dst.begin) throw loweringError(this.exchanges[ex].op, `copy between slices of different sizes (${src.end - src.begin} and ${dst.end - dst.begin})`);
    // The message is made only when the heap is checked: a string per copy was garbage by the million.
    if (hostHeapCheckDue(16384)) checkHostHeap(`lowering op '${this.exchanges[ex].op}'`);
    this.exchanges[ex].copies.push(src.tensor, src.begin, dst.tensor, dst.begin, src.end - src.begin);
    this.referenced.add(src.tensor).add(dst.tensor);
  }

  /**
   * A strided copy: `runs` runs the size of `src` and `dst` (the first run), run k reading `src` moved on by
   * k x srcStride elements and writing `dst` moved on by k x dstStride (a block of a matrix, row by row). The
   * same as the runs' addCopy calls, as one row where the tensors' layout allows.
   */
  addStridedCopy(ex: number, src: Slice, dst: Slice, runs: number, srcStride: number, dstStride: number): void {
    if (runs === 1) return this.addCopy(ex, src, dst);
    const op = this.exchanges[ex].op;
    const n = src.end - src.begin;
    if (n !== dst.end - dst.begin) throw loweringError(op, `copy between slices of different sizes (${n} and ${dst.end - dst.begin})`);
    if (!(Number.isInteger(runs) && runs > 1 && srcStride > 0 && dstStride > 0)) throw loweringError(op, `a strided copy needs a whole number of runs and positive strides (got ${runs} runs, strides ${srcStride} and ${dstStride})`);
    if (hostHeapCheckDue(16384)) checkHostHeap(`lowering op '${op}'`);
    this.exchanges[ex].copies.pushStrided(src.tensor, src.begin, dst.tensor, dst.begin, n, runs, srcStride, dstStride);
    this.referenced.add(src.tensor).add(dst.tensor);
  }

  /**
   * addStridedCopy (addCopy for one run) of elements given as numbers, for LowerContext: checked there, no
   * slice objects made (a BERT layer's gathers add millions of copies).
   */
  pushCopy(ex: number, srcTensor: number, srcBegin: number, dstTensor: number, dstBegin: number, length: number, runs: number, srcStride: number, dstStride: number): void {
    if (hostHeapCheckDue(16384)) checkHostHeap(`lowering op '${this.exchanges[ex].op}'`);
    if (runs === 1) this.exchanges[ex].copies.push(srcTensor, srcBegin, dstTensor, dstBegin, length);
    else this.exchanges[ex].copies.pushStrided(srcTensor, srcBegin, dstTensor, dstBegin, length, runs, srcStride, dstStride);
    this.referenced.add(srcTensor).add(dstTensor);
  }

  addStream(name: string, t: BuildTensor, direction: 'toDevice' | 'fromDevice'): number {
    this.streams.push({ id: this.streams.length, name, tensor: t.id, direction, ...(t.remote ? { remote: true } : {}) });
    this.referenced.add(t.id);
    return this.streams.length - 1;
  }

  program(name: string): ProgramStep[] {
    return (this.programs[name] ??= []);
  }

  /** Allocate tile memory (throws RunError when a tile overflows) and resolve slices to regions. */
  finalize(codelets: CodeletRegistry, codeletModules: string[], onPass: (pass: string) => void = () => undefined): DeviceProgram {
    for (const t of this.tensors) {
      if (t.dropped && this.referenced.has(t.id)) throw loweringError(t.op, `tensor '${t.name}' was dropped but is used`);
      if (!t.mapping && !t.dropped) throw loweringError(t.op, `tensor '${t.name}' has no tile mapping (map it with mapLinearly, mapLike, mapToTile or setTileMapping)`);
    }
    const { tileBytes, intervals, memory, lifetimes } = allocate(this.tensors, this.whole, this.numTiles, this, codelets, onPass);
    onPass('resolving vertex fields');
    const tensors: DeviceTensor[] = this.tensors.map((t) => {
      // A record per tensor (its intervals are views of the table's rows): many thousands, between the passes' own heap checks.
      checkHostHeap('recording tensors', 4096);
      const life = lifetimes[t.id];
      // intervals: allocate() returns them in element order, as columns; the tensor's are views of its rows, not copies. Optional keys set after, not spread (a spread made two objects per tensor).
      const d: DeviceTensor = { id: t.id, name: t.name, dtype: t.dtype, shape: t.shape, category: t.category, op: t.op, intervals: tensorIntervalRows(intervals, t.id) };
      if (typeof life === 'object') d.live = life;
      if (t.remote) d.remote = true;
      if (t.shardOf) d.shardOf = t.shardOf;
      if (t.gatheredFrom) d.gatheredFrom = t.gatheredFrom.id;
      if (t.perVertex) d.perVertex = true;
      return d;
    });
    // Fields each codelet must have connected (all but optional inout ones), counted once per codelet.
    const required = new Map<string, number>();
    const countRequired = (name: string): number => {
      const n = Object.values(codelets.get(name).fields).filter(mustConnect).length;
      required.set(name, n);
      return n;
    };
    // Slice s of a compute set's vertices: its region on the vertex's tile, written into the table (no Region object per field).
    const region = (b: VertexTableBuilder, vs: BuildVertices, s: number, tile: number, field: string, cs: BuildComputeSet, codelet: string): void => {
      const tensor = vs.sliceTensor[s];
      const t = tensors[tensor];
      const begin = vs.sliceBegin[s];
      const end = vs.sliceEnd[s];
      const r = firstRowEndingAfter(intervals, tensor, begin);
      if (!(r < intervals.start[tensor + 1] && intervals.tile[r] === tile && intervals.begin[r] <= begin && end <= intervals.end[r])) {
        const where = `vertex ${codelet} of '${cs.name}' field '${field}'`;
        throw loweringError(
          cs.op,
          `${where} reads '${t.name}' elements [${begin}, ${end}) on tile ${tile}, but they are not all there ` +
            `(mapped: ${whereElements(intervalList(t.intervals), begin, end)}); bring them with onTile()`,
        );
      }
      b.region(intervals.offset[r] + (begin - intervals.begin[r]) * DTYPE_BYTES[t.dtype], end - begin, t.dtype);
    };
    const names = this.names.list;
    const computeSets = this.computeSets.map((cs) => {
      checkHostHeap(`resolving the vertices of compute set '${cs.name}'`);
      // The codelet looked up once per run of vertices of one codelet, and whether any is a custom one.
      let lastName: string | undefined;
      let codelet: Codelet | undefined;
      let custom = false;
      const vs = cs.vertices;
      // The table's sizes are the build columns': each column allocated once, at its length.
      const fields = vs.fieldStart[vs.count];
      const b = new VertexTableBuilder({ vertices: vs.count, fields, regions: vs.sliceStart[fields], params: vs.paramStart[vs.count] });
      // The graph's name numbers in the table's.
      const local = new Int32Array(names.length).fill(-1);
      const id = (n: number) => (local[n] >= 0 ? local[n] : (local[n] = b.name(names[n])));
      for (const i of byTile(vs)) {
        const name = vs.codeletName(i);
        const tile = vs.tile[i];
        if (name !== lastName) {
          if (!codelets.has(name)) {
            throw loweringError(cs.op, `vertex of '${cs.name}' uses codelet '${name}', which is not registered (known: ${codelets.names().join(', ')})`);
          }
          lastName = name;
          codelet = codelets.get(name);
          if (codelets.moduleOf(name) !== undefined) custom = true;
        }
        if (!codelet) throw new Error('internal: no codelet');
        b.begin(name, tile);
        // A vertex placed with a codelet object was checked then (names, connection, dtypes); one added to the DeviceGraph by name (addVertex, as tests do) is checked here.
        if (!vs.checked[i]) checkByName(cs, codelet, vs.fields(i), tensors, required.get(name) ?? countRequired(name));
        for (let f = vs.fieldStart[i]; f < vs.fieldStart[i + 1]; f++) {
          b.field(id(vs.fieldName[f]), vs.fieldList[f] === 1);
          // The message names the field only when a slice is not on the tile (a string per field was garbage).
          for (let s = vs.sliceStart[f]; s < vs.sliceStart[f + 1]; s++) region(b, vs, s, tile, names[vs.fieldName[f]], cs, name);
        }
        for (let p = vs.paramStart[i]; p < vs.paramStart[i + 1]; p++) b.param(id(vs.paramName[p]), vs.paramValue[p]);
        const arrays = vs.arrays.get(i);
        if (arrays) b.vectors(arrays);
      }
      const resolved: ComputeSet = { id: cs.id, name: cs.name, op: cs.op, vertices: b.finish() };
      // A custom codelet's estimate is checked now, at compile time, rather than when the run reaches it.
      if (custom) computeSetCost(resolved, codelets, this.whole);
      return resolved;
    });
    onPass('resolving exchange copies');
    const tables = resolveAllCopies(this.exchanges, tensors, intervals);
    const exchanges = this.exchanges.map((ex, i) => ({ id: ex.id, name: ex.name, op: ex.op, copies: tables[i], ...(ex.call ? { onTileCost: true } : {}) }));
    return {
      schemaVersion: 1,
      device: this.whole,
      tensors,
      computeSets,
      exchanges,
      streams: this.streams.map((s) => ({ ...s })),
      programs: this.programs,
      tileBytes,
      codeletModules,
      notes: this.notes,
      memory,
    };
  }
}
