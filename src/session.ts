/**
 * Sessions, the runtime: a compiled config (src/compile.ts, re-exported
 * here) run on the simulated device, batch by batch, as PopART's sessions
 * are, collecting anchors, losses and the profile; `run()` is what `sim run`
 * does, `runGraph()` one forward batch of a Graph.
 */
import type { PlanOverrides } from './lower/plan-overrides.js';
import type { ElemArray } from '../sim/codelet.js';
import { Engine, type HostIO } from '../sim/engine.js';
import { loadCodeletRegistry } from '../sim/modules.js';
import { CodeletFault } from '../sim/faults.js';
import type { Compiled } from './compile.js';
import { FiniteCheck } from './finite.js';
import type { ComputeSet, DeviceDType, DeviceProgram, DeviceTensor } from '../sim/program.js';
import type { Phase } from '../sim/profile.js';
import type { RandomDraw } from '../sim/random.js';
import type { AnchorMode } from './config/types.js';
import { RunError, UserError, closest } from './errors.js';
import type { Graph } from './ir/graph.js';
import { nelms } from './ir/tensorinfo.js';
import { lowerGraph } from './lower/lower.js';
import { inputData, materialize, type HostArray, type InputBatch } from './model/data.js';
import { checkLabels } from './model/check-labels.js';
import { isAccumulator } from './train/optimizer.js';
import { AllReduceBarrier } from './replicas.js';
import { decodeHalf, encodeHalf, halfToFloat } from '../sim/half.js';

/** Device data as host numbers: float16 bits decoded to floats. */
function hostFloats(a: ElemArray): HostArray {
  return a instanceof Uint16Array ? decodeHalf(a) : (a as HostArray);
}

export { compile, loadCodelets } from './compile.js';
export type { Compiled, CompileOptions } from './compile.js';

export interface StepReport {
  step: number;
  loss?: number;
  cycles: number;
}

export interface AnchorValue {
  shape: number[];
  dtype: 'float32' | 'int32' | 'float16';
  /** float16 anchors hold their raw bits (as written to .npy). */
  data: HostArray | Uint16Array;
}

/** How a session runs: see EngineOptions; checkFinite overrides the config's run.checkFinite. */
/** Runs of a random op between two replicas' counters (offsetRandomCounters): 2^24, 16.7 million runs before one replica's stream reaches the next's. */
export const REPLICA_COUNTER_STRIDE = 1 << 24;

export interface SessionOptions {
  workers: number;
  numerics: boolean;
  inlineBelow?: number;
  checkFinite?: boolean;
  /** Overrides the config's run.checkMemory (tests turn it on). */
  checkMemory?: boolean;
}

export interface RunOptions {
  workers: number;
  numerics: boolean;
  checkFinite?: boolean;
  checkMemory?: boolean;
  steps: number;
  /** See EngineOptions.inlineBelow (tests set 0 to push every compute set and exchange through the pool). */
  inlineBelow?: number;
  onStep?: (s: StepReport, total: number) => void;
  /** Continue from a checkpoint: its state and the reports of the steps it completed. */
  resume?: { state: SessionState; steps: StepReport[] };
  /** Called every `every` steps with the state after that step (train.checkpointEvery). */
  checkpoint?: { every: number; save: (state: SessionState, steps: StepReport[]) => Promise<void> };
}

/** A session's state between steps (Session.snapshot): what a checkpoint holds. */
export interface SessionState {
  /** Steps completed. */
  step: number;
  /** Batches consumed (input batches cycle by it). */
  batch: number;
  tensors: { name: string; dtype: DeviceDType; shape: number[]; data: ElemArray }[];
}

export interface RunResult {
  compiled: Compiled;
  steps: StepReport[];
  /** Phases of the batch programs only (weight transfers excluded). */
  phases: Phase[];
  anchors: Map<string, AnchorValue>;
  /** Final variable values. */
  weights: Map<string, HostArray>;
  wallSeconds: number;
  /** Steps a checkpoint had completed when this run resumed from it (phases cover only the steps run after). */
  resumedFrom?: number;
}

export interface StepResult extends StepReport {
  /** Anchors of this step, with PopART's return types over its batches (empty without numerics). */
  anchors: Map<string, AnchorValue>;
}

