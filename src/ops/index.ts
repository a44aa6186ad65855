/** The built-in ops, registered explicitly through the same API custom ops use. */
import type { OpDefinition, OpRegistry } from '../ir/registry.js';
import { addDefinitions } from './add.js';
import { lossDefinitions } from './loss.js';
import { matMulDefinitions } from './matmul.js';
import { mulDefinitions } from './mul.js';
import { sgdDefinitions } from './sgd.js';
import { adamDefinitions } from './adam.js';
import { accumulateDefinitions } from './accumulate.js';
import { allReduceDefinitions } from './all-reduce.js';
import { sumDefinitions } from './sum.js';
import { castDefinitions } from './cast.js';
import { unaryDefinitions } from './unary.js';
import { binaryDefinitions } from './binary.js';
import { reduceDefinitions } from './reduce.js';
import { shapeDefinitions } from './shape.js';
import { nnDefinitions } from './nn.js';
import { logicDefinitions } from './logic.js';
import { argReduceDefinitions } from './arg-reduce.js';
import { constantDefinitions } from './constant.js';
import { elementsDefinitions } from './elements.js';
import { splitDefinitions } from './split.js';
import { compositeDefinitions } from './composites.js';
import { ndDefinitions } from './nd.js';
import { cumSumDefinitions } from './cumsum.js';
import { resizeDefinitions } from './resize.js';
import { topKDefinitions } from './topk.js';
import { einsumDefinitions } from './einsum.js';
import { batchNormTrainingDefinitions } from './batchnorm-train.js';
import { controlFlowDefinitions } from './control-flow.js';
import { rnnDefinitions } from './rnn.js';
import { lpNormDefinitions } from './lp-norm.js';
import { maskDefinitions } from './masks.js';
import { randomDefinitions } from './random.js';
import { reverseSequenceDefinitions } from './reverse-sequence.js';
import { roiAlignDefinitions } from './roi-align.js';

export const BUILTIN_OPS: readonly OpDefinition[] = [
  ...matMulDefinitions,
  ...addDefinitions,
  ...mulDefinitions,
  ...sumDefinitions,
  ...lossDefinitions,
  ...sgdDefinitions,
  ...adamDefinitions,
  ...accumulateDefinitions,
  ...allReduceDefinitions,
  ...castDefinitions,
  ...unaryDefinitions,
  ...binaryDefinitions,
  ...reduceDefinitions,
  ...shapeDefinitions,
  ...nnDefinitions,
  ...logicDefinitions,
  ...argReduceDefinitions,
  ...constantDefinitions,
  ...elementsDefinitions,
  ...splitDefinitions,
  ...compositeDefinitions,
  ...ndDefinitions,
  ...cumSumDefinitions,
  ...resizeDefinitions,
  ...topKDefinitions,
  ...einsumDefinitions,
  ...batchNormTrainingDefinitions,
  ...controlFlowDefinitions,
  ...rnnDefinitions,
  ...lpNormDefinitions,
  ...maskDefinitions,
  ...randomDefinitions,
  ...reverseSequenceDefinitions,
  ...roiAlignDefinitions,
];

export function registerBuiltinOps(r: OpRegistry): void {
  for (const d of BUILTIN_OPS) r.add(d);
}
