/**
 * Every tensor's tile intervals as one struct of arrays: allocation writes
 * them in one pass and finalize's later passes (vertex fields, exchange
 * copies) read them as columns, not as a TileInterval object per interval
 * (whole models have millions). The DeviceProgram still carries each
 * tensor's intervals as records (DeviceTensor.intervals, made from these by
 * intervalRecords); the columns are the form to hand on when it carries them
 * instead.
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

/** Tensor t's intervals as records (the DeviceProgram's form). */
export function intervalRecords(iv: IntervalTable, t: number): TileInterval[] {
  const out: TileInterval[] = [];
  for (let r = iv.start[t]; r < iv.start[t + 1]; r++) out.push({ tile: iv.tile[r], begin: iv.begin[r], end: iv.end[r], offset: iv.offset[r] });
  return out;
}
