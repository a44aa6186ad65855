/**
 * Reductions whose partials come from many tiles are summed in a tree
 * (src/lower/window.ts reducePieces, PARTIALS_FAN_IN): no NnPartialsFinal
 * vertex lists more than PARTIALS_FAN_IN partial regions, so the tile owning
 * a BatchNorm channel does not receive a partial from every tile. Sums
 * through the tree agree with onnxruntime (atol 1e-6, rtol 1e-5: fp32 sums of
 * 600 values in [-1, 1) in different orders). LayerNorm's gradients, summed
 * over rows by the planned reduction of src/lower/reduce.ts, agree with
 * central finite differences over many tiles too (harness tolerance 2e-3, see
 * test/ops/nn.test.ts).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { PARTIALS_FAN_IN } from '../../src/lower/window.js';
import { compile } from '../../src/session.js';
import { checkForward, checkGrad, f32 } from '../ops/harness.js';
import { ROOT, tiny } from '../helpers.js';
import { vertexList } from '../../sim/vertex-table.js';

// BatchNormalization's scale and bias gradients over [32, 2, 8, 8] on 1,024 tiles, 4 elements each: each
// channel's partials come from 512 tiles, more than one vertex may sum.
const CONFIG = `
name: batchnorm-tree
device: {preset: tiny, tiles: 1024, minBytesPerTile: 8}
model:
  graph:
    inputs:
      x: {shape: [32, 2, 8, 8]}
    initializers:
      s: {shape: [2], init: {constant: 1}}
      b: {shape: [2], init: {constant: 0}}
      mean: {shape: [2], init: {constant: 0}, trainable: false}
      var: {shape: [2], init: {constant: 1}, trainable: false}
    nodes:
      - {op: BatchNormalization, inputs: [x, s, b, mean, var], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: normal, mean: 0, std: 1, seed: 7}}
train:
  loss: {type: l1, input: y}
  optimizer: {type: sgd, lr: 0.01}
`;

describe('reductions from many tiles are summed in a tree', () => {
  it('no NnPartialsFinal vertex sums more than PARTIALS_FAN_IN partials, and the tree is there', async () => {
    const c = await compile(loadConfigText(CONFIG, path.join(ROOT, 'test/lower/batchnorm-tree.yaml'), { numerics: false }));
    const finals = c.program.computeSets.flatMap((cs) => vertexList(cs.vertices).filter((v) => v.codelet === 'NnPartialsFinal').map((v) => ({ cs: cs.name, v })));
    expect(finals.length).toBeGreaterThan(0);
    const most = Math.max(...finals.map(({ v }) => (Array.isArray(v.fields.partials) ? v.fields.partials.length : 1)));
    expect(most).toBeLessThanOrEqual(PARTIALS_FAN_IN);
    // The scale gradient's partials come from more tiles than one vertex may sum: a tree stage exists.
    expect(c.program.computeSets.some((cs) => /\/tree0$/.test(cs.name))).toBe(true);
  });

  it('sums through the tree agree with onnxruntime (GlobalAveragePool over 1,200 partials per channel group)', async () => {
    // 2,400 floats, 2 per tile on 1,024 tiles: every output channel's pieces come from hundreds of tiles.
    await checkForward({ op: 'GlobalAveragePool', inputs: { x: f32([1, 4, 300, 2], 5) }, atol: 1e-6, rtol: 1e-5, device: tiny({ tilesPerIpu: 1024, minBytesPerTile: 8 }) });
  });

  it('LayerNormalization gradients with rows over many tiles agree with finite differences', async () => {
    // Small enough for finite differences, spread over 48 tiles (2 elements each).
    await checkGrad({ op: 'LayerNormalization', attributes: { axis: -1 }, inputs: { x: f32([24, 4], 1, 0, -2, 2), s: f32([4], 2), b: f32([4], 3) }, device: tiny({ tilesPerIpu: 256, minBytesPerTile: 8 }) });
  });
});
