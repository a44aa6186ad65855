/**
 * The matmul planner (src/lower/matmul-planner.ts): its estimates against
 * hand-derived numbers and against the simulator, the memory limit, the
 * one-stage mapping it must beat, serial splits, and the numbers the lowered
 * programs compute on split plans (forward vs onnxruntime-node, grads vs
 * finite differences) on the tiny device and on a 64-tile Mk2.
 */
import { describe, expect, it } from 'vitest';
import { compileReport } from '../../src/cli/compile-report.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { loadConfigText } from '../../src/config/load.js';
import { Graph } from '../../src/ir/graph.js';
import { describePlan, estimatePlan, naiveSplit, planMatMul, type MatMulShape, type MatMulSplit } from '../../src/lower/matmul-planner.js';
import { createRegistry } from '../../src/model/modules.js';
import { MatMulOp } from '../../src/ops/matmul.js';
import { compile, runGraph } from '../../src/session.js';
import type { DeviceSpec } from '../../sim/device.js';
import { tiny } from '../helpers.js';
import { roundHalf } from '../../sim/half.js';
import { checkForward, checkGrad, f32, runOurs } from '../ops/harness.js';

const mk2x64: DeviceSpec = { ...loadDevicePreset('mk2'), tilesPerIpu: 64 };
const shape = (m: number, k: number, n: number, dtype: 'float16' | 'float32' = 'float32', groups = 1): MatMulShape => ({ groups, m, n, k, inDtype: dtype, outDtype: dtype });

describe('estimatePlan: hand-derived', () => {
  it('one stage: [16 x 32] x [32 x 8] fp32 on tiny, rows over 4 tiles', () => {
    const p = estimatePlan(shape(16, 32, 8), { bBlock: 1, mBlock: 4, nBlock: 8, kBlock: 32 }, tiny());
    // Exchange: each tile receives A 4 x 32 x 4 B = 512 and B 32 x 8 x 4 B = 1024. All 4 tiles take the same
    // B, and tiles 0-1 and 2-3 share an exchange bus: numbered rows-innermost, bus-mates split B's charge:
    // 512 + 1024 / 2 = 1024 B. A (512 floats) and B (256 floats) map linearly over all 4 tiles, and a holder
    // sends each piece once: 2048 / 4 + 1024 / 4 = 768 B. max(1024, 768) / 4 B per cycle = 256 cycles.
    expect(p.cycles.exchange).toBe(256);
    expect(p.shareA).toBe(false);
    // AMP, fp32 on Mk2: 16 x 8 / 16 = 8 output channels per pass, so P = 2 passes per group of 16, and
    // IG = ceil(32 / 16) = 2 input groups, OG = 1. Rows 4 -> workers [1, 1, 1, 1, -, -]: a 1-row float
    // worker costs 47 + (2 + 4) = 53 zeroing, 47 not; fastest worker (idle) 0 -> 0 + 14.
    // Worker passes: OG x P x (6 x 53 + (IG - 1) x 6 x 47) = 2 x (318 + 282) = 1200.
    // Weight loads: 4 passes x (8 units x 16 x 4 B / 16 B per cycle = 32) = 128.
    // Supervisor: 50 + 6 x 0 + (13 + 1 x (15 + 1 x (19 + 2 x 6)) + (11 + 1 x (18 + 2 x 7))) = 152.
    // 1200 + 128 + 152 = 1480, + 11 of compute-set launch = 1491.
    expect(p.cycles.compute).toBe(1491);
    expect(p.cycles.sync).toBe(500);
    expect(p.cycles.total).toBe(500 + 256 + 1491);
    expect(p.tempBytes).toBe(1536);
    expect([p.gB, p.gM, p.gN, p.gK, p.tiles, p.serial]).toEqual([1, 4, 1, 1, 4, 1]);
  });

  it('split contraction: [2 x 64] x [64 x 16] fp16 on tiny, K over 4 tiles, fp32 partials reduced', () => {
    const p = estimatePlan(shape(2, 64, 16, 'float16'), { bBlock: 1, mBlock: 2, nBlock: 16, kBlock: 16 }, tiny());
    expect([p.gK, p.tiles]).toEqual([4, 4]);
    // Received: A 2 x 16 x 2 B = 64, B 16 x 16 x 2 B = 512: 576 (bus-mates take different contraction chunks:
    // no sharing). A (128 halves) maps linearly onto 2 tiles (at least 64 halves = 128 B each), B (1024 halves)
    // onto 4, each piece sent once: 256 / 2 + 2048 / 4 = 640 B -> 160 cycles.
    expect(p.cycles.exchange).toBe(160);
    // AMP, fp16 on Mk2: 16 units, 1 pass, weight loads 16 x 32 B / 16 = 32. Rows 2 -> workers [1, 1, -, -, -, -]:
    // 31 + 1 - 7 (retention) = 25 each -> 6 x 25 = 150. Supervisor 50 + 6 x 7 + (13 + 11 + 18 + 7) = 141.
    // 150 + 32 + 141 + 11 = 334.
    expect(p.cycles.compute).toBe(334);
    // Output 32 halves on one tile (at least 64 halves each); it receives 4 partials x 32 x 4 B = 512 B (128 cycles).
    expect(p.cycles.reduceExchange).toBe(128);
    // Reduction of 4 x 32 fp32 partials: 64 vectors, ceil(64 / 6) = 11 per worker x 8 + one region 26 = 114;
    // 33 + 6 x 114 = 717, + 11 launch = 728.
    expect(p.cycles.reduce).toBe(728);
    expect(p.cycles.sync).toBe(1000);
    expect(p.cycles.total).toBe(1000 + 160 + 334 + 128 + 728);
    // Temporaries: operand blocks 576 + own partial block 2 x 16 x 4 = 128 + partials received 512.
    expect(p.tempBytes).toBe(1216);
  });

  it('serial steps multiply the cost of one step and do not add to its memory', () => {
    const one = estimatePlan(shape(64, 64, 64), { bBlock: 1, mBlock: 8, nBlock: 32, kBlock: 64 }, mk2x64);
    const two = estimatePlan(shape(64, 64, 128), { bBlock: 1, mBlock: 8, nBlock: 32, kBlock: 64, serialN: 2 }, mk2x64);
    expect([two.serial, two.stepN]).toEqual([2, 64]);
    expect(two.tempBytes).toBe(one.tempBytes);
    expect(two.cycles.compute).toBe(2 * one.cycles.compute);
  });
});