/** Data fed to a step: per streamed input, one array for every batch or one per micro-batch (one per batch without accumulation), in order. */
export type Feeds = Record<string, HostArray | HostArray[]>;

/**
 * A compiled program loaded on the simulated device, stepped from the host as
 * PopART's sessions are: run a step (batchesPerStep batches), read or write
 * the weights between steps, close. TrainingSession and InferenceSession
 * check the program is of their kind.
 */
export class Session {
  private batchIndex = 0;
  private stepIndex = 0;
  /** Per replica, each anchor's values streamed back in the current batch, one per micro-batch. */
  private received: Map<string, (HostArray | Uint16Array)[]>[] = [];
  /** Per replica, each input stream's copies so far in the current batch: its micro-batch index. */
  private streamed: Map<number, number>[] = [];
  private feeds: Feeds = {};
  private phaseStart = 0;
  /**
   * Replicated with numerics: one engine per replica (engine is replica 0's),
   * in lockstep at the all-reduces (src/replicas.ts). Otherwise just `engine`:
   * timing only runs one replica, since every replica runs the same program.
   */
  private engines: Engine[];
  private barrier: AllReduceBarrier | undefined;

  /** Every replica's engine (replica r at index r); just `engine` when not replicated or timing only. */
  get replicaEngines(): readonly Engine[] {
    return this.engines;
  }

  protected constructor(
    readonly compiled: Compiled,
    readonly engine: Engine,
    private readonly inputs: Map<string, InputBatch[]>,
    readonly numerics: boolean,
  ) {
    this.engines = [engine];
  }

  static async create(compiled: Compiled, opts: SessionOptions): Promise<Session> {
    return this.open(compiled, opts, (c, e, i, n) => new Session(c, e, i, n));
  }

  protected static async open<S extends Session>(
    compiled: Compiled,
    opts: SessionOptions,
    make: (c: Compiled, e: Engine, inputs: Map<string, InputBatch[]>, numerics: boolean) => S,
  ): Promise<S> {
    const { config, graph } = compiled;
    const inputs = new Map<string, InputBatch[]>();
    // Timing only draws no input data: nothing reads it.
    for (const t of opts.numerics ? graph.allTensors() : []) {
      if (t.kind !== 'stream') continue;
      const spec = config.inputs[t.id];
      if (!spec) continue;
      const batches = inputData(spec, t.info.shape, t.info.dtype, `inputs.${t.id}`, microBatchesPerBatch(compiled));
      const micro = microBatchesPerBatch(compiled);
      if (batches.length > 1 && batches.length % micro !== 0)
        throw new UserError(
          `inputs.${t.id}: ${batches.length} micro-batches of data do not fill whole batches of ${micro} (train.accumulationFactor x replicas); give a multiple of ${micro}, laid out [batches, accumulationFactor, replicas, ...${JSON.stringify(t.info.shape)}]`,
          spec.loc,
        );
      checkLabels(graph, t.id, () => batches.map((b) => materialize(b, t.info.dtype)), `inputs.${t.id}`, spec.loc);
      inputs.set(t.id, batches);
    }
    // run.checkFinite: on for training unless the config or the caller says otherwise.
    const checkFinite = opts.numerics && (opts.checkFinite ?? config.run.checkFinite ?? config.train !== undefined);
    // The hook needs the engine and the session, made just below.
    const late: { check?: FiniteCheck; session?: Session } = {};
    const replicas = opts.numerics ? (config.replicas ?? 1) : 1;
    const barrier = replicas > 1 ? new AllReduceBarrier() : undefined;
    // The replicas share one pool of the machine's workers (sim/pool.ts): R pools of `workers` threads
    // would cost R times the start-up (about a second a pool) for no more cores (scripts/replica-cost.ts).
    const engines = await Engine.createReplicas(
      compiled.program,
      {
        workers: opts.workers,
        numerics: opts.numerics,
        inlineBelow: opts.inlineBelow,
        vertexTimeoutSeconds: config.run.vertexTimeoutSeconds,
        checkMemory: opts.checkMemory ?? (config.run.checkMemory === true || memoryCheckedByEnv()),
        ...(barrier ? { allReduce: (t: DeviceTensor) => barrier.arrive(t), collective: (kind, t, shard) => barrier.arriveShard(kind, t, shard) } : {}),
      },
      replicas,
      (r) => (checkFinite && r === 0 ? { afterComputeSet: (cs: ComputeSet, step: number) => late.session && late.check?.after(cs, late.session.where(step)) } : {}),
    );
    const engine = engines[0];
    const session = make(compiled, engine, inputs, opts.numerics);
    session.engines = engines;
    session.barrier = barrier;
    if (barrier) barrier.engines = engines;
    if (checkFinite) late.check = new FiniteCheck(compiled, engine);
    late.session = session;
    try {
      for (const [r, en] of engines.entries()) await en.run('weightsFromHost', session.ioFor(r), -1);
      session.offsetRandomCounters();
      session.phaseStart = engine.phases.length;
    } catch (e) {
      for (const en of engines) await en.destroy();
      throw e;
    }
    return session;
  }

