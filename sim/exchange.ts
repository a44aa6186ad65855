/**
 * Running an exchange's copies: a plan made once per exchange (the first time
 * it runs), then each run is one call per thread over shared memory.
 *
 * The plan is the exchange's copies, a record per run of a strided row, as records of absolute byte addresses
 * (sim/memory.ts: source, destination, bytes; every copy bounds-checked once,
 * here), grouped by the worker that owns the destination tile: G contiguous
 * destination tile ranges with about equal work each. Each worker copies into
 * its own tiles only, reading any tile, so no thread copies every byte and no
 * worker scans the others' copies. Within a group the copies keep the
 * exchange's order.
 *
 * The exchange's meaning is its copies run in order. Groups may run at once,
 * in any order, when that cannot show: copies writing the same bytes write
 * the same tile, so one group holds them in order; a copy reading bytes that
 * another copy writes is in that copy's group when it copies into a tile of
 * the same worker. The only case left is a copy reading bytes another
 * group's copy writes: the plan looks for it (every copy whose source tile is
 * in another group than its destination, against all the destination
 * ranges) and, if there is one, keeps one group in the exchange's order, run
 * on one thread. Lowered programs never have one (liveness keeps a tensor
 * written and one read by the same step apart); hand-written ones might.
 */
import { unstrided, type CopyTable } from './copies.js';
import type { TileMemory } from './memory.js';
import type { Exchange } from './program.js';

/** Work of a copy beyond its bytes, in bytes: the per-copy cost of the copy loop (~70 ns, at ~1 byte/ns). */
export const COPY_OVERHEAD_BYTES = 64;

/**
 * Work (bytes + COPY_OVERHEAD_BYTES per copy) below which an exchange runs on
 * the main thread even with a pool: about 0.25 ms of copying, where a round
 * trip to the workers (~50 us each) stops paying.
 */
export const INLINE_COPY_WORK = 262144;

export interface ExchangePlan {
  /** Index of the first record in the memory's plans. */
  at: number;
  /** Group g is records [at + bounds[g], at + bounds[g + 1]). */
  bounds: Int32Array;
  /** Total work: bytes + COPY_OVERHEAD_BYTES per copy. */
  work: number;
}

/**
 * Plan `ex` over `groups` destination tile ranges (1: one group in the
 * exchange's order). Undefined when the memory has no room for plans (tile
 * memory past 4 GiB): the caller copies one by one.
 */
export function planExchange(ex: Exchange, memory: TileMemory, groups: number): ExchangePlan | undefined {
  // A record per run: the copy loop (and the kernel's) moves one run per record.
  const c = unstrided(ex.copies);
  const n = c.count;
  const at = memory.allocPlan(n);
  if (at < 0) return undefined;
  const tiles = memory.tileBytes.length;
  const rec = memory.plans;
  let work = 0;
  for (let i = 0; i < n; i++) work += c.bytes[i] + COPY_OVERHEAD_BYTES;

  // The group of each destination tile: contiguous ranges balanced by work.
  const groupOf = new Int32Array(tiles);
  if (groups > 1) {
    const perTile = new Float64Array(tiles);
    for (let i = 0; i < n; i++) perTile[c.dstTile[i]] += c.bytes[i] + COPY_OVERHEAD_BYTES;
    let g = 0;
    let acc = 0;
    for (let t = 0; t < tiles; t++) {
      groupOf[t] = g;
      acc += perTile[t];
      if (g < groups - 1 && acc >= (work * (g + 1)) / groups) g++;
    }
    if (crossGroupHazard(c, memory, groupOf)) groups = 1;
  }
  if (groups === 1) groupOf.fill(0);

  // Counting sort of the copies by group, stable: each group keeps the exchange's order.
  const bounds = new Int32Array(groups + 1);
  for (let i = 0; i < n; i++) bounds[groupOf[c.dstTile[i]] + 1]++;
  for (let g = 0; g < groups; g++) bounds[g + 1] += bounds[g];
  const next = bounds.slice(0, groups);
  for (let i = 0; i < n; i++) {
    const r = 3 * (at + next[groupOf[c.dstTile[i]]]++);
    const bytes = c.bytes[i];
    rec[r] = memory.address(c.srcTile[i], c.srcOffset[i], bytes);
    rec[r + 1] = memory.address(c.dstTile[i], c.dstOffset[i], bytes);
    rec[r + 2] = bytes;
  }
  return { at, bounds, work };
}

