/**
 * An exchange's tile-to-tile copies as a struct of arrays: five Int32Array
 * columns instead of one JS object per copy. Whole models make millions of
 * copies (a BERT-base layer's training step about eight million); as objects
 * they dominated compile time through garbage collection. The columns pass to
 * workers and across the seam as they are (structured clone copies typed
 * arrays in one piece), and JSON output writes them as plain lists
 * (`programJsonReplacer`).
 */

/** One tile-to-tile copy, as a record: for tests, reports and small hand-written programs. */
export interface ExchangeCopy {
  srcTile: number;
  srcOffset: number;
  dstTile: number;
  dstOffset: number;
  bytes: number;
}

/**
 * Copies i = 0 .. count - 1, column by column (byte offsets in the tiles'
 * memories). A table may also have the three stride columns (all or none):
 * then row i stands for runs[i] copies of bytes[i] bytes each, run k reading
 * at srcOffset + k x srcStride and writing at dstOffset + k x dstStride, in
 * that order. A block of a matrix read row by row (a matmul's operand
 * gathered onto a tile) is one row, not one per matrix row. Without them
 * every row is one run.
 *
 * A table may also fan rows out (`fan`): the same bytes sent to several
 * tiles, as one row, not one per receiving tile. A matmul's operand block is
 * read by every tile of its row (or column) of the plan, and as a row per
 * reader it was most of a transformer layer's copy rows. Row i with
 * fan.group[i] = g >= 0 is copied to each destination j of
 * [fan.start[g], fan.start[g + 1]): tile fan.tile[j] at dstOffset[i] +
 * fan.delta[j], destination by destination (its first destination is
 * dstTile[i] itself, at delta 0). The lowering fans out only copies into
 * exchange buffers from tensors the exchange does not write, so the order of
 * the destinations cannot show.
 */
export interface CopyTable {
  count: number;
  srcTile: Int32Array;
  srcOffset: Int32Array;
  dstTile: Int32Array;
  dstOffset: Int32Array;
  /** Bytes of each run. */
  bytes: Int32Array;
  runs?: Int32Array;
  srcStride?: Int32Array;
  dstStride?: Int32Array;
  fan?: CopyFan;
}

/** Destination groups of a CopyTable's fanned-out rows (CopyTable says how they are read). */
export interface CopyFan {
  /** Per row: its group, or -1 for a row with the one destination dstTile, dstOffset. */
  group: Int32Array;
  /** Destinations of group g: [start[g], start[g + 1]). */
  start: Int32Array;
  tile: Int32Array;
  /** Bytes added to a row's dstOffset for this destination. */
  delta: Int32Array;
}

/** Destinations of row i (1 unless it is fanned out). */
export function fanOf(t: CopyTable, i: number): number {
  const g = t.fan ? t.fan.group[i] : -1;
  return g < 0 ? 1 : t.fan!.start[g + 1] - t.fan!.start[g];
}

/** Runs of row i (1 in a table without stride columns). */
export function runsOf(t: CopyTable, i: number): number {
  return t.runs ? t.runs[i] : 1;
}

/** Copies the table stands for: one per run and destination. */
export function runCount(t: CopyTable): number {
  if (!t.runs && !t.fan) return t.count;
  let n = 0;
  for (let i = 0; i < t.count; i++) n += runsOf(t, i) * fanOf(t, i);
  return n;
}

/**
 * The table with one row per run and destination, in order: a row's runs to
 * its first destination, then to the next (the table itself when it has no
 * stride columns and no fan).
 */
export function unstrided(t: CopyTable): CopyTable {
  const { runs, srcStride, dstStride, fan } = t;
  if (!fan && (!runs || !srcStride || !dstStride)) return t;
  const b = new CopyTableBuilder(runCount(t));
  for (let i = 0; i < t.count; i++) {
    const r = runs ? runs[i] : 1;
    const ss = srcStride ? srcStride[i] : 0;
    const ds = dstStride ? dstStride[i] : 0;
    const g = fan ? fan.group[i] : -1;
    if (g < 0) {
      for (let k = 0; k < r; k++) b.push(t.srcTile[i], t.srcOffset[i] + k * ss, t.dstTile[i], t.dstOffset[i] + k * ds, t.bytes[i]);
      continue;
    }
    for (let j = fan!.start[g]; j < fan!.start[g + 1]; j++) {
      for (let k = 0; k < r; k++) b.push(t.srcTile[i], t.srcOffset[i] + k * ss, fan!.tile[j], t.dstOffset[i] + fan!.delta[j] + k * ds, t.bytes[i]);
    }
  }
  return b.finish();
}