  private readonly ios = new Map<number, HostIO>();

  /** The host side of replica r's streams: its share of the data, its anchors. */
  private ioFor(r: number): HostIO {
    let io = this.ios.get(r);
    if (!io) this.ios.set(r, (io = this.makeIo(r)));
    return io;
  }

  private makeIo(replica: number): HostIO {
    const R = this.replicas;
    return {
    toDevice: (s: { id: number }, d: DeviceTensor): ElemArray | RandomDraw => {
      const id = this.compiled.streamTensor.get(s.id)!;
      const t = this.compiled.graph.tensor(id);
      // A sharded weight or accumulator: the replica's fragment of the whole value.
      if (t.kind !== 'stream') return fragment(d, t.data ?? new Float32Array(nelms(t.info.shape)), replica, R);
      // Host data is laid out [batchesPerStep, accumulationFactor, replicas, microBatch, ...] (PopART's order).
      const streamed = (this.streamed[replica] ??= new Map());
      const micro = streamed.get(s.id) ?? 0;
      streamed.set(s.id, micro + 1);
      const index = this.batchIndex * microBatchesPerBatch(this.compiled) + micro * R + replica;
      const fed = this.feeds[id];
      if (fed) return Array.isArray(fed) ? fed[index % fed.length] : fed;
      const batches = this.inputs.get(id);
      if (!batches) throw new UserError(`no data for graph input '${id}': give it in the config's inputs or in the step's feeds`);
      return batches[index % batches.length];
    },
    fromDevice: (s: { id: number }, _t: unknown, data: ElemArray): void => {
      const id = this.compiled.streamTensor.get(s.id)!;
      const received = (this.received[replica] ??= new Map());
      const list = received.get(id);
      if (list) list.push(data as HostArray | Uint16Array);
      else received.set(id, [data as HostArray | Uint16Array]);
    },
    };
  }

  /** Replicas (config.replicas, PopART's replicatedGraphCount; 1 when not replicated). */
  get replicas(): number {
    return this.compiled.config.replicas ?? 1;
  }

  /** "step 3", or "step 3, batch 1" when a step has several batches: where a message points. */
  where(step: number): string {
    return this.batchesPerStep > 1 ? `step ${step}, batch ${this.batchIndex % this.batchesPerStep}` : `step ${step}`;
  }

  get batchesPerStep(): number {
    return this.compiled.config.train?.batchesPerStep ?? 1;
  }

  /** Phases of the steps run so far (the initial weight transfer excluded). */
  get phases(): Phase[] {
    return this.engine.phases.slice(this.phaseStart);
  }

