/**
 * A tensor's tile mapping as one column of numbers: range i holds elements
 * [begin(i), end(i)) on tile(i), ranges in element order, disjoint.
 *
 * A mapping is made once and never changed (mapLike shares it), and a
 * model's mappings hold hundreds of thousands of ranges (a weight gradient
 * laid out in matmul blocks has one per block row): as `{tile, begin, end}`
 * objects they were a fifth of a BERT layer's lowering heap, all long-lived,
 * traced by every major collection. Lowerings still give and take
 * `TileRange` lists (`setTileMapping`, `ctx.ranges`); iterating a mapping
 * yields ranges too.
 */
import type { TileRange } from './devicegraph.js';

export class TileMapping implements Iterable<TileRange> {
  /** tile, begin, end of each range, back to back. */
  private readonly cols: Int32Array;
  readonly length: number;

  private constructor(cols: Int32Array, length: number) {
    this.cols = cols;
    this.length = length;
  }

  /** The mapping of `ranges` as given (setTileMapping checks and orders them). */
  static of(ranges: readonly TileRange[]): TileMapping {
    const cols = new Int32Array(3 * ranges.length);
    for (let i = 0; i < ranges.length; i++) {
      const r = ranges[i];
      cols[3 * i] = r.tile;
      cols[3 * i + 1] = r.begin;
      cols[3 * i + 2] = r.end;
    }
    return new TileMapping(cols, ranges.length);
  }

  /** The mapping of columns tile, begin, end per range, back to back (taken, not copied). */
  static interleaved(cols: Int32Array): TileMapping {
    if (cols.length % 3 !== 0) throw new Error('internal: a tile mapping has three numbers per range');
    return new TileMapping(cols, cols.length / 3);
  }

  tile(i: number): number {
    return this.cols[3 * i];
  }

  begin(i: number): number {
    return this.cols[3 * i + 1];
  }

  end(i: number): number {
    return this.cols[3 * i + 2];
  }

  /** Range i as an object. */
  at(i: number): TileRange {
    return { tile: this.cols[3 * i], begin: this.cols[3 * i + 1], end: this.cols[3 * i + 2] };
  }

  /** The first range ending after element `pos` (binary search; `length` when none does). */
  firstEndingAfter(pos: number): number {
    let lo = 0;
    let hi = this.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cols[3 * mid + 2] <= pos) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Its non-empty ranges sorted by first element (ties kept in order). */
  inElementOrder(): TileMapping {
    const c = this.cols;
    let n = 0;
    for (let i = 0; i < this.length; i++) if (c[3 * i + 2] > c[3 * i + 1]) n++;
    const order = new Int32Array(n);
    const key = new Int32Array(n);
    for (let i = 0, k = 0; i < this.length; i++) {
      if (c[3 * i + 2] <= c[3 * i + 1]) continue;
      order[k] = i;
      key[k++] = c[3 * i + 1];
    }
    // A matmul's output comes block by block: its hundreds of thousands of ranges radix-sorted by first element.
    const sorted = radixOrder(key, order);
    const cols = new Int32Array(3 * n);
    for (let k = 0; k < n; k++) {
      const i = 3 * sorted[k];
      cols[3 * k] = c[i];
      cols[3 * k + 1] = c[i + 1];
      cols[3 * k + 2] = c[i + 2];
    }
    return new TileMapping(cols, n);
  }

  /** The same ranges on tiles `by` further on (a clone moved to another IPU). */
  shifted(by: number): TileMapping {
    if (by === 0) return this;
    const cols = this.cols.slice();
    for (let i = 0; i < cols.length; i += 3) cols[i] += by;
    return new TileMapping(cols, this.length);
  }

  /** Whether `other` is this mapping with its tiles moved on by `shift`, range for range. */
  equalsShifted(other: TileMapping, shift: number): boolean {
    if (other.length !== this.length) return false;
    const a = this.cols;
    const b = other.cols;
    for (let i = 0; i < a.length; i += 3) if (b[i] !== a[i] + shift || b[i + 1] !== a[i + 1] || b[i + 2] !== a[i + 2]) return false;
    return true;
  }

  /** Whether every range lies on tiles [from, to). */
  within(from: number, to: number): boolean {
    for (let i = 0; i < this.cols.length; i += 3) if (this.cols[i] < from || this.cols[i] >= to) return false;
    return true;
  }

  toArray(): TileRange[] {
    const out: TileRange[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.at(i);
    return out;
  }

  *[Symbol.iterator](): IterableIterator<TileRange> {
    for (let i = 0; i < this.length; i++) yield this.at(i);
  }
}

/** A TileMapping built range by range (a lowering's output blocks), without an object per range. */
export class TileMappingBuilder {
  private cols = new Int32Array(48);
  private n = 0;

  push(tile: number, begin: number, end: number): void {
    if (3 * this.n + 3 > this.cols.length) {
      const grown = new Int32Array(this.cols.length * 2);
      grown.set(this.cols);
      this.cols = grown;
    }
    this.cols[3 * this.n] = tile;
    this.cols[3 * this.n + 1] = begin;
    this.cols[3 * this.n + 2] = end;
    this.n++;
  }

  /** The ranges pushed, in the order pushed (setTileMapping orders and checks them). */
  finish(): TileMapping {
    return TileMapping.interleaved(this.cols.slice(0, 3 * this.n));
  }
}

/**
 * `values` ordered by `keys` (non-negative, one per value), ties in their
 * order: a least-significant-digit radix sort, 11 bits a pass, no comparator.
 */
function radixOrder(keys: Int32Array, values: Int32Array): Int32Array {
  const n = keys.length;
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, keys[i]);
  let k: Int32Array = keys;
  let v: Int32Array = values;
  let k2: Int32Array = new Int32Array(n);
  let v2: Int32Array = new Int32Array(n);
  const count = new Int32Array(2048);
  // Shifts 0, 11 and 22 cover 31 bits (`>>>` takes its count mod 32: no shift of 32 or more).
  for (let shift = 0; shift < 32 && (shift === 0 || max >>> shift > 0); shift += 11) {
    count.fill(0);
    for (let i = 0; i < n; i++) count[(k[i] >>> shift) & 2047]++;
    for (let d = 0, at = 0; d < 2048; d++) {
      const c = count[d];
      count[d] = at;
      at += c;
    }
    for (let i = 0; i < n; i++) {
      const at = count[(k[i] >>> shift) & 2047]++;
      k2[at] = k[i];
      v2[at] = v[i];
    }
    [k, k2] = [k2, k];
    [v, v2] = [v2, v];
  }
  return v;
}
