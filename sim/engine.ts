/**
 * The BSP engine: runs a DeviceProgram's control programs over tile memory,
 * superstep by superstep, and records a Phase for every compute set,
 * exchange, sync and host stream copy.
 *
 * Syncs: one before every exchange, every stream copy, and every compute set
 * that does not directly follow an exchange (an exchange is itself entered
 * through a sync, and the compute after it needs none).
 */
import type { CodeletRegistry, ElemArray } from './codelet.js';
import { computeSetCost, exchangeCost, exchangeLinkBytes, streamCopyCycles, type PhaseCost } from './cost.js';
import { VertexRunner } from './execute.js';
import { tableCodelets } from './vertex-table.js';
import { MemoryGuard } from './memory-guard.js';
import { INLINE_COPY_WORK, planExchange, type ExchangePlan, type TilePlan } from './exchange.js';
import { copyWork, planFused, runFused } from './fused.js';
import { CodeletFault } from './faults.js';
import { runCount, unstrided } from './copies.js';
import { TileMemory, makeView } from './memory.js';
import { encodeHalf } from './half.js';
import { loadCodeletRegistry } from './modules.js';
import { TilePool } from './pool.js';
import { kernelModule, wasmEnabled } from './wasm/kernels.js';
import { DTYPE_BYTES, pipelineCycles, type ComputeSet, type DeviceProgram, type Exchange, type DeviceTensor, type HostStream, type PipelineStep, type ProgramStep, type ShardStep } from './program.js';
import type { Phase } from './profile.js';
import { allReducePhases, collectivePhases, replicaShardPhases, type CollectivePhase } from './collectives.js';
import { drawInto, isRandomDraw, Rng, type RandomDraw } from './random.js';
import { remoteCopyCycles, remoteName } from './streaming-memory.js';

export interface EngineOptions {
  /** 1 runs every vertex on the main thread; N >= 2 starts a pool of N workers. */
  workers: number;
  /** false: count cycles only, touch no data. */
  numerics: boolean;
  /**
   * Elements below which a compute set runs inline instead of on the pool (default INLINE_ELEMENTS; 0 sends
   * all, exchanges too: otherwise an exchange goes to the pool from INLINE_COPY_WORK, sim/exchange.ts).
   */
  inlineBelow?: number;
  /** The watchdog: a compute set run on the pool for longer ends the run (default DEFAULT_VERTEX_TIMEOUT_SECONDS). */
  vertexTimeoutSeconds?: number;
  /** Called after each compute set has run (with numerics), e.g. to check its outputs (run.checkFinite). */
  afterComputeSet?: (cs: ComputeSet, step: number) => void;
  /** run.checkMemory: after each compute set, check no vertex wrote outside its output regions (sim/memory-guard.ts). */
  checkMemory?: boolean;
  /**
   * A replicated program's all-reduce with numerics: resolves once every
   * replica's engine reached it and the host summed their copies of `tensor`
   * into each (src/replicas.ts). Without it (one replica, or timing only) only the cost is charged.
   */
  allReduce?: (tensor: DeviceTensor, op: string) => Promise<void>;
  /**
   * Replicated tensor sharding with numerics (ShardStep): resolves once every
   * replica reached the step and the host moved the data between the
   * replicas' `tensor` and `shard` (src/replicas.ts).
   */
  collective?: (kind: ShardStep['kind'], tensor: DeviceTensor, shard: DeviceTensor) => Promise<void>;
  /** false: never fuse an exchange with the compute set after it (sim/fused.ts; the same bytes either way). */
  fuse?: boolean;
}

/** The host's side of the streams (Poplar's connectStream). */
export interface HostIO {
  /**
   * Data for a toDevice stream, in the tensor's element type (float16 as raw bits, or as floats to be rounded);
   * or a random fill, drawn straight into the tensor's tile intervals (sim/random.ts).
   */
  toDevice(stream: HostStream, tensor: DeviceTensor): ElemArray | RandomDraw;
  /** Data arriving from a fromDevice stream (a copy the host may keep). */
  fromDevice(stream: HostStream, tensor: DeviceTensor, data: ElemArray): void;
}

/** run.vertexTimeoutSeconds when the config does not say (docs/config.md). */
export const DEFAULT_VERTEX_TIMEOUT_SECONDS = 60;