  /** Run one step: batchesPerStep batches of inputs in, ops, anchors out. */
  async runStep(feeds: Feeds = {}): Promise<StepResult> {
    const graph = this.compiled.graph;
    for (const [name, f] of Object.entries(feeds)) {
      if (!graph.hasTensor(name) || graph.tensor(name).kind !== 'stream') throw new UserError(`feeds: '${name}' is not a streamed input of the graph`);
      const n = nelms(graph.tensor(name).info.shape);
      for (const a of Array.isArray(f) ? f : [f]) {
        if (a.length !== n) throw new UserError(`feeds: '${name}' needs ${n} elements per batch, got ${a.length}`);
      }
      checkLabels(graph, name, Array.isArray(f) ? f : [f], `feeds.${name}`);
      const micro = microBatchesPerBatch(this.compiled);
      if (Array.isArray(f) && f.length > 1 && f.length % micro !== 0)
        throw new UserError(`feeds: '${name}' has ${f.length} micro-batches, not whole batches of ${micro} (train.accumulationFactor x replicas); give a multiple of ${micro}, in the order [batch, accumulation, replica]`);
    }
    this.feeds = feeds;
    const step = this.stepIndex++;
    const c0 = this.engine.cycles;
    // One map per micro-batch, in order (a batch without accumulation is one micro-batch).
    const perBatch: Map<string, HostArray | Uint16Array>[] = [];
    let lossSum = 0;
    const loss = this.compiled.loss;
    const micro = microBatchesPerBatch(this.compiled);
    const R = this.engines.length;
    for (let b = 0; b < this.batchesPerStep; b++) {
      this.received = [];
      this.streamed = [];
      try {
        // Replicas run at once, meeting at each all-reduce; one failing releases the others.
        await Promise.all(
          this.engines.map((en, r) =>
            en.run('batch', this.ioFor(r), step).catch((e: unknown) => {
              this.barrier?.abort(e);
              throw e;
            }),
          ),
        );
      } catch (e) {
        // A built-in codelet refusing its data (a label out of range that went through other ops first)
        // fails the run; it is not a tilesim bug. A custom codelet's fault stays a CodeletFault, which
        // names its module.
        if (e instanceof CodeletFault && !e.inUserCode && e.record.kind === 'compute') throw new RunError(e.message);
        throw e;
      }
      this.batchIndex++;
      if (!this.numerics) continue;
      // In PopART's order: micro-batch m of replica r is item m x replicas + r.
      for (let m = 0; m < micro / R; m++) for (let r = 0; r < R; r++) perBatch.push(new Map([...this.received[r]].map(([k, v]) => [k, v[m]])));
      if (loss) for (const got of this.received) for (const v of got.get(loss)!) lossSum += scalarOf(v);
    }
    const result: StepResult = { step, cycles: this.engine.cycles - c0, anchors: new Map() };
    // The step's loss: the mean over its micro-batches (each a mean over its samples, with a mean loss).
    if (loss && this.numerics) result.loss = lossSum / (this.batchesPerStep * micro);
    if (this.numerics) for (const a of this.compiled.anchors) result.anchors.set(a.tensor, anchorValue(graph, a.tensor, a.mode, perBatch, [micro / R, R]));
    return result;
  }

  /**
   * Everything a later step depends on, for a checkpoint: every device tensor
   * that lives across steps (category 'variable': the weights, optimizer state,
   * dropout counters, loss-scaling state), bit for bit (float16 as its bits),
   * and the host's step and batch counters (input batches cycle by batch).
   * A sharded tensor (replicated tensor sharding) is kept whole, gathered from
   * the replicas' shards under the whole tensor's name, so a sharded and an
   * unsharded run read each other's checkpoints.
   */
  snapshot(): SessionState {
    if (!this.numerics) throw new UserError('a checkpoint needs numerics: without them the device holds no values');
    const tensors = this.stateTensors().map((t) => ({ name: t.shardOf?.name ?? t.name, dtype: t.dtype, shape: [...(t.shardOf?.shape ?? t.shape)], data: this.readWhole(t) }));
    return { step: this.stepIndex, batch: this.batchIndex, tensors };
  }

  /**
   * Put a snapshot back (the same model; tensor locations may differ): the next
   * step continues as if never stopped. A per-vertex value (an update's step
   * counter, the same on every vertex) laid out for other vertices, as sharding
   * changes them, is broadcast.
   */
  restore(state: SessionState): void {
    const byName = new Map(this.stateTensors().map((t) => [t.shardOf?.name ?? t.name, t]));
    if (state.tensors.length !== byName.size) throw new UserError(`the checkpoint holds ${state.tensors.length} device variables, the compiled program ${byName.size}: it was written for another model or tilesim version`);
    for (const s of state.tensors) {
      const t = byName.get(s.name);
      const n = t ? nelms(t.shardOf?.shape ?? t.shape) : 0;
      const broadcast = t?.perVertex && s.data.length > 0 && s.data.every((v) => v === s.data[0]);
      if (!t || t.dtype !== s.dtype || (n !== s.data.length && !broadcast))
        throw new UserError(`the checkpoint's tensor '${s.name}' (${s.dtype}, ${s.data.length} elements) does not match the compiled program${t ? ` (${t.dtype}, ${n} elements)` : ''}: it was written for another model`);
      this.writeWhole(t, n === s.data.length ? s.data : new (s.data.constructor as new (k: number) => ElemArray)(n).fill(s.data[0]));
    }
    // The checkpoint holds replica 0's counters: the others' streams are theirs again.
    this.offsetRandomCounters();
    this.stepIndex = state.step;
    this.batchIndex = state.batch;
  }

