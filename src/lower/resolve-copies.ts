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
import { rowEndingAfter, type IntervalTable } from '../../sim/intervals.js';
import { DTYPE_BYTES, type DeviceTensor } from '../../sim/program.js';
import { checkHostHeap } from '../util/host-heap.js';
import type { SliceCopies } from './slice-copies.js';

/** Bytes of one shared buffer of resolved copy columns (resolveAllCopies). */
const BUFFER_BYTES = 2 ** 30;

/**
 * Every exchange's slice-to-slice copies as tile-to-tile rows, in order.
 * Each exchange's pieces are counted first (the interval search alone), so
 * every byte the tables and the scratch need outside the heap is allocated
 * up front: V8 runs a full collection of the whole-model heap (seconds for a
 * BERT layer, freeing nothing) each time external memory grows by some tens
 * of MB, so a buffer per exchange, or scratch grown by doubling, cost a
 * collection per few exchanges. Then each exchange is resolved once, a row
 * per piece written straight into its part of a shared buffer and the
 * strided rows into scratch; the strided rows replace the pieces where they
 * pay for their three more columns (they then take less room than the
 * pieces, so they fit in their place).
 */
export function resolveAllCopies(exchanges: readonly { name: string; copies: SliceCopies; call?: boolean }[], tensors: readonly DeviceTensor[], intervals: IntervalTable): CopyTable[] {
  iv = intervals;
  const fans = exchanges.map((ex) => (ex.call || !ex.copies.hasRepeats ? undefined : planFan(ex.copies, tensors)));
  const counts = exchanges.map((ex, e) => {
    checkHostHeap(`counting the copies of exchange '${ex.name}'`);
    return countPieces(ex.copies, fans[e], tensors);
  });
  // Scratch for the largest exchange: its rows are at most its pieces, and the open rows' table at most half full.
  const most = exchanges.reduce((m, ex, e) => (ex.call ? m : Math.max(m, counts[e])), 0);
  rows = new Rows(most);
  open = new OpenRows(most);
  let cap = 64;
  while (cap < 2 * most) cap *= 2;
  slots = new Int32Array(2 * cap).fill(-1);
  stamp = 0;
  // Consecutive exchanges share a buffer of at most BUFFER_BYTES (one exchange larger than that has its own):
  // one buffer for a whole model's copies could pass the largest ArrayBuffer V8 allows.
  // A fanned-out exchange's pieces have a sixth column, their group (its strided rows take 9 words to the pieces' 6).
  const bytesOf = (e: number) => (exchanges[e].call ? 0 : (fans[e] ? 6 : 5) * counts[e] * Int32Array.BYTES_PER_ELEMENT);
  const buffers: ArrayBuffer[] = [];
  const place: { buffer: number; at: number }[] = [];
  let size = 0;
  exchanges.forEach((_, e) => {
    if (buffers.length === 0 || size + bytesOf(e) > BUFFER_BYTES) {
      if (buffers.length > 0) buffers[buffers.length - 1] = new ArrayBuffer(size);
      buffers.push(new ArrayBuffer(0));
      size = 0;
    }
    place.push({ buffer: buffers.length - 1, at: size });
    size += bytesOf(e);
  });
  if (buffers.length > 0) buffers[buffers.length - 1] = new ArrayBuffer(size);
  const tables = exchanges.map((ex, e) => {
    checkHostHeap(`resolving the copies of exchange '${ex.name}'`);
    const n = counts[e];
    const buffer = ex.call ? new ArrayBuffer(5 * n * Int32Array.BYTES_PER_ELEMENT) : buffers[place[e].buffer];
    const at = ex.call ? 0 : place[e].at;
    const fan = fans[e];
    fans[e] = undefined;
    pieces = new Pieces(buffer, at, n, fan !== undefined);
    const strided = resolveExchange(ex.copies, tensors, !ex.call, n, fan);
    if (pieces.n !== n) throw new Error(`internal: exchange '${ex.name}' resolved to ${pieces.n} pieces, counted ${n}`);
    if (ex.call) {
      // A call's copies of whole tensors, merged per tile where they continue (CopyTableBuilder.pushMerging).
      const merged = new CopyTableBuilder(ex.copies.length);
      for (let i = 0; i < pieces.n; i++) merged.pushMerging(pieces.srcTile[i], pieces.srcOffset[i], pieces.dstTile[i], pieces.dstOffset[i], pieces.bytes[i]);
      return merged.finish();
    }
    const table = strided ? rows.table(buffer, at, fan !== undefined) : pieces.table();
    if (fan) table.fan = { group: strided ? table.fan!.group : pieces.group!, start: fan.start, tile: fan.tile, delta: fan.delta };
    return table;
  });
  iv = EMPTY;
  open = new OpenRows(0);
  rows = new Rows(0);
  slots = new Int32Array(128).fill(-1);
  pieces = new Pieces(new ArrayBuffer(0), 0, 0, false);
  return tables;
}

