/** Codelets of the shape op family. */
import type { Codelet } from '../codelet.js';

export const shapeCodelets: Codelet[] = [];