describe('planMatMul', () => {
  it('splits the contraction when that pays, beating the one-stage row mapping', () => {
    for (const dtype of ['float16', 'float32'] as const) {
      const r = planMatMul(shape(16, 2048, 16, dtype), mk2x64);
      // 16 rows leave most of 64 tiles idle in a row split, each running a 2048-long contraction.
      expect(r.plan.gK, dtype).toBeGreaterThan(1);
      expect(r.plan.cycles.total, dtype).toBeLessThan(r.naive.cycles.total / 2);
      expect(r.plan.tempBytes).toBeLessThanOrEqual(r.plan.memoryLimit);
    }
  });

  it('is never worse than the one-stage mapping when that fits (it is one of the candidates)', () => {
    const shapes = [shape(64, 64, 64), shape(256, 32, 16), shape(8, 512, 8, 'float16'), shape(3, 40, 24, 'float32', 4), shape(1024, 16, 16, 'float16')];
    for (const device of [tiny(), mk2x64]) {
      for (const s of shapes) {
        const r = planMatMul(s, device);
        if (r.naive.tempBytes <= r.naive.memoryLimit) expect(r.plan.cycles.total, JSON.stringify(s)).toBeLessThanOrEqual(r.naive.cycles.total);
      }
    }
  });

  it('keeps temporaries within availableMemoryProportion of a tile, and pays cycles for a tighter limit', () => {
    const s = shape(256, 256, 256);
    const loose = planMatMul(s, mk2x64);
    const limit = 0.01; // 6389 B of a 638976 B tile
    const tight = planMatMul(s, mk2x64, { availableMemoryProportion: limit });
    expect(loose.fallback || tight.fallback).toBe(false);
    expect(loose.plan.tempBytes).toBeLessThanOrEqual(Math.floor(0.6 * 638976));
    expect(tight.plan.memoryLimit).toBe(Math.floor(limit * 638976));
    expect(tight.plan.tempBytes).toBeLessThanOrEqual(tight.plan.memoryLimit);
    expect(loose.plan.tempBytes).toBeGreaterThan(tight.plan.memoryLimit);
    expect(tight.plan.cycles.total).toBeGreaterThan(loose.plan.cycles.total);
    expect(tight.overMemory).toBeGreaterThan(0);
  });

  it('takes serial steps when no one-step split fits (8192^3 fp16 on a full Mk2)', () => {
    const mk2 = loadDevicePreset('mk2');
    const r = planMatMul(shape(8192, 8192, 8192, 'float16'), mk2);
    expect(r.fallback).toBe(false);
    expect(r.plan.serial).toBeGreaterThan(1);
    expect(r.plan.tempBytes).toBeLessThanOrEqual(r.plan.memoryLimit);
    expect(r.plan.tiles).toBeLessThanOrEqual(1472);
    // No single step could hold its blocks: even the least-memory one-step split is over the limit.
    const oneStep = estimatePlan(shape(8192, 8192, 8192, 'float16'), { ...r.plan, serialM: 1, serialN: 1, mBlock: r.plan.mBlock * r.plan.serialM, nBlock: r.plan.nBlock * r.plan.serialN }, mk2);
    expect(oneStep.tempBytes).toBeGreaterThan(oneStep.memoryLimit);
  });

  it('falls back to the least-memory split, and says so, when nothing fits', () => {
    const r = planMatMul(shape(64, 64, 64), tiny(), { availableMemoryProportion: 1e-4 });
    expect(r.fallback).toBe(true);
    expect(describePlan(shape(64, 64, 64), r)).toMatch(/no split fits 63 B of temporaries per tile: took the one needing the least/);
  });

  it('describes the plan: split, blocks, estimate by phase, memory and the one-stage alternative', () => {
    const s = shape(16, 2048, 16, 'float16');
    const text = describePlan(s, planMatMul(s, mk2x64));
    expect(text).toMatch(/^\[16 x 2048\] x \[2048 x 16\] float16: groups 1 x rows \d+ x cols \d+ x contraction \d+ = \d+ tiles, block /);
    expect(text).toMatch(/estimated \d+ cycles \(sync 1000 \+ exchange \d+ \+ AMP \d+ \+ partials exchange \d+ \+ fp32 reduction \d+\)/);
    expect(text).toMatch(/fewest cycles of \d+ splits.*temporaries .* per tile of 374 KiB allowed; one-stage row split: \d+ cycles/);
  });

  it('the naive split puts whole rows and all of B on each tile', () => {
    expect(naiveSplit(shape(100, 30, 20), 64)).toEqual({ bBlock: 1, mBlock: 2, nBlock: 20, kBlock: 30 });
    expect(naiveSplit(shape(10, 30, 20, 'float32', 8), 64)).toEqual({ bBlock: 1, mBlock: 2, nBlock: 20, kBlock: 30 });
  });
});

