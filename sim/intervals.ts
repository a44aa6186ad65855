/**
 * Every tensor's tile intervals as one struct of arrays: allocation writes
 * them in one pass and finalize's later passes (vertex fields, exchange
 * copies) read them as columns, not as a TileInterval object per interval
 * (whole models have millions). The DeviceProgram carries each tensor's rows
 * as TensorIntervals: views of these columns, no object per interval.
 */
import type { TileInterval } from './program.js';

/**
 * Tensor t's intervals are rows start[t] .. start[t + 1] - 1, in element
 * order (sorted by begin, disjoint): elements [begin, end) on `tile` at byte
 * `offset` of its memory. A tensor with no memory has none.
 */
export interface IntervalTable {
  start: Int32Array;
  tile: Int32Array;
  begin: Int32Array;
  end: Int32Array;
  offset: Int32Array;
}

/**
 * One tensor's intervals i = 0 .. count - 1, in element order (sorted by
 * begin, disjoint): elements [begin[i], end[i]) on tile[i] at byte offset[i]
 * of its memory. DeviceTensor.intervals.
 */
export interface TensorIntervals {
  count: number;
  tile: Int32Array;
  begin: Int32Array;
  end: Int32Array;
  offset: Int32Array;
}

/** The row of tensor t's first interval whose end is after element `pos` (start[t + 1] when none): a binary search. */
export function firstRowEndingAfter(iv: IntervalTable, t: number, pos: number): number {
  return rowEndingAfter(iv.end, iv.start[t], iv.start[t + 1], pos);
}

/** The first row in [lo, hi) of `end` (ascending) whose end is after `pos`, or hi. */
export function rowEndingAfter(end: Int32Array, lo: number, hi: number, pos: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (end[mid] <= pos) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Tensor t's rows of the table, as views of its columns (the DeviceProgram's form: no copy, no object per interval). */
export function tensorIntervalRows(iv: IntervalTable, t: number): TensorIntervals {
  const a = iv.start[t];
  const b = iv.start[t + 1];
  return { count: b - a, tile: iv.tile.subarray(a, b), begin: iv.begin.subarray(a, b), end: iv.end.subarray(a, b), offset: iv.offset.subarray(a, b) };
}

/** Intervals given as records, as columns (hand-written programs, tests). */
export function tensorIntervals(records: readonly TileInterval[]): TensorIntervals {
  const n = records.length;
  const out: TensorIntervals = { count: n, tile: new Int32Array(n), begin: new Int32Array(n), end: new Int32Array(n), offset: new Int32Array(n) };
  records.forEach((r, i) => {
    out.tile[i] = r.tile;
    out.begin[i] = r.begin;
    out.end[i] = r.end;
    out.offset[i] = r.offset;
  });
  return out;
}

/** Interval i as a record. */
export function intervalAt(iv: TensorIntervals, i: number): TileInterval {
  return { tile: iv.tile[i], begin: iv.begin[i], end: iv.end[i], offset: iv.offset[i] };
}

/** The intervals as records, one object each (tests, error messages and small tools; not for whole models). */
export function intervalList(iv: TensorIntervals): TileInterval[] {
  return Array.from({ length: iv.count }, (_, i) => intervalAt(iv, i));
}

/** Elements the intervals hold. */
export function intervalElements(iv: TensorIntervals): number {
  let n = 0;
  for (let i = 0; i < iv.count; i++) n += iv.end[i] - iv.begin[i];
  return n;
}

/** Elements per tile (tiles in the order the intervals first reach them). */
export function elementsPerTile(iv: TensorIntervals): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < iv.count; i++) m.set(iv.tile[i], (m.get(iv.tile[i]) ?? 0) + iv.end[i] - iv.begin[i]);
  return m;
}
