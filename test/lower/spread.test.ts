/**
 * Small tensors spread over the chip (src/lower/linear.ts): a tensor that
 * needs fewer tiles than the device has starts at a tile derived from its
 * element count, not at tile 0, so biases and other small parameters do not
 * all stack on the first tiles; a weight, its gradient (from the reduction of
 * a bias gradient, or from a matmul whose contraction is split) and its SGD
 * update share their tiles, so the update needs no exchange. A parameter its
 * matmul lays out (createInput) is where the matmul reads it instead.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyList } from '../../sim/copies.js';
import type { DeviceTensor } from '../../sim/program.js';
import { loadConfigText } from '../../src/config/load.js';
import { linearStartTile } from '../../src/lower/linear.js';
import { compile } from '../../src/session.js';
import { ROOT } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

/** A three-layer MLP with biases of 24, 40 and 8 elements and weights of 384, 960 and 320, trained with SGD on 64 tiles. */
const CONFIG = `
name: small-tensors
device: {preset: mk2, tiles: 64}
model:
  graph:
    inputs:
      x: {shape: [512, 16]}
    initializers:
      w1: {shape: [16, 24], init: {normal: {std: 0.25, seed: 1}}}
      b1: {shape: [24], init: {constant: 0.1}}
      w2: {shape: [24, 40], init: {normal: {std: 0.25, seed: 2}}}
      b2: {shape: [40], init: {constant: 0.1}}
      w3: {shape: [40, 8], init: {normal: {std: 0.25, seed: 3}}}
      b3: {shape: [8], init: {constant: 0.1}}
    nodes:
      - {op: MatMul, inputs: [x, w1], outputs: [h1]}
      - {op: Add, inputs: [h1, b1], outputs: [a1]}
      - {op: Relu, inputs: [a1], outputs: [r1]}
      - {op: MatMul, inputs: [r1, w2], outputs: [h2]}
      - {op: Add, inputs: [h2, b2], outputs: [a2]}
      - {op: Relu, inputs: [a2], outputs: [r2]}
      - {op: MatMul, inputs: [r2, w3], outputs: [h3]}
      - {op: Add, inputs: [h3, b3], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
train:
  loss: {type: l1, input: y}
  optimizer: {type: sgd, lr: 0.01}
  steps: 1
`;

const PARAMS = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3'];

describe('small tensors spread over the tiles', async () => {
  const compiled = await compile(loadConfigText(CONFIG, path.join(ROOT, 'test/lower/small-tensors.yaml'), { numerics: false }));
  const p = compiled.program;
  const tensor = (name: string): DeviceTensor => {
    const t = p.tensors.find((d) => d.name === name);
    if (!t) throw new Error(`no device tensor ${name}`);
    return t;
  };
  const elems = (t: DeviceTensor) => t.shape.reduce((a, b) => a * b, 1);

  // Laid out by their consumer (the matmul reading them), not linearly.
  const created = new Set((p.notes ?? []).filter((n) => n.kind === 'layout').flatMap((n) => /'([^']+)' is created where/.exec(n.text)?.[1] ?? []));

  it('starts each small parameter at the tile its element count gives, not all at tile 0', () => {
    expect([...created].sort()).toEqual(['w3', 'x']);
    const starts = PARAMS.filter((n) => !created.has(n)).map((n) => {
      const t = tensor(n);
      expect(intervalList(t.intervals).length).toBeLessThan(64);
      expect(intervalList(t.intervals)[0].tile).toBe(linearStartTile(elems(t), intervalList(t.intervals).length, 64, 2));
      expect(intervalList(t.intervals)[0].tile % 2).toBe(0);
      // consecutive tiles from the start, wrapping past tile 63
      intervalList(t.intervals).forEach((iv, i) => expect(iv.tile).toBe((intervalList(t.intervals)[0].tile + i) % 64));
      return intervalList(t.intervals)[0].tile;
    });
    expect(new Set(starts).size).toBeGreaterThanOrEqual(4);
    expect(starts.filter((s) => s === 0)).toEqual([]);
  });

  it('lays out the input its matmul reads on every tile as one interval per tile', () => {
    const x = tensor('x');
    expect(intervalList(x.intervals).length).toBe(64);
    expect(new Set(intervalList(x.intervals).map((iv) => iv.tile)).size).toBe(64);
  });

  it('leaves tile 0 below the fullest tile', () => {
    const max = Math.max(...p.tileBytes);
    expect(p.tileBytes[0]).toBeLessThan(max);
    expect(p.memory![0].alwaysLive).toBeLessThan(Math.max(...p.memory!.map((m) => m.alwaysLive)));
  });

  it('puts every gradient on its weight’s tiles (bias reductions and split-contraction matmuls alike)', () => {
    // MatMulRhsGrad(MatMul_0) splits its 512-long contraction: its output is the reduction's linear chunks.
    expect(p.notes?.find((n) => n.op === 'MatMulRhsGrad(MatMul_0)' && n.kind === 'plan')?.text).toMatch(/contraction (?!1 )\d+/);
    for (const n of PARAMS) {
      const at = (t: DeviceTensor) => intervalList(t.intervals).map((iv) => [iv.tile, iv.begin, iv.end]);
      expect(at(tensor(`Gradient___${n}`))).toEqual(at(tensor(n)));
    }
  });

  it('updates every weight with no exchange', () => {
    const updates = p.computeSets.filter((cs) => cs.op.startsWith('SGD'));
    expect(new Set(updates.map((cs) => cs.op))).toEqual(new Set(PARAMS.map((n) => `SGDUpdate(${n})`)));
    const crossTile = p.exchanges.filter((e) => e.op.startsWith('SGD')).flatMap((e) => copyList(e.copies).filter((c) => c.srcTile !== c.dstTile));
    expect(crossTile).toEqual([]);
  });
});
