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

/** A forced split's plan: it must fit the device, else the test forcing it is wrong. */
export function fitsDevice<P extends { tiles: number }>(plan: P, numTiles: number, what: string): P {
  if (plan.tiles > numTiles) throw new Error(`internal: a forced ${what} split needs ${plan.tiles} tiles, the device has ${numTiles}`);
  return plan;
}
