/**
 * The optimizer from the config's `train.optimizer` (SGD or Adam, built by
 * ops/sgd.ts and ops/adam.ts): one variable-update op per trainable variable
 * that has a gradient, which divides out the loss scaling. With gradient
 * accumulation (train.accumulationFactor > 1, PopART's) each variable also
 * gets an accumulator: per micro-batch `accum += grad` (AccumulateOp, in the
 * accumulation loop), then, in the outer fragment once per step, the update
 * reads the accumulator and AccumulatorZeroOp resets it. Replicated
 * (replicas > 1), the gradient is summed across the replicas before the
 * update (ReplicatedAllReduceOp): every micro-batch without accumulation,
 * once per step (the accumulator, in the outer fragment) with it.
 *
 * Tensor locations (train.*TensorLocationSettings, PopART's): offChip puts
 * weights, accumulators or optimizer state in Streaming Memory (loaded
 * around each use, src/lower/lower.ts); replicated tensor sharding replaces
 * the all-reduce by a reduce-scatter and an update on the shard
 * (ops/var-update.ts): of the optimizer state, then all-gathered into the
 * weight; of the weight itself, which lives as its shard and is all-gathered
 * before each use (src/lower/lower.ts); of the accumulator, which
 * accumulates each micro-batch's reduce-scattered shard (ops/accumulate.ts).
 */
import type { OptimizerSpec, TensorLocationSpec, TrainSpec } from '../config/types.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { nelms } from '../ir/tensorinfo.js';
import { AccumulateOp, AccumulatorZeroOp } from '../ops/accumulate.js';
import { AdamVarUpdateOp } from '../ops/adam.js';
import { ReplicatedAllReduceOp } from '../ops/all-reduce.js';
import { SGDVarUpdateOp } from '../ops/sgd.js';
import { VarUpdateOp } from '../ops/var-update.js';

/** PopART's name prefix for a weight's gradient accumulator. */
export const ACCUMULATOR_PREFIX = 'Accum___';

export function isAccumulator(id: string): boolean {
  return id.startsWith(ACCUMULATOR_PREFIX);
}

/** What the update divides the gradient by besides the loss scaling: how many gradients a mean reduction averages. */
export interface GradientReduction {
  /** Micro-batches accumulated per update (1: none). */
  accumulationFactor: number;
  /** Replicas whose gradients are all-reduced (1: none). */
  replicas: number;
  reduction: 'mean' | 'sum';
}

export function gradientReduction(train: TrainSpec, replicas = 1): GradientReduction {
  return { accumulationFactor: train.accumulationFactor ?? 1, replicas, reduction: train.gradientReduction ?? 'mean' };
}

/**
 * `gradOf`: variable -> its gradient tensor, from autodiff. A variable off the loss path has none and is not updated.
 * The update divides the gradient by lossScaling, and with a mean reduction by the
 * micro-batches x replicas summed into it (PopART's Mean: the loss of each micro-batch is a
 * mean over its samples, so the mean over micro-batches is the mean over the whole batch).
 */
