/**
 * Compiling a config: a named list of passes, run top to bottom over one
 * state, each reported to the progress callback as it starts (so `sim
 * compile --timings` times each, and the terminal shows where a long
 * compile is). The lowering pass reports DeviceGraph.finalize's passes
 * (lifetimes, placement, code and vertex state, vertices, copies) after it.
 *
 *   loading custom ops     the op registry: built-ins, then the custom-op modules (model/modules.ts)
 *   building the graph     the IR Graph from model.graph or the ONNX model (model/build.ts)
 *   placing ops on IPUs    virtualGraphMode manual or auto: each forward op's IPU (shard/place.ts)  sharded only
 *   adding the loss        train.loss (train/loss.ts)                         training only
 *   autodiff               grad ops, GradSum, the loss seed, loss scaling      training only
 *   adding the optimizer   train.optimizer's update ops, with accumulation the accumulators (train/optimizer.ts)  training only
 *   adding IPU copies      the other ops' IPUs, one IpuCopy per (tensor, IPU) (shard/place.ts)  sharded only
 *   choosing anchors       what is streamed back after each batch
 *   scheduling             the op order (Graph.schedule)
 *   loading codelets       built-in and custom codelets (sim/modules.ts)
 *   lowering ops           ops to vertices, exchanges and streams, then memory: the DeviceProgram (lower/),
 *                          for one replica's IPUs when replicated (replicas share it); with
 *                          compile.outlining, repeated sequences lowered once and called (lower/outline.ts)
 */
import type { PlanOverrides } from './lower/plan-overrides.js';
import type { CodeletRegistry } from '../sim/codelet.js';
import { CodeletFault } from '../sim/faults.js';
import { loadCodeletRegistry } from '../sim/modules.js';
import type { DeviceProgram } from '../sim/program.js';
import type { DeviceSpec } from '../sim/device.js';
import { autodiff } from './autodiff/autodiff.js';
import type { AnchorMode, RunConfig } from './config/types.js';
import { UserError } from './errors.js';
import type { Graph } from './ir/graph.js';
import type { Op } from './ir/op.js';
import type { OpRegistry } from './ir/registry.js';
import { GRADIENT_PREFIX } from './ir/tensor.js';
import { lowerGraph, type Lowered } from './lower/lower.js';
import { buildGraph } from './model/build.js';
import { createRegistry } from './model/modules.js';
import { unknownTensor } from './model/unknown-tensor.js';
import { checkOnnxGraph } from './onnx/import.js';
import { addLoss, scaleLossGradient } from './train/loss.js';
import { addOptimizer, gradientReduction } from './train/optimizer.js';
import { isSharded, placeForwardOps, shardGraph, virtualGraphMode } from './shard/place.js';
import { checkPipelineConfig, isPipelined, markForwardStages, planPipeline, type PipelinePlan } from './shard/pipeline.js';
import { kernelModule, wasmEnabled } from '../sim/wasm/kernels.js';
import { collectGarbage } from './util/host-heap.js';

export interface Compiled {
  config: RunConfig;
  graph: Graph;
  schedule: Op[];
  program: DeviceProgram;
  loss?: string;
  anchors: { tensor: string; mode: AnchorMode }[];
  tensorOf: Map<string, number>;
  streamTensor: Map<number, string>;
  /** The op registry the graph was built with (ONNX export reads attribute types from it). */
  registry: OpRegistry;
}

export interface CompileOptions {
  /**
   * Called as the compile passes progress (a full-mk2 compile takes tens of seconds): the pass, and its units
   * done of total; while lowering, also the op just lowered (its name).
   */
  onProgress?: (pass: string, done: number, total: number, op?: string) => void;
  /** Splits forced on the planners (tests of the lowering on splits the planners would not pick). */
  plans?: PlanOverrides;
  /** Lower an op like one lowered before as a clone of that lowering (default true; false: tests comparing the two). */
  cloneLikeOps?: boolean;
}

