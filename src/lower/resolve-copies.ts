/**
 * finalize's last pass: every exchange's slice-to-slice copies (SliceCopies)
 * resolved against the tensors' intervals into tile-to-tile CopyTables. A
 * strided copy (runs of one length at a stride: a block of a matrix, row by
 * row) becomes as few strided rows as the layout allows: consecutive runs
 * whose pieces continue the last run's, piece for piece, on the same tiles at
 * a constant step in both tiles' memories, extend those rows. A block whose
 * rows each lie on another tile stays a row per piece.
 */
import { CopyTableBuilder, type CopyTable } from '../../sim/copies.js';
import { DTYPE_BYTES, type DeviceTensor } from '../../sim/program.js';
import { checkHostHeap } from '../util/host-heap.js';
import type { SliceCopies } from './slice-copies.js';

/** Index of the first of `list` (sorted by begin, disjoint) whose end is after `pos`: a binary search. */
export function firstEndingAfter(list: readonly { begin: number; end: number }[], pos: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].end <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Bytes of one shared buffer of resolved copy columns (resolveAllCopies). */
const BUFFER_BYTES = 2 ** 30;

/**
 * Every exchange's slice-to-slice copies as tile-to-tile pieces, in order:
 * counted first, then written into columns that are views of a few shared
 * buffers. Growing a table per exchange and trimming it allocated two to
 * three times the copies' bytes outside the heap, and each such allocation
 * of a few hundred MB made V8 run full collections of the whole-model heap
 * that freed nothing (seconds each for a BERT layer's eight million copies).
 */

export function resolveAllCopies(exchanges: readonly { name: string; copies: SliceCopies; call?: boolean }[], tensors: readonly DeviceTensor[]): CopyTable[] {
  const counts = exchanges.map((ex) => {
    checkHostHeap(`resolving the copies of exchange '${ex.name}'`);
    if (ex.call) return 0;
    let n = 0;
    for (let i = 0; i < ex.copies.length; i++) n = resolveCopy(ex.copies, i, tensors, undefined, n);
    return n;
  });
  // Bytes of a row: five columns, eight with the stride columns (an exchange with a strided copy).
  const rowBytes = exchanges.map((ex) => (ex.copies.hasStrided ? 8 : 5) * Int32Array.BYTES_PER_ELEMENT);
  // Consecutive exchanges share a buffer of at most BUFFER_BYTES (one exchange larger than that has its own):
  // one buffer for a whole model's copies could pass the largest ArrayBuffer V8 allows.
  let buffer = new ArrayBuffer(0);
  let at = 0;
  const room = (from: number): void => {
    if (at + counts[from] * rowBytes[from] <= buffer.byteLength) return;
    let bytes = counts[from] * rowBytes[from];
    for (let e = from + 1; e < counts.length && bytes + counts[e] * rowBytes[e] <= BUFFER_BYTES; e++) bytes += counts[e] * rowBytes[e];
    buffer = new ArrayBuffer(bytes);
    at = 0;
  };
  return exchanges.map((ex, e) => {
    if (ex.call) {
      // A call's copies of whole tensors, merged per tile where they continue (CopyTableBuilder.pushMerging).
      const merged = new CopyTableBuilder(ex.copies.length);
      for (let i = 0; i < ex.copies.length; i++) resolveCopy(ex.copies, i, tensors, merged, 0);
      return merged.finish();
    }
    const count = counts[e];
    room(e);
    const column = () => {
      const c = new Int32Array(buffer, at, count);
      at += count * Int32Array.BYTES_PER_ELEMENT;
      return c;
    };
    const table: CopyTable = { count, srcTile: column(), srcOffset: column(), dstTile: column(), dstOffset: column(), bytes: column() };
    if (ex.copies.hasStrided) {
      table.runs = column();
      table.srcStride = column();
      table.dstStride = column();
    }
    let n = 0;
    for (let i = 0; i < ex.copies.length; i++) n = resolveCopy(ex.copies, i, tensors, table, n);
    return table;
  });
}

/**
 * Copy c's tile-to-tile rows written at `at` of `out`, or pushed merging into a builder (run by run), or only
 * counted (no `out`): the index after them.
 */
function resolveCopy(copies: SliceCopies, c: number, tensors: readonly DeviceTensor[], out: CopyTable | CopyTableBuilder | undefined, at: number): number {
  const src = tensors[copies.srcTensor(c)];
  const dst = tensors[copies.dstTensor(c)];
  const sBegin = copies.srcBegin(c);
  const dBegin = copies.dstBegin(c);
  const len = copies.size(c);
  const runs = copies.runs(c);
  const sStride = copies.srcStride(c);
  const dStride = copies.dstStride(c);
  if (runs === 1 || out instanceof CopyTableBuilder || dStride < len) {
    // One run, a call's copies (merged run by run), or runs whose destinations overlap (their order must stay).
    for (let k = 0; k < runs; k++) at = resolveRun(src, dst, sBegin + k * sStride, dBegin + k * dStride, len, out, at);
    return at;
  }
  // Rows open for extension: the last run's pieces, each a strided row so far.
  const rows = open;
  rows.n = 0;
  for (let k = 0; k < runs; k++) {
    pieces.n = 0;
    resolveRun(src, dst, sBegin + k * sStride, dBegin + k * dStride, len, pieces, 0);
    if (!rows.extendBy(pieces)) {
      at = rows.flush(out, at);
      rows.openFrom(pieces);
    }
  }
  return rows.flush(out, at);
}