/**
 * Whether a copy reads bytes that a copy of another group writes: the sources
 * of the copies that cross groups against every destination range (sorted
 * starts and ends: the ranges overlapping [s, e) number #(start < e) - #(end <= s)).
 */
function crossGroupHazard(c: CopyTable, memory: TileMemory, groupOf: Int32Array): boolean {
  let m = 0;
  for (let i = 0; i < c.count; i++) if (c.bytes[i] > 0) m++;
  const starts = new Float64Array(m);
  const ends = new Float64Array(m);
  let cross = false;
  for (let i = 0, j = 0; i < c.count; i++) {
    if (c.bytes[i] === 0) continue;
    starts[j] = memory.tileBase[c.dstTile[i]] + c.dstOffset[i];
    ends[j++] = memory.tileBase[c.dstTile[i]] + c.dstOffset[i] + c.bytes[i];
    if (groupOf[c.srcTile[i]] !== groupOf[c.dstTile[i]]) cross = true;
  }
  if (!cross) return false;
  starts.sort();
  ends.sort();
  for (let i = 0; i < c.count; i++) {
    if (c.bytes[i] === 0 || groupOf[c.srcTile[i]] === groupOf[c.dstTile[i]]) continue;
    const s = memory.tileBase[c.srcTile[i]] + c.srcOffset[i];
    if (countBelow(starts, s + c.bytes[i]) - countBelow(ends, s + 1) > 0) return true;
  }
  return false;
}

/** Records sorted by destination tile: tile t's copies are [at + tileStart[t], at + tileStart[t + 1]), in the exchange's order. */
export interface TilePlan {
  at: number;
  tileStart: Int32Array;
  work: number;
}

/**
 * Plan `ex` tile by tile (sim/fused.ts), or undefined when a copy reads bytes
 * that a copy into another tile writes (then only the exchange's order will
 * do) or the memory has no room for plans.
 */
export function planByTile(ex: Exchange, memory: TileMemory): TilePlan | undefined {
  const tiles = memory.tileBytes.length;
  const c = unstrided(ex.copies);
  if (crossGroupHazard(c, memory, Int32Array.from({ length: tiles }, (_, t) => t))) return undefined;
  const at = memory.allocPlan(c.count);
  if (at < 0) return undefined;
  const tileStart = new Int32Array(tiles + 1);
  for (let i = 0; i < c.count; i++) tileStart[c.dstTile[i] + 1]++;
  for (let t = 0; t < tiles; t++) tileStart[t + 1] += tileStart[t];
  const next = tileStart.slice(0, tiles);
  const rec = memory.plans;
  let work = 0;
  for (let i = 0; i < c.count; i++) {
    const r = 3 * (at + next[c.dstTile[i]]++);
    const bytes = c.bytes[i];
    rec[r] = memory.address(c.srcTile[i], c.srcOffset[i], bytes);
    rec[r + 1] = memory.address(c.dstTile[i], c.dstOffset[i], bytes);
    rec[r + 2] = bytes;
    // An empty copy points at its tile's start, so destinations ascend with the tile (runFused searches them).
    if (bytes === 0) rec[r + 1] = memory.tileBase[c.dstTile[i]];
    work += bytes + COPY_OVERHEAD_BYTES;
  }
  return { at, tileStart, work };
}

/** Elements of sorted `a` below `x`. */
export function countBelow(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
