/**
 * Tile memory: one shared buffer holding every tile's allocated bytes back to
 * back (only what the program allocates, so an mk2-sized program does not
 * reserve 940 MB). Workers get the same buffer once, in workerData.
 *
 * With the WebAssembly kernels (sim/wasm/kernels.ts) the buffer is a shared
 * WebAssembly.Memory's, so the kernels run over tile memory itself. After
 * the tiles it holds one scratch arena per thread that runs vertices (the
 * main thread's is slot 0, each pool worker claims one): float16 fields
 * decoded for a codelet and a kernel's staging live there, in the same memory.
 */
import type { ElemArray } from './codelet.js';
import type { DeviceDType, Region } from './program.js';
import { DTYPE_BYTES } from './program.js';
import { bindKernels, type Arena } from './wasm/kernels.js';
import { MAX_PAGES } from './wasm/kernels-wat.js';

const BASE_ALIGN = 8;
const PAGE = 65536;

export interface MemoryOptions {
  /** The compiled kernels: tile memory becomes a shared WebAssembly.Memory with scratch arenas. */
  kernels?: WebAssembly.Module;
  /** Threads that run vertices over this memory, each with an arena: the main thread and the pool workers. */
  threads?: number;
  /** This thread's arena (0: the main thread). */
  slot?: number;
  /** The memory another thread made (a pool worker's), from its `shared`. */
  shared?: WebAssembly.Memory | SharedArrayBuffer;
}

/**
 * One arena's bytes: room for every field of a vertex decoded from float16
 * (twice the tile's bytes) and a kernel's staging (joined, transposed and
 * output copies), with slack for fields that alias; a vertex that needs more
 * falls back to host arrays and the TypeScript codelet.
 */
function arenaBytes(tileBytes: readonly number[]): number {
  const max = tileBytes.reduce((m, b) => Math.max(m, b), 0);
  return Math.ceil((8 * max + PAGE) / PAGE) * PAGE;
}

export class TileMemory {
  readonly buffer: SharedArrayBuffer;
  readonly tileBase: number[];
  /** What a pool worker needs to open the same memory. */
  readonly shared: WebAssembly.Memory | SharedArrayBuffer;
  /** This thread's scratch when the kernels are bound. */
  readonly arena: Arena | undefined;
  private readonly all: Uint8Array;

  constructor(
    readonly tileBytes: readonly number[],
    options: MemoryOptions | SharedArrayBuffer = {},
  ) {
    const o: MemoryOptions = options instanceof SharedArrayBuffer ? { shared: options } : options;
    this.tileBase = [];
    let total = 0;
    for (const b of tileBytes) {
      this.tileBase.push(total);
      total += Math.ceil(b / BASE_ALIGN) * BASE_ALIGN;
    }
    const tilesEnd = Math.ceil(total / PAGE) * PAGE;
    const threads = o.threads ?? 1;
    const arena = arenaBytes(tileBytes);
    let memory = o.shared;
    if (!memory && o.kernels) {
      const pages = (tilesEnd + threads * arena) / PAGE;
      // Past wasm32's 4 GiB, or if the host refuses the reservation: a plain buffer, and the TypeScript codelets.
      if (pages <= MAX_PAGES) {
        try {
          memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        } catch {
          memory = undefined;
        }
      }
    }
    memory ??= new SharedArrayBuffer(Math.max(total, BASE_ALIGN));
    this.shared = memory;
    this.buffer = memory instanceof SharedArrayBuffer ? memory : (memory.buffer as unknown as SharedArrayBuffer);
    this.all = new Uint8Array(this.buffer);
    if (o.kernels && !(memory instanceof SharedArrayBuffer)) {
      const base = tilesEnd + (o.slot ?? 0) * arena;
      this.arena = bindKernels(o.kernels, memory, base, base + arena).arena;
    }
  }

  /** Every tile's bytes back to back (without the arenas, whose contents are scratch). */
  tileData(): Uint8Array {
    const last = this.tileBase.length - 1;
    return new Uint8Array(this.buffer, 0, last < 0 ? 0 : this.tileBase[last] + this.tileBytes[last]);
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