/** Pieces of one run, or rows open for extension: growable columns (reused: resolution runs millions of times). */
class Rows {
  n = 0;
  srcTile = new Int32Array(16);
  srcOffset = new Int32Array(16);
  dstTile = new Int32Array(16);
  dstOffset = new Int32Array(16);
  bytes = new Int32Array(16);
  runs = new Int32Array(16);
  srcStride = new Int32Array(16);
  dstStride = new Int32Array(16);

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    if (this.n === this.srcTile.length) {
      const twice = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
        const g = new Int32Array(a.length * 2);
        g.set(a);
        return g;
      };
      this.srcTile = twice(this.srcTile);
      this.srcOffset = twice(this.srcOffset);
      this.dstTile = twice(this.dstTile);
      this.dstOffset = twice(this.dstOffset);
      this.bytes = twice(this.bytes);
      this.runs = twice(this.runs);
      this.srcStride = twice(this.srcStride);
      this.dstStride = twice(this.dstStride);
    }
    const i = this.n++;
    this.srcTile[i] = srcTile;
    this.srcOffset[i] = srcOffset;
    this.dstTile[i] = dstTile;
    this.dstOffset[i] = dstOffset;
    this.bytes[i] = bytes;
    this.runs[i] = 1;
    this.srcStride[i] = 0;
    this.dstStride[i] = 0;
  }

  /**
   * Extend each open row by the matching piece of the next run: as many pieces, each on the same tiles with
   * the same bytes, one step on from its row's last run in both memories (the row's stride; a row of one run
   * takes the step as its stride, which must be positive). False, nothing changed, when they do not match.
   */
  extendBy(p: Rows): boolean {
    if (p.n !== this.n || p.n === 0) return false;
    for (let i = 0; i < p.n; i++) {
      if (p.srcTile[i] !== this.srcTile[i] || p.dstTile[i] !== this.dstTile[i] || p.bytes[i] !== this.bytes[i]) return false;
      const last = this.runs[i] - 1;
      const ds = p.srcOffset[i] - (this.srcOffset[i] + last * this.srcStride[i]);
      const dd = p.dstOffset[i] - (this.dstOffset[i] + last * this.dstStride[i]);
      if (last === 0 ? ds <= 0 || dd <= 0 : ds !== this.srcStride[i] || dd !== this.dstStride[i]) return false;
    }
    for (let i = 0; i < p.n; i++) {
      if (this.runs[i] === 1) {
        this.srcStride[i] = p.srcOffset[i] - this.srcOffset[i];
        this.dstStride[i] = p.dstOffset[i] - this.dstOffset[i];
      }
      this.runs[i]++;
    }
    return true;
  }

  openFrom(p: Rows): void {
    this.n = 0;
    for (let i = 0; i < p.n; i++) this.push(p.srcTile[i], p.srcOffset[i], p.dstTile[i], p.dstOffset[i], p.bytes[i]);
  }

  /** Write the open rows at `at` of `out` (or count them): the index after them. */
  flush(out: CopyTable | undefined, at: number): number {
    if (out) {
      for (let i = 0; i < this.n; i++) {
        out.srcTile[at + i] = this.srcTile[i];
        out.srcOffset[at + i] = this.srcOffset[i];
        out.dstTile[at + i] = this.dstTile[i];
        out.dstOffset[at + i] = this.dstOffset[i];
        out.bytes[at + i] = this.bytes[i];
        out.runs![at + i] = this.runs[i];
        out.srcStride![at + i] = this.runs[i] > 1 ? this.srcStride[i] : 0;
        out.dstStride![at + i] = this.runs[i] > 1 ? this.dstStride[i] : 0;
      }
    }
    const n = at + this.n;
    this.n = 0;
    return n;
  }
}

const open = new Rows();
const pieces = new Rows();

/** One run's pieces (elements [sBegin, sBegin + len) of src to dBegin.. of dst): written at `at` of `out`, pushed (merging) into a builder or Rows, or counted. */
function resolveRun(src: DeviceTensor, dst: DeviceTensor, sBegin: number, dBegin: number, len: number, out: CopyTable | CopyTableBuilder | Rows | undefined, at: number): number {
  const size = DTYPE_BYTES[src.dtype];
  const sEnd = sBegin + len;
  for (let i = firstEndingAfter(src.intervals, sBegin); i < src.intervals.length && src.intervals[i].begin < sEnd; i++) {
    const si = src.intervals[i];
    const b = Math.max(sBegin, si.begin);
    const e = Math.min(sEnd, si.end);
    if (e <= b) continue;
    // Elements [b, e) of src land at [b - sBegin + dBegin, ...) of dst.
    const db = b - sBegin + dBegin;
    const de = e - sBegin + dBegin;
    for (let j = firstEndingAfter(dst.intervals, db); j < dst.intervals.length && dst.intervals[j].begin < de; j++) {
      const di = dst.intervals[j];
      const xb = Math.max(db, di.begin);
      const xe = Math.min(de, di.end);
      if (xe <= xb) continue;
      const srcOffset = si.offset + (xb - dBegin + sBegin - si.begin) * size;
      const dstOffset = di.offset + (xb - di.begin) * size;
      if (out instanceof CopyTableBuilder) out.pushMerging(si.tile, srcOffset, di.tile, dstOffset, (xe - xb) * size);
      else if (out instanceof Rows) out.push(si.tile, srcOffset, di.tile, dstOffset, (xe - xb) * size);
      else if (out) {
        out.srcTile[at] = si.tile;
        out.srcOffset[at] = srcOffset;
        out.dstTile[at] = di.tile;
        out.dstOffset[at] = dstOffset;
        out.bytes[at] = (xe - xb) * size;
        if (out.runs) {
          out.runs[at] = 1;
          out.srcStride![at] = 0;
          out.dstStride![at] = 0;
        }
      }
      at++;
    }
  }
  return at;
}