/** A column of twice the length holding `a` first: growing a builder's columns (copies, vertices, intervals). */
export function doubled<T extends Int32Array | Uint8Array | Float64Array>(a: T): T {
  const g = new (a.constructor as new (n: number) => T)(a.length * 2);
  g.set(a);
  return g;
}

/** Whether `a` holds over an eighth more than `keep` elements: worth cutting to `keep` (a closed build table). */
export function roomy(a: { length: number }, keep: number): boolean {
  return a.length > keep + (keep >> 3);
}

/** A growable CopyTable (capacity doubles), finished into an exact-length one. */
export class CopyTableBuilder {
  private n = 0;
  // Separate fields, not a list destructured per push: push runs millions of times.
  private srcTile: Int32Array;
  private srcOffset: Int32Array;
  private dstTile: Int32Array;
  private dstOffset: Int32Array;
  private bytes: Int32Array;

  constructor(capacity = 16) {
    const n = Math.max(1, capacity);
    this.srcTile = new Int32Array(n);
    this.srcOffset = new Int32Array(n);
    this.dstTile = new Int32Array(n);
    this.dstOffset = new Int32Array(n);
    this.bytes = new Int32Array(n);
  }

  get count(): number {
    return this.n;
  }

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    if (this.n === this.srcTile.length) this.grow();
    const i = this.n++;
    this.srcTile[i] = srcTile;
    this.srcOffset[i] = srcOffset;
    this.dstTile[i] = dstTile;
    this.dstOffset[i] = dstOffset;
    this.bytes[i] = bytes;
  }

  /** Per source tile, its last copy (pushMerging). */
  private lastFrom?: Map<number, number>;

  /**
   * Push, or extend the source tile's last copy when this one continues it
   * on both tiles: a tensor copied whole onto one laid out alike becomes a
   * copy per tile, not one per interval (its intervals alternate between
   * tiles in element order, so only the last copy of each tile is looked at).
   */
  pushMerging(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    const last = (this.lastFrom ??= new Map());
    const i = last.get(srcTile) ?? -1;
    if (i >= 0 && this.srcTile[i] === srcTile && this.dstTile[i] === dstTile && this.srcOffset[i] + this.bytes[i] === srcOffset && this.dstOffset[i] + this.bytes[i] === dstOffset) {
      this.bytes[i] += bytes;
      return;
    }
    last.set(srcTile, this.n);
    this.push(srcTile, srcOffset, dstTile, dstOffset, bytes);
  }

  finish(): CopyTable {
    const n = this.n;
    return { count: n, srcTile: this.srcTile.slice(0, n), srcOffset: this.srcOffset.slice(0, n), dstTile: this.dstTile.slice(0, n), dstOffset: this.dstOffset.slice(0, n), bytes: this.bytes.slice(0, n) };
  }

  private grow(): void {
    this.srcTile = doubled(this.srcTile);
    this.srcOffset = doubled(this.srcOffset);
    this.dstTile = doubled(this.dstTile);
    this.dstOffset = doubled(this.dstOffset);
    this.bytes = doubled(this.bytes);
  }
}

export function copyTable(copies: readonly ExchangeCopy[]): CopyTable {
  const b = new CopyTableBuilder(copies.length);
  for (const c of copies) b.push(c.srcTile, c.srcOffset, c.dstTile, c.dstOffset, c.bytes);
  return b.finish();
}

/** Row i as a record (its first run, for a strided row). */
export function copyAt(t: CopyTable, i: number): ExchangeCopy {
  return { srcTile: t.srcTile[i], srcOffset: t.srcOffset[i], dstTile: t.dstTile[i], dstOffset: t.dstOffset[i], bytes: t.bytes[i] };
}

/** The copies as records, one per run (one object each: for tests and small programs only). */
export function copyList(t: CopyTable): ExchangeCopy[] {
  const u = unstrided(t);
  return Array.from({ length: u.count }, (_, i) => copyAt(u, i));
}

/** JSON.stringify replacer for a DeviceProgram: typed-array columns become plain lists. */
export function programJsonReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView) ? Array.from(value as Int32Array) : value;
}
