/** Codelets of the nn op family. */
import type { Codelet } from '../codelet.js';

export const nnCodelets: Codelet[] = [];
