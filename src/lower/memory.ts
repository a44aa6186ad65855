/**
 * Tile memory allocation, as Poplar decides it at compile time.
 *
 * - Always-live tensors (variables, constants, streams, optimizer state; see
 *   src/lower/liveness.ts) are laid out first on each tile, in tensor order.
 * - Every other tensor lives for an interval of steps of the batch program.
 *   Above the always-live block, a deterministic first-fit interval allocator
 *   per tile places them in order of first step (then larger first, then
 *   tensor id, then element): each at the lowest aligned offset that overlaps
 *   no placed tensor whose lifetime overlaps its own. Tensors that are never
 *   live at the same time share bytes.
 * - Every allocation starts at a multiple of the preset's allocationAlignment.
 * - Code and vertex state are counted in the tile's memory (after the data):
 *     code: codeBytesPerCodelet (a GUESS preset field) per distinct codelet
 *     the tile runs;
 *     vertex state (MODEL, Poplar's vertex layout: a tile is a 32-bit
 *     machine, so pointers and counts are 4-byte words, SPEC): per vertex one
 *     word for its entry in its compute set's vertex list; per field a pointer
 *     and a count (2 words; a field that is the very same region as another
 *     field of the vertex, an in-place InOut, counts once); per list field
 *     2 words plus 2 per region; per scalar param a word; per vector param
 *     2 words plus a word per element. The tile's total is aligned.
 * - A tile whose data peak + code + vertex state exceeds bytesPerTile fails
 *   the compile the way Poplar does, naming the tile, the bytes, and the
 *   largest tensors live at that tile's peak.
 */
import type { CodeletRegistry, FieldSpec } from '../../sim/codelet.js';
import type { DeviceSpec } from '../../sim/device.js';
import { DTYPE_BYTES, type TileMemoryUse } from '../../sim/program.js';
import type { IntervalTable } from '../../sim/intervals.js';
import { RunError } from '../errors.js';
import type { BuildTensor, DeviceGraph, Slice } from './devicegraph.js';
import { computeLiveness, type Access, type LeafStep, type Lifetime } from './liveness.js';
import { checkHostHeap } from '../util/host-heap.js';
import { FirstFit } from './first-fit.js';
import { BuildVertices } from './build-vertices.js';
import { Names } from '../../sim/vertex-table.js';
import { doubled } from '../../sim/copies.js';

/** Most elements of a tensor (its intervals' element ranges are Int32 columns). */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** Bytes of one word of vertex state (32-bit tile addresses, SPEC). */
export const VERTEX_WORD_BYTES = 4;

export interface Allocation {
  /** Bytes of each tile's memory in use (data peak + vertex state + code): memory[t].total. */
  tileBytes: number[];
  /** Every tensor's intervals, in element order. */
  intervals: IntervalTable;
  memory: TileMemoryUse[];
  lifetimes: Lifetime[];
}

/** What allocation reads of the graph beyond its tensors (a DeviceGraph). */
export type ProgramView = Pick<DeviceGraph, 'computeSets' | 'exchanges' | 'streams' | 'programs'> & Partial<Pick<DeviceGraph, 'frames'>>;


/**
 * Allocate every tensor's tile intervals. Without `program` (or `codelets`)
 * there are no steps: every tensor is always live and there is no code.
 */
