/**
 * The simulated fp32 matmul against bare kernels doing the same arithmetic on
 * the same host, in one run (issue 9's targets): MatMul [S, S] x [S, S] on a
 * full mk2 with 1 and 2 workers, the WebAssembly SIMD (f32x4) kernel the AMP
 * vertex uses, on the whole problem in column panels, and a plain-JS loop with the
 * same order and fp32 roundings. Rates are marginal, between S = 512 and
 * 1024, so start-up (and per-step host work that grows as S^2) cancels out.
 * Every timing is the best of a few (simulated steps as the kernels' calls):
 * each repeats the same deterministic work, so the minimum is the least
 * disturbed by the host. npm run bench runs this file in a process of its own,
 * as a user's `sim run` is (with the C allocator tuned as `sim` tunes it,
 * src/util/host-malloc.ts): a bench process that just simulated other cases
 * carries their heap and GC state into the timings.
 *   npx tsx bench/kernels.ts [--json]   (these rows alone; --json: one JSON line)
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigText } from '../src/config/load.js';
import { compile, Session } from '../src/session.js';
import { kernelModule, bindKernels } from '../sim/wasm/kernels.js';
import { withHugePages, withMallocTuning } from '../src/util/host-malloc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SMALL = 512;
const BIG = 1024;

export interface KernelRates {
  /** GFLOP/s, marginal between SMALL and BIG. */
  sim1: number;
  sim2: number;
  wasm: number;
  /** The bare kernel on 2 threads (wasm2Ms). */
  wasm2: number;
  js: number;
  /** ms per call or step at each size, for the record. */
  ms: Record<'sim1' | 'sim2' | 'wasm' | 'wasm2' | 'js', [number, number]>;
}

const flops = (s: number) => 2 * s * s * s;
const marginal = ([small, big]: [number, number]) => (flops(BIG) - flops(SMALL)) / ((big - small) / 1000) / 1e9;

function matmulConfig(s: number): string {
  return `
name: bench-matmul
device: {preset: mk2}
model:
  graph:
    inputs: {x: {shape: [${s}, ${s}]}}
    initializers: {w: {shape: [${s}, ${s}], init: {normal: {std: 0.02, seed: 1}}}}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
report: {trace: false, html: false}
`;
}

/** ms of the best of `steps` steps of the simulated matmul, after two warm-up steps (pool start-up and view building excluded). */
async function simStep(s: number, workers: number, steps: number): Promise<number> {
  const compiled = await compile(loadConfigText(matmulConfig(s), path.join(ROOT, 'bench/bench.yaml')));
  const session = await Session.create(compiled, { workers, numerics: true });
  try {
    // Two warm-up steps: with 1 worker the steps run on the main thread, beside the collection of the compile's garbage.
    await session.runStep();
    await session.runStep();
    let min = Infinity;
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await session.runStep();
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  } finally {
    await session.close();
  }
}

function fill(x: Float32Array, seed: number): void {
  let st = seed;
  for (let i = 0; i < x.length; i++) {
    st = (Math.imul(st, 1664525) + 1013904223) >>> 0;
    x[i] = st / 2 ** 32 - 0.5;
  }
}

