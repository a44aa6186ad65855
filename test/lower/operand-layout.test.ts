/**
 * Layouts chosen by their consumers for the planned matmul and convolution
 * (createMatMulInputLHS/RHS, createWeights/createInput): an operand a planned
 * op created is where its tiles read it. On a 64-tile Mk2, for forced plan
 * shapes (split contraction, split rows, split columns, both, a convolution
 * split over the batch and the output channels): an operand block one tile
 * reads needs no exchange at all, and one several tiles read (broadcast over
 * the other operand's split) is held in shares by its readers, so each
 * element travels to the other readers only: exactly (readers - 1) x its
 * bytes. Numerics on the same plans: against onnxruntime.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { loadConfigText } from '../../src/config/load.js';
import type { ConvSplit } from '../../src/lower/conv-planner.js';
import type { MatMulSplit } from '../../src/lower/matmul-planner.js';
import type { PlanOverrides } from '../../src/lower/plan-overrides.js';
import { compile, Session } from '../../src/session.js';
import { DTYPE_BYTES, type DeviceProgram, type DeviceTensor } from '../../sim/program.js';
import { runCount, unstrided } from '../../sim/copies.js';
import { ROOT } from '../helpers.js';
import { checkForward, f32 } from '../ops/harness.js';
import { intervalList } from '../../sim/intervals.js';

const DEVICE = '{preset: mk2, tiles: 64}';

/** Bytes copied from other tiles out of `t`, over all the program's exchanges. */
function remoteBytesFrom(p: DeviceProgram, t: DeviceTensor): number {
  const bytes = DTYPE_BYTES[t.dtype];
  let total = 0;
  for (const ex of p.exchanges) {
    const c = unstrided(ex.copies); // a row per run and destination
    for (let i = 0; i < c.count; i++) {
      if (c.srcTile[i] === c.dstTile[i]) continue;
      const from = intervalList(t.intervals).some((iv) => iv.tile === c.srcTile[i] && iv.offset <= c.srcOffset[i] && c.srcOffset[i] < iv.offset + (iv.end - iv.begin) * bytes);
      if (from) total += c.bytes[i];
    }
  }
  return total;
}

const config = (x: number[], w: number[], node: string) => `
name: operand-layout
device: ${DEVICE}
model:
  graph:
    inputs: {x: {shape: [${x.join(', ')}]}}
    initializers: {w: {shape: [${w.join(', ')}], init: {normal: {std: 0.1, seed: 1}}}}
    nodes: [${node}]
    outputs: [y]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1, seed: 2}}}
`;

async function compiled(text: string, plans: PlanOverrides) {
  const c = await compile(loadConfigText(text, path.join(ROOT, 'test/lower/operand-layout.yaml'), { numerics: false }), { plans });
  const p = c.program;
  const tensor = (name: string) => p.tensors.find((t) => t.name === name)!;
  const created = (p.notes ?? []).filter((n) => n.kind === 'layout').flatMap((n) => /'([^']+)' is created where/.exec(n.text)?.[1] ?? []);
  return { p, tensor, created };
}

const elems = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
const mk2 = { ...loadDevicePreset('mk2'), tilesPerIpu: 64 };