/** Host milliseconds the engine spent, by kind of work (for the bench's split of simulated work and overhead). */
export interface HostTime {
  /** Running vertices (codelets), inline or on the pool, round trips included; and the copies of an exchange fused with them (sim/fused.ts). */
  compute: number;
  /** Exchange copies run apart from a compute set. */
  exchange: number;
  /** Host streams: writing inputs, reading anchors. */
  streams: number;
}

/** The costs of a program's phases, made once however many engines (replicas) run it. */
interface ProgramCosts {
  cs: Map<number, PhaseCost>;
  ex: Map<number, PhaseCost>;
  ar: Map<number, CollectivePhase[]>;
  /** Replicated tensor sharding's steps, by kind and tensor. */
  shard: Map<string, CollectivePhase[]>;
  links: Map<number, [number, number][]>;
}
const PROGRAM_COSTS = new WeakMap<DeviceProgram, ProgramCosts>();

/** What runSteps carries from step to step: whether an exchange just ran (no sync before the compute set), the fused exchange, the open call's op names. */
interface RunState {
  afterExchange: boolean;
  fused?: { cs: number; plan: TilePlan };
  ops?: Record<string, string>;
}

/** Tensors from this size are read to the host by the workers (a task round trip, ~0.1 ms, is a fraction of faulting in 256 KiB). */
export const READ_IN_WORKERS_BYTES = 1 << 18;

export class Engine {
  readonly phases: Phase[] = [];
  readonly hostTime: HostTime = { compute: 0, exchange: 0, streams: 0 };
  private clock = 0;
  // Costs depend on the program alone: every engine of one program (the replicas) shares them (programCosts).
  private readonly csCost: Map<number, PhaseCost>;
  private readonly exCost: Map<number, PhaseCost>;
  /** Each exchange's copy plan, made the first time it runs (null: no room for plans, copy one by one). */
  private readonly exPlan = new Map<number, ExchangePlan | null>();
  /** Each exchange across IPUs: its bytes per link group of the system (Phase.links), made the first time it runs. */
  private readonly exLinks: Map<number, [number, number][]>;
  /** Whether each compute set goes to the pool (decided the first time it runs). */
  private readonly csOnPool = new Map<number, boolean>();
  /** Each all-reduced tensor's ring-step phases (sim/collectives.ts), made the first time it runs. */
  private readonly arCost: Map<number, CollectivePhase[]>;
  private readonly shardCost: Map<string, CollectivePhase[]>;
  /** Remote buffers in Streaming Memory, by tensor id (DeviceTensor.remote). */
  private readonly remote = new Map<number, Uint8Array>();
  /** Exchanges fused with the compute set after them, by exchange id (decided the first time; null: run apart). */
  private readonly fusedPlan = new Map<number, { cs: number; plan: TilePlan } | null>();

  private constructor(
    readonly program: DeviceProgram,
    readonly options: EngineOptions,
    readonly codelets: CodeletRegistry,
    readonly memory: TileMemory,
    private readonly runner: VertexRunner,
    private readonly pool: TilePool | undefined,
    /** Ids of the compute sets holding a custom-op module's vertices. */
    private readonly custom: Set<number>,
    /** Which replica's tile memory this engine's pool tasks use (the pool is shared by the replicas). */
    private readonly replica = 0,
  ) {
    if (options.numerics && options.checkMemory) this.guard = new MemoryGuard(program, codelets, memory);
    let costs = PROGRAM_COSTS.get(program);
    if (!costs) PROGRAM_COSTS.set(program, (costs = { cs: new Map(), ex: new Map(), ar: new Map(), shard: new Map(), links: new Map() }));
    this.csCost = costs.cs;
    this.exCost = costs.ex;
    this.arCost = costs.ar;
    this.shardCost = costs.shard;
    this.exLinks = costs.links;
  }

  private readonly guard: MemoryGuard | undefined;

  static async create(program: DeviceProgram, options: EngineOptions): Promise<Engine> {
    return (await Engine.createReplicas(program, options, 1))[0];
  }