/** Best of `reps` timings of f, in ms (the kernels are pure: the minimum is the least disturbed). */
export function best(reps: number, f: () => void): number {
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    f();
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

/** Columns per panel of B: packed so a panel (S x 128 floats) stays in L2 while A streams past it (measured best of 16..256). */
const PANEL = 128;

/**
 * The AMP vertex's kernel on the whole problem, B packed into column panels
 * (the packing timed too): the same order and roundings per output, at
 * the host's best cache behaviour for this kernel.
 */
async function wasmMs(s: number): Promise<number> {
  const bytes = 4 * 4 * s * s;
  const pages = Math.ceil(bytes / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k = bindKernels(await kernelModule(), memory, bytes, pages * 65536);
  fill(k.f32.subarray(0, 2 * s * s), 3);
  const [a, b, out, panel] = [0, 1, 2, 3].map((i) => 4 * i * s * s);
  const w = Math.min(PANEL, s);
  return best(3, () => {
    for (let j = 0; j < s; j += w) {
      for (let c = 0; c < s; c++) k.f32.copyWithin((panel >> 2) + c * w, (b >> 2) + c * s + j, (b >> 2) + c * s + j + w);
      k.x.matmul_f32(a, panel, out + 4 * j * s, s, s, w, 4 * s, 4);
    }
  });
}

/**
 * A thread of wasm2Ms: the same kernel bound to the shared memory, running the column panels
 * [lo, hi) (each thread packs into its own panel) each time it is told to. Plain JS, evaluated.
 */
const PANEL_THREAD = `
const { parentPort, workerData: d } = require('node:worker_threads');
const k = new WebAssembly.Instance(d.module, { env: { memory: d.memory, exp: Math.exp, log: Math.log } }).exports;
const f32 = new Float32Array(d.memory.buffer);
parentPort.on('message', () => {
  const { s, w, a, b, out, panel, lo, hi } = d;
  for (let j = lo; j < hi; j += w) {
    for (let c = 0; c < s; c++) f32.copyWithin((panel >> 2) + c * w, (b >> 2) + c * s + j, (b >> 2) + c * s + j + w);
    k.matmul_f32(a, panel, out + 4 * j * s, s, s, w, 4 * s, 4);
  }
  parentPort.postMessage(0);
});`;

/**
 * The bare kernel on 2 threads, each taking half of the column panels (the host's limit for 2 pool
 * workers: on a host whose cores share caches and memory bandwidth, or are time-shared, 2 threads run
 * the same arithmetic at less than twice the rate of one). Best of 5 round trips, threads started before.
 */
async function wasm2Ms(s: number): Promise<number> {
  const { Worker } = await import('node:worker_threads');
  const w = Math.min(PANEL, s);
  const bytes = 4 * (3 * s * s + 2 * s * w);
  const pages = Math.ceil(bytes / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const module = await kernelModule();
  const f32 = new Float32Array(memory.buffer);
  fill(f32.subarray(0, 2 * s * s), 3);
  const half = Math.ceil(s / w / 2) * w;
  const threads = [0, 1].map(
    (t) =>
      new Worker(PANEL_THREAD, {
        eval: true,
        workerData: { module, memory, s, w, a: 0, b: 4 * s * s, out: 8 * s * s, panel: 4 * (3 * s * s + t * s * w), lo: t === 0 ? 0 : half, hi: t === 0 ? half : s },
      }),
  );
  const round = () => Promise.all(threads.map((th) => new Promise((done) => (th.once('message', done), th.postMessage(0)))));
  try {
    await round(); // warm-up: instantiation and first touch
    let min = Infinity;
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await round();
      min = Math.min(min, performance.now() - t0);
    }
    return min;
  } finally {
    await Promise.all(threads.map((th) => th.terminate()));
  }
}

/** out[i, :] += a[i, c] x b[c, :] for c ascending: the kernel's order and fp32 roundings, in plain JS. */
function jsMs(s: number): number {
  const a = new Float32Array(s * s);
  const b = new Float32Array(s * s);
  const out = new Float32Array(s * s);
  fill(a, 3);
  fill(b, 4);
  return best(2, () => {
    out.fill(0);
    for (let i = 0; i < s; i++) {
      const o = i * s;
      for (let c = 0; c < s; c++) {
        const x = a[o + c];
        const r = c * s;
        for (let j = 0; j < s; j++) out[o + j] += Math.fround(x * b[r + j]);
      }
    }
  });
}

export async function matmulVsKernels(log: (s: string) => void = () => {}): Promise<KernelRates> {
  const ms = {
    wasm: [await wasmMs(SMALL), await wasmMs(BIG)] as [number, number],
    wasm2: [await wasm2Ms(SMALL), await wasm2Ms(BIG)] as [number, number],
    js: [jsMs(SMALL), jsMs(BIG)] as [number, number],
    sim1: [await simStep(SMALL, 1, 6), await simStep(BIG, 1, 6)] as [number, number],
    sim2: [await simStep(SMALL, 2, 6), await simStep(BIG, 2, 6)] as [number, number],
  };
  const r = { sim1: marginal(ms.sim1), sim2: marginal(ms.sim2), wasm: marginal(ms.wasm), wasm2: marginal(ms.wasm2), js: marginal(ms.js), ms };
  log(
    `matmul ${BIG}^3 fp32 marginal GFLOP/s: sim 1 worker ${r.sim1.toFixed(2)}, 2 workers ${r.sim2.toFixed(2)}; ` +
      `bare WASM SIMD ${r.wasm.toFixed(2)} (2 threads ${r.wasm2.toFixed(2)}), plain JS ${r.js.toFixed(2)} (ms ${JSON.stringify(ms)})`,
  );
  return r;
}

/** The rates measured in a fresh process (this file run by tsx), as npm run bench takes them. */
export function matmulVsKernelsInOwnProcess(log: (s: string) => void = () => {}): KernelRates {
  // With the C allocator tuned as `sim` tunes it for a run with numerics, huge pages included (src/util/host-malloc.ts).
  const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--json'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20, env: withHugePages(withMallocTuning(process.env)) });
  const lines = out.trim().split('\n');
  for (const l of lines.slice(0, -1)) log(l);
  return JSON.parse(lines[lines.length - 1]!) as KernelRates;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const json = process.argv.includes('--json');
  const r = await matmulVsKernels(console.log);
  if (json) console.log(JSON.stringify(r));
}