  /** The device tensors a checkpoint holds: the variables, a sharded weight's shard in place of its gathered whole. */
  private stateTensors(): DeviceTensor[] {
    return this.compiled.program.tensors.filter((t) => t.category === 'variable' && t.gatheredFrom === undefined);
  }

  /** A tensor's whole value: a sharded one's gathered from every replica's shard, else replica 0's. */
  private readWhole(t: DeviceTensor): ElemArray {
    if (!t.shardOf) return this.engine.read(t);
    const n = nelms(t.shardOf.shape);
    const R = this.replicas;
    const parts = this.engines.map((en) => en.read(t));
    if (parts.length !== R) throw new Error(`internal: ${parts.length} engines hold the shards of ${t.name}, not ${R}`);
    const out = new (parts[0].constructor as new (k: number) => ElemArray)(n);
    parts.forEach((p, r) => out.set(p.subarray(0, Math.floor(((r + 1) * n) / R) - Math.floor((r * n) / R)), Math.floor((r * n) / R)));
    return out;
  }

  /** Write a whole value into every replica: a sharded tensor's fragments, each into its replica's shard. */
  private writeWhole(t: DeviceTensor, data: ElemArray): void {
    this.engines.forEach((en, r) => en.write(t, fragment(t, data, r, this.replicas)));
  }

  /**
   * Each replica its own random streams, as PopART and PopXL seed every
   * replica apart (popxl.create_seeds: a seed per [batch, micro-batch,
   * replica]): the run counters of the random ops (Dropout, RandomUniform,
   * ..., each an int32 variable `<op>/counter` that the hash of
   * sim/codelets/dropout.ts keys on) start at r x REPLICA_COUNTER_STRIDE on
   * replica r, which holds replica 0's values. Replica 0 draws what an
   * unreplicated run draws.
   */
  private offsetRandomCounters(): void {
    if (this.engines.length <= 1) return;
    const counters = this.compiled.program.tensors.filter((t) => t.category === 'variable' && t.dtype === 'int32' && t.name.endsWith('/counter'));
    for (const t of counters) {
      const base = this.engine.read(t) as Int32Array;
      for (let r = 1; r < this.engines.length; r++) this.engines[r].write(t, base.map((c) => (c + r * REPLICA_COUNTER_STRIDE) | 0));
    }
  }

  /** Current values of every variable (PopART's weightsToHost + readWeights), float16 as floats; a sharded weight gathered whole. */
  readWeights(): Map<string, HostArray> {
    const out = new Map<string, HostArray>();
    for (const t of this.compiled.graph.allTensors()) {
      if (t.kind === 'variable' && !isAccumulator(t.id)) out.set(t.id, hostFloats(this.readWhole(this.variable(t.id))));
    }
    return out;
  }

  /** Overwrite variables on the device (PopART's writeWeights + weightsFromHost). */
  writeWeights(values: Record<string, HostArray>): void {
    for (const [name, data] of Object.entries(values)) {
      const t = this.variable(name);
      const n = nelms(t.shardOf?.shape ?? t.shape);
      if (data.length !== n) throw new UserError(`writeWeights: '${name}' has ${n} elements, got ${data.length}`);
      this.writeWhole(t, data);
    }
  }

