/**
 * An exchange's copies while the graph is built: slice-to-slice (tensor,
 * element) pairs in growable Int32Array columns, not one object per copy
 * (whole models make millions; finalize resolves them into the program's
 * tile-to-tile CopyTable).
 */
import type { Slice } from './devicegraph.js';

export class SliceCopies {
  private n = 0;
  /** srcTensor, srcBegin, dstTensor, dstBegin, length (elements). */
  private cols: Int32Array[] = Array.from({ length: 5 }, () => new Int32Array(8));

  get length(): number {
    return this.n;
  }

  push(srcTensor: number, srcBegin: number, dstTensor: number, dstBegin: number, length: number): void {
    if (this.n === this.cols[0].length) {
      this.cols = this.cols.map((c) => {
        const grown = new Int32Array(c.length * 2);
        grown.set(c);
        return grown;
      });
    }
    const i = this.n++;
    this.cols[0][i] = srcTensor;
    this.cols[1][i] = srcBegin;
    this.cols[2][i] = dstTensor;
    this.cols[3][i] = dstBegin;
    this.cols[4][i] = length;
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
  size(i: number): number {
    return this.cols[4][i];
  }

  /** Copy i as slices (an object each: for tests and error messages). */
  at(i: number): { src: Slice; dst: Slice } {
    const n = this.size(i);
    return {
      src: { tensor: this.srcTensor(i), begin: this.srcBegin(i), end: this.srcBegin(i) + n },
      dst: { tensor: this.dstTensor(i), begin: this.dstBegin(i), end: this.dstBegin(i) + n },
    };
  }

  list(): { src: Slice; dst: Slice }[] {
    return Array.from({ length: this.n }, (_, i) => this.at(i));
  }
}