/**
 * An exchange's copies that repeat an earlier copy's source (SliceCopies.repeats) and are sent with it:
 * the earlier copy's rows fan out to both. Only where both copies write one interval each (one tile's
 * exchange buffer): then each of the earlier copy's pieces lands at the same place in the other's, a
 * constant number of bytes on. Any other repeat is resolved as a copy of its own.
 */
interface FanPlan {
  /** Per copy: the copy whose rows it joins, or -1. */
  memberOf: Int32Array;
  /** Per copy: its destination group (its rows fan out), or -1. */
  groupOf: Int32Array;
  /** CopyFan's destinations: per group, the copy's own first, then its members' in copy order. */
  start: Int32Array;
  tile: Int32Array;
  delta: Int32Array;
}

function planFan(copies: SliceCopies, tensors: readonly DeviceTensor[]): FanPlan | undefined {
  const n = copies.length;
  // A member is sent at its leader's place, earlier than its own: safe when no copy of the exchange writes
  // anything but exchange buffers (as onTile and gather fill them), which no member reads.
  for (let i = 0; i < n; i++) if (tensors[copies.dstTensor(i)].category !== 'exchange') return undefined;
  const memberOf = new Int32Array(n).fill(-1);
  const groupOf = new Int32Array(n).fill(-1);
  // The interval one copy writes, or -2 when its destination spans several.
  const within = (i: number): number => {
    const t = copies.dstTensor(i);
    const b = copies.dstBegin(i);
    const e = b + (copies.runs(i) - 1) * copies.dstStride(i) + copies.size(i);
    const r = rowEndingAfter(iv.end, iv.start[t], iv.start[t + 1], b);
    return r < iv.start[t + 1] && iv.begin[r] <= b && e <= iv.end[r] ? r : -2;
  };
  const same = (i: number, j: number): boolean =>
    copies.srcTensor(i) === copies.srcTensor(j) &&
    copies.srcBegin(i) === copies.srcBegin(j) &&
    copies.size(i) === copies.size(j) &&
    copies.runs(i) === copies.runs(j) &&
    copies.srcStride(i) === copies.srcStride(j) &&
    copies.dstStride(i) === copies.dstStride(j) &&
    copies.dstTensor(i) === copies.dstTensor(j) &&
    copies.srcTensor(i) !== copies.dstTensor(i);
  let groups = 0;
  let dests = 0;
  const at = new Int32Array(n).fill(-1); // interval written (-1: not looked up yet, -2: several)
  for (let i = 0; i < n; i++) {
    const j = copies.repeatOf(i);
    if (j < 0 || memberOf[j] >= 0 || !same(i, j) || tensors[copies.dstTensor(i)].category !== 'exchange' || tensors[copies.srcTensor(i)].category === 'exchange') continue;
    if (at[j] === -1) at[j] = within(j);
    const ri = within(i);
    if (at[j] < 0 || ri < 0) continue;
    at[i] = ri;
    if (groupOf[j] < 0) {
      groupOf[j] = groups++;
      dests++;
    }
    memberOf[i] = j;
    dests++;
  }
  if (groups === 0) return undefined;
  const start = new Int32Array(groups + 1);
  for (let i = 0; i < n; i++) {
    if (groupOf[i] >= 0) start[groupOf[i] + 1]++;
    else if (memberOf[i] >= 0) start[groupOf[memberOf[i]] + 1]++;
  }
  for (let g = 0; g < groups; g++) start[g + 1] += start[g];
  const fill = start.slice(0, groups);
  const tile = new Int32Array(dests);
  const delta = new Int32Array(dests);
  const { tile: ivTile, begin, offset } = iv;
  const bytesAt = (i: number) => offset[at[i]] + (copies.dstBegin(i) - begin[at[i]]) * DTYPE_BYTES[tensors[copies.dstTensor(i)].dtype];
  for (let i = 0; i < n; i++) {
    const lead = groupOf[i] >= 0 ? i : memberOf[i];
    if (lead < 0) continue;
    const d = fill[groupOf[lead]]++;
    tile[d] = ivTile[at[i]];
    delta[d] = bytesAt(i) - bytesAt(lead);
  }
  return { memberOf, groupOf, start, tile, delta };
}

