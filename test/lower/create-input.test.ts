/**
 * Layouts chosen by their consumers (OpDefinition.createInput, PopLibs'
 * createInput family): a variable and a streamed input whose first consumer
 * asks for them on one tile are created there, so the consumer needs no
 * exchange; the choice is noted for `sim compile`; a wrong answer is an error
 * that names the op.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compileReport } from '../../src/cli/compile-report.js';
import { linearStartTile } from '../../src/lower/linear.js';
import { compile } from '../../src/session.js';
import { ROOT } from '../helpers.js';
import { intervalList } from '../../sim/intervals.js';

const config = (tile: number, gap = 0) => `
name: create-input
device: {preset: mk2, tiles: 16}
model:
  customOps: [${path.join(ROOT, 'test/fixtures/ops/pinned-mul.ts')}]
  graph:
    inputs:
      x: {shape: [4, 8]}
    initializers:
      w: {shape: [4, 8], init: {constant: 2}}
    nodes:
      - {op: PinnedMul, domain: test.ops, inputs: [x, w], outputs: [y], attributes: {tile: ${tile}, gap: ${gap}}}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 1}}
`;

const load = (text: string) => loadConfigText(text, path.join(ROOT, 'test/lower/create-input.yaml'), { numerics: false });

describe('createInput: consumers choose the layout of what nothing produces', () => {
  it('maps the variable and the streamed input where the op reads them, so it needs no exchange', async () => {
    for (const tile of [5, 11]) {
      const c = await compile(load(config(tile)));
      const p = c.program;
      for (const name of ['x', 'w']) {
        const t = p.tensors.find((d) => d.name === name)!;
        expect(new Set(intervalList(t.intervals).map((i) => i.tile))).toEqual(new Set([tile]));
      }
      expect(p.exchanges.filter((e) => e.op.includes('PinnedMul') && e.copies.count > 0)).toEqual([]);
      expect(p.notes!.filter((n) => n.kind === 'layout').map((n) => n.text)).toEqual([
        expect.stringMatching(/input 0 'x' is created where this op reads it \(1 tiles\)/),
        expect.stringMatching(/input 1 'w' is created where this op reads it \(1 tiles\)/),
        // Linearly, x and w (32 floats each, one tile's minimum) would each sit on one tile: 256 B to bring, unless that were this one.
        expect.stringMatching(tile === linearStartTile(32, 1, 16, 2) ? /^layout saved 0 B/ : /^layout saved 256 B of exchange: it brings 0 B of inputs laid out by their consumers from other tiles, 256 B had they been mapped linearly/),
      ]);
      expect(compileReport(c)).toMatch(/PinnedMul_0 \[layout\]: layout saved (256|0) B of exchange/);
    }
  });

  it('a mapping that misses an element is an error naming the op', async () => {
    await expect(compile(load(config(3, 1)))).rejects.toThrow(/the lowering of op '.*PinnedMul.*' is wrong: the mapping of 'x' must cover its 32 elements once each/);
  });
});
