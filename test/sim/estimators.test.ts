/**
 * The cycle-estimator building blocks (ipu-architecture.md §3) against numbers
 * worked out by hand from the formulas, on the tiny preset (Mk2 per-tile
 * parameters: W = 6 workers, 64-bit vectors), plus the ScaledAdd calibration
 * points of §6.
 */
import { describe, expect, it } from 'vitest';
import {
  ADD_LOOP,
  RELU_LOOP,
  addLoop,
  binaryMultiVertex,
  innerLoop,
  perWorker,
  reduce,
  scaledAdd,
  unaryMultiVertex,
  vectorWidth,
  type LoopCost,
} from '../../sim/codelets/estimators.js';
import { tiny } from '../helpers.js';

const dev = tiny();

describe('vectorWidth', () => {
  it('packs 64-bit vectors: 2 x f32, 4 x f16, 2 x i32, 8 x u8', () => {
    expect(dev.vectorWidthBits).toBe(64);
    // 64 bits / 8 = 8 bytes; / 4 bytes = 2, / 2 bytes = 4, / 1 byte = 8.
    expect(vectorWidth('float32', dev)).toBe(2);
    expect(vectorWidth('float16', dev)).toBe(4);
    expect(vectorWidth('int32', dev)).toBe(2);
    expect(vectorWidth('uint8', dev)).toBe(8);
  });

  it('follows the preset and never drops below one element', () => {
    // 128 bits = 16 bytes: 4 x f32, 8 x f16.
    expect(vectorWidth('float32', tiny({ vectorWidthBits: 128 }))).toBe(4);
    expect(vectorWidth('float16', tiny({ vectorWidthBits: 128 }))).toBe(8);
    // 16 bits = 2 bytes hold half an f32: still one element per instruction.
    expect(vectorWidth('float32', tiny({ vectorWidthBits: 16 }))).toBe(1);
  });
});

describe('perWorker and innerLoop', () => {
  it('gives the busiest worker ceil(N / W) elements', () => {
    expect(perWorker(100, dev)).toBe(17); // ceil(100 / 6) = 17
    expect(perWorker(6, dev)).toBe(1);
    expect(perWorker(7, dev)).toBe(2);
    expect(perWorker(0, dev)).toBe(0);
  });

  it('counts vectorised loops per vector (+4) and scalar loops per unroll', () => {
    const vec: LoopCost = { cyclesPerLoop: 5, vectorised: true, unroll: 1 };
    // vectorised: ceil(17 / 4) = 5 vectors x (5 + 4) = 45
    expect(innerLoop(17, 4, vec)).toBe(45);
    // scalar, unroll 2: ceil(17 / 2) = 9 x 3 = 27 (the vector width is ignored)
    expect(innerLoop(17, 4, RELU_LOOP)).toBe(27);
    expect(innerLoop(0, 2, RELU_LOOP)).toBe(0);
  });
});

describe('unaryMultiVertex: W x (base + inner(ceil(N/W))) + 20', () => {
  it('relu float32, N = 100', () => {
    // per worker ceil(100/6) = 17; inner = ceil(17/2) x 3 = 27; 6 x (17 + 27) + 20 = 284
    expect(unaryMultiVertex(100, 'float32', RELU_LOOP, dev)).toBe(284);
  });

  it('exp float32 {6, no, 2} with the exp base of 33, N = 100', () => {
    // inner = ceil(17/2) x 6 = 54; 6 x (33 + 54) + 20 = 542
    expect(unaryMultiVertex(100, 'float32', { cyclesPerLoop: 6, vectorised: false, unroll: 2 }, dev, 33)).toBe(542);
  });

  it('a vectorised half loop uses the half vector width (4)', () => {
    const vec: LoopCost = { cyclesPerLoop: 5, vectorised: true, unroll: 1 };
    // per worker 17; ceil(17/4) = 5 vectors x (5 + 4) = 45; 6 x (17 + 45) + 20 = 392
    expect(unaryMultiVertex(100, 'float16', vec, dev)).toBe(392);
    // float32: ceil(17/2) = 9 x 9 = 81; 6 x (17 + 81) + 20 = 608
    expect(unaryMultiVertex(100, 'float32', vec, dev)).toBe(608);
  });

  it('scales with the preset worker count', () => {
    // W = 4: per worker 25; ceil(25/2) x 3 = 39; 4 x (17 + 39) + 20 = 244
    expect(unaryMultiVertex(100, 'float32', RELU_LOOP, tiny({ workersPerTile: 4 }))).toBe(244);
  });
});

describe('binaryMultiVertex: W x ((float ? 29 : 26) + inner) + 11, in place base 58', () => {
  it('add float32, N = 100', () => {
    // addLoop(float32) = {3, no, 2}: inner = ceil(17/2) x 3 = 27; 6 x (29 + 27) + 11 = 347
    expect(addLoop('float32')).toEqual(ADD_LOOP);
    expect(binaryMultiVertex(100, 'float32', addLoop('float32'), dev)).toBe(347);
  });

  it('add float16, N = 100: base 26 and 4 elements per loop', () => {
    // addLoop(float16) = {3, no, 4}: inner = ceil(17/4) x 3 = 15; 6 x (26 + 15) + 11 = 257
    expect(addLoop('float16')).toEqual({ cyclesPerLoop: 3, vectorised: false, unroll: 4 });
    expect(binaryMultiVertex(100, 'float16', addLoop('float16'), dev)).toBe(257);
  });

  it('in place float32, N = 100', () => {
    // 6 x (58 + 27) + 11 = 521
    expect(binaryMultiVertex(100, 'float32', addLoop('float32'), dev, true)).toBe(521);
  });

  it('small and empty vertices pay the fixed cost', () => {
    // N = 4: per worker 1; inner = ceil(1/2) x 3 = 3; 6 x (29 + 3) + 11 = 203
    expect(binaryMultiVertex(4, 'float32', addLoop('float32'), dev)).toBe(203);
    // N = 0: inner 0; 6 x 29 + 11 = 185
    expect(binaryMultiVertex(0, 'float32', addLoop('float32'), dev)).toBe(185);
  });
});