describe('lowered split plans compute the right numbers', () => {
  /** A split that cuts every dimension it can: a function of the problem, so it also applies to grad ops. */
  const everyWay = (extra: Partial<MatMulSplit> = {}) => (s: MatMulShape): MatMulSplit => ({
    bBlock: Math.ceil(s.groups / 2),
    mBlock: Math.ceil(s.m / 2),
    nBlock: 16,
    kBlock: 16,
    ...extra,
  });

  // Tolerance: fp32 accumulation in a different order from onnxruntime's (see test/ops/matmul.test.ts);
  // with K <= 40 and |a|, |b| <= 1 partial sums stay below 40 (ulp 3.8e-6): atol 4e-5 allows ~10 ulps.
  const TOL = { atol: 4e-5, rtol: 1e-5 };

  it('batch, rows, columns and contraction all split (36 tiles of a 64-tile Mk2)', async () => {
    const plans = { matmul: everyWay() };
    await checkForward({ op: 'MatMul', plans, inputs: { a: f32([4, 6, 40], 1), b: f32([4, 40, 36], 2) }, device: mk2x64, ...TOL });
  });

  it('serial steps over rows and columns, with the contraction split', async () => {
    const plans = { matmul: () => ({ bBlock: 1, mBlock: 2, nBlock: 16, kBlock: 16, serialM: 2, serialN: 2 }) };
    await checkForward({ op: 'MatMul', plans, inputs: { a: f32([6, 40], 3), b: f32([40, 40], 4) }, device: mk2x64, ...TOL });
  });

  it('serial steps over columns with a whole contraction (the AMP writes the output in place)', async () => {
    const plans = { matmul: () => ({ bBlock: 1, mBlock: 2, nBlock: 16, kBlock: 8, serialN: 2 }) };
    await checkForward({ op: 'MatMul', plans, inputs: { a: f32([5, 8], 5), b: f32([8, 40], 6) }, device: mk2x64, ...TOL });
  });

  it('a broadcast batch with its contraction split, on the 4 tiles of tiny', async () => {
    // 6 groups x 4 rows in one block, the contraction of 40 over 3 tiles.
    const plans = { matmul: () => ({ bBlock: 6, mBlock: 4, nBlock: 16, kBlock: 16 }) };
    await checkForward({ op: 'MatMul', plans, inputs: { a: f32([2, 1, 4, 40], 7), b: f32([3, 40, 6], 8) }, device: tiny(), ...TOL });
  });

  it('grads through split plans, broadcast batch dimensions summed across tiles', async () => {
    // Halve every dimension, the contraction included: dA contracts 3 broadcast terms x 4 columns = 12
    // in chunks of 6 (straddling terms), dB 2 terms x 3 rows = 6 in chunks of 3; columns in 2 serial steps.
    const plans = { matmul: (s: MatMulShape) => ({
      bBlock: Math.ceil(s.groups / 2),
      mBlock: Math.ceil(s.m / 2),
      nBlock: Math.ceil(s.n / 2),
      kBlock: Math.ceil(s.k / 2),
      serialN: 2,
    }) };
    // Step h = 0.25: the projected loss is linear in each input, so the central difference has no
    // truncation error at any step, and a larger step divides the fp32 rounding of the loss by 2h.
    // Every term stays positive: a step moves each y by <= 0.25 < C - |y R| = 1.
    await checkGrad({ op: 'MatMul', plans, inputs: { a: f32([2, 1, 3, 5], 9), b: f32([3, 5, 4], 10) }, device: mk2x64, h: 0.25 });
  });

  it('fp16 operands, contraction split over 8 tiles: fp32 partials make the fp16 result correctly rounded', async () => {
    const plans = { matmul: () => ({ bBlock: 1, mBlock: 4, nBlock: 8, kBlock: 64 }) };
    const half = (shape: number[], seed: number) => ({ ...f32(shape, seed), dtype: 'float16' as const });
    const a = half([4, 512], 13);
    const b = half([512, 8], 14);
    const y = (await runOurs({ op: 'MatMul', plans, inputs: { a, b }, device: mk2x64, outputDtype: 'float16' })).get('y')!;
    // Exact products of the fp16-rounded inputs (float64 is exact enough here: 512 terms of 22-bit products).
    // fp32 partials carry ~2^-24 relative error each, far below an fp16 ulp (2^-11 relative), so the only
    // visible error is the final rounding to fp16: at most half an ulp. Partials rounded to fp16 on each of
    // the 8 tiles would add up to 8 more half-ulps of the partial sums.
    let worst = 0;
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 8; j++) {
        let exact = 0;
        for (let k = 0; k < 512; k++) exact += roundHalf(a.data[i * 512 + k]) * roundHalf(b.data[k * 8 + j]);
        const ulp = 2 ** (Math.floor(Math.log2(Math.abs(exact))) - 10);
        worst = Math.max(worst, Math.abs(y[i * 8 + j] - exact) / ulp);
      }
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-3);
  });

  it("the planner's own choice on a long contraction (64-tile Mk2)", async () => {
    // K = 2048: partial sums of 2048 products of values in [-1, 1] stay below ~100 (ulp 7.6e-6); rounding
    // after each of the 2048 accumulations on either side can drift by ~sqrt(2048) ulps: atol 1e-3.
    await checkForward({ op: 'MatMul', inputs: { a: f32([4, 2048], 11), b: f32([2048, 4], 12) }, device: mk2x64, atol: 1e-3, rtol: 1e-5 });
  });
});