export function allocate(
  tensors: readonly BuildTensor[],
  device: DeviceSpec,
  numTiles: number,
  program?: ProgramView,
  codelets?: CodeletRegistry,
  onPass: (pass: string) => void = () => undefined,
): Allocation {
  onPass('finding tensor lifetimes');
  const align = (n: number) => Math.ceil(n / device.allocationAlignment) * device.allocationAlignment;
  const liveness = program
    ? computeLiveness(tensors, program.programs, (s, visit) => stepAccesses(s, program, codelets, visit))
    : { lifetimes: tensors.map((t): Lifetime => (t.dropped ? 'none' : 'always')), steps: [] as LeafStep[] };
  const { lifetimes } = liveness;
  onPass('placing tensors in tile memory');
  // Every tensor's intervals as rows of one table, in tensor then mapping (element) order: counted, then written.
  const start = new Int32Array(tensors.length + 1);
  for (const t of tensors) {
    const rows = lifetimes[t.id] === 'none' || !t.mapping ? 0 : t.mapping.length;
    // Element indices are Int32 columns (no tile could hold such a tensor's share anyway).
    if (rows > 0 && t.size > MAX_ELEMENTS) throw new RunError(`Tensor '${t.name}' (op ${t.op}) has ${t.size} elements: tilesim places tensors of at most ${MAX_ELEMENTS}. Use smaller shapes.`);
    start[t.id + 1] = rows;
  }
  for (let t = 0; t < tensors.length; t++) start[t + 1] += start[t];
  const rows = start[tensors.length];
  const intervals: IntervalTable = { start, tile: new Int32Array(rows), begin: new Int32Array(rows), end: new Int32Array(rows), offset: new Int32Array(rows) };
  const alwaysEnd = new Array<number>(numTiles).fill(0);
  // Temporaries to place, as columns (one object per mapping range would be millions): the
  // tensor, its element range and bytes, its lifetime, its row of the table; grouped by tile with a counting sort.
  const col = new Columns(rows);
  // An outlined function's tensors not always live: placed in its frame, by their lifetimes in its first call.
  const frameOf = new Map<number, number>();
  const frames: { col: Columns; from: number; firstTo: number; lastFrom: number; to: number }[] = [];
  const calls = 'calls' in liveness ? liveness.calls : [];
  for (const f of program?.frames ?? []) {
    const spans = calls.filter((c) => c.fn === f.fn);
    if (spans.length === 0) continue;
    const first = spans[0];
    const last = spans[spans.length - 1];
    for (const t of f.tensors) {
      const life = lifetimes[t];
      if (typeof life === 'object' && life.from >= first.from && life.from <= first.to && life.to >= last.from) frameOf.set(t, frames.length);
    }
    frames.push({ col: new Columns(0), from: first.from, firstTo: first.to, lastFrom: last.from, to: last.to });
  }
  for (const t of tensors) {
    checkHostHeap('allocating tile memory', 4096);
    const life = lifetimes[t.id];
    if (life === 'none' || !t.mapping) continue;
    const size = DTYPE_BYTES[t.dtype];
    const f = frameOf.get(t.id);
    const mapping = t.mapping;
    for (let j = 0, row = start[t.id]; j < mapping.length; j++, row++) {
      // Read from the columns (no object per range: a BERT layer has 773k).
      const tile = mapping.tile(j);
      const begin = mapping.begin(j);
      const end = mapping.end(j);
      // setTileMapping keeps every mapping in element order: the rows' order, which placement's order relies on.
      if (j > 0 && begin < mapping.begin(j - 1)) throw new Error(`internal: the mapping of '${t.name}' is not in element order`);
      const bytes = (end - begin) * size;
      intervals.tile[row] = tile;
      intervals.begin[row] = begin;
      intervals.end[row] = end;
      if (life === 'always') {
        const offset = align(alwaysEnd[tile]);
        intervals.offset[row] = offset;
        alwaysEnd[tile] = offset + bytes;
      } else if (f !== undefined) {
        // In a frame: its lifetime in the first call. Every call runs the same steps, so its last use
        // there is as far into the first call as its last use overall is into the last call.
        frames[f].col.push(row, bytes, life.from, Math.min(frames[f].from + (life.to - frames[f].lastFrom), frames[f].firstTo), tile);
      } else col.push(row, bytes, life.from, life.to, tile);
    }
  }
  const dataEnd = [...alwaysEnd];
  const fit = new FirstFit(device.allocationAlignment);
  /** First-fit the items of `c` in `order` above `base`, each placed by `place(item, offset)`. */
  const firstFit = (c: Columns, order: Int32Array, base: number, place: (item: number, offset: number) => void): void => {
    fit.reset(base);
    for (let k = 0; k < order.length; k++) {
      const item = order[k];
      place(item, fit.place(c.bytes[item], c.from[item], c.to[item]));
    }
  };
  // In order of first step, then larger first, then tensor and element (the order of rows): deterministic.
  const byTileSorted = (c: Columns): { order: Int32Array; start: Int32Array } => {
    const start = new Int32Array(numTiles + 1);
    for (let i = 0; i < c.length; i++) start[c.tile[i] + 1]++;
    let most = 0;
    for (let tile = 0; tile < numTiles; tile++) {
      most = Math.max(most, start[tile + 1]);
      start[tile + 1] += start[tile];
    }
    // Grouped by tile in the order of rows: the frames' blocks (last, rows -1 - frame) first, then the rest as pushed.
    const order = new Int32Array(c.length);
    const fill = start.slice(0, numTiles);
    let blocks = c.length;
    while (blocks > 0 && c.row[blocks - 1] < 0) blocks--;
    for (let i = c.length - 1; i >= blocks; i--) order[fill[c.tile[i]]++] = i;
    for (let i = 0; i < blocks; i++) order[fill[c.tile[i]]++] = i;
    let maxFrom = 0;
    let maxBytes = 0;
    for (let i = 0; i < c.length; i++) {
      if (c.from[i] > maxFrom) maxFrom = c.from[i];
      if (c.bytes[i] > maxBytes) maxBytes = c.bytes[i];
    }
    // Each item's sort key packed into one exact double (first step, bytes downwards, place in row order) and
    // sorted natively when it fits 53 bits: a comparator call per pair was most of placement's time.
    if ((maxFrom + 1) * (maxBytes + 1) * Math.max(1, most) <= Number.MAX_SAFE_INTEGER) {
      const keys = new Float64Array(most);
      const items = new Int32Array(most);
      for (let tile = 0; tile < numTiles; tile++) {
        const n = start[tile + 1] - start[tile];
        if (n < 2) continue;
        for (let p = 0; p < n; p++) {
          const i = order[start[tile] + p];
          items[p] = i;
          keys[p] = (c.from[i] * (maxBytes + 1) + (maxBytes - c.bytes[i])) * n + p;
        }
        const sorted = keys.subarray(0, n).sort();
        for (let k = 0; k < n; k++) order[start[tile] + k] = items[sorted[k] % n];
      }
      return { order, start };
    }
    for (let tile = 0; tile < numTiles; tile++) {
      order.subarray(start[tile], start[tile + 1]).sort((a, b) => c.from[a] - c.from[b] || c.bytes[b] - c.bytes[a] || c.row[a] - c.row[b]);
    }
    return { order, start };
  };

  // Outlined functions' frames: each function's tensors first-fit among themselves by their
  // lifetimes within its first call (every call runs the same steps), then placed as one block
  // per tile, live from its first call to its last (item row -1 - frame). An item's offset is
  // relative to its frame's block until the blocks are placed.
  frames.forEach((f, k) => {
    const { order, start } = byTileSorted(f.col);
    for (let tile = 0; tile < numTiles; tile++) {
      if (start[tile + 1] === start[tile]) continue;
      let size = 0;
      firstFit(f.col, order.subarray(start[tile], start[tile + 1]), 0, (item, offset) => {
        f.col.offset[item] = offset;
        size = Math.max(size, align(offset + f.col.bytes[item]));
      });
      col.push(-1 - k, size, f.from, f.to, tile);
    }
  });
  {
    const { order, start } = byTileSorted(col);
    for (let tile = 0; tile < numTiles; tile++) {
      checkHostHeap('allocating tile memory', 64);
      firstFit(col, order.subarray(start[tile], start[tile + 1]), align(alwaysEnd[tile]), (item, offset) => {
        col.offset[item] = offset;
        if (offset + col.bytes[item] > dataEnd[tile]) dataEnd[tile] = offset + col.bytes[item];
      });
    }
  }
  // The frames' blocks (pushed last) placed: their items' offsets made absolute.
  const frameBase = frames.map(() => new Float64Array(numTiles));
  for (let i = col.length - 1; i >= 0 && col.row[i] < 0; i--) frameBase[-1 - col.row[i]][col.tile[i]] = col.offset[i];
  frames.forEach(({ col: f }, k) => {
    for (let j = 0; j < f.length; j++) intervals.offset[f.row[j]] = f.offset[j] + frameBase[k][f.tile[j]];
  });
  for (let i = 0; i < col.length; i++) if (col.row[i] >= 0) intervals.offset[col.row[i]] = col.offset[i];

  onPass('counting code and vertex state');
  const { code, vertexState } = program && codelets ? codeAndVertexState(program, codelets, device, numTiles) : { code: new Array<number>(numTiles).fill(0), vertexState: new Array<number>(numTiles).fill(0) };
  const memory: TileMemoryUse[] = [];
  for (let tile = 0; tile < numTiles; tile++) {
    const vs = vertexState[tile] ? align(vertexState[tile]) : 0;
    const total = dataEnd[tile] + vs + code[tile];
    memory.push({ alwaysLive: alwaysEnd[tile], temporaries: dataEnd[tile] - alwaysEnd[tile], code: code[tile], vertexState: vs, total });
  }
  const tileBytes = memory.map((m) => m.total);
  const worst = tileBytes.reduce((w, b, t) => (b > tileBytes[w] ? t : w), 0);
  if (tileBytes[worst] > device.bytesPerTile) {
    throw outOfMemory(worst, memory[worst], tensors, intervals, lifetimes, liveness.steps, program, device);
  }
  return { tileBytes, intervals, memory, lifetimes };
}


