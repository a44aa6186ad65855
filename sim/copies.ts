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

/** Copies i = 0 .. count - 1, column by column (byte offsets in the tiles' memories). */
export interface CopyTable {
  count: number;
  srcTile: Int32Array;
  srcOffset: Int32Array;
  dstTile: Int32Array;
  dstOffset: Int32Array;
  bytes: Int32Array;
}

/** A growable CopyTable (capacity doubles), finished into an exact-length one. */
export class CopyTableBuilder {
  private n = 0;
  private cols: Int32Array[];

  constructor(capacity = 16) {
    this.cols = Array.from({ length: 5 }, () => new Int32Array(Math.max(1, capacity)));
  }

  get count(): number {
    return this.n;
  }

  push(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, bytes: number): void {
    if (this.n === this.cols[0].length) {
      this.cols = this.cols.map((c) => {
        const grown = new Int32Array(c.length * 2);
        grown.set(c);
        return grown;
      });
    }
    const i = this.n++;
    const [a, b, c, d, e] = this.cols;
    a[i] = srcTile;
    b[i] = srcOffset;
    c[i] = dstTile;
    d[i] = dstOffset;
    e[i] = bytes;
  }

  finish(): CopyTable {
    const [srcTile, srcOffset, dstTile, dstOffset, bytes] = this.cols.map((c) => c.slice(0, this.n));
    return { count: this.n, srcTile, srcOffset, dstTile, dstOffset, bytes };
  }
}

export function copyTable(copies: readonly ExchangeCopy[]): CopyTable {
  const b = new CopyTableBuilder(copies.length);
  for (const c of copies) b.push(c.srcTile, c.srcOffset, c.dstTile, c.dstOffset, c.bytes);
  return b.finish();
}

export function copyAt(t: CopyTable, i: number): ExchangeCopy {
  return { srcTile: t.srcTile[i], srcOffset: t.srcOffset[i], dstTile: t.dstTile[i], dstOffset: t.dstOffset[i], bytes: t.bytes[i] };
}

/** The copies as records (one object each: for tests and small programs only). */
export function copyList(t: CopyTable): ExchangeCopy[] {
  return Array.from({ length: t.count }, (_, i) => copyAt(t, i));
}

/** JSON.stringify replacer for a DeviceProgram: typed-array columns become plain lists. */
export function programJsonReplacer(_key: string, value: unknown): unknown {
  return ArrayBuffer.isView(value) && !(value instanceof DataView) ? Array.from(value as Int32Array) : value;
}
