/**
 * Pool worker: owns a tile range per task and runs the vertices of one compute
 * set on it. The top level stays trivial (Piscina swallows errors thrown while
 * a worker module loads); codelets load in an explicit first task.
 */
import { workerData } from 'node:worker_threads';
import type { CodeletRegistry } from './codelet.js';
import { VertexRunner } from './execute.js';
import { TileMemory } from './memory.js';
import { loadCodeletRegistry } from './modules.js';
import type { ComputeSet } from './program.js';

export interface WorkerInit {
  buffer: SharedArrayBuffer;
  tileBytes: number[];
  computeSets: ComputeSet[];
  modules: string[];
}

export type WorkerTask = { type: 'load' } | { type: 'run'; computeSet: number; tileLo: number; tileHi: number };

let runner: VertexRunner | undefined;
let registry: CodeletRegistry | undefined;

export default async function task(t: WorkerTask): Promise<string | null> {
  const init = workerData as WorkerInit;
  if (t.type === 'load') {
    try {
      registry = await loadCodeletRegistry(init.modules, true);
      runner = new VertexRunner(registry, new TileMemory(init.tileBytes, init.buffer));
      return null;
    } catch (e) {
      return `a pool worker could not load the codelets: ${(e as Error).message}`;
    }
  }
  if (!runner) return 'internal: pool worker used before it loaded its codelets';
  try {
    runner.run(init.computeSets[t.computeSet], t.tileLo, t.tileHi);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
