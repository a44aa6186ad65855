/**
 * Issue 15, item 5: Resize, Pad and Tile move data as exchanges of runs, each
 * tile receiving only what its part of the output needs, never a whole tensor
 * copied to every tile. On 64 tiles, a [1, 8, 64, 64] float32 input (128 KiB)
 * resized, padded or tiled: every tile receives (over all the op's exchanges,
 * copies between tiles) at most the bytes of the output it holds, plus 1 KiB
 * of slack for runs that straddle a tile's boundary. A whole-input copy per
 * tile would be 128 KiB, 16 to 53 times the output a tile holds here.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { OpRegistry } from '../../src/ir/registry.js';
import { lowerGraph } from '../../src/lower/lower.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { parseOnnx } from '../../src/onnx/import.js';
import type { CodeletRegistry } from '../../sim/codelet.js';
import { copyList } from '../../sim/copies.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import { tiny } from '../helpers.js';
import { attr, f32, floatTensor, int64Tensor, modelBytes, node } from '../onnx/helpers.js';
import { intervalList } from '../../sim/intervals.js';

const TILES = 64;
const SLACK = 1024;
const IN = [1, 8, 64, 64];

let registry: OpRegistry;
let codelets: CodeletRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
  codelets = await loadCodeletRegistry([]);
});

/** Bytes each tile receives from other tiles in the batch program's exchanges, and the bytes of output y it holds. */
function perTile(bytes: Uint8Array): { received: number[]; output: number[] } {
  const graph = buildGraph(parseOnnx(bytes).graph, registry, { inference: true });
  const { program } = lowerGraph({ graph, schedule: graph.schedule(), registry, codelets, device: tiny({ tilesPerIpu: TILES }), anchors: ['y'], codeletModules: [] });
  const received = new Array<number>(TILES).fill(0);
  for (const e of program.exchanges) for (const c of copyList(e.copies)) if (c.srcTile !== c.dstTile) received[c.dstTile] += c.bytes;
  // The tensor the host reads y from: y's memory, wherever an alias put it.
  const out = program.tensors[program.streams.find((s) => s.name.startsWith('y->'))!.tensor];
  const output = new Array<number>(TILES).fill(0);
  for (const iv of intervalList(out.intervals)) output[iv.tile] += 4 * (iv.end - iv.begin);
  return { received, output };
}

function expectRuns(bytes: Uint8Array): void {
  const { received, output } = perTile(bytes);
  expect(output.filter((b) => b > 0).length, 'the output spreads over every tile').toBe(TILES);
  for (let t = 0; t < TILES; t++) expect(received[t], `tile ${t}: received bytes vs the ${output[t]} bytes of output it holds`).toBeLessThanOrEqual(output[t] + SLACK);
}

describe('Resize, Pad and Tile lower to exchanges of runs (each tile receives what its output needs)', () => {
  it.each(['nearest', 'linear'])('Resize %s, x2 on H and W', (mode) => {
    expectRuns(modelBytes({ nodes: [node('Resize', ['x', '', 'scales'], ['y'], [attr.s('mode', mode)])], inputs: [f32('x', IN)], outputs: [f32('y', [1, 8, 128, 128])], initializers: [floatTensor('scales', [4], [1, 1, 2, 2])] }));
  });

  it.each(['constant', 'reflect', 'edge'])('Pad %s, 3 on each side of H and W', (mode) => {
    expectRuns(modelBytes({ nodes: [node('Pad', ['x', 'pads'], ['y'], [attr.s('mode', mode)])], inputs: [f32('x', IN)], outputs: [f32('y', [1, 8, 70, 70])], initializers: [int64Tensor('pads', [8], [0, 0, 3, 3, 0, 0, 3, 3])] }));
  });

  it.each([
    ['2 x 2 on H and W', [1, 1, 2, 2], [1, 8, 128, 128]],
    ['4 on the channels', [1, 4, 1, 1], [1, 32, 64, 64]],
  ])('Tile %s', (_what, reps, outShape) => {
    expectRuns(modelBytes({ nodes: [node('Tile', ['x', 'reps'], ['y'])], inputs: [f32('x', IN)], outputs: [f32('y', outShape)], initializers: [int64Tensor('reps', [4], reps)] }));
  });
});
