/**
 * The Piscina pool. Each compute phase sends one task per worker; the tasks
 * claim the phase's chunks (contiguous tile ranges balanced by elements,
 * several per worker) from a shared counter until none is left, so a stalled
 * thread does not hold the others up. Each exchange sends one task per
 * worker, its group of the exchange's copy plan (the copies into a contiguous
 * destination tile range, sim/exchange.ts), and a big tensor read to the
 * host one task per worker, its share of the tensor's intervals. Small
 * compute sets and exchanges run inline on the main thread, where a task
 * round trip (~50 us) would cost more than the work (measured: two workers
 * beat one thread from ~0.2 ms of work per task).
 *
 * An exchange and the compute set after it are one round of tasks when no
 * vertex writes bytes any copy reads and no copy reads what a copy into
 * another tile writes (sim/fused.ts checks, once): each worker copies into the
 * tiles of the chunks it claims and runs their vertices, tile by tile. Otherwise they are two rounds:
 * a worker's copies read other workers' tiles, which their compute may
 * overwrite (an in-place op whose input another tile also receives), so
 * every copy must finish before any vertex runs. Fusing those would need a
 * barrier inside the task (all workers blocked in Atomics.wait until the last
 * copy is done), which deadlocks if Piscina ever queues two of the tasks on
 * one thread and cannot be stopped by the watchdog.
 *
 * Replicas with numerics share one pool: every worker holds each replica's
 * tile memory and a task names its replica. The replicas' engines run at
 * once (src/session.ts), so while one waits for its tasks the others queue
 * theirs; R pools of `workers` threads would cost R start-ups for no more cores.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { CodeletRegistry } from './codelet.js';
import { CodeletFault, describeThrown, moduleInStack, type FaultRecord } from './faults.js';
import type { TilePlan } from './exchange.js';
import type { TensorIntervals } from './intervals.js';
import type { ComputeSet } from './program.js';
import type { WorkerInit, WorkerTask } from './worker.js';
import { shareColumns } from './shared-columns.js';
import { vertexCodelet, vertexElementsAt } from './vertex-table.js';

/** Chunks of a compute set per worker (TilePool.chunksOf): enough to even out a thread that stalls, few enough to cost nothing. */
export const CHUNKS_PER_WORKER = 8;

/** Elements below which a compute set runs on the main thread (~0.2 ms at 0.6 G elements/s). */
export const INLINE_ELEMENTS = 131072;

export class TilePool {
  private readonly piscina: Piscina;
  /** Each compute set's chunk bounds (chunksOf). */
  private readonly chunks = new Map<number, number[]>();
  /** An error a worker threw between tasks, and the compute set that ran last. */
  private late: unknown;
  private lastRun: ComputeSet | undefined;
  /** A fault was already thrown: destroy() does not throw another. */
  private failed = false;
  private destroyed = false;
  /** The fault that stopped the pool (a watchdog timeout): what every replica's pending run reports. */
  private fatal: FaultRecord | undefined;
  /** Engines still using the pool (one per replica); the last release destroys it. */
  private users: number;
  /** Run once the threads are gone: the users' memories may then be reused (sim/memory.ts). */
  private readonly afterDestroy: (() => void)[] = [];

  private constructor(
    piscina: Piscina,
    readonly workers: number,
    private readonly init: WorkerInit,
    private readonly codelets: CodeletRegistry,
  ) {
    this.piscina = piscina;
    this.users = init.replicas.length;
  }