/** Pieces of an exchange's copies: resolveExchange's count, from the same interval search. */
function countPieces(copies: SliceCopies, fan: FanPlan | undefined, tensors: readonly DeviceTensor[]): number {
  let n = 0;
  for (let c = 0; c < copies.length; c++) if (!(fan && fan.memberOf[c] >= 0)) n += copyRuns(copies, c, tensors, true);
  return n;
}

const EMPTY: IntervalTable = { start: new Int32Array(1), tile: new Int32Array(0), begin: new Int32Array(0), end: new Int32Array(0), offset: new Int32Array(0) };
/** The intervals resolveAllCopies resolves against. */
let iv = EMPTY;

/** Whether the rows flushed since resolveExchange began include a strided one. */
let sawStrided = false;

/**
 * An exchange's copies resolved once: `pieces` holds a row per piece, in order; `rows` (when `strided`)
 * the strided rows of the same copies. Returns whether the strided rows are the exchange's table: only
 * where they pay for their three more columns (8 words a row against 5 a piece). The strided rows stop
 * being made once they cannot pay (a row is never taken back, so 5/8 of the `total` pieces made as rows
 * decide it): most of a weight gradient's pieces each come from another tile, and making their rows
 * was most of the time of resolving a BERT layer's copies. Consecutive copies into exchange buffers
 * (onTile and gather fill them, each copy its own part, from tensors the exchange does not write) share
 * their open rows: a tile's windows of a block-mapped tensor, one copy each, are one row per tile they
 * come from. Any other copy closes the open rows first, so copies keep their order about it.
 */
function resolveExchange(copies: SliceCopies, tensors: readonly DeviceTensor[], strided: boolean, total: number, fan: FanPlan | undefined): boolean {
  const hopeless = Math.ceil((5 * total) / 8);
  pieces.n = 0;
  rows.n = 0;
  open.n = 0;
  sawStrided = false;
  newGeneration();
  for (let c = 0; c < copies.length; c++) {
    // A member's destination is in its group: its pieces are those of the copy it joins.
    if (fan && fan.memberOf[c] >= 0) continue;
    const group = fan ? fan.groupOf[c] : -1;
    if (group >= 0) {
      // A fanned-out copy's rows are its own (none shared with the copies around it): opened and closed here.
      resolveGrouped(copies, c, tensors, strided, group);
      if (strided && rows.n + open.n >= hopeless) strided = false;
      continue;
    }
    const from = pieces.n;
    copyRuns(copies, c, tensors, false);
    if (!strided) continue;
    const srcId = copies.srcTensor(c);
    const dstId = copies.dstTensor(c);
    const asRows = srcId !== dstId && (copies.runs(c) === 1 || copies.dstStride(c) >= copies.size(c));
    const shared = asRows && tensors[dstId].category === 'exchange' && tensors[srcId].category !== 'exchange';
    if (!shared && open.n > 0) {
      open.flushInto(rows);
      newGeneration();
    }
    // A copy that stays piece by piece, or one piece with no open rows to join: a row of one run each.
    if (!asRows || (!shared && pieces.n - from === 1)) {
      rows.takeRange(pieces, from, pieces.n);
      if (rows.n + open.n >= hopeless) strided = false;
      continue;
    }
    stride(pieces, from, pieces.n, srcId, dstId, open);
    if (!shared) {
      open.flushInto(rows);
      newGeneration();
    }
    if (rows.n + open.n >= hopeless) strided = false;
  }
  if (!strided) return false;
  open.flushInto(rows);
  return sawStrided && 8 * rows.n < 5 * pieces.n;
}

/**
 * Copy c's pieces (each run cut at every interval boundary of both tensors): counted (`countOnly`, the
 * count returned) or pushed onto `pieces`.
 */
