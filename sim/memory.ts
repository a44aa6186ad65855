/**
 * Tile memory: one SharedArrayBuffer holding every tile's allocated bytes
 * back to back (only what the program allocates, so an mk2-sized program
 * does not reserve 940 MB). Workers get the same buffer once, in workerData.
 */
import type { ElemArray } from './codelet.js';
import type { DeviceDType, Region } from './program.js';
import { DTYPE_BYTES } from './program.js';

const BASE_ALIGN = 8;

export class TileMemory {
  readonly buffer: SharedArrayBuffer;
  readonly tileBase: number[];
  private readonly all: Uint8Array;

  constructor(
    readonly tileBytes: readonly number[],
    buffer?: SharedArrayBuffer,
  ) {
    this.tileBase = [];
    let total = 0;
    for (const b of tileBytes) {
      this.tileBase.push(total);
      total += Math.ceil(b / BASE_ALIGN) * BASE_ALIGN;
    }
    this.buffer = buffer ?? new SharedArrayBuffer(Math.max(total, BASE_ALIGN));
    this.all = new Uint8Array(this.buffer);
  }

  /** A typed view of `count` elements at `offset` in `tile`'s memory; float16 as raw Uint16 bits. */
  view(tile: number, region: Region): ElemArray {
    const bytes = region.count * DTYPE_BYTES[region.dtype];
    if (tile < 0 || tile >= this.tileBytes.length || region.offset < 0 || region.offset + bytes > this.tileBytes[tile]) {
      throw new Error(
        `memory access out of bounds: tile ${tile}, bytes [${region.offset}, ${region.offset + bytes}) ` +
          `but the tile has ${this.tileBytes[tile] ?? 0} bytes allocated`,
      );
    }
    return makeView(region.dtype, this.buffer, this.tileBase[tile] + region.offset, region.count);
  }

  /** Copy n bytes between tiles within the one buffer (no view objects per copy: exchanges make millions). */
  copy(srcTile: number, srcOffset: number, dstTile: number, dstOffset: number, n: number): void {
    this.check(srcTile, srcOffset, n);
    this.check(dstTile, dstOffset, n);
    const from = this.tileBase[srcTile] + srcOffset;
    this.all.copyWithin(this.tileBase[dstTile] + dstOffset, from, from + n);
  }

  private check(tile: number, offset: number, n: number): void {
    if (tile < 0 || tile >= this.tileBytes.length || offset < 0 || offset + n > this.tileBytes[tile]) {
      throw new Error(`memory access out of bounds: tile ${tile}, bytes [${offset}, ${offset + n}) but the tile has ${this.tileBytes[tile] ?? 0} bytes allocated`);
    }
  }

  bytes(tile: number, offset: number, n: number): Uint8Array {
    if (tile < 0 || tile >= this.tileBytes.length || offset < 0 || offset + n > this.tileBytes[tile]) {
      throw new Error(`memory access out of bounds: tile ${tile}, bytes [${offset}, ${offset + n}) but the tile has ${this.tileBytes[tile] ?? 0} bytes allocated`);
    }
    return new Uint8Array(this.buffer, this.tileBase[tile] + offset, n);
  }
}

export function makeView(dtype: DeviceDType, buf: ArrayBufferLike, byteOffset: number, count: number): ElemArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, byteOffset, count);
    case 'int32':
      return new Int32Array(buf, byteOffset, count);
    case 'float16':
      return new Uint16Array(buf, byteOffset, count);
    case 'uint8':
      return new Uint8Array(buf, byteOffset, count);
  }
}