  /**
   * An engine per replica of `program`, each with its own tile memory, sharing
   * one pool of `options.workers` threads (sim/pool.ts) and the phase costs.
   * `perReplica` adds options to replica r's engine (hooks only one replica needs).
   */
  static async createReplicas(program: DeviceProgram, options: EngineOptions, replicas: number, perReplica: (r: number) => Partial<EngineOptions> = () => ({})): Promise<Engine[]> {
    const codelets = await loadCodeletRegistry(program.codeletModules);
    for (const cs of program.computeSets) for (const name of tableCodelets(cs.vertices)) codelets.get(name);
    // Compute sets with a custom codelet always run on the pool, a single thread with 1 worker: there
    // the watchdog can stop a compute() that never returns, and the main thread stays free to notice.
    const custom = new Set(program.computeSets.filter((cs) => tableCodelets(cs.vertices).some((name) => codelets.moduleOf(name) !== undefined)).map((cs) => cs.id));
    // Timing only: no tile data at all (cycles come from the program alone, sim/cost.ts).
    // With numerics, tile memory is a shared WebAssembly.Memory the kernels run over, with an arena per thread.
    const kernels = options.numerics && wasmEnabled() ? await kernelModule() : undefined;
    const pooled = options.numerics && (options.workers > 1 || custom.size > 0);
    const threads = 1 + (pooled ? options.workers : 0);
    // Room for every exchange's copy plan (sim/exchange.ts), in shared memory: workers read them from there.
    const planRecords = options.numerics ? program.exchanges.reduce((n, ex) => n + runCount(ex.copies), 0) : 0;
    const memories = Array.from({ length: replicas }, () => new TileMemory(options.numerics ? program.tileBytes : program.tileBytes.map(() => 0), { kernels, threads, slot: 0, planRecords }));
    let pool: TilePool | undefined;
    try {
      pool = pooled
        ? await TilePool.start(
            options.workers,
            {
              replicas: memories.map((m) => ({ memory: m.shared, sharedPlans: m.planShared })),
              kernels,
              threads,
              tileBytes: program.tileBytes,
              planRecords,
              computeSets: program.computeSets,
              modules: program.codeletModules,
            },
            codelets,
          )
        : undefined;
    } catch (e) {
      for (const m of memories) m.release();
      throw e;
    }
    return memories.map((memory, r) => new Engine(program, { ...options, ...perReplica(r) }, codelets, memory, new VertexRunner(codelets, memory), pool, custom, r));
  }

  /** The pool its large compute sets and exchanges go to, shared by the engines of a program's replicas; none on one thread. */
  get workerPool(): TilePool | undefined {
    return this.pool;
  }

  /** Cycle of the next phase: the simulated time so far. */
  get cycles(): number {
    return this.clock;
  }

  tensorByName(name: string): DeviceTensor {
    const t = this.program.tensors.find((x) => x.name === name);
    if (!t) throw new Error(`internal: no device tensor '${name}'`);
    return t;
  }

  /**
   * Write a whole tensor from host data, or draw a random fill into it: into
   * its remote buffer when its home is Streaming Memory, else tile memory.
   */
  write(t: DeviceTensor, data: ElemArray | RandomDraw): void {
    if (isRandomDraw(data)) {
      if (!t.remote && (t.dtype === 'float32' || t.dtype === 'int32')) {
        // Each interval holds elements [begin, end): drawn in place, no host array and no copy.
        const iv = t.intervals;
        for (let i = 0; i < iv.count; i++) drawInto(this.memory.view(iv.tile[i], { offset: iv.offset[i], count: iv.end[i] - iv.begin[i], dtype: t.dtype }) as Float32Array | Int32Array, data, iv.begin[i]);
        return;
      }
      const host = t.dtype === 'int32' ? new Int32Array(data.length) : new Float32Array(data.length);
      new Rng(data.state).fillSpan(host, data.integer, data.low, data.span);
      data = host;
    }
    // Host data for a float16 tensor may come as floats: round them to float16 on the way in.
    if (t.dtype === 'float16' && !(data instanceof Uint16Array)) data = encodeHalf(data);
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (t.remote) this.remoteBuffer(t).set(src);
    else this.writeTiles(t, src);
  }

  /** Read a whole tensor into a fresh host array: from its remote buffer when its home is Streaming Memory. */
  read(t: DeviceTensor): ElemArray {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const bytes = t.remote ? this.remoteBuffer(t).slice() : this.readTiles(t);
    return makeView(t.dtype, bytes.buffer, 0, n);
  }

