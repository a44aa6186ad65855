/**
 * finalize's last pass: every exchange's slice-to-slice copies (SliceCopies)
 * resolved against the tensors' intervals into tile-to-tile CopyTables, as
 * few strided rows as the layout allows. A copy's pieces (each run of a
 * strided copy cut at every interval boundary of both tensors) between one
 * pair of tiles, of one length, each a constant step on from the last in both
 * tiles' memories, are one strided row: a block of a matrix read row by row
 * from one tile, or a contiguous range whose rows' pieces alternate between
 * the tiles of a block-mapped tensor. A copy's rows then run in another order
 * than its pieces, which cannot show: its pieces write disjoint bytes of
 * another tensor than they read (a copy within one tensor, or one whose runs'
 * destinations overlap, stays piece by piece, in order).
 */
import { CopyTableBuilder, doubled, type CopyTable } from '../../sim/copies.js';
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
  // Per exchange: strided rows only where they pay for their three more columns (else a row per piece, as before).
  const strided: boolean[] = [];
  const counts = exchanges.map((ex) => {
    checkHostHeap(`resolving the copies of exchange '${ex.name}'`);
    if (ex.call) return 0;
    sawStrided = false;
    pieceCount = 0;
    const n = resolveExchange(ex.copies, tensors, undefined, true);
    strided.push(sawStrided && 8 * n < 5 * pieceCount);
    return strided[strided.length - 1] ? n : pieceCount;
  });
  // Bytes of a row: five columns, eight with the stride columns (an exchange with a strided row).
  const rowBytes = exchanges.map((_, e) => (strided[e] ? 8 : 5) * Int32Array.BYTES_PER_ELEMENT);
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
  const tables = exchanges.map((ex, e) => {
    if (ex.call) {
      // A call's copies of whole tensors, merged per tile where they continue (CopyTableBuilder.pushMerging).
      const merged = new CopyTableBuilder(ex.copies.length);
      resolveExchange(ex.copies, tensors, merged, false);
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
    if (strided[e]) {
      table.runs = column();
      table.srcStride = column();
      table.dstStride = column();
    }
    resolveExchange(ex.copies, tensors, table, strided[e]);
    return table;
  });
  open = new Rows();
  pieces = new Rows();
  return tables;
}

/** Whether the rows counted since it was last cleared include a strided one, and the pieces they stand for. */
let sawStrided = false;
let pieceCount = 0;

/**
 * An exchange's tile-to-tile rows (strided where `strided`, else a row per piece, in order) written into `out`,
 * or pushed merging into a builder (a call's copies), or only counted (no `out`): how many. Consecutive copies
 * into exchange buffers (onTile and gather fill them, each copy its own part, from tensors the exchange does not
 * write) share their open rows: a tile's windows of a block-mapped tensor, one copy each, are one row per tile
 * they come from. Any other copy closes the open rows first, so copies keep their order about it.
 */
function resolveExchange(copies: SliceCopies, tensors: readonly DeviceTensor[], out: CopyTable | CopyTableBuilder | undefined, strided: boolean): number {
  let at = 0;
  open.n = 0;
  newGeneration();
  for (let c = 0; c < copies.length; c++) {
    const src = tensors[copies.srcTensor(c)];
    const dst = tensors[copies.dstTensor(c)];
    const sBegin = copies.srcBegin(c);
    const dBegin = copies.dstBegin(c);
    const len = copies.size(c);
    const runs = copies.runs(c);
    const sStride = copies.srcStride(c);
    const dStride = copies.dstStride(c);
    const rows = strided && !(out instanceof CopyTableBuilder) && src !== dst && (runs === 1 || dStride >= len);
    const shared = rows && dst.category === 'exchange' && src.category !== 'exchange';
    if (!shared && open.n > 0) {
      at = open.flush(out instanceof CopyTableBuilder ? undefined : out, at);
      newGeneration();
    }
    if (!rows) {
      const from = at;
      for (let k = 0; k < runs; k++) at = resolveRun(src, dst, sBegin + k * sStride, dBegin + k * dStride, len, out, at);
      pieceCount += at - from;
      continue;
    }
    pieces.n = 0;
    pieces.tensors[0] = src.id;
    pieces.tensors[1] = dst.id;
    for (let k = 0; k < runs; k++) resolveRun(src, dst, sBegin + k * sStride, dBegin + k * dStride, len, pieces, 0);
    stride(pieces, open);
    if (!shared) {
      at = open.flush(out instanceof CopyTableBuilder ? undefined : out, at);
      newGeneration();
    }
  }
  return open.flush(out instanceof CopyTableBuilder ? undefined : out, at);
}

/** Open-addressing table of the open row per key (tensors, tiles, bytes), stamped per generation (stride()). */
let slotStamp = new Int32Array(64).fill(-1);
let slotRow = new Int32Array(64);
let stamp = 0;

/** Forget the open rows' keys (they were flushed). */
function newGeneration(): void {
  stamp++;
}

