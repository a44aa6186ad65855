/** Codelets of the binary op family. */
import type { Codelet } from '../codelet.js';

export const binaryCodelets: Codelet[] = [];