  /**
   * read() for a stream to the host. A big tensor on tiles is read by the
   * workers, each its share of the intervals, into shared memory: the cost of
   * a fresh host array is writing its pages the first time (page faults, ~3
   * ms per MB on the hosts measured, ten times a copy), and two threads fault
   * pages in at about twice the rate of one. The result is then a view of a
   * SharedArrayBuffer, which the host side uses like any typed array.
   */
  private async readToHost(t: DeviceTensor): Promise<ElemArray> {
    const n = t.shape.reduce((a, b) => a * b, 1);
    const size = DTYPE_BYTES[t.dtype];
    const from = this.options.inlineBelow === 0 ? 1 : READ_IN_WORKERS_BYTES;
    if (t.remote || !this.pool || this.options.workers < 2 || n * size < from) return this.read(t);
    const dest = new SharedArrayBuffer(n * size);
    await this.pool.read(t.intervals, size, dest, t.name, this.replica);
    return makeView(t.dtype, dest, 0, n);
  }

  /**
   * A tensor's tile memory, whatever its home: what the device's own
   * collectives read and write (src/replicas.ts), since a remote tensor is
   * loaded on tiles around them.
   */
  readOnTiles(t: DeviceTensor): ElemArray {
    return makeView(t.dtype, this.readTiles(t).buffer, 0, t.shape.reduce((a, b) => a * b, 1));
  }

