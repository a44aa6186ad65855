/** The built-in codelets, registered explicitly (no import side effects). */
import type { Codelet, CodeletRegistry } from '../codelet.js';
import { addCodelet, copyCodelet, mulCodelet, subCodelet, sumCodelet } from './elementwise.js';
import { lossCodelets } from './loss.js';
import { castBoolCodelet, castCodelet } from './cast.js';
import { matMulCodelet, matMulReduceCodelet } from './matmul.js';
import { ampMatMulCodelet } from './amp.js';
import { optimizerCodelets } from './optimizer.js';
import { reduceCodelets, reduceFinalCodelet, reducePartialCodelet } from './reduce.js';
import { unaryCodelets } from './unary.js';
import { binaryCodelets } from './binary.js';
import { reduceAxesCodelets } from './reduce-axes.js';
import { shapeCodelets } from './shape.js';
import { multiSliceCodelets } from './multislice.js';
import { nnCodelets } from './nn.js';
import { argReduceCodelets } from './arg-reduce.js';
import { elementsCodelets } from './elements.js';
import { cumSumCodelet } from './scan.js';
import { topKCodelet } from './topk.js';
import { controlFlowCodelets } from './control.js';
import { randomCodelets } from './random.js';
import { roiAlignCodelets } from './roi-align.js';

export const BUILTIN_CODELETS: readonly Codelet[] = [
  addCodelet,
  subCodelet,
  mulCodelet,
  sumCodelet,
  copyCodelet,
  matMulCodelet,
  ampMatMulCodelet,
  matMulReduceCodelet,
  reducePartialCodelet,
  reduceFinalCodelet,
  ...lossCodelets,
  ...optimizerCodelets,
  castCodelet,
  castBoolCodelet,
  ...unaryCodelets,
  ...binaryCodelets,
  ...reduceCodelets,
  ...reduceAxesCodelets,
  ...shapeCodelets,
  ...multiSliceCodelets,
  ...nnCodelets,
  ...argReduceCodelets,
  ...elementsCodelets,
  cumSumCodelet,
  topKCodelet,
  ...controlFlowCodelets,
  ...randomCodelets,
  ...roiAlignCodelets,
];

export function registerBuiltinCodelets(r: CodeletRegistry): void {
  for (const c of BUILTIN_CODELETS) r.add(c);
}
