/**
 * The optimizer from the config's `train.optimizer` (SGD or Adam, built by
 * ops/sgd.ts and ops/adam.ts): one variable-update op per trainable variable
 * that has a gradient, which divides out the loss scaling.
 */
import type { OptimizerSpec } from '../config/types.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { AdamVarUpdateOp } from '../ops/adam.js';
import { SGDVarUpdateOp } from '../ops/sgd.js';

/** `gradOf`: variable -> its gradient tensor, from autodiff. A variable off the loss path has none and is not updated. */
export function addOptimizer(graph: Graph, optimizer: OptimizerSpec, gradOf: ReadonlyMap<string, string>, lossScaling: number): void {
  for (const t of graph.allTensors()) {
    if (t.kind !== 'variable' || !t.trainable) continue;
    const g = gradOf.get(t.id);
    if (!g) continue;
    graph.addOp(varUpdateOp(optimizer, t.id, lossScaling), [t.id, g], []);
  }
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
