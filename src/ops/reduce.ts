/** Built-in ops of the reduce family: each Op, its grad ops and their lowering side by side. */
import type { OpDefinition } from '../ir/registry.js';

export const reduceDefinitions: OpDefinition[] = [];