export function addOptimizer(
  graph: Graph,
  optimizer: OptimizerSpec,
  gradOf: ReadonlyMap<string, string>,
  lossScaling: number,
  red?: GradientReduction,
  locations: TensorLocations = {},
): void {
  const n = red ? red.accumulationFactor : 1;
  const divisor = lossScaling * (red && red.reduction === 'mean' ? red.accumulationFactor * red.replicas : 1);
  const replicas = red?.replicas ?? 1;
  for (const t of graph.allTensors()) {
    if (t.kind !== 'variable' || !t.trainable) continue;
    const g = gradOf.get(t.id);
    if (!g) continue;
    const elements = nelms(t.info.shape);
    if (offChip(locations.weight, elements)) t.offChip = true;
    // PopART's thresholds count the tensor's elements: the state and the accumulator have the weight's.
    const state = locations.optimizerState;
    const weightShards = sharded(locations.weight, elements, replicas);
    const accumShards = n > 1 ? sharded(locations.accumulator, elements, replicas) : 1;
    // The update runs on the shard when anything it reads or keeps is sharded; its state is then sharded too.
    const shards = Math.max(sharded(state, elements, replicas), weightShards, accumShards);
    if (weightShards > 1) t.shards = weightShards;
    const located = (u: Op): Op => {
      if (u instanceof VarUpdateOp) u.stateLocation = { offChip: offChip(state, elements), shards, weightSharded: weightShards > 1, gradientSharded: accumShards > 1 };
      return u;
    };
    const ipu = t.consumers[0]?.op.settings.ipu;
    const at = ipu !== undefined ? { ipu } : {};
    // The gradient summed over the replicas, in place: its output names the sum.
    // Sharded, the update reduce-scatters it instead (ops/var-update.ts).
    const allReduce = (x: string, outer: boolean): string => {
      if (replicas <= 1 || shards > 1) return x;
      const out = graph.uniqueTensorId(`${x}__allReduced`);
      graph.addOp(new ReplicatedAllReduceOp({ name: `AllReduce(${t.id})`, loc: optimizer.loc, ...at, ...(outer ? { executionContext: 'outerFragment' as const } : {}) }), [x], [out]);
      return out;
    };
    if (n <= 1) {
      graph.addOp(located(varUpdateOp(optimizer, t.id, divisor)), [t.id, allReduce(g, false)], []);
      continue;
    }
    const accum = graph.addTensor(graph.uniqueTensorId(`${ACCUMULATOR_PREFIX}${t.id}`), t.info, 'variable', { data: new Float32Array(nelms(t.info.shape)) });
    accum.accumulatorOf = t.id;
    if (offChip(locations.accumulator, elements)) accum.offChip = true;
    if (accumShards > 1) accum.shards = accumShards;
    const loc = optimizer.loc;
    const summed = graph.uniqueTensorId(`${accum.id}__sum`);
    const accumulate = new AccumulateOp({ name: `Accumulate(${t.id})`, loc, ...at });
    accumulate.shards = accumShards;
    graph.addOp(accumulate, [accum.id, g], [summed]);
    const reduced = allReduce(summed, true);
    const update = located(varUpdateOp(optimizer, t.id, divisor));
    update.settings.executionContext = 'outerFragment';
    graph.addOp(update, [t.id, reduced], []);
    graph.addOp(new AccumulatorZeroOp({ name: `AccumulatorZero(${t.id})`, loc, executionContext: 'outerFragment', ...at }), [reduced], []);
  }
}

/** train's tensor location settings (PopART's TensorLocationSettings) by kind of tensor. */
export interface TensorLocations {
  optimizerState?: TensorLocationSpec;
  accumulator?: TensorLocationSpec;
  weight?: TensorLocationSpec;
}

/** Whether a tensor of `elements` elements goes to Streaming Memory under `spec` (PopART: from minElementsForOffChip up). */
function offChip(spec: TensorLocationSpec | undefined, elements: number): boolean {
  return spec?.storage === 'offChip' && elements >= spec.minElementsForOffChip;
}

/** Replicas a tensor of `elements` elements is sharded over under `spec` (PopART: from minElementsForReplicatedTensorSharding up); 1: not sharded. */
function sharded(spec: TensorLocationSpec | undefined, elements: number, replicas: number): number {
  return spec?.replicatedTensorSharding && replicas > 1 && elements >= spec.minElementsForReplicatedTensorSharding ? replicas : 1;
}

/** The in-place update op a train.optimizer makes for `variable`, named after the optimizer and the variable. */
export function varUpdateOp(spec: OptimizerSpec, variable: string, lossScaling = 1): Op {
  if (spec.type === 'sgd') {
    const params = { lr: spec.lr, momentum: spec.momentum, dampening: spec.dampening, weightDecay: spec.weightDecay, nesterov: spec.nesterov, lossScaling };
    return new SGDVarUpdateOp(params, { name: `SGDUpdate(${variable})`, loc: spec.loc });
  }
  const params = { lr: spec.lr, beta1: spec.beta1, beta2: spec.beta2, eps: spec.eps, weightDecay: spec.weightDecay, decoupled: spec.type === 'adamw', lossScaling };
  return new AdamVarUpdateOp(params, { name: `${spec.type === 'adamw' ? 'AdamW' : 'Adam'}Update(${variable})`, loc: spec.loc });
}