function copyRuns(copies: SliceCopies, c: number, tensors: readonly DeviceTensor[], countOnly: boolean): number {
  const srcId = copies.srcTensor(c);
  const dstId = copies.dstTensor(c);
  const sBegin = copies.srcBegin(c);
  const dBegin = copies.dstBegin(c);
  const len = copies.size(c);
  const sStride = copies.srcStride(c);
  const dStride = copies.dstStride(c);
  const size = DTYPE_BYTES[tensors[srcId].dtype];
  let n = 0;
  for (let k = 0, runs = copies.runs(c); k < runs; k++) {
    if (countOnly) n += countRun(srcId, dstId, sBegin + k * sStride, dBegin + k * dStride, len);
    else resolveRun(srcId, dstId, sBegin + k * sStride, dBegin + k * dStride, len, size);
  }
  return n;
}

/** Copy c of a fan group: its pieces, and (when `strided`) its rows, of its own, marked with the group. */
function resolveGrouped(copies: SliceCopies, c: number, tensors: readonly DeviceTensor[], strided: boolean, group: number): void {
  const from = pieces.n;
  copyRuns(copies, c, tensors, false);
  pieces.group!.fill(group, from, pieces.n);
  if (!strided) return;
  if (open.n > 0) {
    open.flushInto(rows);
    newGeneration();
  }
  const rowsFrom = rows.n;
  if (pieces.n - from === 1 || !(copies.runs(c) === 1 || copies.dstStride(c) >= copies.size(c))) rows.takeRange(pieces, from, pieces.n);
  else {
    stride(pieces, from, pieces.n, copies.srcTensor(c), copies.dstTensor(c), open);
    open.flushInto(rows);
    newGeneration();
  }
  rows.group.fill(group, rowsFrom, rows.n);
}

/**
 * Open-addressing table of the open row per key (tensors, tiles, bytes), stamped per generation (stride()):
 * slot h is [stamp, row] at 2h, 2h + 1, so a probe reads one cache line (a BERT layer's gathers keep
 * hundreds of thousands of rows open).
 */
let slots = new Int32Array(128).fill(-1);
let stamp = 0;

/** Forget the open rows' keys (they were flushed). */
function newGeneration(): void {
  stamp++;
}

/** Room in the table for `n` keys: grown, the open rows' keys entered again (the latest row of a key last), when it is over half full. */
function reserve(rows: OpenRows, n: number): void {
  let cap = slots.length >> 1;
  if (2 * n <= cap) return;
  while (cap < 2 * n) cap *= 2;
  slots = new Int32Array(2 * cap).fill(-1);
  stamp = 1;
  const a = rows.a;
  for (let r = 0; r < rows.n; r++) {
    const o = r * W;
    let h = slot(a[o + SRC_TILE], a[o + DST_TILE], a[o + BYTES], a[o + SRC_TENSOR], cap - 1);
    while (slots[2 * h] === stamp && !rows.sameKey(slots[2 * h + 1], a[o + SRC_TILE], a[o + DST_TILE], a[o + BYTES], a[o + SRC_TENSOR], a[o + DST_TENSOR])) h = (h + 1) & (cap - 1);
    slots[2 * h] = stamp;
    slots[2 * h + 1] = r;
  }
}

function slot(srcTile: number, dstTile: number, bytes: number, srcTensor: number, mask: number): number {
  return (Math.imul(srcTile, 0x9e3779b1) ^ Math.imul(dstTile, 0x85ebca6b) ^ Math.imul(bytes, 0xc2b2ae35) ^ Math.imul(srcTensor, 0x27d4eb2f)) & mask;
}

/**
 * Pieces [from, to) of `p` (of one copy, from tensor srcTensor to dstTensor) added to `rows`: each extends
 * the last row of its tensors, tiles and length if it continues it, else is a new row.
 */
