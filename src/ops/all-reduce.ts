/**
 * PopART's ReplicatedAllReduceInplace: a tensor summed across the replicas,
 * in place (its output is the tensor itself, an alias, so the optimizer
 * update that reads the output is scheduled after it). The lowering emits one
 * `allReduce` program step; the engine expands it into ring steps costed by
 * the BSP and link models (sim/collectives.ts).
 */
import { Op, type OpSettings } from '../ir/op.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';

const ALL_REDUCE = { domain: 'ai.graphcore', type: 'ReplicatedAllReduceInplace', version: 1 };

export class ReplicatedAllReduceOp extends Op {
  static readonly defaultOperatorId = ALL_REDUCE;
  constructor(settings: OpSettings) {
    super(ALL_REDUCE, settings);
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
  override modifiedInputs(): number[] {
    return [0];
  }
  override flops(): number {
    return nelms(this.inInfo(0).shape);
  }
}

export const allReduceDefinitions: OpDefinition[] = [
  defineOp({
    op: ReplicatedAllReduceOp,
    description: 'sum of a tensor across the replicas, in place (ring reduce-scatter then all-gather over the IPU-Links)',
    inputs: [{ name: 'tensor' }],
    outputs: [{ name: 'reduced' }],
    lower: (op, ctx) => {
      const t = ctx.input(0);
      ctx.emit({ kind: 'allReduce', tensor: t.id, op: op.name });
      ctx.aliasOutput(0, t);
    },
  }),
];
