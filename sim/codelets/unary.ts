/** Codelets of the unary op family. */
import type { Codelet } from '../codelet.js';

export const unaryCodelets: Codelet[] = [];
