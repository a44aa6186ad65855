/**
 * Loading the WebAssembly SIMD kernels and finding them from a codelet.
 *
 * The module is assembled from WAT (kernels-wat.ts) by wabt: `npm run build`
 * writes dist/sim/wasm/kernels.wasm (scripts/build-wasm.mjs), which compiled
 * runs read; runs from the TypeScript sources (tests, tsx scripts) assemble it
 * on first use (~50 ms), so it is never stale. The main thread compiles it
 * once and hands the WebAssembly.Module to the pool workers.
 *
 * Each thread instantiates it against the tile memory (a shared
 * WebAssembly.Memory, sim/memory.ts) and registers the instance under the
 * memory's SharedArrayBuffer: a codelet given views of tile memory finds the
 * kernels through `view.buffer`, and falls back to its TypeScript reference
 * for views elsewhere (tests, timing-only runs, a memory too big for wasm32).
 * TILESIM_WASM=0 turns the kernels off (the reference everywhere).
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { ElemArray } from '../codelet.js';
import { KERNELS_WAT, type BinaryOp, type Int32Op, type UnaryOp } from './kernels-wat.js';

export type KernelExports = {
  matmul_f32(a: number, b: number, out: number, rows: number, k: number, n: number, aRowBytes: number, aColBytes: number): void;
  transpose_f32(src: number, dst: number, rows: number, cols: number): void;
  sum_parts(ptrs: number, parts: number, offsetBytes: number, out: number, n: number): void;
  relu_grad(dy: number, y: number, out: number, n: number): void;
  copies(table: number, n: number): void;
  softmax_group(x: number, xStride: number, n: number, out: number, outStride: number, k0: number, k1: number, log: number, scratch: number): void;
  softmax_grad_group(dy: number, y: number, xStride: number, n: number, out: number, outStride: number, k0: number, k1: number, log: number): void;
  ln_stats_rows(x: number, n: number, eps: number, out: number, rows: number, which: number): void;
  ln_row(x: number, n: number, eps: number, scale: number, bias: number, hasBias: number, out: number, k0: number, k1: number): void;
  ln_grad_x_row(dy: number, x: number, scale: number, n: number, eps: number, out: number, k0: number, k1: number): void;
  ln_scale_row(x: number, n: number, eps: number, dy: number, out: number, k0: number, k1: number): void;
  half_decode(src: number, out: number, n: number): void;
  random_fill(state: number, n: number, dst: number, integer: number, low: number, span: number, type: number): void;
  half_encode(src: number, out: number, n: number): void;
  reduce_partial(x: number, len: number, acc: number, cols: number, j: number, abs: number, out: number): void;
  reduce_final(ptrs: number, parts: number, out: number, n: number, scale: number): void;
  scale_f64(x: number, out: number, n: number, scale: number): void;
  conv_pack(w: number, laneBytes: number, stepBytes: number, steps: number, taps: number, lanes: number, dst: number): void;
  conv_acc8(table: number, x: number, w: number, out: number, bias: number, hasBias: number): void;
  conv_acc4(table: number, x: number, w: number, out: number, bias: number, hasBias: number): void;
  conv_acc1(table: number, x: number, w: number, out: number, bias: number, hasBias: number): void;
  channel_sum(dy: number, len: number, out: number, G: number, inner: number, g: number, j: number, gMin: number, centered: number, x: number, mean: number, variance: number, eps: number): void;
} & Record<`${BinaryOp}_${'vv' | 'vs' | 'sv'}` | `${Int32Op}_i32_${'vv' | 'vs' | 'sv'}`, (a: number, b: number, out: number, n: number) => void> &
  Record<UnaryOp, (x: number, out: number, n: number) => void>;

/** Scratch memory of one thread inside the shared memory: a bump allocator reset per vertex. */
export class Arena {
  top: number;
  constructor(
    readonly base: number,
    readonly end: number,
  ) {
    this.top = base;
  }

  /** `bytes` (rounded up to 16) of scratch, or -1 when the arena is full. */
  alloc(bytes: number): number {
    const at = this.top;
    const next = at + Math.ceil(bytes / 16) * 16;
    if (next > this.end) return -1;
    this.top = next;
    return at;
  }
}

/** The kernels bound to one tile memory on this thread. */
export class Kernels {
  readonly f32: Float32Array;
  readonly i32: Int32Array;

  constructor(
    readonly x: KernelExports,
    readonly buffer: ArrayBufferLike,
    /** This thread's scratch. */
    readonly arena: Arena,
  ) {
    this.f32 = new Float32Array(buffer);
    this.i32 = new Int32Array(buffer);
  }

  /** Byte address of a float32 (or, asked, int32) view of this memory, or -1 (another buffer, another type). */
  address(v: ElemArray, type: 'float32' | 'int32' = 'float32'): number {
    return (type === 'float32' ? v instanceof Float32Array : v instanceof Int32Array) && v.buffer === this.buffer ? v.byteOffset : -1;
  }

  /**
   * Address of `parts` when they already lie back to back in this memory
   * (one part, or regions a field lists separately that are adjacent, e.g.
   * one output row each), else -1.
   */
  contiguous(parts: readonly Float32Array[]): number {
    if (parts.length === 0 || this.address(parts[0]) < 0) return -1;
    let end = parts[0].byteOffset + parts[0].byteLength;
    for (let i = 1; i < parts.length; i++) {
      const p = parts[i];
      if (p.byteOffset !== end || p.buffer !== this.buffer) return -1;
      end += p.byteLength;
    }
    return parts[0].byteOffset;
  }