/**
 * Items to place, as growable Int32Array columns (an object per mapping range was a whole model's
 * garbage, and plain arrays grew by push): its row of the interval table (or -1 - frame), bytes,
 * lifetime [from, to], tile; and the offset placement gives it.
 */
class Columns {
  length = 0;
  row: Int32Array;
  /** Doubles: a range of a large tensor on one tile can pass 2^31 bytes (then the tile is out of memory, reported as such). */
  bytes: Float64Array;
  from: Int32Array;
  to: Int32Array;
  tile: Int32Array;
  offset: Float64Array;

  constructor(capacity: number) {
    const n = Math.max(16, capacity);
    this.row = new Int32Array(n);
    this.bytes = new Float64Array(n);
    this.from = new Int32Array(n);
    this.to = new Int32Array(n);
    this.tile = new Int32Array(n);
    this.offset = new Float64Array(n);
  }

  push(row: number, bytes: number, from: number, to: number, tile: number): void {
    if (this.length === this.row.length) {
      this.row = doubled(this.row);
      this.bytes = doubledFloat(this.bytes);
      this.from = doubled(this.from);
      this.to = doubled(this.to);
      this.tile = doubled(this.tile);
      this.offset = doubledFloat(this.offset);
    }
    const i = this.length++;
    this.row[i] = row;
    this.bytes[i] = bytes;
    this.from[i] = from;
    this.to[i] = to;
    this.tile[i] = tile;
  }
}

