/**
 * Where Softmax puts its output. Mapped like its input, each tile reads the
 * window of groups its elements belong to; an input in short blocks (a
 * batched matmul's output, attention scores) cut each group among several
 * tiles, and every one of them read and normalised the whole group. Then the
 * output is mapped in whole groups instead: each element of the input is
 * brought once, to the one tile normalising its group, and the numbers are
 * the same bits as with a plan whose output rows are whole.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import type { PlanOverrides } from '../../src/lower/plan-overrides.js';
import { compile, Session } from '../../src/session.js';
import { runCount, unstrided } from '../../sim/copies.js';
import { intervalList } from '../../sim/intervals.js';
import type { DeviceProgram } from '../../sim/program.js';
import { ROOT } from '../helpers.js';

// Attention scores: [4, 32, 16] x [4, 16, 32] -> [4, 32, 32], then softmax over the last axis (groups of 32).
const CONFIG = `
name: softmax-layout
device: {preset: mk2, tiles: 64}
model:
  graph:
    inputs: {q: {shape: [4, 32, 16]}, k: {shape: [4, 16, 32]}}
    nodes:
      - {op: MatMul, inputs: [q, k], outputs: [s]}
      - {op: Softmax, inputs: [s], outputs: [y], attributes: {axis: -1}}
    outputs: [y]
inputs:
  q: {random: {distribution: uniform, low: -2, high: 2, seed: 1}}
  k: {random: {distribution: uniform, low: -2, high: 2, seed: 2}}
`;
const FILE = path.join(ROOT, 'test/lower/softmax-layout.yaml');
const GROUP = 32;
const ELEMS = 4 * 32 * 32;

// Output columns in blocks of 8: each group of 32 lies on 4 tiles. Whole rows: each group on one tile.
const BLOCKS: PlanOverrides = { matmul: () => ({ bBlock: 1, mBlock: 8, nBlock: 8, kBlock: 16 }) };
const ROWS: PlanOverrides = { matmul: () => ({ bBlock: 1, mBlock: 8, nBlock: 32, kBlock: 16 }) };

/** Elements the softmax's exchanges bring to its tiles (fp32), counting each destination. */
function softmaxReceived(p: DeviceProgram): number {
  let bytes = 0;
  for (const ex of p.exchanges.filter((e) => e.op === 'Softmax_1')) {
    const c = unstrided(ex.copies);
    for (let i = 0; i < c.count; i++) if (c.srcTile[i] !== c.dstTile[i]) bytes += c.bytes[i];
  }
  return bytes / 4;
}

async function run(plans: PlanOverrides) {
  const compiled = await compile(loadConfigText(CONFIG, FILE), { plans });
  const session = await Session.create(compiled, { workers: 1, numerics: true });
  try {
    const step = await session.runStep();
    return { p: compiled.program, y: Buffer.from((step.anchors.get('y')!.data as Float32Array).slice().buffer) };
  } finally {
    await session.close();
  }
}

describe('Softmax over an input in short blocks', () => {
  it('maps its output in whole groups, reads each input element once, and gives the same bits', async () => {
    const blocks = await run(BLOCKS);
    const s = blocks.p.tensors.find((t) => t.name === 's')!;
    const y = blocks.p.tensors.find((t) => t.name === 'y')!;
    // The input really is cut: every group of s spans several tiles.
    const sRuns = intervalList(s.intervals);
    expect(Math.max(...sRuns.map((iv) => iv.end - iv.begin))).toBeLessThan(GROUP);
    // The output: each group whole on one tile.
    for (const iv of intervalList(y.intervals)) expect([iv.begin % GROUP, iv.end % GROUP]).toEqual([0, 0]);
    // Like s, each tile would have read its groups whole: 4x the input. Now at most each element once.
    expect(softmaxReceived(blocks.p)).toBeLessThanOrEqual(ELEMS);
    expect(blocks.p.exchanges.filter((e) => e.op === 'Softmax_1').reduce((n, e) => n + runCount(e.copies), 0)).toBeGreaterThan(0);

    // A plan with whole output rows keeps the softmax where s is (windows = ranges): nothing to bring.
    const rows = await run(ROWS);
    const sRows = rows.p.tensors.find((t) => t.name === 's')!;
    const yRows = rows.p.tensors.find((t) => t.name === 'y')!;
    expect(intervalList(yRows.intervals)).toEqual(intervalList(sRows.intervals).map((iv) => ({ ...iv, offset: expect.any(Number) })));
    expect(softmaxReceived(rows.p)).toBe(0);
    // Each output element depends on its group only: the layout changes no bit.
    expect(blocks.y.equals(rows.y)).toBe(true);
  });
});
