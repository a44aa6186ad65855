/**
 * What every optimizer's variable-update op shares: inputs (variable,
 * gradient), an in-place write of the variable (so the scheduler runs it
 * after every other reader), and optimizer state kept beside the weights.
 */
import { Op, type AttributeValue } from '../ir/op.js';
import { nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { BuildTensor, Slice, TileRange } from '../lower/devicegraph.js';
import type { DeviceDType } from '../../sim/program.js';
import type { Codelet } from '../../sim/codelet.js';

/** What an update op's params share: hyperparameters (numbers or flags) and the loss scaling. */
export interface VarUpdateParams {
  /** The gradient is divided by it before use (default 1). */
  lossScaling?: number;
}

/**
 * Where an update's optimizer state lives (train.optimizerStateTensorLocationSettings,
 * set by src/train/optimizer.ts): in Streaming Memory (offChip), and/or
 * sharded over `shards` replicas (replicated tensor sharding). The update
 * runs on the shard whenever the state, the weight or its accumulator is
 * sharded, and its state is then sharded with it.
 */
export interface StateLocation {
  offChip: boolean;
  /** Replicas the update (and its state) is sharded over (1: not sharded). */
  shards: number;
  /** The weight itself is sharded (train.weightTensorLocationSettings): the update reads and writes its shard, nothing gathers after. */
  weightSharded?: boolean;
  /** The gradient arrives as the replica's shard (a sharded accumulator): no reduce-scatter. */
  gradientSharded?: boolean;
}

export abstract class VarUpdateOp<P extends VarUpdateParams = VarUpdateParams> extends Op {
  abstract readonly params: P;
  stateLocation: StateLocation = { offChip: false, shards: 1 };
  /** The hyperparameters, in the order of the attributes and of the vertex params. */
  protected abstract readonly hyperKeys: readonly (keyof P & string)[];
  setup(): void {
    const w = this.inInfo(0);
    const g = this.inInfo(1);
    if (nelms(w.shape) !== nelms(g.shape)) this.fail(`gradient ${this.inId(1)} does not match variable ${this.inId(0)}`);
  }
  override modifiedInputs(): number[] {
    return [0];
  }
  override shardedInputs(): number[] {
    return this.stateLocation.weightSharded ? [0] : [];
  }
  /** The hyperparameters as numbers, flags 1 or 0. */
  hyperParams(): Record<string, number> {
    return Object.fromEntries(this.hyperKeys.map((k) => [k, Number(this.params[k])]));
  }
  override attributes(): Record<string, AttributeValue> {
    return { ...this.hyperParams(), lossScaling: this.params.lossScaling ?? 1 };
  }
}

/**
 * The update's vertices, one per tile range of the variable: w in place, g
 * brought to its tile, `state(i, r)` the optimizer state of range i.
 */
export function lowerVarUpdate<P extends VarUpdateParams>(
  op: VarUpdateOp<P>,
  ctx: LowerContext,
  codelet: Codelet,
  computeSet: string,
  ranges: readonly TileRange[],
  state: (i: number, r: TileRange) => Record<string, Slice>,
  operands: UpdateOperands = { w: ctx.input(0), g: ctx.input(1) },
): void {
  const { w, g } = operands;
  const params = { ...op.hyperParams(), ...lossScalingParam(op.params.lossScaling) };
  ctx.computeSet(computeSet);
  for (const [i, r] of ranges.entries()) {
    ctx.vertex(codelet, r.tile, { w: ctx.slice(w, r.begin, r.end), g: ctx.onTile(g, r.begin, r.end, r.tile), ...state(i, r) }, { ...params });
  }
}

/** What an update's vertices read and write: the weight and gradient, or with sharding their shards. */
export interface UpdateOperands {
  w: BuildTensor;
  g: BuildTensor;
}

/**
 * The update's operands. Sharded over R replicas (replicated tensor
 * sharding), the update runs on shards of ceil(N/R) elements: the gradient
 * reduce-scattered into one (the all-reduce's sum there, bit for bit), or a
 * sharded accumulator as it is; the weight's shard itself when the weight is
 * sharded (its readers all-gather it, src/lower/lower.ts), else the replica's
 * fragment copied into a shard beside the gradient's, and `after()` (called
 * once the update's vertices are placed) all-gathers the updated shards into
 * the weight. Unsharded: the inputs themselves, and nothing after.
 */
export function updateOperands<P extends VarUpdateParams>(op: VarUpdateOp<P>, ctx: LowerContext): UpdateOperands & { after: () => void } {
  const w = ctx.input(0);
  const g = ctx.input(1);
  const loc = op.stateLocation;
  const R = loc.shards;
  if (R <= 1) return { w, g, after: () => undefined };
  const size = Math.ceil(nelms(op.inInfo(0).shape) / R);
  const home = loc.weightSharded ? w.gatheredFrom : undefined;
  if (loc.weightSharded && !home) throw new Error(`internal: the sharded weight ${w.name} has no shard`);
  let gShard = g;
  if (!loc.gradientSharded) {
    gShard = ctx.addTensor('gradientShard', g.dtype, [size]);
    if (home) ctx.graph.mapLike(gShard, home);
    else ctx.graph.mapLinearly(gShard);
    ctx.emit({ kind: 'reduceScatter', tensor: g.id, shard: gShard.id, op: op.name });
  }
  if (home) return { w: home, g: gShard, after: () => undefined };
  const wShard = ctx.addTensor('weightShard', w.dtype, [size]);
  ctx.graph.mapLike(wShard, gShard);
  ctx.emit({ kind: 'replicaShard', tensor: w.id, shard: wShard.id, op: op.name });
  return { w: wShard, g: gShard, after: () => ctx.emit({ kind: 'allGather', tensor: w.id, shard: wShard.id, op: op.name }) };
}

/** Optimizer state with the variable's (or its shard's) shape, mapped tile by tile like it; in Streaming Memory when offChip. */
export function stateLike(ctx: LowerContext, name: string, w: BuildTensor, dtype: DeviceDType = w.dtype): BuildTensor {
  const t = ctx.addTensor(name, dtype, w.shape, 'variable');
  ctx.graph.mapLike(t, w);
  if (ctx.op instanceof VarUpdateOp && ctx.op.stateLocation.offChip) ctx.offChip(t);
  // Sharded: each replica's shard of the whole state, which has the weight's shape (checkpoints hold it whole).
  if (ctx.op instanceof VarUpdateOp && ctx.op.stateLocation.shards > 1) t.shardOf = { name: t.name, shape: [...ctx.op.inInfo(0).shape] };
  return t;
}

/** One float per update vertex (a step counter or first-step flag), on that vertex's tile; in Streaming Memory when offChip. */
export function perVertexState(ctx: LowerContext, name: string, ranges: readonly TileRange[]): BuildTensor {
  const t = ctx.addTensor(name, 'float32', [ranges.length], 'variable');
  ctx.graph.setTileMapping(t, ranges.map((r, i) => ({ tile: r.tile, begin: i, end: i + 1 })));
  t.perVertex = true;
  if (ctx.op instanceof VarUpdateOp && ctx.op.stateLocation.offChip) ctx.offChip(t);
  return t;
}

/** The lossScaling vertex param, only when scaling: a param is a word of vertex state on every tile. */
export function lossScalingParam(lossScaling: number | undefined): Record<string, number> {
  return lossScaling !== undefined && lossScaling !== 1 ? { lossScaling } : {};
}