describe('a planned matmul reads the operands it created where they are', () => {
  // [name, A shape, B shape as stored, transB, forced split, tiles reading each A block (gN), each B block (gM)]
  const cases: [string, number[], number[], boolean, MatMulSplit, number, number][] = [
    ['split contraction (8 tiles along K)', [2, 512], [512, 32], false, { bBlock: 1, mBlock: 2, nBlock: 32, kBlock: 64 }, 1, 1],
    ['split rows (B broadcast to 8 row blocks)', [256, 32], [32, 48], false, { bBlock: 1, mBlock: 32, nBlock: 48, kBlock: 32 }, 1, 8],
    ['split columns of a Linear weight (transB; A broadcast to 8 column blocks)', [16, 32], [256, 32], true, { bBlock: 1, mBlock: 16, nBlock: 32, kBlock: 32 }, 8, 1],
    ['split rows and columns (4 x 4 tiles, both broadcast)', [64, 32], [128, 32], true, { bBlock: 1, mBlock: 16, nBlock: 32, kBlock: 32 }, 4, 4],
    ['split rows, columns and contraction (2 x 2 x 4 tiles)', [4, 128], [8, 128], true, { bBlock: 1, mBlock: 2, nBlock: 4, kBlock: 32 }, 2, 2],
  ];
  for (const [name, a, b, transB, split, aReaders, bReaders] of cases) {
    it(name, async () => {
      const plans: PlanOverrides = { matmul: () => split };
      const node = transB ? '{op: Gemm, inputs: [x, w], outputs: [y], attributes: {transB: 1}}' : '{op: MatMul, inputs: [x, w], outputs: [y]}';
      const { p, tensor, created } = await compiled(config(a, b, node), plans);
      expect(created.sort()).toEqual(['w', 'x']);
      expect(remoteBytesFrom(p, tensor('x'))).toBe((aReaders - 1) * elems(a) * 4);
      expect(remoteBytesFrom(p, tensor('w'))).toBe((bReaders - 1) * elems(b) * 4);
      // The same plan's numbers, operands laid out by it.
      await checkForward({ op: transB ? 'Gemm' : 'MatMul', ...(transB ? { attributes: { transB: 1 } } : {}), inputs: { a: f32(a, 3), b: f32(b, 4) }, device: mk2, atol: 5e-5, rtol: 1e-5, plans });
    });
  }
});

describe('a block several tiles read is shared among them in whole rows', () => {
  // A [17, 16] read by 4 column blocks: equal shares (68 elements) would cut rows, so each reader would gather
  // its block in twice the pieces; shares of 4, 4, 4 and 5 rows receive at most 1/16 more than equal ones.
  it('each tile holds whole rows of x, and each element still travels to the other readers only', async () => {
    const plans: PlanOverrides = { matmul: () => ({ bBlock: 1, mBlock: 17, nBlock: 16, kBlock: 16 }) };
    const { p, tensor, created } = await compiled(config([17, 16], [16, 64], '{op: MatMul, inputs: [x, w], outputs: [y]}'), plans);
    expect(created).toContain('x');
    const x = tensor('x');
    expect(new Set(intervalList(x.intervals).map((iv) => iv.tile)).size).toBe(4);
    for (const iv of intervalList(x.intervals)) expect([iv.begin % 16, iv.end % 16]).toEqual([0, 0]);
    expect(remoteBytesFrom(p, x)).toBe(3 * 17 * 16 * 4);
    await checkForward({ op: 'MatMul', inputs: { a: f32([17, 16], 3), b: f32([16, 64], 4) }, device: mk2, atol: 5e-5, rtol: 1e-5, plans });
  });
});

describe('a planned convolution reads the operands it created where they are', () => {
  const node = '{op: Conv, inputs: [x, w], outputs: [y], attributes: {pads: [1, 1, 1, 1]}}';
  // [name, X, W, forced split, tiles reading each input box (gM), each weight block (gN)]
  const cases: [string, number[], number[], ConvSplit, number, number][] = [
    ['split over the batch (weights broadcast to 4 tiles)', [4, 8, 6, 6], [16, 8, 3, 3], { nBlock: 1, rowBlock: 6, mBlock: 16, cBlock: 8 }, 1, 4],
    ['split over the batch and output channels (4 x 4 tiles, both broadcast)', [4, 8, 6, 6], [16, 8, 3, 3], { nBlock: 1, rowBlock: 6, mBlock: 4, cBlock: 8 }, 4, 4],
  ];
  for (const [name, x, w, split, xReaders, wReaders] of cases) {
    it(name, async () => {
      const plans: PlanOverrides = { conv: () => split };
      const { p, tensor, created } = await compiled(config(x, w, node), plans);
      expect(created.sort()).toEqual(['w', 'x']);
      expect(remoteBytesFrom(p, tensor('x'))).toBe((xReaders - 1) * elems(x) * 4);
      expect(remoteBytesFrom(p, tensor('w'))).toBe((wReaders - 1) * elems(w) * 4);
      await checkForward({ op: 'Conv', attributes: { pads: [1, 1, 1, 1] }, inputs: { x: f32(x, 5), w: f32(w, 6) }, device: mk2, atol: 2e-5, rtol: 1e-4, plans });
    });
  }
});

