import type { TensorInfo } from './tensorinfo.js';
import type { Op } from './op.js';

/**
 * What a tensor is to the program: a streamed input, a trainable variable, a
 * constant, or something an op computes (activations, gradients).
 */
export type TensorKind = 'stream' | 'variable' | 'constant' | 'activation';

export const GRADIENT_PREFIX = 'Gradient___';

export function gradName(tensor: string): string {
  return GRADIENT_PREFIX + tensor;
}

export interface Tensor {
  id: string;
  info: TensorInfo;
  kind: TensorKind;
  /** Initial value for variables and constants (host data, row-major). */
  data?: Float32Array | Int32Array;
  trainable: boolean;
  producer?: Op;
  /** Consumers in the order they were connected (op, input index). */
  consumers: { op: Op; index: number }[];
  /** True for tensors the autodiff transform made (gradients). */
  isGradient: boolean;
  /** A gradient accumulator (src/train/optimizer.ts): the weight it accumulates for, whose tile mapping it takes. */
  accumulatorOf?: string;
  /** Its home is Streaming Memory (PopART's OffChip storage: train.weightTensorLocationSettings, accumulatorTensorLocationSettings). */
  offChip?: boolean;
  /**
   * Replicated tensor sharding (train.weightTensorLocationSettings, accumulatorTensorLocationSettings):
   * the replicas it is sharded over, each holding ceil(N/R) elements (absent: not sharded).
   */
  shards?: number;
}
