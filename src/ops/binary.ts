/** Built-in ops of the binary family: each Op, its grad ops and their lowering side by side. */
import type { OpDefinition } from '../ir/registry.js';

export const binaryDefinitions: OpDefinition[] = [];
