/**
 * The Piscina pool. Tiles are sharded statically over the workers: each
 * compute phase sends one task per worker, covering a contiguous tile range
 * chosen to balance the phase's elements. Small compute sets run inline on
 * the main thread, where a task round trip (~50 us) would cost more than the
 * work (measured: two workers beat one thread from ~0.2 ms of work per task).
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { vertexElements } from './codelet.js';
import type { ComputeSet } from './program.js';
import type { WorkerInit, WorkerTask } from './worker.js';

/** Elements below which a compute set runs on the main thread (~0.2 ms at 0.6 G elements/s). */
export const INLINE_ELEMENTS = 131072;

export class TilePool {
  private readonly piscina: Piscina;
  private readonly shards = new Map<number, [number, number][]>();

  private constructor(
    piscina: Piscina,
    readonly workers: number,
  ) {
    this.piscina = piscina;
  }

  static async start(workers: number, init: WorkerInit): Promise<TilePool> {
    const fromSource = import.meta.url.endsWith('.ts');
    const filename = fileURLToPath(new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url));
    // Running from our TypeScript sources (tests, scripts/sim.ts), workers load them through tsx, and
    // `import 'tilesim'` in a custom-op module resolves to the sources too. A user's .ts module in a
    // compiled run is handled by the worker itself (sim/modules.ts registers tsx there).
    const execArgv = fromSource ? ['--import', 'tsx', '--conditions=tilesim-source'] : [];
    const piscina = new Piscina({
      filename,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Infinity,
      workerData: init,
      execArgv,
    });
    const pool = new TilePool(piscina, workers);
    const errors = await Promise.all(Array.from({ length: workers }, () => piscina.run({ type: 'load' } satisfies WorkerTask)));
    const err = errors.find((e) => e !== null);
    if (err) {
      await piscina.destroy();
      throw new Error(err as string);
    }
    return pool;
  }

  /** Whether a compute set is worth sending to the pool. */
  static worthIt(cs: ComputeSet, inlineBelow = INLINE_ELEMENTS): boolean {
    let n = 0;
    for (const v of cs.vertices) {
      n += vertexElements(v);
      if (n >= inlineBelow) return true;
    }
    return inlineBelow === 0 && cs.vertices.length > 0;
  }

  async run(cs: ComputeSet): Promise<void> {
    const tasks = this.shardsOf(cs).map(([tileLo, tileHi]) =>
      this.piscina.run({ type: 'run', computeSet: cs.id, tileLo, tileHi } satisfies WorkerTask),
    );
    const errors = (await Promise.all(tasks)) as (string | null)[];
    const err = errors.find((e) => e !== null);
    if (err) throw new Error(err);
  }

  /** Contiguous tile ranges with about equal elements each. */
  private shardsOf(cs: ComputeSet): [number, number][] {
    let s = this.shards.get(cs.id);
    if (s) return s;
    const perTile = new Map<number, number>();
    let total = 0;
    for (const v of cs.vertices) {
      const n = vertexElements(v);
      perTile.set(v.tile, (perTile.get(v.tile) ?? 0) + n);
      total += n;
    }
    s = [];
    let lo = 0;
    let acc = 0;
    const tiles = [...perTile.keys()].sort((a, b) => a - b);
    for (const t of tiles) {
      acc += perTile.get(t)!;
      if (acc >= (total * (s.length + 1)) / this.workers && s.length < this.workers - 1) {
        s.push([lo, t + 1]);
        lo = t + 1;
      }
    }
    s.push([lo, Number.MAX_SAFE_INTEGER]);
    this.shards.set(cs.id, s);
    return s;
  }

  async destroy(): Promise<void> {
    await this.piscina.destroy();
  }
}