  private variable(name: string): DeviceTensor {
    const graph = this.compiled.graph;
    if (!graph.hasTensor(name) || graph.tensor(name).kind !== 'variable') {
      const hint = closest(name, graph.allTensors().filter((t) => t.kind === 'variable').map((t) => t.id));
      throw new UserError(`'${name}' is not a variable of the model${hint ? `; did you mean '${hint}'?` : ''}`);
    }
    // A sharded weight's value is its shard (the whole tensor is only what its readers gathered).
    const d = this.compiled.program.tensors[this.compiled.tensorOf.get(name)!];
    return d.gatheredFrom !== undefined ? this.compiled.program.tensors[d.gatheredFrom] : d;
  }

  async close(): Promise<void> {
    for (const en of this.engines) await en.destroy();
  }
}

export class TrainingSession extends Session {
  static override async create(compiled: Compiled, opts: SessionOptions): Promise<TrainingSession> {
    if (!compiled.loss) throw new UserError('a TrainingSession needs a config with a train section (loss and optimizer)');
    return Session.open(compiled, opts, (c, e, i, n) => new TrainingSession(c, e, i, n));
  }
}

export class InferenceSession extends Session {
  static override async create(compiled: Compiled, opts: SessionOptions): Promise<InferenceSession> {
    if (compiled.loss) throw new UserError('an InferenceSession runs a config without a train section; use a TrainingSession');
    return Session.open(compiled, opts, (c, e, i, n) => new InferenceSession(c, e, i, n));
  }
}

/** Run `opts.steps` steps of a compiled config: what `sim run` does. */
export async function run(compiled: Compiled, opts: RunOptions): Promise<RunResult> {
  const t0 = performance.now();
  for (const t of compiled.graph.allTensors()) {
    if (t.kind === 'stream' && !compiled.config.inputs[t.id]) throw new UserError(`no data for graph input '${t.id}'; add inputs.${t.id}: {random: {...}}`);
  }
  const session = await Session.create(compiled, opts);
  try {
    const steps: StepReport[] = [...(opts.resume?.steps ?? [])];
    if (opts.resume) session.restore(opts.resume.state);
    let last: StepResult | undefined;
    for (let i = steps.length; i < opts.steps; i++) {
      last = await session.runStep();
      const report: StepReport = { step: last.step, cycles: last.cycles, ...(last.loss !== undefined ? { loss: last.loss } : {}) };
      steps.push(report);
      opts.onStep?.(report, opts.steps);
      const cp = opts.checkpoint;
      if (cp && (i + 1) % cp.every === 0) await cp.save(session.snapshot(), [...steps]);
    }
    const weights = opts.numerics ? session.readWeights() : new Map<string, HostArray>();
    const resumed = opts.resume ? { resumedFrom: opts.resume.state.step } : {};
    return { compiled, steps, phases: session.phases, anchors: last?.anchors ?? new Map(), weights, wallSeconds: (performance.now() - t0) / 1000, ...resumed };
  } finally {
    await session.close();
  }
}

/**
 * What replica r of R holds of a whole value in device tensor `t`: with
 * replicated tensor sharding (t.shardOf) its fragment [floor(rN/R),
 * floor((r+1)N/R)) zero-padded to the shard, else the whole value.
 */
function fragment(t: DeviceTensor, data: ElemArray, r: number, R: number): ElemArray {
  if (!t.shardOf) return data;
  const n = nelms(t.shardOf.shape);
  if (data.length !== n) throw new Error(`internal: ${data.length} elements for the whole of ${t.name}, not ${n}`);
  const out = new (data.constructor as new (k: number) => ElemArray)(nelms(t.shape));
  out.set(data.subarray(Math.floor((r * n) / R), Math.floor(((r + 1) * n) / R)));
  return out;
}

/** TILESIM_CHECK_MEMORY=1 turns run.checkMemory on for every run (the test suite sets it). */
function memoryCheckedByEnv(): boolean {
  return process.env.TILESIM_CHECK_MEMORY === '1';
}

/** The value of a one-element tensor read from the device (float16 arrives as bits). */
function scalarOf(a: HostArray | Uint16Array): number {
  return a instanceof Uint16Array ? halfToFloat(a[0]) : a[0];
}

/** Micro-batches per batch, over all replicas: train.accumulationFactor x replicas. */
export function microBatchesPerBatch(compiled: Compiled): number {
  return (compiled.config.train?.accumulationFactor ?? 1) * (compiled.config.replicas ?? 1);
}

