/**
 * Codelets of the nn op family (src/ops/nn.ts): softmax, norms, LRN,
 * convolution, pooling, and the partial/final reduction pair their gradients share.
 */
import type { Codelet } from '../codelet.js';
import { convCodelets } from './conv.js';
import { lrnCodelets } from './lrn.js';
import { normCodelets } from './norm.js';
import { channelSumCodelets, partialsFinalCodelet } from './nn-util.js';
import { poolCodelets } from './pool.js';
import { softmaxCodelets } from './softmax.js';

export const nnCodelets: Codelet[] = [...softmaxCodelets, ...normCodelets, ...lrnCodelets, ...convCodelets, ...poolCodelets, ...channelSumCodelets, partialsFinalCodelet];