function stride(p: Pieces, from: number, to: number, srcTensor: number, dstTensor: number, rows: OpenRows): void {
  reserve(rows, rows.n + to - from);
  const mask = (slots.length >> 1) - 1;
  for (let i = from; i < to; i++) {
    const srcTile = p.srcTile[i];
    const dstTile = p.dstTile[i];
    const bytes = p.bytes[i];
    let h = slot(srcTile, dstTile, bytes, srcTensor, mask);
    for (;;) {
      if (slots[2 * h] !== stamp) {
        slots[2 * h] = stamp;
        slots[2 * h + 1] = rows.n;
        rows.push(srcTile, p.srcOffset[i], dstTile, p.dstOffset[i], bytes, srcTensor, dstTensor);
        break;
      }
      const r = slots[2 * h + 1];
      if (!rows.sameKey(r, srcTile, dstTile, bytes, srcTensor, dstTensor)) {
        h = (h + 1) & mask;
        continue;
      }
      if (!rows.extend(r, p.srcOffset[i], p.dstOffset[i])) {
        slots[2 * h + 1] = rows.n;
        rows.push(srcTile, p.srcOffset[i], dstTile, p.dstOffset[i], bytes, srcTensor, dstTensor);
      }
      break;
    }
  }
}

/** A row per piece, in order: five columns of exactly the exchange's pieces, views of its part of a buffer. */
class Pieces {
  n = 0;
  srcTile: Int32Array;
  srcOffset: Int32Array;
  dstTile: Int32Array;
  dstOffset: Int32Array;
  bytes: Int32Array;

  /** Fan group of each piece (-1: none), in an exchange with fanned-out copies. */
  group?: Int32Array;

  constructor(buffer: ArrayBuffer, at: number, count: number, fanned: boolean) {
    const column = (k: number) => new Int32Array(buffer, at + k * count * Int32Array.BYTES_PER_ELEMENT, count);
    this.srcTile = column(0);
    this.srcOffset = column(1);
    this.dstTile = column(2);
    this.dstOffset = column(3);
    this.bytes = column(4);
    if (fanned) this.group = column(5);
  }

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    const i = this.n++;
    if (this.group) this.group[i] = -1;
    this.srcTile[i] = srcTile;
    this.srcOffset[i] = srcOffset;
    this.dstTile[i] = dstTile;
    this.dstOffset[i] = dstOffset;
    this.bytes[i] = bytes;
  }

  table(): CopyTable {
    return { count: this.n, srcTile: this.srcTile, srcOffset: this.srcOffset, dstTile: this.dstTile, dstOffset: this.dstOffset, bytes: this.bytes };
  }
}

/** Fields of an open row, W words apart in OpenRows.a. */
const SRC_TILE = 0;
const DST_TILE = 1;
const BYTES = 2;
const SRC_TENSOR = 3;
const DST_TENSOR = 4;
const RUNS = 5;
const SRC_OFFSET = 6;
const DST_OFFSET = 7;
const SRC_STRIDE = 8;
const DST_STRIDE = 9;
const W = 10;

/**
 * Rows open for extension, a row's fields side by side (its key and its runs so far): a probe that finds
 * a row reads one place, not ten columns (this is stride()'s inner loop, random access over up to
 * hundreds of thousands of rows).
 */
class OpenRows {
  n = 0;
  a: Int32Array;

  constructor(capacity: number) {
    this.a = new Int32Array(Math.max(1, capacity) * W);
  }

  /** A row of one run. */
  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number, srcTensor: number, dstTensor: number): void {
    if ((this.n + 1) * W > this.a.length) this.a = doubled(this.a);
    const o = this.n++ * W;
    const a = this.a;
    a[o + SRC_TILE] = srcTile;
    a[o + DST_TILE] = dstTile;
    a[o + BYTES] = bytes;
    a[o + SRC_TENSOR] = srcTensor;
    a[o + DST_TENSOR] = dstTensor;
    a[o + RUNS] = 1;
    a[o + SRC_OFFSET] = srcOffset;
    a[o + DST_OFFSET] = dstOffset;
    a[o + SRC_STRIDE] = 0;
    a[o + DST_STRIDE] = 0;
  }

  /** Whether row r has this key (tensors, tiles, bytes). */
  sameKey(r: number, srcTile: number, dstTile: number, bytes: number, srcTensor: number, dstTensor: number): boolean {
    const o = r * W;
    const a = this.a;
    return a[o + SRC_TILE] === srcTile && a[o + DST_TILE] === dstTile && a[o + BYTES] === bytes && a[o + SRC_TENSOR] === srcTensor && a[o + DST_TENSOR] === dstTensor;
  }

  /**
   * Extend row r by a run at (srcOffset, dstOffset) when it is one step on from the row's last run in both
   * memories (the row's stride; a row of one run takes the step as its stride, which must be positive).
   */
  extend(r: number, srcOffset: number, dstOffset: number): boolean {
    const o = r * W;
    const a = this.a;
    const last = a[o + RUNS] - 1;
    const ds = srcOffset - (a[o + SRC_OFFSET] + last * a[o + SRC_STRIDE]);
    const dd = dstOffset - (a[o + DST_OFFSET] + last * a[o + DST_STRIDE]);
    if (last === 0) {
      if (ds <= 0 || dd <= 0) return false;
      a[o + SRC_STRIDE] = ds;
      a[o + DST_STRIDE] = dd;
    } else if (ds !== a[o + SRC_STRIDE] || dd !== a[o + DST_STRIDE]) return false;
    a[o + RUNS]++;
    return true;
  }

  /** The open rows appended to `out` (strides zero in a row of one run), and none left open. */
  flushInto(out: Rows): void {
    const a = this.a;
    for (let r = 0; r < this.n; r++) {
      const o = r * W;
      const runs = a[o + RUNS];
      if (runs > 1) {
        sawStrided = true;
        out.push(a[o + SRC_TILE], a[o + SRC_OFFSET], a[o + DST_TILE], a[o + DST_OFFSET], a[o + BYTES], runs, a[o + SRC_STRIDE], a[o + DST_STRIDE]);
      } else out.push(a[o + SRC_TILE], a[o + SRC_OFFSET], a[o + DST_TILE], a[o + DST_OFFSET], a[o + BYTES], 1, 0, 0);
    }
    this.n = 0;
  }
}