describe('scaledAdd: supervisor 21 + 11 + (rem ? 13 : 7) + 12 + 6, worker 15 + 6 + 3 (v - 1) + 2', () => {
  it('float32, N = 64: no remainder', () => {
    // vw 2 -> 32 vectors, no remainder: supervisor = 21 + 11 + 7 + 12 + 6 = 57
    // vectors per worker = ceil(32/6) = 6: worker = 15 + 6 + 3 x 5 + 2 = 38
    // total = 57 + 6 x 38 = 285
    expect(scaledAdd(64, 'float32', dev)).toBe(285);
  });

  it('float32, N = 65: a remainder costs 13 supervisor cycles instead of 7', () => {
    // 33 vectors, remainder: supervisor = 21 + 11 + 13 + 12 + 6 = 63; ceil(33/6) = 6 -> worker 38
    // total = 63 + 228 = 291
    expect(scaledAdd(65, 'float32', dev)).toBe(291);
  });

  it('float32, N = 512', () => {
    // 256 vectors; ceil(256/6) = 43: worker = 15 + 6 + 3 x 42 + 2 = 149; 57 + 6 x 149 = 951
    expect(scaledAdd(512, 'float32', dev)).toBe(951);
  });

  it('float16, N = 64: four elements per vector', () => {
    // 16 vectors, no remainder: 57; ceil(16/6) = 3: worker = 15 + 6 + 6 + 2 = 29; 57 + 174 = 231
    expect(scaledAdd(64, 'float16', dev)).toBe(231);
  });

  it('N = 1: one vector, a remainder, no loop iterations', () => {
    // supervisor 63; worker = 15 + 6 + 0 + 2 = 23; 63 + 138 = 201
    expect(scaledAdd(1, 'float32', dev)).toBe(201);
  });
});

describe('reduce: 7 + 26 + W x (ceil(R/W) x region + ceil(ceil(N/vw)/W) x 8)', () => {
  it('float32, 100 inputs into one region', () => {
    // region = 16 + 6 + 2 x log2(2) + 2 = 26; vectors = 50, ceil(50/6) = 9 -> 9 x 8 = 72
    // worker = 1 x 26 + 72 = 98; total = 33 + 6 x 98 = 621
    expect(reduce(100, 1, 'float32', dev)).toBe(621);
  });

  it('float16, 100 inputs into one region', () => {
    // region = 16 + 6 + 2 x 2 + 2 = 28; vectors = 25, ceil(25/6) = 5 -> 40; worker 68; 33 + 408 = 441
    expect(reduce(100, 1, 'float16', dev)).toBe(441);
  });

  it('float32, 12 inputs into 7 regions (two regions on the busiest worker)', () => {
    // ceil(7/6) = 2 regions x 26 = 52; vectors = 6, ceil(6/6) = 1 -> 8; worker 60; 33 + 360 = 393
    expect(reduce(12, 7, 'float32', dev)).toBe(393);
  });
});

/**
 * ipu-architecture.md §6: ScaledAdd a += s.b on N fp32 elements, one vertex on
 * one tile, measured on Mk2-class hardware at N = 64: 375 cycles and N = 512:
 * 1043 cycles, each including about 45 cycles of counter-read overhead, so the
 * vertex itself takes about 330 and 998 cycles.
 *
 * Tolerances. The aim (§6, issue 4) is 10% at every point. Today the model
 * gives 285 at N = 64 (hand-computed above), 13.6% under 330: the fixed
 * supervisor/worker start-up is underestimated for small N. This test holds
 * the model at 15% there, so it fails if the model drifts further away, and
 * at 10% for N = 512 (model 951, 4.7% under 998), where it already meets
 * the aim. Tighten N = 64 to 10% when issue 4 recalibrates.
 */
describe('ScaledAdd calibration (ipu-architecture.md §6)', () => {
  const COUNTER_OVERHEAD = 45;
  const points = [
    { n: 64, measured: 375, tolerance: 0.15 },
    { n: 512, measured: 1043, tolerance: 0.1 },
  ];
  for (const { n, measured, tolerance } of points) {
    it(`N = ${n}: within ${tolerance * 100}% of ${measured} - ${COUNTER_OVERHEAD} cycles`, () => {
      const target = measured - COUNTER_OVERHEAD;
      const model = scaledAdd(n, 'float32', tiny());
      const error = (model - target) / target;
      console.log(`ScaledAdd N=${n}: model ${model} cycles vs measured ${target} (${(error * 100).toFixed(1)}%)`);
      expect(Math.abs(error)).toBeLessThanOrEqual(tolerance);
    });
  }
});
