/**
 * The training loss from the config's `train.loss`: a loss op the config
 * describes (l1, mse, nll, softmaxCrossEntropy over graph tensors, built by
 * ops/loss.ts), or a scalar tensor the graph computes itself; and PopART's
 * loss scaling, applied to the gradient seed autodiff made.
 */
import type { TrainSpec } from '../config/types.js';
import type { Graph } from '../ir/graph.js';
import { unknownTensor } from '../model/unknown-tensor.js';
import { addTrainLoss, lossTensorRefs } from '../ops/loss.js';

/** Adds the loss op `train.loss` describes (or finds the tensor it names); returns the loss tensor's name. */
export function addLoss(graph: Graph, train: TrainSpec): string {
  const spec = train.loss;
  if (spec.type === 'tensor') {
    if (!graph.hasTensor(spec.name)) throw unknownTensor(graph, spec.name, 'train.loss', spec.loc);
    return spec.name;
  }
  for (const [key, name] of lossTensorRefs(spec)) if (!graph.hasTensor(name)) throw unknownTensor(graph, name, `train.loss.${key}`, spec.loc);
  const loss = graph.uniqueTensorId('loss');
  addTrainLoss(graph, spec, loss);
  return loss;
}

/** Loss scaling (PopART): the gradient seed is the scaling, and each optimizer update divides it out again. */
export function scaleLossGradient(graph: Graph, seed: string, lossScaling: number): void {
  if (lossScaling !== 1) graph.tensor(seed).data = Float32Array.of(lossScaling);
}
