/** The built-in codelets, registered explicitly (no import side effects). */
import type { Codelet, CodeletRegistry } from '../codelet.js';
import { addCodelet, copyCodelet, mulCodelet, subCodelet, sumCodelet } from './elementwise.js';
import { l1GradCodelet } from './loss.js';
import { matMulCodelet } from './matmul.js';
import { sgdCodelet } from './optimizer.js';
import { reduceFinalCodelet, reducePartialCodelet } from './reduce.js';

export const BUILTIN_CODELETS: readonly Codelet[] = [
  addCodelet,
  subCodelet,
  mulCodelet,
  sumCodelet,
  copyCodelet,
  matMulCodelet,
  reducePartialCodelet,
  reduceFinalCodelet,
  l1GradCodelet,
  sgdCodelet,
];

export function registerBuiltinCodelets(r: CodeletRegistry): void {
  for (const c of BUILTIN_CODELETS) r.add(c);
}
