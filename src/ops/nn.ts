/**
 * Built-in ops of the nn family, each Op with its grad ops and lowering side
 * by side in its own file: Softmax / LogSoftmax (./softmax.ts),
 * LayerNormalization and BatchNormalization (./norm.ts), LRN (./lrn.ts), Conv (./conv.ts), ConvTranspose (./conv-transpose.ts),
 * MaxPool / AveragePool / GlobalAveragePool (./pool.ts), and Gemm
 * (./gemm.ts), a composite that expands into Transpose, MatMul, Mul and Add.
 * Their codelets are sim/codelets/nn.ts; the windowed lowering helpers
 * src/lower/window.ts.
 */
import type { OpDefinition } from '../ir/registry.js';
import { convDefinitions } from './conv.js';
import { convTransposeDefinitions } from './conv-transpose.js';
import { gemmDefinitions } from './gemm.js';
import { lrnDefinitions } from './lrn.js';
import { normDefinitions } from './norm.js';
import { poolDefinitions } from './pool.js';
import { softmaxDefinitions } from './softmax.js';

export const nnDefinitions: OpDefinition[] = [...softmaxDefinitions, ...normDefinitions, ...lrnDefinitions, ...convDefinitions, ...convTransposeDefinitions, ...poolDefinitions, ...gemmDefinitions];
