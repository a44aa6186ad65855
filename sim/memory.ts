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
 *
 * Exchange copy plans (sim/exchange.ts) live in shared memory too: records of
 * three u32 (source address, destination address, bytes), written once by the
 * main thread and read by every thread. With the kernels they follow the
 * arenas in the WebAssembly.Memory (the `copies` kernel runs them); without,
 * they are a SharedArrayBuffer of their own.
 */
import type { ElemArray } from './codelet.js';
import type { DeviceDType, Region } from './program.js';
import { DTYPE_BYTES } from './program.js';
import { bindKernels, type Arena, type Kernels } from './wasm/kernels.js';
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
  /** Copy-plan records (12 bytes each) to reserve room for: every exchange's copies. */
  planRecords?: number;
  /** The plans another thread made when they are not in `shared` (its `planShared`). */
  sharedPlans?: SharedArrayBuffer;
}

/** Bytes of one copy-plan record: source address, destination address, bytes (u32 each). */
export const PLAN_RECORD_BYTES = 12;

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

/**
 * One released tile memory (Engine.destroy), kept for the next TileMemory of
 * the same page count in this process (a bench, a sweep, a test run that
 * compiles once and runs again). A fresh memory's pages are faulted in by
 * their first write, which costs several times a memset; a kept one only has
 * the bytes its last user could have written zeroed (`used`), so a new
 * memory reads as zeros either way. One is held at a time, up to SPARE_BYTES.
 */
let spare: { memory: WebAssembly.Memory; pages: number; used: number } | undefined;
const SPARE_BYTES = 1 << 30;

export class TileMemory {
  readonly buffer: SharedArrayBuffer;
  readonly tileBase: number[];
  /** What a pool worker needs to open the same memory. */
  readonly shared: WebAssembly.Memory | SharedArrayBuffer;
  /** This thread's scratch when the kernels are bound. */
  readonly arena: Arena | undefined;
  /** Copy-plan records, three u32 each (empty when tile memory is past 4 GiB: addresses would not fit). */
  readonly plans: Uint32Array;
  /** The plans' own buffer when they are not in tile memory's (for the workers). */
  readonly planShared: SharedArrayBuffer | undefined;
  /** Records of `plans` handed out so far (main thread). */
  private planTop = 0;
  private readonly kernels: Kernels | undefined;
  private readonly all: Uint8Array;
  /** The WebAssembly.Memory this thread made (not one opened from another thread's), for release(). */
  private own: { memory: WebAssembly.Memory; pages: number; used: number } | undefined;

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
    const planBytes = Math.ceil(((o.planRecords ?? 0) * PLAN_RECORD_BYTES) / PAGE) * PAGE;
    const plansAt = tilesEnd + threads * arena;
    let memory = o.shared;
    if (!memory && o.kernels) {
      // Plans that would take the memory past wasm32's 4 GiB are left out (exchanges then copy one by one).
      const withPlans = (plansAt + planBytes) / PAGE;
      const pages = withPlans <= MAX_PAGES ? withPlans : plansAt / PAGE;
      // Past wasm32's 4 GiB, or if the host refuses the reservation: a plain buffer, and the TypeScript codelets.
      if (spare?.pages === pages) {
        memory = spare.memory;
        // In 8-byte words (used is whole pages): a byte fill of a shared buffer stores byte by byte, several times slower.
        new Float64Array(memory.buffer, 0, spare.used / 8).fill(0);
        spare = undefined;
      } else if (pages <= MAX_PAGES) {
        try {
          memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        } catch {
          memory = undefined;
        }
      }
      // Everything this memory's users may write: the tiles, the arenas, the plans.
      if (memory) this.own = { memory, pages, used: Math.min(plansAt + planBytes, pages * PAGE) };
    }
    memory ??= new SharedArrayBuffer(Math.max(total, BASE_ALIGN));
    this.shared = memory;
    this.buffer = memory instanceof SharedArrayBuffer ? memory : (memory.buffer as unknown as SharedArrayBuffer);
    this.all = new Uint8Array(this.buffer);
    if (o.kernels && !(memory instanceof SharedArrayBuffer)) {
      const base = tilesEnd + (o.slot ?? 0) * arena;
      this.kernels = bindKernels(o.kernels, memory, base, base + arena);
      this.arena = this.kernels.arena;
      // The room the memory has (its maker may have left the plans out): every thread sees the same.
      this.plans = new Uint32Array(this.buffer, plansAt, Math.max(0, Math.min(planBytes, this.buffer.byteLength - plansAt)) / 4);
    } else if (total <= 2 ** 32) {
      this.planShared = o.sharedPlans ?? new SharedArrayBuffer(Math.max(planBytes, 4));
      this.plans = new Uint32Array(this.planShared);
    } else {
      this.plans = new Uint32Array(0);
    }
  }

  /**
   * Done with this memory (its maker, once no thread runs over it): it may back the next TileMemory of
   * its size, zeroed. Nothing may read or write it afterwards.
   */
  release(): void {
    if (this.own && this.own.used <= SPARE_BYTES) spare = this.own;
    this.own = undefined;
  }

  /** Room for `n` plan records: the index of the first, or -1 when there is none (main thread). */
  allocPlan(n: number): number {
    if (3 * (this.planTop + n) > this.plans.length) return -1;
    const at = this.planTop;
    this.planTop += n;
    return at;
  }

  /** Byte address of tile memory (tile, offset): where a plan record points. */
  address(tile: number, offset: number, n: number): number {
    this.check(tile, offset, n);
    return this.tileBase[tile] + offset;
  }

  /** Run plan records [at, at + n) in order (addresses checked when the plan was made). */
  runPlan(at: number, n: number): void {
    if (n === 0) return;
    if (this.kernels) {
      this.kernels.x.copies(this.plans.byteOffset + PLAN_RECORD_BYTES * at, n);
      return;
    }
    const p = this.plans;
    const all = this.all;
    for (let i = 3 * at, end = 3 * (at + n); i < end; i += 3) {
      const s = p[i];
      all.copyWithin(p[i + 1], s, s + p[i + 2]);
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