function doubledFloat(a: Float64Array): Float64Array {
  const g = new Float64Array(2 * a.length);
  g.set(a);
  return g;
}

/** Which elements of which tensors a leaf step reads and writes. */
function stepAccesses(step: LeafStep, program: ProgramView, codelets: CodeletRegistry | undefined, visit: (a: Access) => void): void {
  // One reused record: the visitor reads it before the next call (no allocation per access: programs have millions).
  const rec: Access = { tensor: 0, begin: 0, end: 0, read: false, write: false };
  const access = (tensor: number, begin: number, end: number, read: boolean, write: boolean) => {
    rec.tensor = tensor;
    rec.begin = begin;
    rec.end = end;
    rec.read = read;
    rec.write = write;
    visit(rec);
  };
  switch (step.kind) {
    case 'execute': {
      // The codelet's fields looked up once per run of vertices of one codelet (two map lookups per vertex showed).
      let codelet = -1;
      let spec: Record<string, FieldSpec> | undefined;
      const vs = program.computeSets[step.computeSet]?.vertices;
      for (let i = 0; vs && i < vs.count; i++) {
        if (vs.codelet[i] !== codelet) {
          codelet = vs.codelet[i];
          const name = vs.names.list[codelet];
          spec = codelets?.has(name) ? codelets.get(name).fields : undefined;
        }
        for (let f = vs.fieldStart[i]; f < vs.fieldStart[i + 1]; f++) {
          // Unknown codelets or fields (finalize reports them) count as read and written.
          const dir = spec?.[vs.names.list[vs.fieldName[f]]]?.direction ?? 'inout';
          for (let s = vs.sliceStart[f]; s < vs.sliceStart[f + 1]; s++) access(vs.sliceTensor[s], vs.sliceBegin[s], vs.sliceEnd[s], dir !== 'output', dir !== 'input');
        }
      }
      break;
    }
    case 'exchange': {
      const copies = program.exchanges[step.exchange]?.copies;
      for (let i = 0; copies && i < copies.length; i++) {
        const n = copies.size(i);
        const runs = copies.runs(i);
        const sb = copies.srcBegin(i);
        const db = copies.dstBegin(i);
        const ds = copies.dstStride(i);
        // A strided copy reads its source's span (a read's range decides nothing) and writes run by run, as one range when they abut.
        access(copies.srcTensor(i), sb, sb + (runs - 1) * copies.srcStride(i) + n, true, false);
        if (runs === 1 || ds === n) access(copies.dstTensor(i), db, db + runs * n, false, true);
        else for (let k = 0; k < runs; k++) access(copies.dstTensor(i), db + k * ds, db + k * ds + n, false, true);
      }
      break;
    }
    case 'allReduce':
      visit({ tensor: step.tensor, begin: 0, end: Infinity, read: true, write: true });
      break;
    // Shard steps: the whole tensor read (reduce-scatter, replica shard) or written (all-gather), the shard the other way.
    case 'reduceScatter':
    case 'replicaShard':
      access(step.tensor, 0, Infinity, true, false);
      access(step.shard, 0, Infinity, false, true);
      break;
    case 'allGather':
      access(step.shard, 0, Infinity, true, false);
      access(step.tensor, 0, Infinity, false, true);
      break;
    // A remote load fills the tensor's tile memory; a store reads it.
    case 'remoteLoad':
      access(step.tensor, 0, Infinity, false, true);
      break;
    case 'remoteStore':
      access(step.tensor, 0, Infinity, true, false);
      break;
    case 'streamCopy': {
      const s = program.streams[step.stream];
      // A remote stream moves the tensor's remote buffer, not its tile memory.
      if (s && !s.remote) visit({ tensor: s.tensor, begin: 0, end: Infinity, read: s.direction === 'fromDevice', write: s.direction === 'toDevice' });
      break;
    }
  }
}

