/**
 * The training loss from the config's `train.loss`: a loss op the config
 * describes (l1, mse, nll, softmaxCrossEntropy over graph tensors, the ops of
 * ops/loss.ts), or a scalar tensor the graph computes itself; and PopART's
 * loss scaling, applied to the gradient seed autodiff made.
 */
import type { LossSpec, SourceLocation, TrainSpec } from '../config/types.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { ONNX_DOMAIN } from '../ir/opid.js';
import { unknownTensor } from '../model/unknown-tensor.js';
import { ClassLossOp, L1Op, MseOp, NLL_POPART, type ClassLossParams } from '../ops/loss.js';

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

/** The tensors a train.loss names, with their config keys (for "no tensor" errors). */
function lossTensorRefs(spec: LossSpec): [key: string, tensor: string][] {
  const refs: [string, string][] = [['input', spec.input]];
  if (spec.labels !== undefined) refs.push(['labels', spec.labels]);
  if (spec.target !== undefined) refs.push(['target', spec.target]);
  if (spec.weights !== undefined) refs.push(['weights', spec.weights]);
  return refs;
}

/**
 * Add the op a train.loss describes, writing the scalar `output`:
 *   l1                   L1Op (PopART l1loss) of input
 *   mse                  MseOp of input and target
 *   nll                  PopART's nllloss: probabilities (or log-probabilities) with the classes last
 *   softmaxCrossEntropy  ONNX SoftmaxCrossEntropyLoss: scores [N, C, d...]
 */
function addTrainLoss(graph: Graph, spec: LossSpec, output: string): Op {
  const loc: SourceLocation = spec.loc;
  const { scale, reduction } = spec;
  switch (spec.type) {
    case 'l1':
      return graph.addOp(new L1Op({ scale, reduction }, { name: 'L1Loss', loc }), [spec.input], [output]);
    case 'mse':
      return graph.addOp(new MseOp({ scale, reduction }, { name: 'MseLoss', loc }), [spec.input, spec.target!], [output]);
    case 'nll':
    case 'softmaxCrossEntropy': {
      const nll = spec.type === 'nll';
      const params: ClassLossParams = {
        mode: nll ? (spec.inputIsLogProbability ? 'logProb' : 'prob') : 'softmax',
        classAxis: nll ? 'last' : 'second',
        reduction,
        ignoreIndex: spec.ignoreIndex,
        scale,
      };
      const opid = nll ? NLL_POPART : { domain: ONNX_DOMAIN, type: 'SoftmaxCrossEntropyLoss', version: 13 };
      const inputs = [spec.input, spec.labels!, ...(spec.weights !== undefined ? [spec.weights] : [])];
      return graph.addOp(new ClassLossOp(opid, params, { name: nll ? 'NllLoss' : 'SoftmaxCrossEntropyLoss', loc }), inputs, [output]);
    }
  }
}
