/**
 * An exchange's copies while the graph is built: slice-to-slice (tensor,
 * element) pairs in growable Int32Array columns, not one object per copy
 * (whole models make millions; finalize resolves them into the program's
 * tile-to-tile CopyTable). A copy may be strided: `runs` runs of `length`
 * elements, the source advancing by srcStride and the destination by
 * dstStride elements per run (a block of a matrix, row by row); the stride
 * columns are made at the first such copy.
 */
import { doubled, roomy } from '../../sim/copies.js';
import type { Slice } from './devicegraph.js';

export class SliceCopies {
  private n = 0;
  /** srcTensor, srcBegin, dstTensor, dstBegin, length (elements). */
  private cols: Int32Array[] = Array.from({ length: 5 }, () => new Int32Array(8));
  /** runs, srcStride, dstStride (elements), once any copy is strided. */
  private strided?: Int32Array[];
  /** Per copy, the earlier copy whose source it repeats (-1: none), once any does (repeats()). */
  private repeat?: Int32Array;

  get length(): number {
    return this.n;
  }

  push(srcTensor: number, srcBegin: number, dstTensor: number, dstBegin: number, length: number): void {
    if (this.n === this.cols[0].length) this.grow();
    const i = this.n++;
    this.cols[0][i] = srcTensor;
    this.cols[1][i] = srcBegin;
    this.cols[2][i] = dstTensor;
    this.cols[3][i] = dstBegin;
    this.cols[4][i] = length;
    if (this.strided) this.strided[0][i] = 1;
    if (this.repeat) this.repeat[i] = -1;
  }

  /** A copy of `runs` runs of `length` elements, run k from srcBegin + k x srcStride to dstBegin + k x dstStride. */
  pushStrided(srcTensor: number, srcBegin: number, dstTensor: number, dstBegin: number, length: number, runs: number, srcStride: number, dstStride: number): void {
    if (!this.strided) {
      const cap = this.cols[0].length;
      this.strided = [new Int32Array(cap).fill(1), new Int32Array(cap), new Int32Array(cap)];
    }
    this.push(srcTensor, srcBegin, dstTensor, dstBegin, length);
    const i = this.n - 1;
    this.strided[0][i] = runs;
    this.strided[1][i] = srcStride;
    this.strided[2][i] = dstStride;
  }

  /**
   * Copy i reads the same elements as the earlier copy j (the same source, runs and strides) into
   * another tile's exchange buffer: finalize may send it as one fanned-out row (sim/copies.ts).
   */
  repeats(i: number, j: number): void {
    // A star, never a chain: finalize sends copy i with copy j, which must come first and be sent itself.
    if (!(j >= 0 && j < i && i < this.n && this.repeatOf(j) < 0)) throw new Error(`internal: copy ${i} cannot repeat copy ${j} (an earlier copy that repeats none)`);
    this.repeat ??= new Int32Array(this.cols[0].length).fill(-1);
    this.repeat[i] = j;
  }

  /** The copy whose source copy i repeats, or -1. */
  repeatOf(i: number): number {
    return this.repeat ? this.repeat[i] : -1;
  }

  /** Whether any copy repeats another's source. */
  get hasRepeats(): boolean {
    return this.repeat !== undefined;
  }

  /** Columns cut to the copies held, and a little room (an exchange is closed): doubling left up to half unused. */
  trim(): void {
    const keep = this.n + 16;
    if (!roomy(this.cols[0], keep)) return;
    this.cols = this.cols.map((c) => c.slice(0, keep));
    if (this.strided) this.strided = this.strided.map((c) => c.slice(0, keep));
    if (this.repeat) this.repeat = this.repeat.slice(0, keep);
  }

  private grow(): void {
    this.cols = this.cols.map(doubled);
    if (this.strided) this.strided = this.strided.map(doubled);
    if (this.repeat) {
      const r = new Int32Array(2 * this.repeat.length).fill(-1);
      r.set(this.repeat);
      this.repeat = r;
    }
  }

  /** Move copy i's destination on by `by` elements (an exchange buffer's tile block placed, src/lower/context.ts). */
  shiftDst(i: number, by: number): void {
    this.cols[3][i] += by;
  }

  srcTensor(i: number): number {
    return this.cols[0][i];
  }
  srcBegin(i: number): number {
    return this.cols[1][i];
  }
  dstTensor(i: number): number {
    return this.cols[2][i];
  }
  dstBegin(i: number): number {
    return this.cols[3][i];
  }
  /** Elements of each run. */
  size(i: number): number {
    return this.cols[4][i];
  }
  runs(i: number): number {
    return this.strided ? this.strided[0][i] : 1;
  }
  srcStride(i: number): number {
    return this.strided ? this.strided[1][i] : 0;
  }
  dstStride(i: number): number {
    return this.strided ? this.strided[2][i] : 0;
  }

  /** Copy i as slices, one per run (objects: for tests and error messages). */
  at(i: number): { src: Slice; dst: Slice }[] {
    const n = this.size(i);
    return Array.from({ length: this.runs(i) }, (_, k) => {
      const s = this.srcBegin(i) + k * this.srcStride(i);
      const d = this.dstBegin(i) + k * this.dstStride(i);
      return { src: { tensor: this.srcTensor(i), begin: s, end: s + n }, dst: { tensor: this.dstTensor(i), begin: d, end: d + n } };
    });
  }

  list(): { src: Slice; dst: Slice }[] {
    return Array.from({ length: this.n }, (_, i) => this.at(i)).flat();
  }
}
