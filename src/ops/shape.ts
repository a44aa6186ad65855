/** Built-in ops of the shape family: each Op, its grad ops and their lowering side by side. */
import type { OpDefinition } from '../ir/registry.js';

export const shapeDefinitions: OpDefinition[] = [];
