/**
 * Built-in ops of the shape family: each Op, its grad ops and their lowering
 * side by side, in three files:
 *   shape-views.ts   Reshape, Flatten, Squeeze, Unsqueeze (aliases) and their shared grad op
 *   shape-move.ts    Transpose, Concat, Slice (copies of runs or per-element vertices)
 *   shape-gather.ts  Gather (embedding lookup) and its scatter-add gradient
 * The lowering helpers are in src/lower/rearrange.ts, the codelets in
 * sim/codelets/shape.ts.
 */
import type { OpDefinition } from '../ir/registry.js';
import { gatherDefinitions } from './shape-gather.js';
import { moveDefinitions } from './shape-move.js';
import { viewGradDefinition } from './shape-util.js';
import { viewDefinitions } from './shape-views.js';

export const shapeDefinitions: OpDefinition[] = [...viewDefinitions, viewGradDefinition, ...moveDefinitions, ...gatherDefinitions];