describe('a block several tiles gather is sent once to all of them', () => {
  // Contraction split in two: each tile gathers a block of 16 rows of 16 elements, read by 4 tiles each.
  it('one fanned-out row per piece, to every reader: fewer rows than copies, the same numbers', async () => {
    const plans: PlanOverrides = { matmul: () => ({ bBlock: 1, mBlock: 16, nBlock: 32, kBlock: 16 }) };
    const node = '{op: Relu, inputs: [x], outputs: [r]}, {op: MatMul, inputs: [r, w], outputs: [y]}';
    const { p } = await compiled(config([64, 32], [32, 128], node), plans);
    const ex = p.exchanges.find((e) => e.name.startsWith('MatMul') && e.name.includes('amp'))!;
    const c = ex.copies;
    expect(c.fan).toBeDefined();
    const fan = c.fan!;
    const groups = fan.start.length - 1;
    expect(groups).toBeGreaterThan(0);
    for (let g = 0; g < groups; g++) expect(fan.start[g + 1] - fan.start[g]).toBe(4);
    expect(runCount(c)).toBeGreaterThan(2 * c.count);
    await checkForward({ op: 'MatMul', inputs: { a: f32([64, 32], 3), b: f32([32, 128], 4) }, device: mk2, atol: 5e-5, rtol: 1e-5, plans });
    // Workers copy into the tiles they run (the fanned rows expanded per destination): the same bits for 1, 2 and 3.
    const numerics = await compile(loadConfigText(config([64, 32], [32, 128], node), path.join(ROOT, 'test/lower/operand-layout.yaml')), { plans });
    const ys: Buffer[] = [];
    for (const workers of [1, 2, 3]) {
      const session = await Session.create(numerics, { workers, numerics: true });
      try {
        ys.push(Buffer.from(((await session.runStep()).anchors.get('y')!.data as Float32Array).slice().buffer));
      } finally {
        await session.close();
      }
    }
    expect(ys[1].equals(ys[0]) && ys[2].equals(ys[0])).toBe(true);
  });
});

describe('a strided operand block is created for the matmul only where no other op reads the tensor per interval', () => {
  // A Linear weight [N, K] read transposed, the contraction split in 4: each tile's block is 8 rows of 32
  // elements, 8 intervals on the tile.
  const split: MatMulSplit = { bBlock: 1, mBlock: 16, nBlock: 8, kBlock: 32 };
  const plans: PlanOverrides = { matmul: () => split };
  const node = '{op: Gemm, inputs: [x, w], outputs: [y], attributes: {transB: 1}}';
  const mostPerTile = (t: DeviceTensor) => {
    const n = new Map<number, number>();
    for (const iv of intervalList(t.intervals)) n.set(iv.tile, (n.get(iv.tile) ?? 0) + 1);
    return Math.max(...n.values());
  };

  it('inference: the weight lies in the blocks the tiles read, strided, and never travels', async () => {
    const { p, tensor, created } = await compiled(config([16, 128], [32, 128], node), plans);
    expect(created).toContain('w');
    expect(mostPerTile(tensor('w'))).toBeGreaterThan(2);
    expect(remoteBytesFrom(p, tensor('w'))).toBe(0);
  });

  it('training: the SGD update reads the weight per interval, so it keeps a linear mapping', async () => {
    const train = `${config([16, 128], [32, 128], node)}train:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.1}\n`;
    const { tensor, created } = await compiled(train, plans);
    expect(created).not.toContain('w');
    expect(mostPerTile(tensor('w'))).toBeLessThanOrEqual(2);
  });
});