/** What the passes build, each filling in its part. */
interface State {
  readonly config: RunConfig;
  readonly progress: NonNullable<CompileOptions['onProgress']>;
  readonly plans?: PlanOverrides;
  readonly cloneLikeOps: boolean;
  registry?: OpRegistry;
  graph?: Graph;
  loss?: string;
  gradOf?: Map<string, string>;
  anchors?: Compiled['anchors'];
  /** Anchors and the loss: the tensors streamed back after each batch. */
  streamed?: string[];
  schedule?: Op[];
  /** Pipelined (model.pipelining): each op's stage and the stashes. */
  pipeline?: PipelinePlan;
  codelets?: CodeletRegistry;
  lowered?: Lowered;
}

interface Pass {
  name: string;
  /** Whether the pass applies to this config (default: always). */
  when?: (config: RunConfig) => boolean;
  run: (s: State) => void | Promise<void>;
}

const training = (c: RunConfig) => c.train !== undefined;

export const PASSES: readonly Pass[] = [
  {
    name: 'loading custom ops',
    run: async (s) => {
      s.registry = await createRegistry(s.config.model.customOps);
      // The kernels compiled before any data is drawn: initializers and random inputs fill on them (src/util/random.ts).
      if (wasmEnabled()) await kernelModule();
    },
  },
  {
    name: 'building the graph',
    run: (s) => {
      const { config } = s;
      if (config.model.onnx) checkOnnxGraph(config.model.graph, s.registry!); // unsupported ops named with the supported list
      s.graph = buildGraph(config.model.graph, s.registry!, { inference: config.train === undefined });
      s.graph.training = training(config);
      s.graph.randomSeed = config.run.seed;
    },
  },
  {
    name: 'placing ops on IPUs',
    when: isSharded,
    run: (s) => placeForwardOps(s.graph!, virtualGraphMode(s.config), replicaDevice(s.config).ipus),
  },
  {
    name: 'pipeline stages',
    when: isPipelined,
    run: (s) => {
      checkPipelineConfig(s.config);
      markForwardStages(s.graph!);
    },
  },
  { name: 'adding the loss', when: training, run: (s) => void (s.loss = addLoss(s.graph!, s.config.train!)) },
  {
    name: 'autodiff',
    when: training,
    run: (s) => {
      const graph = s.graph!;
      // Anchored gradients of non-variables (e.g. Gradient___x of an input) are computed too.
      const extra = Object.keys(s.config.anchors)
        .filter((a) => a.startsWith(GRADIENT_PREFIX))
        .map((a) => a.slice(GRADIENT_PREFIX.length))
        .filter((t) => graph.hasTensor(t));
      s.gradOf = autodiff(graph, s.loss!, extra, s.config.train!.loss.loc).gradOf;
      scaleLossGradient(graph, s.gradOf.get(s.loss!)!, s.config.train!.lossScaling ?? 1);
    },
  },
  {
    name: 'adding the optimizer',
    when: training,
    run: (s) => addOptimizer(s.graph!, s.config.train!.optimizer, s.gradOf!, s.config.train!.lossScaling ?? 1, gradientReduction(s.config.train!, s.config.replicas ?? 1), {
        optimizerState: s.config.train!.optimizerStateLocation,
        accumulator: s.config.train!.accumulatorLocation,
        weight: s.config.train!.weightLocation,
      }),
  },
  { name: 'adding IPU copies', when: isSharded, run: (s) => shardGraph(s.graph!, replicaDevice(s.config).ipus) },
  { name: 'choosing anchors', run: chooseAnchors },
  { name: 'planning the pipeline', when: isPipelined, run: (s) => void (s.pipeline = planPipeline(s.graph!, s.config.train?.accumulationFactor ?? 1, s.config.train?.recompute === 'pipeline' ? { registry: s.registry! } : undefined)) },
  { name: 'scheduling', run: (s) => void (s.schedule = s.graph!.schedule()) },
  { name: 'loading codelets', run: async (s) => void (s.codelets = await loadCodelets(s.registry!.codeletModules)) },
  {
    name: 'lowering ops',
    run: (s) => {
      s.lowered = lowerGraph({
        // After the last op come the host streams and memory allocation (DeviceGraph.finalize).
        onOp: (done, total, op) => s.progress('lowering ops', done, total, op),
        // DeviceGraph.finalize's passes: lifetimes, placement, code and vertex state, vertices, copies.
        onPass: (pass) => s.progress(pass, 0, 1),
        graph: s.graph!,
        schedule: s.schedule!,
        registry: s.registry!,
        codelets: s.codelets!,
        device: replicaDevice(s.config),
        anchors: s.streamed!,
        codeletModules: s.registry!.codeletModules,
        plans: s.plans,
        cloneLikeOps: s.cloneLikeOps,
        sharded: isSharded(s.config),
        accumulationFactor: s.config.train?.accumulationFactor ?? 1,
        pipeline: s.pipeline,
        outlining: s.config.compile?.outlining ? { minOps: s.config.compile.outlineMinOps } : undefined,
      });
      // Replicas share this one program (compiled once): it says how they sit in the system for the collectives' cost.
      const replicas = s.config.replicas ?? 1;
      if (replicas > 1) s.lowered.program.replication = { replicas, systemIpus: s.config.device.ipus, method: s.config.collectiveMethod ?? 'auto' };
    },
  },
];