/**
 * PopART's anchor return types over the micro-batches of the final step
 * (`micro` per batch): all stacks them [batchesPerStep, accumulationFactor, ...]
 * (a dimension of 1 left out), everyN keeps every n-th batch, final the last micro-batch.
 */
function anchorValue(graph: Graph, tensor: string, mode: AnchorMode, perBatch: Map<string, HostArray | Uint16Array>[], inner: [accumulation: number, replicas: number] = [1, 1]): AnchorValue {
  const micro = inner[0] * inner[1];
  const info = graph.tensor(tensor).info;
  const dtype = info.dtype;
  const n = nelms(info.shape);
  const values = perBatch.map((m) => m.get(tensor)!);
  const make = (k: number): HostArray | Uint16Array => (dtype === 'int32' ? new Int32Array(k) : dtype === 'float16' ? new Uint16Array(k) : new Float32Array(k));
  const stack = (vs: (HostArray | Uint16Array)[]): AnchorValue => {
    if (vs.length === 1) return { shape: [...info.shape], dtype, data: vs[0] };
    const out = make(vs.length * n);
    vs.forEach((v, i) => out.set(v, i * n));
    const lead = [vs.length / micro, ...inner].filter((d) => d > 1);
    return { shape: [...lead, ...info.shape], dtype, data: out };
  };
  switch (mode.kind) {
    case 'final':
      return { shape: [...info.shape], dtype, data: values[values.length - 1] };
    case 'all':
      return stack(values);
    case 'everyN':
      return stack(values.filter((_, i) => (Math.floor(i / micro) + 1) % mode.n === 0));
    case 'sum': {
      const acc = new Float64Array(n);
      for (const v of values) {
        const x = v instanceof Uint16Array ? decodeHalf(v) : v;
        for (let i = 0; i < n; i++) acc[i] += x[i];
      }
      const out = dtype === 'float16' ? encodeHalf(acc) : make(n);
      if (dtype !== 'float16') (out as HostArray).set(acc);
      return { shape: [...info.shape], dtype, data: out };
    }
  }
}

export interface GraphRunRequest {
  graph: Graph;
  registry: import('./ir/registry.js').OpRegistry;
  device: import('../sim/device.js').DeviceSpec;
  /** Codelet modules the graph's vertices use (default: the registry's, those of its custom-op modules). */
  codeletModules?: string[];
  /** Data for every streamed input. */
  inputs: Record<string, HostArray>;
  outputs: string[];
  workers?: number;
  /** Splits forced on the planners (tests). */
  plans?: PlanOverrides;
}

/** Run a graph forward once (an inference batch) and return the requested tensors. */
export async function runGraph(req: GraphRunRequest): Promise<{ outputs: Map<string, HostArray>; phases: Phase[]; program: DeviceProgram }> {
  const codeletModules = req.codeletModules ?? req.registry.codeletModules;
  const codelets = await loadCodeletRegistry(codeletModules);
  const { program, streamTensor } = lowerGraph({
    graph: req.graph,
    schedule: req.graph.schedule(),
    registry: req.registry,
    codelets,
    device: req.device,
    anchors: req.outputs,
    codeletModules,
    plans: req.plans,
  });
  const engine = await Engine.create(program, { workers: req.workers ?? 1, numerics: true, checkMemory: memoryCheckedByEnv() });
  const outputs = new Map<string, HostArray>();
  const io = {
    toDevice: (s: { id: number }): ElemArray => {
      const t = req.graph.tensor(streamTensor.get(s.id)!);
      if (t.kind === 'stream') {
        const d = req.inputs[t.id];
        if (!d) throw new UserError(`no data for graph input '${t.id}'`);
        return d;
      }
      return t.data ?? new Float32Array(nelms(t.info.shape));
    },
    fromDevice: (s: { id: number }, _t: unknown, data: ElemArray) => void outputs.set(streamTensor.get(s.id)!, hostFloats(data)),
  };
  try {
    await engine.run('weightsFromHost', io, -1);
    const start = engine.phases.length;
    await engine.run('batch', io, 0);
    return { outputs, phases: engine.phases.slice(start), program };
  } finally {
    await engine.destroy();
  }
}