  writeOnTiles(t: DeviceTensor, data: ElemArray): void {
    if (t.dtype === 'float16' && !(data instanceof Uint16Array)) data = encodeHalf(data);
    this.writeTiles(t, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  /** A tensor's remote buffer in Streaming Memory (zeros until stored, as tile memory starts). */
  private remoteBuffer(t: DeviceTensor): Uint8Array {
    let b = this.remote.get(t.id);
    if (!b) this.remote.set(t.id, (b = new Uint8Array(t.shape.reduce((a, c) => a * c, 1) * DTYPE_BYTES[t.dtype])));
    return b;
  }

  /** Scatter bytes over a tensor's tile intervals. */
  private writeTiles(t: DeviceTensor, src: Uint8Array): void {
    const size = DTYPE_BYTES[t.dtype];
    const iv = t.intervals;
    for (let i = 0; i < iv.count; i++) {
      this.memory.bytes(iv.tile[i], iv.offset[i], (iv.end[i] - iv.begin[i]) * size).set(src.subarray(iv.begin[i] * size, iv.end[i] * size));
    }
  }

  /** Gather a tensor's bytes from its tile intervals. */
  private readTiles(t: DeviceTensor): Uint8Array {
    const size = DTYPE_BYTES[t.dtype];
    const out = new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * size);
    const iv = t.intervals;
    for (let i = 0; i < iv.count; i++) out.set(this.memory.bytes(iv.tile[i], iv.offset[i], (iv.end[i] - iv.begin[i]) * size), iv.begin[i] * size);
    return out;
  }

  async run(name: string, io: HostIO, step: number): Promise<void> {
    const steps = this.program.programs[name];
    if (!steps) throw new Error(`internal: no control program '${name}'`);
    await this.runSteps(steps, io, step, { afterExchange: false });
  }

  private async runSteps(steps: ProgramStep[], io: HostIO, step: number, st: RunState): Promise<void> {
    // Inside a call, the function's phases are attributed to the call's ops.
    const opName = (op: string): string => st.ops?.[op] ?? op;
    for (let at = 0; at < steps.length; at++) {
      const s = steps[at];
      switch (s.kind) {
        case 'execute': {
          const cs = this.program.computeSets[s.computeSet];
          if (!st.afterExchange) this.sync(opName(cs.op), step);
          st.afterExchange = false;
          let cost = this.csCost.get(cs.id);
          if (!cost) this.csCost.set(cs.id, (cost = computeSetCost(cs, this.codelets, this.program.device)));
          if (this.options.numerics) {
            const t0 = performance.now();
            const snapshot = this.guard?.before();
            // The exchange just before, when fused with this compute set: its copies run here, tile by tile.
            const fused = st.fused?.cs === cs.id ? st.fused.plan : undefined;
            st.fused = undefined;
            try {
              if (this.pool && this.onPool(cs)) await this.pool.run(cs, this.options.vertexTimeoutSeconds ?? DEFAULT_VERTEX_TIMEOUT_SECONDS, fused, this.replica);
              else if (fused) runFused(this.runner, this.memory, cs, 0, Number.MAX_SAFE_INTEGER, fused.at, fused.tileStart[fused.tileStart.length - 1]);
              else this.runner.run(cs, 0, Number.MAX_SAFE_INTEGER);
            } catch (e) {
              throw e instanceof CodeletFault ? e.with({ step: step >= 0 ? step : undefined }) : e;
            }
            if (snapshot) this.guard!.after(cs, snapshot, this.runner, step);
            this.hostTime.compute += performance.now() - t0;
            this.options.afterComputeSet?.(cs, step);
          }
          this.record({ kind: 'compute', name: cs.name, op: opName(cs.op), cycles: cost.cycles, tiles: cost.tiles, step });
          break;
        }
        case 'exchange': {
          const ex = this.program.exchanges[s.exchange];
          let cost = this.exCost.get(ex.id);
          if (!cost) this.exCost.set(ex.id, (cost = exchangeCost(ex, this.program.device)));
          // An exchange between IPUs syncs them all first (sim/links.ts).
          this.sync(opName(ex.op), step, cost.syncCycles);
          if (this.options.numerics) {
            const next = steps[at + 1];
            const fused = next?.kind === 'execute' ? this.fusion(ex, this.program.computeSets[next.computeSet]) : undefined;
            // Fused: the compute set's run does the copies (its host time counts them as compute).
            if (fused) st.fused = fused;
            else {
              const t0 = performance.now();
              await this.copy(ex);
              this.hostTime.exchange += performance.now() - t0;
            }
          }
          this.record({ kind: 'exchange', name: ex.name, op: opName(ex.op), cycles: cost.cycles, tiles: cost.tiles, ...(cost.linkCycles !== undefined ? { links: this.linksOf(ex) } : {}), step });
          st.afterExchange = true;
          break;
        }
        case 'streamCopy': {
          const stream = this.program.streams[s.stream];
          const t = this.program.tensors[stream.tensor];
          this.sync(opName(s.op), step);
          st.afterExchange = false;
          if (this.options.numerics) {
            const t0 = performance.now();
            if (stream.direction === 'toDevice') this.write(t, io.toDevice(stream, t));
            else io.fromDevice(stream, t, await this.readToHost(t));
            this.hostTime.streams += performance.now() - t0;
          }
          const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
          this.record({ kind: 'streamCopy', name: stream.name, op: opName(s.op), cycles: streamCopyCycles(bytes, this.program.device), step });
          break;
        }
        case 'repeat':
          for (let i = 0; i < s.count; i++) await this.runSteps(s.body, io, step, st);
          break;
        case 'call': {
          const outer = st.ops;
          st.ops = s.ops;
          try {
            await this.runSteps(s.body, io, step, st);
          } finally {
            st.ops = outer;
          }
          break;
        }
        case 'allReduce': {
          const t = this.program.tensors[s.tensor];
          const rep = this.program.replication;
          if (!rep) throw new Error(`internal: an all-reduce of '${t.name}' in a program that is not replicated`);
          let phases = this.arCost.get(s.tensor);
          if (!phases) this.arCost.set(s.tensor, (phases = allReducePhases(t, this.program.device, rep, this.codelets)));
          if (this.options.numerics && this.options.allReduce) await this.options.allReduce(t, s.op);
          for (const p of phases) this.record({ ...p, op: opName(s.op), step });
          st.afterExchange = false;
          break;
        }
        case 'pipeline':
          await this.runPipeline(s, io, step, st);
          break;
        case 'reduceScatter':
        case 'allGather':
        case 'replicaShard': {
          const t = this.program.tensors[s.tensor];
          const rep = this.program.replication;
          if (!rep) throw new Error(`internal: a ${s.kind} of '${t.name}' in a program that is not replicated`);
          const key = `${s.kind}:${s.tensor}`;
          let phases = this.shardCost.get(key);
          if (!phases) {
            phases = s.kind === 'replicaShard' ? replicaShardPhases(t, this.program.device, rep, this.codelets) : collectivePhases(t, this.program.device, rep, this.codelets, s.kind);
            this.shardCost.set(key, phases);
          }
          if (this.options.numerics && this.options.collective) await this.options.collective(s.kind, t, this.program.tensors[s.shard]);
          for (const p of phases) this.record({ ...p, op: opName(s.op), step });
          st.afterExchange = false;
          break;
        }
        case 'remoteLoad':
        case 'remoteStore': {
          const t = this.program.tensors[s.tensor];
          this.sync(opName(s.op), step);
          st.afterExchange = false;
          if (this.options.numerics) {
            if (s.kind === 'remoteLoad') this.writeTiles(t, this.remoteBuffer(t));
            else this.remoteBuffer(t).set(this.readTiles(t));
          }
          this.record({ kind: 'streamingMemory', name: remoteName(s.kind, t.name), op: opName(s.op), cycles: remoteCopyCycles(t, this.program.device), step });
          break;
        }
        case 'repeatWhile':
          for (let i = 0; i < s.maxCount; i++) {
            // Every tile must agree whether to go on: one sync carries the condition.
            this.sync(opName(s.op), step);
            st.afterExchange = false;
            // Timing only: the condition is not computed, so charge every pass (an upper bound).
            if (this.options.numerics && this.read(this.program.tensors[s.condition])[0] === 0) break;
            await this.runSteps(s.body, io, step, st);
          }
          break;
        case 'switch': {
          // Every tile must agree on the branch: one sync carries the predicate.
          this.sync(opName(s.op), step);
          st.afterExchange = false;
          let taken: ProgramStep[];
          if (this.options.numerics) taken = this.read(this.program.tensors[s.condition])[0] !== 0 ? s.whenTrue : s.whenFalse;
          // Timing only: the predicate is not computed, so charge the longer branch (an upper bound).
          else taken = (await this.dryRun(s.whenTrue, io, step, st)) >= (await this.dryRun(s.whenFalse, io, step, st)) ? s.whenTrue : s.whenFalse;
          await this.runSteps(taken, io, step, st);
          break;
        }
      }
    }
  }

  /**
   * A pipeline (sim/program.ts PipelineStep): each cycle, the IPUs' lanes run
   * one after the other here but are charged side by side: each lane starts
   * at the cycle's start, the cycle lasts as long as the busiest lane, and the
   * other lanes' phases are marked overlapped. Then the IpuCopies end the cycle.
   * Running the lanes one after the other is safe: an IPU's stages read only
   * what the copies of an earlier cycle brought, or their own stash.
   */
  private async runPipeline(p: PipelineStep, io: HostIO, step: number, st: RunState): Promise<void> {
    const stageOfList = new Map<ProgramStep[], number>();
    for (const s of p.stages) for (const l of [...(s.before ?? []), s.steps, ...(s.after ?? [])]) stageOfList.set(l, s.stage);
    for (const cycle of pipelineCycles(p)) {
      const start = this.clock;
      const entered = st.afterExchange;
      let end = start;
      let busiest = -1;
      const lanes: { from: number; to: number }[] = [];
      for (const lane of cycle.lanes) {
        this.clock = start;
        const from = this.phases.length;
        const laneState = { afterExchange: entered };
        for (const list of lane.lists) {
          const before = this.phases.length;
          await this.runSteps(list, io, step, laneState);
          for (let i = before; i < this.phases.length; i++) {
            this.phases[i].lane = lane.ipu;
            this.phases[i].stage = stageOfList.get(list);
          }
        }
        lanes.push({ from, to: this.phases.length });
        if (this.clock > end || busiest < 0) {
          end = Math.max(end, this.clock);
          busiest = lanes.length - 1;
        }
      }
      lanes.forEach((l, k) => {
        if (k !== busiest) for (let i = l.from; i < l.to; i++) this.phases[i].overlapped = true;
      });
      this.clock = end;
      st.afterExchange = false;
      st.fused = undefined;
      await this.runSteps(p.copies, io, step, st);
    }
  }

  /** Cycles `steps` would take, without numerics, leaving no phases behind. */
  private async dryRun(steps: ProgramStep[], io: HostIO, step: number, st: RunState): Promise<number> {
    const clock = this.clock;
    const phases = this.phases.length;
    await this.runSteps(steps, io, step, { ...st });
    const cycles = this.clock - clock;
    this.clock = clock;
    this.phases.length = phases;
    return cycles;
  }

  /** An exchange's bytes per link group, every replica's (Phase.links), computed once. */
  private linksOf(ex: Exchange): [number, number][] {
    let links = this.exLinks.get(ex.id);
    if (!links) {
      const replicas = this.program.replication?.replicas ?? 1;
      links = [...exchangeLinkBytes(ex, this.program.device, undefined, replicas)].sort((a, b) => a[0] - b[0]);
      this.exLinks.set(ex.id, links);
    }
    return links;
  }

  /** Whether a compute set goes to the pool (decided once). */
  private onPool(cs: ComputeSet): boolean {
    let onPool = this.csOnPool.get(cs.id);
    if (onPool === undefined) {
      onPool = this.custom.has(cs.id) || (this.options.workers > 1 && TilePool.worthIt(cs, this.options.inlineBelow));
      this.csOnPool.set(cs.id, onPool);
    }
    return onPool;
  }

  /**
   * The plan fusing `ex` with `cs`, the compute set right after it (sim/fused.ts), decided once:
   * not with custom codelets or run.checkMemory; not for an exchange under
   * INLINE_COPY_WORK (its operands gain little from the cache, and its plan's
   * checks would cost more than they save; inlineBelow 0 fuses them too); and
   * not when the compute set runs inline but the exchange would go to the pool
   * (it would lose the workers' copying).
   */
  private fusion(ex: Exchange, cs: ComputeSet): { cs: number; plan: TilePlan } | undefined {
    let f = this.fusedPlan.get(ex.id);
    if (f === undefined) {
      f = null;
      const all = this.options.inlineBelow === 0;
      const big = all || copyWork(ex) >= INLINE_COPY_WORK;
      const inlineCopies = !this.pool || this.options.workers <= 1 || !big;
      if (big && this.options.fuse !== false && !this.guard && !this.custom.has(cs.id) && (this.onPool(cs) ? !!this.pool : inlineCopies)) {
        const plan = planFused(ex, cs, this.memory, this.codelets);
        if (plan) f = { cs: cs.id, plan };
      }
      this.fusedPlan.set(ex.id, f);
    }
    return f && f.cs === cs.id ? f : undefined;
  }

  /** Run an exchange's copies: on the pool, each worker the copies into its tiles, or here when small. */
  private async copy(ex: Exchange): Promise<void> {
    let plan = this.exPlan.get(ex.id);
    if (plan === undefined) {
      const groups = this.pool && this.options.workers > 1 ? this.options.workers : 1;
      plan = planExchange(ex, this.memory, groups) ?? null;
      this.exPlan.set(ex.id, plan);
    }
    if (plan === null) {
      const c = unstrided(ex.copies);
      for (let i = 0; i < c.count; i++) this.memory.copy(c.srcTile[i], c.srcOffset[i], c.dstTile[i], c.dstOffset[i], c.bytes[i]);
      return;
    }
    const b = plan.bounds;
    const groups: [number, number][] = [];
    for (let g = 0; g + 1 < b.length; g++) if (b[g + 1] > b[g]) groups.push([plan.at + b[g], b[g + 1] - b[g]]);
    const inlineBelow = this.options.inlineBelow === 0 ? 0 : INLINE_COPY_WORK;
    if (this.pool && groups.length > 1 && plan.work >= inlineBelow) await this.pool.runCopies(groups, ex, this.replica);
    else this.memory.runPlan(plan.at, b[b.length - 1]);
  }

  private sync(op: string, step: number, cycles = this.program.device.syncCycles): void {
    this.record({ kind: 'sync', name: 'sync', op, cycles, step });
  }

  private record(p: Omit<Phase, 'start'>): void {
    this.phases.push({ ...p, start: this.clock });
    this.clock += p.cycles;
  }

  async destroy(): Promise<void> {
    // Once the pool's workers are gone (after the last replica's engine), the next engine of this size may reuse the memory (sim/memory.ts).
    if (this.pool) await this.pool.release(() => this.memory.release());
    else this.memory.release();
  }
}
