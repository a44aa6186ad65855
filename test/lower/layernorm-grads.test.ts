/**
 * LayerNorm's scale and bias gradients are sums over rows, as a bias
 * gradient is, and are planned as one (src/lower/reduce.ts): before, each
 * tile sent a partial as wide as the row to one of a few dozen summing
 * tiles, and the two cost a BERT layer's training step a third of its cycles.
 *
 * x [32, 96] + b -> LayerNormalization -> L1 loss on a 64-tile Mk2: the
 * Add's dy and the LayerNorm's dy are [32, 96] laid out alike, so dB of the
 * LayerNorm is the very problem of the Add's bias gradient and must cost the
 * same cycles; dScale adds one elementwise pass (dy xhat) before the same
 * reduction. The values are checked against finite differences in
 * test/ops/nn.test.ts.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodeletRegistry } from '../../sim/codelet.js';
import { registerBuiltinCodelets } from '../../sim/codelets/index.js';
import { computeSetCost, exchangeCost } from '../../sim/cost.js';
import type { DeviceProgram } from '../../sim/program.js';
import { vertexList } from '../../sim/vertex-table.js';
import { loadConfigText } from '../../src/config/load.js';
import { compile } from '../../src/session.js';
import { ROOT } from '../helpers.js';

const CONFIG = `
name: layernorm-grads
device: {preset: mk2, tiles: 64}
model:
  graph:
    inputs: {x: {shape: [32, 96]}}
    initializers:
      b: {shape: [96], init: {constant: 0.1}}
      g: {shape: [96], init: {constant: 1}}
      beta: {shape: [96], init: {constant: 0}}
    nodes:
      - {op: Add, inputs: [x, b], outputs: [h]}
      - {op: LayerNormalization, inputs: [h, g, beta], outputs: [y], attributes: {axis: -1}}
    outputs: [y]
inputs: {x: {random: {distribution: normal, mean: 0, std: 1, seed: 1}}}
train:
  loss: {type: l1, input: y}
  optimizer: {type: sgd, lr: 0.01}
`;

/** Cycles of op `op`'s compute sets and exchanges, by the engine's model, and the codelets its compute sets run. */
function opCost(p: DeviceProgram, op: string): { cycles: number; codelets: Set<string> } {
  const codelets = new CodeletRegistry();
  registerBuiltinCodelets(codelets);
  let cycles = 0;
  const used = new Set<string>();
  for (const cs of p.computeSets.filter((c) => c.op === op)) {
    cycles += computeSetCost(cs, codelets, p.device).cycles;
    for (const v of vertexList(cs.vertices)) used.add(v.codelet);
  }
  for (const ex of p.exchanges.filter((e) => e.op === op)) cycles += exchangeCost(ex, p.device).cycles;
  return { cycles, codelets: used };
}

describe('LayerNorm scale and bias gradients', () => {
  it('are planned reductions over rows: dB costs what the bias gradient of the same [rows, n] costs', async () => {
    const c = await compile(loadConfigText(CONFIG, path.join(ROOT, 'test/lower/layernorm-grads.yaml'), { numerics: false }));
    const p = c.program;
    const ops = new Set(p.computeSets.map((cs) => cs.op));
    const name = (prefix: string) => [...ops].find((o) => o.startsWith(prefix))!;
    const bias = opCost(p, name('AddArg1Grad('));
    const dB = opCost(p, name('LayerNormGradB('));
    const dScale = opCost(p, name('LayerNormGradScale('));
    expect(bias.cycles).toBeGreaterThan(0);
    expect(dB.cycles).toBe(bias.cycles);
    expect([...dB.codelets].sort()).toEqual([...bias.codelets].sort());
    // dScale: the dy xhat terms, then the same reduction of fp32 terms.
    expect([...dScale.codelets].sort()).toEqual([...new Set([...bias.codelets, 'NnLayerNormDyXhat'])].sort());
    expect(dScale.cycles).toBeGreaterThan(dB.cycles);
    expect(dScale.cycles).toBeLessThan(3 * dB.cycles);
  });
});
