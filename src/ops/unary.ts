/** Built-in ops of the unary family: each Op, its grad ops and their lowering side by side. */
import type { OpDefinition } from '../ir/registry.js';

export const unaryDefinitions: OpDefinition[] = [];