/** One replica's device: the config's device is the whole system, replicas x this (PopART's replicatedGraphCount). */
export function replicaDevice(config: RunConfig): DeviceSpec {
  const replicas = config.replicas ?? 1;
  return replicas > 1 ? { ...config.device, ipus: config.device.ipus / replicas } : config.device;
}

/** Compile a config to a DeviceProgram: PASSES, in order. */
export async function compile(config: RunConfig, opts: CompileOptions = {}): Promise<Compiled> {
  const s: State = { config, progress: opts.onProgress ?? (() => undefined), plans: opts.plans, cloneLikeOps: opts.cloneLikeOps ?? true };
  for (const pass of PASSES) {
    if (pass.when && !pass.when(config)) continue;
    s.progress(pass.name, 0, 1);
    await pass.run(s);
  }
  collectGarbage();
  return { config, graph: s.graph!, schedule: s.schedule!, loss: s.loss, anchors: s.anchors!, registry: s.registry!, ...s.lowered! };
}

/** The anchors: the config's (checked), or the graph's outputs and the loss; the loss is always streamed back (steps report it). */
function chooseAnchors(s: State): void {
  const { config, loss } = s;
  const graph = s.graph!;
  const anchors: Compiled['anchors'] = [];
  if (config.defaultAnchors) {
    for (const o of config.model.graph.outputs) anchors.push({ tensor: o, mode: { kind: 'final' } });
    if (loss && !anchors.some((a) => a.tensor === loss)) anchors.push({ tensor: loss, mode: { kind: 'final' } });
  } else {
    for (const [name, a] of Object.entries(config.anchors)) {
      if (!graph.hasTensor(name)) throw unknownTensor(graph, name, `anchors.${name}`, a.loc);
      const bps = config.train?.batchesPerStep ?? 1;
      if (a.mode.kind === 'everyN' && bps % a.mode.n !== 0) {
        throw new UserError(`anchors.${name}: everyN:${a.mode.n} needs batchesPerStep (${bps}) to be a multiple of ${a.mode.n}`, a.loc);
      }
      anchors.push({ tensor: name, mode: a.mode });
    }
  }
  s.anchors = anchors;
  s.streamed = anchors.map((a) => a.tensor);
  if (loss && !s.streamed.includes(loss)) s.streamed.push(loss);
}

/** The codelet registry, with a module's mistakes (a clash with a built-in codelet, a bad export) as UserErrors. */
export async function loadCodelets(modules: string[]): Promise<CodeletRegistry> {
  try {
    return await loadCodeletRegistry(modules);
  } catch (e) {
    if (e instanceof CodeletFault) throw e; // the module's own code threw as it loaded
    throw new UserError(`loading the codelets of ${modules.join(', ')}: ${(e as Error).message}`);
  }
}