  /** Address of `parts` back to back: in place when they already are (contiguous), else copied into the arena; -1 when they cannot be. */
  stage(parts: Float32Array[]): number {
    const at0 = this.contiguous(parts);
    if (at0 >= 0) return at0;
    const at = this.arena.alloc(4 * parts.reduce((s, p) => s + p.length, 0));
    if (at < 0) return -1;
    let o = at >> 2;
    for (const p of parts) {
      this.f32.set(p, o);
      o += p.length;
    }
    return at;
  }
}

const byBuffer = new WeakMap<ArrayBufferLike, Kernels>();

/** Instantiate the kernels against `memory` on this thread, with scratch [scratchBase, scratchEnd). */
export function bindKernels(module: WebAssembly.Module, memory: WebAssembly.Memory, scratchBase: number, scratchEnd: number): Kernels {
  // exp and log are the host's (the reference codelets call Math.exp and Math.log: the same bits).
  const instance = new WebAssembly.Instance(module, { env: { memory, exp: Math.exp, log: Math.log } });
  const k = new Kernels(instance.exports as unknown as KernelExports, memory.buffer, new Arena(scratchBase, scratchEnd));
  byBuffer.set(memory.buffer, k);
  return k;
}

/** The kernels bound to the memory a view lies in, if any. */
export function kernelsFor(view: ElemArray): Kernels | undefined {
  return byBuffer.get(view.buffer);
}

let compiled: Promise<WebAssembly.Module> | undefined;
/** The compiled module once kernelModule() has resolved in this process. */
let ready: WebAssembly.Module | undefined;

export function wasmEnabled(): boolean {
  return process.env.TILESIM_WASM !== '0';
}

/** The compiled kernels, once per process. */
export function kernelModule(): Promise<WebAssembly.Module> {
  return (compiled ??= loadModule().then((m) => (ready = m)));
}

/** Bytes of the host scratch memory (random fills draw into it in chunks, then copy out). */
export const HOST_SCRATCH_BYTES = 1 << 20;
let host: Kernels | null | undefined;

/**
 * The kernels over a small memory of their own (HOST_SCRATCH_BYTES of
 * scratch), for work on host arrays: random fills (src/util/random.ts).
 * Undefined until kernelModule() has resolved in this process (the callers
 * are synchronous: they use the TypeScript loop meanwhile, the same values),
 * and with TILESIM_WASM=0.
 */
export function hostKernels(): Kernels | undefined {
  if (!wasmEnabled()) return undefined;
  if (host === undefined && ready) {
    const pages = HOST_SCRATCH_BYTES / 65536;
    try {
      host = bindKernels(ready, new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }), 0, HOST_SCRATCH_BYTES);
    } catch {
      host = null;
    }
  }
  return host ?? undefined;
}

async function loadModule(): Promise<WebAssembly.Module> {
  const built = fileURLToPath(new URL('./kernels.wasm', import.meta.url));
  const bytes = !import.meta.url.endsWith('.ts') && existsSync(built) ? await readFile(built) : await assembleKernels();
  return WebAssembly.compile(bytes);
}

/** The kernels' binary, assembled from KERNELS_WAT by wabt (a devDependency: the build and source runs have it). */
export async function assembleKernels(): Promise<Uint8Array<ArrayBuffer>> {
  const { default: wabtInit } = await import('wabt');
  const wabt = await wabtInit();
  const mod = wabt.parseWat('kernels.wat', KERNELS_WAT, { simd: true, threads: true, bulk_memory: true });
  try {
    // WebAssembly.compile validates (wabt's validate() ignores the features and refuses the shared memory).
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

/**
 * A kernel's operands when it is not lane-wise (it reads inputs across
 * elements): the kernels and the addresses of `out` and `ins`, all float32
 * views of one bound memory, and `out` overlapping none of the inputs.
 */
export function separate(out: ElemArray, ins: readonly ElemArray[]): { K: Kernels; out: number; ins: number[] } | undefined {
  const K = kernelsFor(out);
  if (!K) return undefined;
  const o = K.address(out);
  if (o < 0) return undefined;
  const end = o + out.byteLength;
  const at: number[] = [];
  for (const x of ins) {
    const p = K.address(x);
    if (p < 0 || (p < end && o < p + x.byteLength)) return undefined;
    at.push(p);
  }
  return { K, out: o, ins: at };
}

/**
 * A lane-wise kernel's operands: the kernels and the addresses of `out` and
 * `ins`, all float32 (or all int32) views of one bound memory. Undefined when one is not, or
 * when an input overlaps `out` without being exactly it (element order would
 * then show, and the reference reads each input before writing its element).
 */
export function laneWise(out: ElemArray, ins: readonly ElemArray[], type: 'float32' | 'int32' = 'float32'): { K: Kernels; out: number; ins: number[] } | undefined {
  const K = kernelsFor(out);
  if (!K) return undefined;
  const o = K.address(out, type);
  if (o < 0) return undefined;
  const end = o + out.byteLength;
  const at: number[] = [];
  for (const x of ins) {
    const p = K.address(x, type);
    if (p < 0) return undefined;
    if (p < end && o < p + x.byteLength && !(p === o && x.length === out.length)) return undefined;
    at.push(p);
  }
  return { K, out: o, ins: at };
}
