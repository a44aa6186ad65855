/**
 * Guarded tile memory (run.checkMemory): catches a codelet that writes where
 * it may not. A vertex may write only its output and inout fields' regions;
 * its inputs, the rest of its tile, other tiles and the padding between
 * tiles must come out of a compute set as they went in.
 *
 * Before a compute set the guard copies all tile memory; after it, it
 * compares every byte outside the compute set's writable regions (native
 * compares of the gaps between them, so a clean compute set costs one copy
 * and one compare of the memory). On a difference it puts the memory back
 * and replays the vertices one at a time on this thread, checking after
 * each, to name the vertex that wrote: its codelet, index, tile, compute set
 * and op, and the bytes hit (tile, offsets, and the tensor they belong to).
 * The scratch arenas after the tiles (sim/memory.ts) are not tile memory and
 * are not compared.
 */
import type { CodeletRegistry } from './codelet.js';
import { CodeletFault } from './faults.js';
import type { TileMemory } from './memory.js';
import type { ComputeSet, DeviceProgram, FieldValue, Vertex } from './program.js';
import { vertexAt, vertexList } from './vertex-table.js';
import { DTYPE_BYTES } from './program.js';

/** Absolute byte ranges [begin, end) of tile memory, sorted and merged. */
type Ranges = number[];

export interface VertexReplay {
  /** Run vertices [lo, hi) of `cs` on this thread. */
  runVertices(cs: ComputeSet, lo: number, hi: number): void;
}

export class MemoryGuard {
  private readonly writable = new Map<number, Ranges>();
  private readonly end: number;

  constructor(
    private readonly program: DeviceProgram,
    private readonly codelets: CodeletRegistry,
    private readonly memory: TileMemory,
  ) {
    const last = memory.tileBase.length - 1;
    this.end = last < 0 ? 0 : memory.tileBase[last] + memory.tileBytes[last];
  }

  /** A copy of all tile memory, taken before a compute set runs. */
  before(): Uint8Array {
    return new Uint8Array(this.memory.buffer, 0, this.end).slice();
  }

  /** Throws naming the vertex when `cs` wrote outside its writable regions since `snapshot`. */
  after(cs: ComputeSet, snapshot: Uint8Array, replay: VertexReplay, step: number): void {
    const now = new Uint8Array(this.memory.buffer, 0, this.end);
    const hit = firstForeign(snapshot, now, this.rangesOf(cs));
    if (hit < 0) return;
    // Someone wrote where it may not: put the memory back and find who, one vertex at a time.
    now.set(snapshot);
    const prev = snapshot.slice();
    for (let i = 0; i < cs.vertices.count; i++) {
      replay.runVertices(cs, i, i + 1);
      const mine = this.vertexRanges(vertexAt(cs.vertices, i));
      const at = firstForeign(prev, now, mine);
      if (at >= 0) throw this.fault(cs, i, at, prev, now, step);
      for (let k = 0; k < mine.length; k += 2) prev.set(now.subarray(mine[k], mine[k + 1]), mine[k]);
    }
    // Not reproduced one vertex at a time: the writes depended on how the vertices were run together.
    throw new CodeletFault({
      kind: 'memory',
      what: `a vertex wrote outside its output regions (first byte hit: ${this.describeByte(hit)}), but no single vertex does so when run alone`,
      computeSet: cs.name,
      op: cs.op,
      step: step >= 0 ? step : undefined,
    });
  }

  private fault(cs: ComputeSet, index: number, at: number, before: Uint8Array, now: Uint8Array, step: number): CodeletFault {
    const v = vertexAt(cs.vertices, index);
    let end = at;
    while (end < this.end && before[end] !== now[end]) end++;
    return new CodeletFault({
      kind: 'memory',
      what: `vertex ${index} wrote outside its output regions: ${end - at} byte(s) from ${this.describeByte(at)} changed (run.checkMemory). A codelet may write only its output and inout fields`,
      codelet: v.codelet,
      module: this.codelets.moduleOf(v.codelet),
      tile: v.tile,
      computeSet: cs.name,
      op: cs.op,
      step: step >= 0 ? step : undefined,
    });
  }

  /** "tile 3, byte 128 (tensor 'x', element 32)". */
  private describeByte(abs: number): string {
    const bases = this.memory.tileBase;
    let lo = 0;
    let hi = bases.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (bases[mid] <= abs) lo = mid;
      else hi = mid - 1;
    }
    const tile = lo;
    const offset = abs - bases[tile];
    if (offset >= this.memory.tileBytes[tile]) return `tile ${tile}, byte ${offset} (padding after the tile's memory)`;
    const owners: string[] = [];
    for (const t of this.program.tensors) {
      const size = DTYPE_BYTES[t.dtype];
      const iv = t.intervals;
      for (let i = 0; i < iv.count; i++) {
        if (iv.tile[i] !== tile || offset < iv.offset[i] || offset >= iv.offset[i] + (iv.end[i] - iv.begin[i]) * size) continue;
        owners.push(`'${t.name}' element ${iv.begin[i] + Math.floor((offset - iv.offset[i]) / size)}`);
      }
    }
    // Tensors with disjoint lifetimes share bytes: all of them are named.
    return `tile ${tile}, byte ${offset}${owners.length ? ` (tensor ${owners.slice(0, 3).join(' or ')})` : ' (no tensor)'}`;
  }

  private rangesOf(cs: ComputeSet): Ranges {
    let r = this.writable.get(cs.id);
    if (!r) {
      r = merge(vertexList(cs.vertices).flatMap((v) => this.vertexRanges(v)));
      this.writable.set(cs.id, r);
    }
    return r;
  }

  /** The absolute byte ranges vertex `v` may write: its output and inout fields. */
  private vertexRanges(v: Vertex): Ranges {
    const codelet = this.codelets.get(v.codelet);
    const base = this.memory.tileBase[v.tile];
    const out: number[] = [];
    for (const [name, value] of Object.entries(v.fields)) {
      const dir = codelet.fields[name]?.direction;
      if (dir !== 'output' && dir !== 'inout') continue;
      for (const reg of regions(value)) out.push(base + reg.offset, base + reg.offset + reg.count * DTYPE_BYTES[reg.dtype]);
    }
    return merge(out);
  }
}

function regions(v: FieldValue) {
  return Array.isArray(v) ? v : [v];
}

/** Sort and merge [begin, end) pairs. */
function merge(flat: number[]): Ranges {
  const pairs: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) if (flat[i + 1] > flat[i]) pairs.push([flat[i], flat[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [b, e] of pairs) {
    if (out.length > 0 && b <= out[out.length - 1]) out[out.length - 1] = Math.max(out[out.length - 1], e);
    else out.push(b, e);
  }
  return out;
}

/** The first byte outside `allowed` where `a` and `b` differ, or -1. */
function firstForeign(a: Uint8Array, b: Uint8Array, allowed: Ranges): number {
  let from = 0;
  for (let k = 0; k <= allowed.length; k += 2) {
    const to = k < allowed.length ? allowed[k] : a.length;
    if (to > from && Buffer.compare(a.subarray(from, to), b.subarray(from, to)) !== 0) {
      for (let i = from; i < to; i++) if (a[i] !== b[i]) return i;
    }
    if (k < allowed.length) from = allowed[k + 1];
  }
  return -1;
}