describe('estimates against the simulator', () => {
  /**
   * The plan's estimate is what the simulator then charges, up to the
   * planner's simplifications: it assumes none of an operand block is on its
   * tile already and that every operand holder sends an equal share, where
   * the lowered exchange sees the actual mappings. Those only move the
   * exchange phase (a few percent of the op here, 2% at most today); 10%
   * leaves room for operand mappings the planner does not see.
   */
  it.each([
    [[64, 64], [64, 64]],
    [[16, 2048], [2048, 16]],
    [[256, 128], [128, 96]],
    [[4, 3, 40], [40, 24]],
  ])('%j x %j on a 64-tile Mk2: within 10%', async (a, b) => {
    const registry = await createRegistry([]);
    const g = new Graph();
    g.addTensor('a', { dtype: 'float32', shape: a }, 'stream');
    g.addTensor('b', { dtype: 'float32', shape: b }, 'stream');
    g.addOp(new MatMulOp({ name: 'mm' }), ['a', 'b'], ['y']);
    const n = (s: number[]) => s.reduce((x, y) => x * y, 1);
    const r = await runGraph({ graph: g, registry, device: mk2x64, inputs: { a: new Float32Array(n(a)), b: new Float32Array(n(b)) }, outputs: ['y'] });
    const simulated = r.phases.filter((p) => p.op === 'mm').reduce((s, p) => s + p.cycles, 0);
    const note = r.program.notes!.find((x) => x.op === 'mm' && x.kind === 'plan')!.text;
    const estimated = Number(/estimated (\d+) cycles/.exec(note)![1]);
    console.log(`${JSON.stringify(a)} x ${JSON.stringify(b)}: estimated ${estimated}, simulated ${simulated} (${(((estimated - simulated) / simulated) * 100).toFixed(1)}%)`);
    expect(Math.abs(estimated - simulated) / simulated).toBeLessThanOrEqual(0.1);
  });
});

