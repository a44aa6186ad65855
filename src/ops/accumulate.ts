/**
 * Gradient accumulation (PopART's AccumulateOp and AccumulatorZeroOp,
 * willow/src/op/accumulate.cpp): `accum += grad` once per micro-batch, inside
 * the accumulation loop; `accum = 0` once per step, in the outer fragment
 * after the optimizer update read it. The accumulator is a variable mapped
 * like its weight (src/train/accumulate.ts makes it). Accumulate's output is
 * the accumulator itself (an alias): the update reads that output, so the
 * scheduler puts it after the accumulation, and the zeroing after the update.
 * A sharded accumulator (replicated tensor sharding) holds the replica's
 * ceil(N/R) elements of the sum over the replicas: each micro-batch's
 * gradient is reduce-scattered before it is added.
 */
import { Op, type OpSettings } from '../ir/op.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { addCodelet } from '../../sim/codelets/binary.js';
import { zeroRegionsCodelet } from '../../sim/codelets/shape.js';

const ACCUMULATE = { domain: 'ai.graphcore', type: 'Accumulate', version: 1 };
const ACCUMULATOR_ZERO = { domain: 'ai.graphcore', type: 'AccumulatorZero', version: 1 };

/** accum += grad, in place; output 0 is accum (an alias). */
export class AccumulateOp extends Op {
  static readonly defaultOperatorId = ACCUMULATE;
  /**
   * Replicas the accumulator is sharded over (train.accumulatorTensorLocationSettings'
   * replicatedTensorSharding): each micro-batch's gradient is reduce-scattered and
   * the replica's shard accumulated (1: not sharded).
   */
  shards = 1;
  constructor(settings: OpSettings) {
    super(ACCUMULATE, settings);
  }
  setup(): void {
    const a = this.inInfo(0);
    const g = this.inInfo(1);
    if (nelms(a.shape) !== nelms(g.shape) || a.dtype !== g.dtype) this.fail(`gradient ${this.inId(1)} does not match accumulator ${this.inId(0)}`);
    this.setOutInfo(0, a);
  }
  override modifiedInputs(): number[] {
    return [0];
  }
  override flops(): number {
    return nelms(this.inInfo(0).shape);
  }
}

/** accum = 0, in place (the outer fragment's reset after the update). */
export class AccumulatorZeroOp extends Op {
  static readonly defaultOperatorId = ACCUMULATOR_ZERO;
  constructor(settings: OpSettings) {
    super(ACCUMULATOR_ZERO, settings);
  }
  setup(): void {}
  override modifiedInputs(): number[] {
    return [0];
  }
}

export const accumulateDefinitions: OpDefinition[] = [
  defineOp({
    op: AccumulateOp,
    description: 'accum += gradient, in place (gradient accumulation, once per micro-batch)',
    inputs: [{ name: 'accumulator' }, { name: 'gradient' }],
    outputs: [{ name: 'updated' }],
    lower: (op, ctx) => {
      const a = ctx.input(0);
      let g = ctx.input(1);
      if (op.shards > 1) {
        // The accumulator is the replica's shard: the gradient summed over the replicas, its fragment brought beside it.
        const shard = ctx.addTensor('gradientShard', g.dtype, [a.size]);
        ctx.graph.mapLike(shard, a);
        ctx.emit({ kind: 'reduceScatter', tensor: g.id, shard: shard.id, op: op.name });
        g = shard;
      }
      ctx.computeSet('accumulate');
      // One vertex per tile range of the accumulator, the gradient brought to it: out = a + g over a.
      for (const r of ctx.ranges(a)) {
        const at = ctx.slice(a, r.begin, r.end);
        ctx.vertex(addCodelet, r.tile, { a: at, b: ctx.onTile(g, r.begin, r.end, r.tile), out: at });
      }
      ctx.aliasOutput(0, a);
    },
  }),
  defineOp({
    op: AccumulatorZeroOp,
    description: 'accum = 0, in place (the reset after the optimizer update)',
    inputs: [{ name: 'accumulator' }],
    outputs: [],
    lower: (op, ctx) => {
      const a = ctx.input(0);
      ctx.computeSet('zero');
      const byTile = new Map<number, ReturnType<typeof ctx.slice>[]>();
      for (const r of ctx.ranges(a)) byTile.set(r.tile, [...(byTile.get(r.tile) ?? []), ctx.slice(a, r.begin, r.end)]);
      for (const [tile, out] of byTile) ctx.vertex(zeroRegionsCodelet, tile, { out });
    },
  }),
];