/** Code bytes (distinct codelets x codeBytesPerCodelet) and vertex-state bytes of every tile. */
export function codeAndVertexState(
  program: Pick<ProgramView, 'computeSets'>,
  codelets: CodeletRegistry,
  device: DeviceSpec,
  numTiles: number,
): { code: number[]; vertexState: number[] } {
  const kinds: Set<string>[] = Array.from({ length: numTiles }, () => new Set());
  const vertexState = new Array<number>(numTiles).fill(0);
  for (const cs of program.computeSets) {
    const vs = cs.vertices;
    for (let i = 0; i < vs.count; i++) {
      const tile = vs.tile[i];
      if (tile < 0 || tile >= numTiles) continue;
      const name = vs.codeletName(i);
      kinds[tile].add(name);
      vertexState[tile] += builtVertexStateBytes(vs, i, codelets.has(name) ? codelets.get(name).fields : undefined);
    }
  }
  return { code: kinds.map((k) => k.size * device.codeBytesPerCodelet), vertexState };
}

/** Vertex-state bytes of one vertex given as an object (see the file comment): as a compute set's vertex counts. */
export function vertexStateBytes(
  v: { fields: Record<string, Slice | Slice[]>; params: Record<string, number>; arrays?: Record<string, number[]> },
  fieldSpecs?: Record<string, { vector?: boolean }>,
): number {
  const one = new BuildVertices(new Names());
  one.push('', 0, v.fields, v.params, v.arrays, true);
  return builtVertexStateBytes(one, 0, fieldSpecs);
}

/** Vertex-state bytes of vertex `i` of a compute set (see the file comment). */
export function builtVertexStateBytes(vs: BuildVertices, i: number, fieldSpecs?: Record<string, { vector?: boolean }>): number {
  let words = 1;
  const f0 = vs.fieldStart[i];
  for (let f = f0; f < vs.fieldStart[i + 1]; f++) {
    const s = vs.sliceStart[f];
    if (vs.fieldList[f] || fieldSpecs?.[vs.names.list[vs.fieldName[f]]]?.vector) {
      words += 2 + 2 * (vs.sliceStart[f + 1] - s);
      continue;
    }
    // A scalar field the same slice as an earlier scalar field of the vertex shares its state.
    let k = f0;
    for (; k < f; k++) {
      const t = vs.sliceStart[k];
      if (!vs.fieldList[k] && !fieldSpecs?.[vs.names.list[vs.fieldName[k]]]?.vector && vs.sliceTensor[t] === vs.sliceTensor[s] && vs.sliceBegin[t] === vs.sliceBegin[s] && vs.sliceEnd[t] === vs.sliceEnd[s]) break;
    }
    if (k === f) words += 2;
  }
  words += vs.paramStart[i + 1] - vs.paramStart[i];
  const arrays = vs.arrays.get(i);
  if (arrays) for (const name in arrays) words += 2 + arrays[name].length;
  return words * VERTEX_WORD_BYTES;
}

