/**
 * Where host time goes (issue 9), timed in one run:
 *
 * - Elementwise Add, whole run: y = a + b over N floats on a full mk2 with
 *   1 worker, as `sim run` does it after compiling: draw the two random
 *   inputs, stream them in, run the Add, read y, write the run folder
 *   (outputs/y.npy and the profile; no trace or report page). Beside it, bare
 *   kernels over the same N: the WebAssembly SIMD add the Add vertex uses,
 *   a plain-JS add, and a bare pipeline doing the run's host work (draw the
 *   inputs with the same generator, the WASM add, write y.npy) on memory
 *   touched before the clock, and the same pipeline on fresh memory with y
 *   read out into a fresh array first (what any run must touch). Rates are
 *   marginal, between N = 4M and 8M.
 * - A training step of the mlp-adam example (1 worker): the engine's host time
 *   in codelets, exchange copies and host streams, and the rest (syncs, phase
 *   records, the session's feeds and anchors), per step. The copies of an
 *   exchange fused with its compute set (sim/fused.ts) count as codelets.
 *   npx tsx bench/split.ts   (these rows alone)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { open, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, loadConfigText } from '../src/config/load.js';
import { npyChunks } from '../src/report/npy.js';
import { writeRun } from '../src/report/write.js';
import { compile, run, TrainingSession } from '../src/session.js';
import { Rng } from '../src/util/random.js';
import { bindKernels, kernelModule } from '../sim/wasm/kernels.js';
import { best } from './kernels.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SMALL = 4 * 2 ** 20;
const BIG = 8 * 2 ** 20;

export interface SplitRows {
  /** Gelem/s, marginal between SMALL and BIG. */
  add: { sim: number; wasm: number; js: number; pipeline: number; fresh: number; ms: Record<'sim' | 'wasm' | 'js' | 'pipeline' | 'fresh', [number, number]> };
  /** ms per mlp-adam training step, 1 worker. */
  mlp: { step: number; compute: number; exchange: number; streams: number; rest: number };
}

/**
 * Runs per pipeline measurement, best taken: a first touch of fresh pages costs
 * far more than a copy here and varies from run to run with what the host
 * reuses, so two runs gave marginal rates that swung past zero.
 */
const RUNS = 4;
/** Gelem/s between SMALL and BIG; NaN when the big size did not take longer (noise: the row says so). */
const rate = ([small, big]: [number, number]) => (big > small ? (BIG - SMALL) / ((big - small) / 1000) / 1e9 : NaN);

const addConfig = (n: number) => `
name: bench-add
device: {preset: mk2}
model:
  graph:
    inputs: {a: {shape: [${n}]}, b: {shape: [${n}]}}
    nodes:
      - {op: Add, inputs: [a, b], outputs: [y]}
    outputs: [y]
inputs:
  a: {random: {distribution: uniform, low: -1, high: 1, seed: 1}}
  b: {random: {distribution: uniform, low: -1, high: 1, seed: 2}}
anchors: {y: final}
report: {trace: false, html: false}
`;

/** ms of the whole run of an Add over n floats after compiling: best of 4. */
async function simAdd(n: number, dir: string): Promise<number> {
  const compiled = await compile(loadConfigText(addConfig(n), path.join(ROOT, 'bench/bench-add.yaml')));
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await run(compiled, { workers: 1, numerics: true, steps: 1 });
    await writeRun(path.join(dir, `add-${n}-${i}`), r, 1);
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

/**
 * The bare pipeline as a simulator must run it: the inputs drawn into fresh
 * memory (a simulator's tile memory is new in each run), y read out into a
 * fresh host array (the anchor the run hands back) and written as y.npy the
 * way the run folder writes it (header, then the array's own bytes). On this
 * host a first touch of a page costs far more than a copy of it, so this is
 * the floor for the whole run; ms, best of 4.
 */
async function freshPipeline(n: number, dir: string, module: WebAssembly.Module): Promise<number> {
  const bytes = 3 * 4 * n;
  const pages = Math.ceil(bytes / 65536) + 1;
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const k = bindKernels(module, memory, bytes, pages * 65536);
    new Rng(1).fillUniform(new Float32Array(memory.buffer, 0, n), -1, 1);
    new Rng(2).fillUniform(new Float32Array(memory.buffer, 4 * n, n), -1, 1);
    k.x.add_vv(0, 4 * n, 8 * n, n);
    const y = new Float32Array(n);
    y.set(new Float32Array(memory.buffer, 8 * n, n));
    const [head, body] = npyChunks(y, [n], 'float32');
    const fh = await open(path.join(dir, `fresh-${n}-${i}.npy`), 'wx');
    try {
      await fh.write(head);
      for (let at = 0; at < body.length; ) at += (await fh.write(body, at, body.length - at)).bytesWritten;
    } finally {
      await fh.close();
    }
    min = Math.min(min, performance.now() - t0);
  }
  return min;
}

