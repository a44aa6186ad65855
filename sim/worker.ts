/**
 * Pool worker: runs the vertices of one compute set on the tile ranges
 * (chunks) it claims, until none is left (in the tile memory of the task's replica: replicas with numerics
 * share one pool, each with its own memory) (with, when fused, the exchange's
 * copies into those tiles first, tile by tile: sim/fused.ts), or its group of
 * an exchange's copies (the copies into its tiles, sim/exchange.ts: records in
 * shared memory, planned once by the main thread), or its part of a big
 * tensor read to the host (Engine.readToHost). The top level stays trivial
 * (Piscina swallows errors thrown while a worker module loads); codelets load
 * in an explicit first task. Faults come back as plain FaultRecords (null:
 * the task ran), rebuilt by the pool.
 */
import { workerData } from 'node:worker_threads';
import { VertexRunner } from './execute.js';
import { CodeletFault, describeThrown, type FaultRecord } from './faults.js';
import { runFused } from './fused.js';
import { TileMemory } from './memory.js';
import { loadCodeletRegistry } from './modules.js';
import type { ComputeSet } from './program.js';

/** One replica's memories: its tiles (a shared WebAssembly.Memory when the kernels are on) and its copy plans' own buffer, if any. */
export interface ReplicaMemory {
  memory: WebAssembly.Memory | SharedArrayBuffer;
  sharedPlans: SharedArrayBuffer | undefined;
}

export interface WorkerInit {
  /** Each replica's tile memory (one for an unreplicated run). */
  replicas: ReplicaMemory[];
  /** The compiled kernels, instantiated by each worker against `memory`. */
  kernels: WebAssembly.Module | undefined;
  /** Threads with a scratch arena: the main thread (slot 0) and the workers. */
  threads: number;
  /** Int32: the next arena slot a starting worker claims. */
  slots: SharedArrayBuffer;
  tileBytes: number[];
  /** Room for copy-plan records in tile memory (sim/memory.ts). */
  planRecords: number;
  /** Their vertex tables' columns are views of SharedArrayBuffers (TilePool.start moves them there): mapped, not copied. */
  computeSets: ComputeSet[];
  modules: string[];
  /** Int32 per task slot: index of the vertex the slot's task is running (read by the pool if the thread dies). */
  progress: SharedArrayBuffer;
  /** Int32 per replica: the next chunk of the running compute set a worker claims (TilePool.run). */
  claims: SharedArrayBuffer;
}

export type WorkerTask =
  | { type: 'load' }
  /**
   * Chunk k is tiles [bounds[k], bounds[k + 1]); the worker runs the chunks it claims (claims[replica]) until none
   * is left. records: when fused, chunk k's plan records into its tiles, [records[2k], + records[2k + 1]) (sim/fused.ts).
   */
  | { type: 'run'; replica: number; computeSet: number; bounds: number[]; slot: number; records?: number[] }
  /** Copy-plan records [at, at + n) (one group of an exchange's plan). */
  | { type: 'copies'; replica: number; at: number; n: number }
  /** Part of a tensor read to the host: intervals (elements [begin, end) of `size` bytes on tile at byte offset) into `dest` at begin x size. */
  | { type: 'read'; replica: number; dest: SharedArrayBuffer; size: number; tile: Int32Array; offset: Int32Array; begin: Int32Array; end: Int32Array };

/** Per replica, the runner and tile memory over its memory. */
let runners: VertexRunner[] | undefined;
let memories: TileMemory[] | undefined;

export default async function task(t: WorkerTask): Promise<FaultRecord | null> {
  const init = workerData as WorkerInit;
  if (t.type === 'load') {
    try {
      // Arenas 1 .. threads - 1 (0 is the main thread's); the pool keeps exactly that many workers.
      const slot = 1 + (Atomics.add(new Int32Array(init.slots), 0, 1) % (init.threads - 1));
      const codelets = await loadCodeletRegistry(init.modules, true);
      memories = init.replicas.map(
        (r) => new TileMemory(init.tileBytes, { shared: r.memory, kernels: init.kernels, threads: init.threads, slot, planRecords: init.planRecords, sharedPlans: r.sharedPlans }),
      );
      runners = memories.map((m) => new VertexRunner(codelets, m));
      return null;
    } catch (e) {
      if (e instanceof CodeletFault) return { ...e.record, what: `in a pool worker: ${e.record.what}` };
      return { kind: 'import', what: `a pool worker could not load the codelets: ${describeThrown(e)}` };
    }
  }
  const runner = runners?.[t.replica];
  const tiles = memories?.[t.replica];
  if (!runner || !tiles) return { kind: 'died', what: `internal: pool worker used before it loaded its codelets, or for replica ${t.replica} it has no memory of` };
  if (t.type === 'copies') {
    try {
      tiles.runPlan(t.at, t.n);
      return null;
    } catch (e) {
      return { kind: 'died', what: `internal: ${describeThrown(e)}` };
    }
  }
  if (t.type === 'read') {
    try {
      const out = new Uint8Array(t.dest);
      for (let i = 0; i < t.tile.length; i++) out.set(tiles.bytes(t.tile[i], t.offset[i], (t.end[i] - t.begin[i]) * t.size), t.begin[i] * t.size);
      return null;
    } catch (e) {
      return { kind: 'died', what: `internal: ${describeThrown(e)}` };
    }
  }
  const progress = new Int32Array(init.progress);
  try {
    const cs = init.computeSets[t.computeSet];
    const onVertex = (i: number) => Atomics.store(progress, t.slot, i);
    // Started (no vertex yet: the fused copies run first): the pool's watchdog counts from here when replicas share it.
    Atomics.store(progress, t.slot, -2);
    const claims = new Int32Array(init.claims);
    const chunks = t.bounds.length - 1;
    for (let k = Atomics.add(claims, t.replica, 1); k < chunks; k = Atomics.add(claims, t.replica, 1)) {
      const [lo, hi] = [t.bounds[k], t.bounds[k + 1]];
      if (t.records) runFused(runner, tiles, cs, lo, hi, t.records[2 * k], t.records[2 * k + 1], onVertex);
      else runner.run(cs, lo, hi, onVertex);
    }
    return null;
  } catch (e) {
    if (e instanceof CodeletFault) return e.record;
    return { kind: 'died', what: `internal: ${describeThrown(e)}` };
  }
}