/** Room in the table for `n` keys: grown, the open rows' keys entered again (the latest row of a key last), when it is over half full. */
function reserve(rows: Rows, n: number): void {
  let cap = slotStamp.length;
  if (2 * n <= cap) return;
  while (cap < 2 * n) cap *= 2;
  slotStamp = new Int32Array(cap).fill(-1);
  slotRow = new Int32Array(cap);
  stamp = 1;
  for (let r = 0; r < rows.n; r++) {
    let h = slot(rows.srcTile[r], rows.dstTile[r], rows.bytes[r], rows.srcTensor[r], cap - 1);
    while (slotStamp[h] === stamp && !rows.sameKey(slotRow[h], rows, r)) h = (h + 1) & (cap - 1);
    slotStamp[h] = stamp;
    slotRow[h] = r;
  }
}

function slot(srcTile: number, dstTile: number, bytes: number, srcTensor: number, mask: number): number {
  return (Math.imul(srcTile, 0x9e3779b1) ^ Math.imul(dstTile, 0x85ebca6b) ^ Math.imul(bytes, 0xc2b2ae35) ^ Math.imul(srcTensor, 0x27d4eb2f)) & mask;
}

/** `p`'s pieces added to `rows`: each extends the last row of its tensors, tiles and length if it continues it, else is a new row. */
function stride(p: Rows, rows: Rows): void {
  reserve(rows, rows.n + p.n);
  const mask = slotStamp.length - 1;
  for (let i = 0; i < p.n; i++) {
    let h = slot(p.srcTile[i], p.dstTile[i], p.bytes[i], p.srcTensor[i], mask);
    for (;;) {
      if (slotStamp[h] !== stamp) {
        slotStamp[h] = stamp;
        slotRow[h] = rows.n;
        rows.take(p, i);
        break;
      }
      const r = slotRow[h];
      if (!rows.sameKey(r, p, i)) {
        h = (h + 1) & mask;
        continue;
      }
      if (!rows.extend(r, p.srcOffset[i], p.dstOffset[i])) {
        slotRow[h] = rows.n;
        rows.take(p, i);
      }
      break;
    }
  }
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
  /** The source and destination tensors of each (a row's key with its tiles and bytes): set by resolveExchange before pushing. */
  srcTensor = new Int32Array(16);
  dstTensor = new Int32Array(16);
  tensors: [number, number] = [0, 0];

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    if (this.n === this.srcTile.length) {
      this.srcTile = doubled(this.srcTile);
      this.srcOffset = doubled(this.srcOffset);
      this.dstTile = doubled(this.dstTile);
      this.dstOffset = doubled(this.dstOffset);
      this.bytes = doubled(this.bytes);
      this.runs = doubled(this.runs);
      this.srcStride = doubled(this.srcStride);
      this.dstStride = doubled(this.dstStride);
      this.srcTensor = doubled(this.srcTensor);
      this.dstTensor = doubled(this.dstTensor);
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
    this.srcTensor[i] = this.tensors[0];
    this.dstTensor[i] = this.tensors[1];
  }

  /** Append piece i of `p` as a row of one run. */
  take(p: Rows, i: number): void {
    this.tensors[0] = p.srcTensor[i];
    this.tensors[1] = p.dstTensor[i];
    this.push(p.srcTile[i], p.srcOffset[i], p.dstTile[i], p.dstOffset[i], p.bytes[i]);
  }

  /** Whether row i and row j of `p` have one key (tensors, tiles, bytes). */
  sameKey(i: number, p: Rows, j: number): boolean {
    return this.srcTile[i] === p.srcTile[j] && this.dstTile[i] === p.dstTile[j] && this.bytes[i] === p.bytes[j] && this.srcTensor[i] === p.srcTensor[j] && this.dstTensor[i] === p.dstTensor[j];
  }

  /**
   * Extend row r by a run at (srcOffset, dstOffset) when it is one step on from the row's last run in both
   * memories (the row's stride; a row of one run takes the step as its stride, which must be positive).
   */
  extend(r: number, srcOffset: number, dstOffset: number): boolean {
    const last = this.runs[r] - 1;
    const ds = srcOffset - (this.srcOffset[r] + last * this.srcStride[r]);
    const dd = dstOffset - (this.dstOffset[r] + last * this.dstStride[r]);
    if (last === 0) {
      if (ds <= 0 || dd <= 0) return false;
      this.srcStride[r] = ds;
      this.dstStride[r] = dd;
    } else if (ds !== this.srcStride[r] || dd !== this.dstStride[r]) return false;
    this.runs[r]++;
    return true;
  }

  /** Write the rows at `at` of `out` (with stride columns when it has them; counted when `out` is undefined): the index after them. */
  flush(out: CopyTable | undefined, at: number): number {
    for (let i = 0; i < this.n; i++) {
      const runs = this.runs[i];
      if (runs > 1) sawStrided = true;
      pieceCount += runs;
      if (!out) continue;
      out.srcTile[at + i] = this.srcTile[i];
      out.srcOffset[at + i] = this.srcOffset[i];
      out.dstTile[at + i] = this.dstTile[i];
      out.dstOffset[at + i] = this.dstOffset[i];
      out.bytes[at + i] = this.bytes[i];
      if (out.runs) {
        out.runs[at + i] = runs;
        out.srcStride![at + i] = runs > 1 ? this.srcStride[i] : 0;
        out.dstStride![at + i] = runs > 1 ? this.dstStride[i] : 0;
      }
    }
    const n = at + this.n;
    this.n = 0;
    return n;
  }
}

/** Scratch of resolveExchange, made again after each finalize (it grows to an exchange's rows). */
let open = new Rows();
let pieces = new Rows();

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