describe('sim compile', () => {
  it('reports the plan of every matmul, honouring the config device availableMemoryProportion', async () => {
    const text = (proportion: number) => `
device: {preset: mk2, tiles: 64, availableMemoryProportion: ${proportion}}
model:
  graph:
    inputs: {x: {shape: [16, 2048]}}
    initializers: {w: {shape: [2048, 16], init: {constant: 0.5}}}
    nodes: [{op: MatMul, inputs: [x, w], outputs: [y]}]
    outputs: [y]
inputs: {x: {random: {distribution: uniform, low: -1, high: 1}}}
`;
    const report = compileReport(await compile(loadConfigText(text(0.6), 'planner.yaml')));
    expect(report).toMatch(/plans\n(?: {2}.*\n)*? {2}MatMul_0 \[plan\]: \[16 x 2048\] x \[2048 x 16\] float32: .*contraction \d+.*estimated \d+ cycles/);
    // w is laid out where the plan reads it (createMatMulInputRHS), and the report says what that saved.
    expect(report).toMatch(/MatMul_0 \[layout\]: input 1 'w' is created where this op reads it/);
    expect(report).toMatch(/MatMul_0 \[layout\]: layout saved [\d.]+ kB of exchange: it brings [\d.]+ k?B of inputs laid out by their consumers from other tiles, [\d.]+ kB had they been mapped linearly/);
    // The config's value reaches the planner: 0.01 of 638976 B leaves 6389 B for temporaries.
    const device = loadConfigText(text(0.01), 'planner.yaml').device;
    expect(device.availableMemoryProportion).toBe(0.01);
    const tight = planMatMul(shape(16, 2048, 16), device);
    expect(tight.plan.memoryLimit).toBe(6389);
    expect(tight.plan.tempBytes).toBeLessThanOrEqual(6389);
  });
});