  /**
   * `codelets`: the main thread's registry, to name the module of a codelet
   * whose thread died. `init.replicas`: each replica's memory; each replica's
   * engine uses the pool and releases it (release()).
   */
  static async start(workers: number, init: Omit<WorkerInit, 'progress' | 'slots' | 'claims'>, codelets: CodeletRegistry): Promise<TilePool> {
    // The vertex tables into shared memory, once: every worker maps them (a structured clone of
    // workerData copies an ordinary ArrayBuffer per worker, not a SharedArrayBuffer). Exchanges reach
    // the workers as copy-plan records in the replicas' shared memory already (sim/exchange.ts).
    shareColumns(init.computeSets.map((cs) => cs.vertices));
    const fromSource = import.meta.url.endsWith('.ts');
    const filename = fileURLToPath(new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url));
    // Running from our TypeScript sources (tests, scripts/sim.ts), workers load them through tsx; a
    // codelet module's `import 'tilesim/device'` resolves to the running copy by location
    // (sim/resolve-tilesim.ts). A user's .ts module in a compiled run is handled by the worker itself
    // (sim/modules.ts registers tsx there).
    const execArgv = fromSource ? ['--import', 'tsx'] : [];
    const piscina = new Piscina({
      filename,
      minThreads: workers,
      maxThreads: workers,
      idleTimeout: Infinity,
      // A progress slot per (replica, task of a compute set): the replicas' compute sets run at once.
      // A chunk counter per replica: its compute set's tasks claim chunks from it (run()).
      workerData: {
        ...init,
        progress: new SharedArrayBuffer(4 * workers * init.replicas.length),
        slots: new SharedArrayBuffer(4),
        claims: new SharedArrayBuffer(4 * init.replicas.length),
      } satisfies WorkerInit,
      execArgv,
    });
    const pool = new TilePool(piscina, workers, piscina.options.workerData as WorkerInit, codelets);
    // An error a worker throws outside a task (from a callback a codelet scheduled) would crash the
    // process as an unhandled 'error' event; keep it and fail the run with it instead.
    piscina.on('error', (e: unknown) => (pool.late ??= e));
    const loads = Array.from({ length: workers }, () =>
      (piscina.run({ type: 'load' } satisfies WorkerTask) as Promise<FaultRecord | null>).catch(
        (e: unknown): FaultRecord => ({ kind: 'import', what: `a pool worker died while loading the codelets of ${init.modules.join(', ') || 'tilesim'}: ${describeThrown(e)}` }),
      ),
    );
    const fault = (await Promise.all(loads)).find((e) => e !== null);
    if (fault) {
      await piscina.destroy();
      // A thread that died loading more than one module cannot say which; with one, that one is to blame.
      throw new CodeletFault(fault.module === undefined && init.modules.length === 1 && fault.kind === 'import' ? { ...fault, module: init.modules[0] } : fault);
    }
    return pool;
  }

  /** Whether a compute set is worth sending to the pool. */
  static worthIt(cs: ComputeSet, inlineBelow = INLINE_ELEMENTS): boolean {
    let n = 0;
    for (let i = 0; i < cs.vertices.count; i++) {
      n += vertexElementsAt(cs.vertices, i);
      if (n >= inlineBelow) return true;
    }
    return inlineBelow === 0 && cs.vertices.count > 0;
  }

  /**
   * Run a compute set on the workers (`fused`: with the exchange before it,
   * each worker copying into its tiles first, sim/fused.ts). The watchdog: when it is still running
   * after `timeoutSeconds`, the pool is destroyed (terminating the threads,
   * even one stuck in an endless loop) and the vertex a busy worker was
   * running is blamed.
   */
  async run(cs: ComputeSet, timeoutSeconds = Infinity, fused?: TilePlan, replica = 0): Promise<void> {
    this.throwLate();
    const progress = new Int32Array(this.init.progress);
    const running = new Set<number>();
    const bounds = this.chunksOf(cs);
    // Fused with the exchange before it: each chunk's plan records, the copies into its tiles.
    let records: number[] | undefined;
    if (fused) {
      const tiles = fused.tileStart.length - 1;
      records = [];
      for (let k = 0; k + 1 < bounds.length; k++) {
        const a = fused.tileStart[Math.min(bounds[k], tiles)];
        const b = fused.tileStart[Math.min(bounds[k + 1], tiles)];
        records.push(fused.at + a, b - a);
      }
    }
    // Set before the tasks are posted (posting orders it before their reads).
    Atomics.store(new Int32Array(this.init.claims), replica, 0);
    const tasks = Array.from({ length: Math.min(this.workers, bounds.length - 1) }, (_, task) => {
      const slot = replica * this.workers + task;
      Atomics.store(progress, slot, -1);
      running.add(slot);
      return (this.piscina.run({ type: 'run', replica, computeSet: cs.id, bounds, slot, ...(records ? { records } : {}) } satisfies WorkerTask) as Promise<FaultRecord | null>)
        .catch(
          // The thread itself ended (process.exit from a callback, a crash): blame the vertex it was running;
          // or another replica's fault stopped the shared pool: that fault is the run's.
          (e: unknown) => this.fatal ?? this.died(cs, Atomics.load(progress, slot), e),
        )
        .finally(() => running.delete(slot));
    });
    const slots = [...running];
    let timer: NodeJS.Timeout | undefined;
    let poll: NodeJS.Timeout | undefined;
    const watchdog = new Promise<'timeout'>((resolve) => {
      if (!Number.isFinite(timeoutSeconds)) return;
      const ms = timeoutSeconds * 1000;
      const arm = () => (timer = setTimeout(() => resolve('timeout'), ms));
      // Shared by replicas, tasks may wait behind another replica's: the clock starts when one of ours starts.
      if (this.init.replicas.length === 1) arm();
      else {
        poll = setInterval(() => {
          if (!slots.some((slot) => Atomics.load(progress, slot) !== -1)) return;
          clearInterval(poll);
          arm();
        }, Math.min(1000, ms / 10));
      }
    });
    const results = await Promise.race([Promise.all(tasks), watchdog]);
    clearTimeout(timer);
    clearInterval(poll);
    if (results === 'timeout') {
      const slot = [...running][0];
      const index = Atomics.load(progress, slot);
      const v = index >= 0 && index < cs.vertices.count ? { codelet: vertexCodelet(cs.vertices, index), tile: cs.vertices.tile[index] } : undefined;
      this.failed = true;
      const record: FaultRecord = {
        kind: 'timeout',
        what: `compute() had not returned when the compute set had run for ${timeoutSeconds} s (run.vertexTimeoutSeconds); the run was stopped`,
        ...(v ? { codelet: v.codelet, module: this.codelets.moduleOf(v.codelet), tile: v.tile } : {}),
        computeSet: cs.name,
        op: cs.op,
      };
      // Set before the threads end, so the other replicas' tasks, rejected by it, report this fault and not a dead worker.
      this.fatal = record;
      await this.destroy();
      throw new CodeletFault(record);
    }
    const fault = results.find((e) => e !== null);
    if (fault) {
      this.failed = true;
      throw new CodeletFault(fault);
    }
    this.lastRun = cs;
    this.throwLate();
  }

  private throwLate(): void {
    if (this.late === undefined) return;
    this.failed = true;
    throw new CodeletFault(this.lateThrow(this.late, moduleInStack(this.late, this.init.modules)));
  }

  /** A codelet's callback that outlived its vertex threw `e` (from `module`, when its stack names one). */
  private lateThrow(e: unknown, module: string | undefined): FaultRecord {
    const cs = this.lastRun;
    return { kind: 'died', what: `a pool worker threw ${describeThrown(e)} outside any vertex (from a callback scheduled by a codelet?)${cs ? `, after compute set '${cs.name}'` : ''}`, module };
  }

  /**
   * A worker that died in a task of the pool's own (copies, reads): an error thrown from a custom module's
   * code is a late throw landing in the next task (between tasks the 'error' event reports it: throwLate),
   * anything else the pool's own failure.
   */
  private diedInTask(e: unknown, what: string, op?: string): FaultRecord {
    if (this.fatal) return this.fatal;
    const module = moduleInStack(e, this.init.modules);
    return module !== undefined ? this.lateThrow(e, module) : { kind: 'died', what: `${what} died (${describeThrown(e)})`, ...(op ? { op } : {}) };
  }

  private died(cs: ComputeSet, index: number, e: unknown): FaultRecord {
    const what = `the pool worker running it died (${describeThrown(e)})`;
    const v = index >= 0 && index < cs.vertices.count ? { codelet: vertexCodelet(cs.vertices, index), tile: cs.vertices.tile[index] } : undefined;
    // Thrown from a custom module other than this vertex's (or with no vertex running): a late throw.
    const thrower = moduleInStack(e, this.init.modules);
    if (thrower !== undefined && (!v || this.codelets.moduleOf(v.codelet) !== thrower)) return this.lateThrow(e, thrower);
    if (!v) return { kind: 'died', what, computeSet: cs.name, op: cs.op };
    return { kind: 'died', what, codelet: v.codelet, module: this.codelets.moduleOf(v.codelet), tile: v.tile, computeSet: cs.name, op: cs.op };
  }


  /** Run copy-plan groups [at, at + n) at once, one task each (an exchange, sim/exchange.ts). */
  async runCopies(groups: [number, number][], exchange: { name: string; op: string }, replica = 0): Promise<void> {
    this.throwLate();
    const results = await Promise.all(
      groups.map(([at, n]) =>
        (this.piscina.run({ type: 'copies', replica, at, n } satisfies WorkerTask) as Promise<FaultRecord | null>).catch(
          (e: unknown): FaultRecord => this.diedInTask(e, `the pool worker copying exchange '${exchange.name}'`, exchange.op),
        ),
      ),
    );
    const fault = results.find((e) => e !== null);
    if (fault) {
      this.failed = true;
      throw new CodeletFault(fault);
    }
    this.throwLate();
  }

  /**
   * Read a tensor's intervals into `dest` (element begin at byte begin x
   * size), one task per worker with about equal bytes each: the main thread
   * would write every page of a fresh host array alone (sim/engine.ts).
   */
  async read(iv: TensorIntervals, size: number, dest: SharedArrayBuffer, tensor: string, replica = 0): Promise<void> {
    this.throwLate();
    let total = 0;
    for (let i = 0; i < iv.count; i++) total += iv.end[i] - iv.begin[i];
    const tasks: Promise<FaultRecord | null>[] = [];
    let lo = 0;
    let acc = 0;
    for (let w = 1; w <= this.workers && lo < iv.count; w++) {
      let hi = lo;
      const goal = (total * w) / this.workers;
      while (hi < iv.count && (acc < goal || w === this.workers)) acc += iv.end[hi] - iv.begin[hi++];
      const part = (c: Int32Array) => c.slice(lo, hi);
      const task: WorkerTask = { type: 'read', replica, dest, size, tile: part(iv.tile), offset: part(iv.offset), begin: part(iv.begin), end: part(iv.end) };
      tasks.push(
        (this.piscina.run(task) as Promise<FaultRecord | null>).catch(
          (e: unknown): FaultRecord => this.diedInTask(e, `the pool worker reading tensor '${tensor}' to the host`),
        ),
      );
      lo = hi;
    }
    const fault = (await Promise.all(tasks)).find((e) => e !== null);
    if (fault) {
      this.failed = true;
      throw new CodeletFault(fault);
    }
    this.throwLate();
  }

  /**
   * The chunks of a compute set the workers claim, as tile bounds (chunk k:
   * tiles [bounds[k], bounds[k + 1]), the last one open-ended): contiguous tile
   * ranges of about equal elements, CHUNKS_PER_WORKER per worker. A worker
   * that finishes early takes the next chunk, so a thread that loses its core
   * for a while (a noisy host) holds up the step by one chunk, not by its
   * static share; the results do not depend on who ran which tiles.
   */
  private chunksOf(cs: ComputeSet): number[] {
    let s = this.chunks.get(cs.id);
    if (s) return s;
    const perTile = new Map<number, number>();
    let total = 0;
    for (let i = 0; i < cs.vertices.count; i++) {
      const n = vertexElementsAt(cs.vertices, i);
      const tile = cs.vertices.tile[i];
      perTile.set(tile, (perTile.get(tile) ?? 0) + n);
      total += n;
    }
    const chunks = this.workers * CHUNKS_PER_WORKER;
    s = [0];
    let acc = 0;
    const tiles = [...perTile.keys()].sort((a, b) => a - b);
    for (const t of tiles) {
      acc += perTile.get(t)!;
      if (acc >= (total * s.length) / chunks && s.length < chunks) s.push(t + 1);
    }
    s.push(Number.MAX_SAFE_INTEGER);
    this.chunks.set(cs.id, s);
    return s;
  }

  /**
   * One user (a replica's engine) is done: the last one destroys the pool.
   * `then` runs once the threads are gone (at once if they already are).
   */
  async release(then: () => void = () => undefined): Promise<void> {
    this.afterDestroy.push(then);
    if (--this.users > 0 && !this.destroyed) return;
    await this.destroy();
  }

  /** Stops every worker; a fault a worker threw after its last task still fails the run. */
  async destroy(): Promise<void> {
    if (this.destroyed) {
      this.runAfterDestroy();
      return;
    }
    this.destroyed = true;
    try {
      await this.piscina.destroy();
    } finally {
      this.runAfterDestroy();
    }
    if (!this.failed) this.throwLate();
  }

  private runAfterDestroy(): void {
    for (const f of this.afterDestroy.splice(0)) f();
  }
}
