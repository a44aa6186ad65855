/**
 * Fuzzing ONNX bytes: real models (the MLP example and single-op models from
 * the ONNX node tests) with bytes flipped, overwritten, dropped, inserted or
 * cut off are imported and, when they import, built into the IR. Each must be
 * accepted or refused with a UserError naming the model file; never another
 * exception (protobuf's own errors included).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { checkOnnxGraph, parseOnnx } from '../../src/onnx/import.js';
import { ROOT } from '../helpers.js';
import { suiteDir } from '../conformance/paths.js';
import { acceptsOrRefuses, check, runs } from './fuzz.js';

const MODELS = [
  path.join(ROOT, 'configs/examples/mlp.onnx'),
  ...['test_conv_with_strides_padding', 'test_gemm_default_single_elem_vector_bias', 'test_softmax_axis_1', 'test_reshape_reordered_all_dims', 'test_batchnorm_epsilon', 'test_gather_0', 'test_maxpool_2d_pads'].map((c) =>
    path.join(suiteDir('onnx-node'), c, 'model.onnx'),
  ),
];
const BYTES = MODELS.map((f) => new Uint8Array(readFileSync(f)));

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

interface Edit {
  kind: 'flip' | 'set' | 'delete' | 'insert' | 'truncate';
  at: number;
  byte: number;
  n: number;
}

const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.constantFrom<Edit['kind']>('flip', 'set', 'set', 'delete', 'insert', 'truncate'),
  at: fc.nat(),
  // Values a varint, a tag or a length byte can take, plus anything.
  byte: fc.oneof(fc.constantFrom(0x00, 0x01, 0x08, 0x0a, 0x12, 0x1a, 0x22, 0x7f, 0x80, 0xff), fc.nat({ max: 255 })),
  n: fc.integer({ min: 1, max: 8 }),
});

function apply(bytes: Uint8Array, e: Edit): Uint8Array {
  const at = e.at % Math.max(1, bytes.length);
  const b = Array.from(bytes);
  switch (e.kind) {
    case 'flip':
      b[at] ^= 1 << e.byte % 8;
      break;
    case 'set':
      b[at] = e.byte;
      break;
    case 'delete':
      b.splice(at, e.n);
      break;
    case 'insert':
      b.splice(at, 0, ...Array<number>(e.n).fill(e.byte));
      break;
    case 'truncate':
      b.length = at;
      break;
  }
  return new Uint8Array(b);
}

describe('fuzzing ONNX bytes: accepted, or refused with a UserError naming the file', () => {
  it('mutated models import and build, or are refused clearly', async () => {
    const seen = { built: 0, refused: 0, total: 0 };
    await check(
      'onnx-bytes',
      fc.record({ model: fc.nat({ max: MODELS.length - 1 }), edits: fc.array(edit, { minLength: 1, maxLength: 3 }) }),
      async ({ model, edits }) => {
        let bytes: Uint8Array = BYTES[model];
        for (const e of edits) bytes = apply(bytes, e);
        const file = MODELS[model];
        seen.total++;
        const r = await acceptsOrRefuses(path.basename(file), () => parseOnnx(bytes, { file }));
        if (r instanceof Error) return void seen.refused++;
        const g = await acceptsOrRefuses(path.basename(file), () => {
          checkOnnxGraph(r.graph, registry);
          return buildGraph(r.graph, registry);
        });
        if (g instanceof Error) seen.refused++;
        else seen.built++;
      },
      runs(600),
    );
    // Not vacuous: mutations reach the builder, and some still make a valid graph.
    console.log(`onnx-bytes: ${seen.total} cases, ${seen.built} built, ${seen.refused} refused`);
    expect(seen.built).toBeGreaterThan(seen.total / 50);
    expect(seen.refused).toBeGreaterThan(seen.total / 20);
  });
});