async function bareAdd(n: number, dir: string): Promise<{ wasm: number; js: number; pipeline: number; fresh: number }> {
  const bytes = 3 * 4 * n;
  const pages = Math.ceil(bytes / 65536) + 1;
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  const k = bindKernels(await kernelModule(), memory, bytes, pages * 65536);
  const a = new Float32Array(memory.buffer, 0, n);
  const b = new Float32Array(memory.buffer, 4 * n, n);
  const y = new Float32Array(memory.buffer, 8 * n, n);
  new Rng(1).fillUniform(a, -1, 1);
  new Rng(2).fillUniform(b, -1, 1);
  const wasm = best(3, () => k.x.add_vv(0, 4 * n, 8 * n, n));
  const ja = a.slice();
  const jb = b.slice();
  const jy = new Float32Array(n);
  const js = best(3, () => {
    for (let i = 0; i < n; i++) jy[i] = ja[i] + jb[i];
  });
  let pipeline = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    new Rng(1).fillUniform(a, -1, 1);
    new Rng(2).fillUniform(b, -1, 1);
    k.x.add_vv(0, 4 * n, 8 * n, n);
    const [head, body] = npyChunks(y, [n], 'float32');
    await writeFile(path.join(dir, `bare-${n}-${i}.npy`), Buffer.concat([head, body]));
    pipeline = Math.min(pipeline, performance.now() - t0);
  }
  return { wasm, js, pipeline, fresh: await freshPipeline(n, dir, await kernelModule()) };
}

async function mlpSplit(): Promise<SplitRows['mlp']> {
  const compiled = await compile(loadConfig(path.join(ROOT, 'configs/examples/mlp-adam.yaml')));
  const s = await TrainingSession.create(compiled, { workers: 1, numerics: true });
  try {
    await s.runStep();
    const h0 = { ...s.engine.hostTime };
    const steps = 20;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) await s.runStep();
    const wall = (performance.now() - t0) / steps;
    const h = s.engine.hostTime;
    const compute = (h.compute - h0.compute) / steps;
    const exchange = (h.exchange - h0.exchange) / steps;
    const streams = (h.streams - h0.streams) / steps;
    return { step: wall, compute, exchange, streams, rest: wall - compute - exchange - streams };
  } finally {
    await s.close();
  }
}

export async function hostSplit(log: (s: string) => void = () => {}): Promise<SplitRows> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tilesim-bench-split-'));
  try {
    const small = await bareAdd(SMALL, dir);
    const big = await bareAdd(BIG, dir);
    const ms = {
      sim: [await simAdd(SMALL, dir), await simAdd(BIG, dir)] as [number, number],
      wasm: [small.wasm, big.wasm] as [number, number],
      js: [small.js, big.js] as [number, number],
      pipeline: [small.pipeline, big.pipeline] as [number, number],
      fresh: [small.fresh, big.fresh] as [number, number],
    };
    const add = { sim: rate(ms.sim), wasm: rate(ms.wasm), js: rate(ms.js), pipeline: rate(ms.pipeline), fresh: rate(ms.fresh), ms };
    log(`add whole run, marginal Gelem/s: sim ${add.sim.toFixed(3)}; bare WASM ${add.wasm.toFixed(2)}, JS ${add.js.toFixed(2)}, bare pipeline ${add.pipeline.toFixed(3)}, fresh-memory pipeline ${add.fresh.toFixed(3)} (ms ${JSON.stringify(ms)})`);
    const mlp = await mlpSplit();
    log(`mlp-adam step ${mlp.step.toFixed(2)} ms: compute ${mlp.compute.toFixed(2)}, exchange ${mlp.exchange.toFixed(2)}, streams ${mlp.streams.toFixed(2)}, rest ${mlp.rest.toFixed(2)}`);
    return { add, mlp };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await hostSplit(console.log);