/** An exchange's strided rows: growable columns (reused). */
class Rows {
  n = 0;
  srcTile: Int32Array;
  srcOffset: Int32Array;
  dstTile: Int32Array;
  dstOffset: Int32Array;
  bytes: Int32Array;
  runs: Int32Array;
  srcStride: Int32Array;
  dstStride: Int32Array;
  /** Fan group of each row (-1: none). */
  group: Int32Array;

  constructor(capacity: number) {
    const n = Math.max(1, capacity);
    this.group = new Int32Array(n);
    this.srcTile = new Int32Array(n);
    this.srcOffset = new Int32Array(n);
    this.dstTile = new Int32Array(n);
    this.dstOffset = new Int32Array(n);
    this.bytes = new Int32Array(n);
    this.runs = new Int32Array(n);
    this.srcStride = new Int32Array(n);
    this.dstStride = new Int32Array(n);
  }

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number, runs: number, srcStride: number, dstStride: number): void {
    if (this.n === this.srcTile.length) {
      this.srcTile = doubled(this.srcTile);
      this.srcOffset = doubled(this.srcOffset);
      this.dstTile = doubled(this.dstTile);
      this.dstOffset = doubled(this.dstOffset);
      this.bytes = doubled(this.bytes);
      this.runs = doubled(this.runs);
      this.srcStride = doubled(this.srcStride);
      this.dstStride = doubled(this.dstStride);
      this.group = doubled(this.group);
    }
    const i = this.n++;
    this.group[i] = -1;
    this.srcTile[i] = srcTile;
    this.srcOffset[i] = srcOffset;
    this.dstTile[i] = dstTile;
    this.dstOffset[i] = dstOffset;
    this.bytes[i] = bytes;
    this.runs[i] = runs;
    this.srcStride[i] = srcStride;
    this.dstStride[i] = dstStride;
  }

  /** Pieces [from, to) of `p` as rows of one run each. */
  takeRange(p: Pieces, from: number, to: number): void {
    for (let i = from; i < to; i++) this.push(p.srcTile[i], p.srcOffset[i], p.dstTile[i], p.dstOffset[i], p.bytes[i], 1, 0, 0);
  }

  /**
   * The rows as a table with stride columns (and, `fanned`, the group column as table.fan.group, the rest
   * of the fan to be filled in), written at `at` of `buffer` (over the pieces, which take more room).
   */
  table(buffer: ArrayBuffer, at: number, fanned: boolean): CopyTable {
    const n = this.n;
    let k = 0;
    const column = (from: Int32Array) => {
      const c = new Int32Array(buffer, at + k++ * n * Int32Array.BYTES_PER_ELEMENT, n);
      c.set(from.subarray(0, n));
      return c;
    };
    const t: CopyTable = { count: n, srcTile: column(this.srcTile), srcOffset: column(this.srcOffset), dstTile: column(this.dstTile), dstOffset: column(this.dstOffset), bytes: column(this.bytes) };
    t.runs = column(this.runs);
    t.srcStride = column(this.srcStride);
    t.dstStride = column(this.dstStride);
    if (fanned) t.fan = { group: column(this.group), start: new Int32Array(1), tile: new Int32Array(0), delta: new Int32Array(0) };
    return t;
  }
}