function describeStep(s: LeafStep, program: ProgramView | undefined): string {
  if (s.kind === 'execute') return `compute set '${program?.computeSets[s.computeSet]?.name ?? s.computeSet}'`;
  if (s.kind === 'exchange') return `exchange '${program?.exchanges[s.exchange]?.name ?? s.exchange}'`;
  if (s.kind === 'allReduce') return `the all-reduce of tensor ${s.tensor}`;
  if (s.kind === 'reduceScatter' || s.kind === 'allGather' || s.kind === 'replicaShard') return `the ${s.kind} of tensor ${s.tensor}`;
  if (s.kind === 'remoteLoad' || s.kind === 'remoteStore') return `the ${s.kind} of tensor ${s.tensor}`;
  return `stream copy '${program?.streams[s.stream]?.name ?? s.stream}'`;
}

function outOfMemory(
  tile: number,
  use: TileMemoryUse,
  tensors: readonly BuildTensor[],
  intervals: IntervalTable,
  lifetimes: Lifetime[],
  steps: LeafStep[],
  program: ProgramView | undefined,
  device: DeviceSpec,
): RunError {
  const bytesOn = (t: BuildTensor) => {
    let n = 0;
    for (let r = intervals.start[t.id]; r < intervals.start[t.id + 1]; r++) if (intervals.tile[r] === tile) n += intervals.end[r] - intervals.begin[r];
    return n * DTYPE_BYTES[t.dtype];
  };
  const onTile = tensors.map((t) => ({ t, bytes: bytesOn(t), life: lifetimes[t.id] })).filter((x) => x.bytes > 0);
  // The step at which the most bytes of temporaries are live on the tile.
  const live = new Array<number>(steps.length + 1).fill(0);
  for (const x of onTile) {
    if (typeof x.life !== 'object') continue;
    live[x.life.from] += x.bytes;
    live[x.life.to + 1] -= x.bytes;
  }
  let peak = -1;
  let best = 0;
  for (let i = 0, acc = 0; i < steps.length; i++) {
    acc += live[i];
    if (acc > best) [best, peak] = [acc, i];
  }
  const atPeak = onTile.filter((x) => x.life === 'always' || (typeof x.life === 'object' && peak >= x.life.from && peak <= x.life.to));
  const list = atPeak
    .sort((a, b) => b.bytes - a.bytes || a.t.id - b.t.id)
    .slice(0, 5)
    .map(({ t, bytes, life }) => {
      const when = typeof life === 'object' ? `live at steps ${life.from}-${life.to}` : 'always live';
      return `  ${t.name} (${t.category}${t.op ? `, op ${t.op}` : ''}, ${t.dtype}[${t.shape.join(', ')}]): ${bytes} bytes, ${when}`;
    })
    .join('\n');
  const where = peak >= 0 ? `; its peak is at step ${peak} of the batch program (${describeStep(steps[peak], program)})` : '';
  return new RunError(
    `Out of memory on tile ${tile}: ${use.total} bytes used but tiles only have ${device.bytesPerTile} bytes of memory ` +
      `(device '${device.name}').\n` +
      `Tile ${tile} holds ${use.alwaysLive} bytes always live, ${use.temporaries} bytes of temporaries at their peak, ` +
      `${use.code} bytes of code and ${use.vertexState} bytes of vertex state${where}.\n` +
      `Largest tensors on tile ${tile}:\n${list}\n` +
      `Use a device with more tiles (device: {preset: <name>, tiles: N}) or more memory per tile, or smaller shapes.`,
  );
}
