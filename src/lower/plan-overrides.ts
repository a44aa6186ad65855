/**
 * Splits forced on the planners, by shape (tests of the lowering's numerics
 * on splits the planners would not pick). Given to the lowering
 * (LowerRequest.plans) and passed to each planner in its plan context; a
 * function returning undefined leaves that shape to the planner.
 */
import type { ConvShape, ConvSplit } from './conv-planner.js';
import type { ConvGradShape, ConvGradWSplit, ConvGradXSplit } from './conv-grad-planner.js';
import type { MatMulShape, MatMulSplit } from './matmul-planner.js';

export interface PlanOverrides {
  matmul?: (shape: MatMulShape) => MatMulSplit | undefined;
  conv?: (shape: ConvShape) => ConvSplit | undefined;
  convGradX?: (shape: ConvGradShape) => ConvGradXSplit | undefined;
  convGradW?: (shape: ConvGradShape) => ConvGradWSplit | undefined;
}