/** Scratch of resolveExchange, sized by resolveAllCopies for the largest exchange. */
let open = new OpenRows(0);
let rows = new Rows(0);
let pieces = new Pieces(new ArrayBuffer(0), 0, 0, false);

/**
 * Where the last run's pieces began in its source's and destination's rows: the next run (of a strided
 * copy, or the next copy) mostly falls in that interval or just after it, so it is searched from there.
 */
let hintSrc = -1;
let hintDst = -1;

/**
 * The first row in [lo, hi) of one tensor's rows (ascending) whose end is after `pos`: from `hint` when
 * it is one of them and the row before it ends at or before `pos` (any other hint, of another tensor or
 * -1, is ignored), by steps doubling from it (the next run of a strided copy lies a few rows on: a
 * channel further), else a binary search.
 */
function seek(end: Int32Array, lo: number, hi: number, pos: number, hint: number): number {
  if (hint >= lo && hint < hi && (hint === lo || end[hint - 1] <= pos)) {
    if (end[hint] > pos) return hint;
    // end[from] <= pos: gallop until a row ends after pos, then search the last step.
    let from = hint;
    let step = 1;
    while (from + step < hi && end[from + step] <= pos) {
      from += step;
      step *= 2;
    }
    return rowEndingAfter(end, from + 1, Math.min(hi, from + step + 1), pos);
  }
  return rowEndingAfter(end, lo, hi, pos);
}

/** One run's pieces (elements [sBegin, sBegin + len) of tensor src to dBegin.. of tensor dst, `size` bytes each) pushed onto `pieces`. */
function resolveRun(src: number, dst: number, sBegin: number, dBegin: number, len: number, size: number): void {
  const { tile, begin, end, offset } = iv;
  const sEnd = sBegin + len;
  const sHi = iv.start[src + 1];
  const dLo = iv.start[dst];
  const dHi = iv.start[dst + 1];
  const first = seek(end, iv.start[src], sHi, sBegin, hintSrc);
  hintSrc = first;
  for (let i = first; i < sHi && begin[i] < sEnd; i++) {
    const siBegin = begin[i];
    const b = Math.max(sBegin, siBegin);
    const e = Math.min(sEnd, end[i]);
    if (e <= b) continue;
    // Elements [b, e) of src land at [b - sBegin + dBegin, ...) of dst.
    const db = b - sBegin + dBegin;
    const de = e - sBegin + dBegin;
    const srcTile = tile[i];
    const srcBase = offset[i] + (sBegin - dBegin - siBegin) * size;
    let j = seek(end, dLo, dHi, db, hintDst);
    if (i === first) hintDst = j;
    for (; j < dHi && begin[j] < de; j++) {
      const xb = Math.max(db, begin[j]);
      const xe = Math.min(de, end[j]);
      if (xe <= xb) continue;
      pieces.push(srcTile, srcBase + xb * size, tile[j], offset[j] + (xb - begin[j]) * size, (xe - xb) * size);
    }
  }
}

/** How many pieces resolveRun makes of the run (the same search, nothing written). */
function countRun(src: number, dst: number, sBegin: number, dBegin: number, len: number): number {
  const { begin, end } = iv;
  const sEnd = sBegin + len;
  const sHi = iv.start[src + 1];
  const dLo = iv.start[dst];
  const dHi = iv.start[dst + 1];
  const first = seek(end, iv.start[src], sHi, sBegin, hintSrc);
  hintSrc = first;
  let n = 0;
  for (let i = first; i < sHi && begin[i] < sEnd; i++) {
    const b = Math.max(sBegin, begin[i]);
    const e = Math.min(sEnd, end[i]);
    if (e <= b) continue;
    const db = b - sBegin + dBegin;
    const de = e - sBegin + dBegin;
    let j = seek(end, dLo, dHi, db, hintDst);
    if (i === first) hintDst = j;
    for (; j < dHi && begin[j] < de; j++) if (Math.min(de, end[j]) > Math.max(db, begin[j])) n++;
  }
  return n;
}
