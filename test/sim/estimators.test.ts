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

describe('scaledAdd (PopLibs ScaledAdd supervisor vertex, with its pointer unpacking and tail handling)', () => {
  // supervisor = 21 + 6 (unpack pointers) + 11 + (remainder ? 13 : 7) + 12 + 6
  // worker w gets floor(V/6) vectors, +1 if w < V mod 6: 15 + (v > 0 ? 6 + 3(v - 1) : 0) + 2,
  // +1 on exit; the worker w = V mod 6 also handles the tail: +1, and +8 (fp32) for a remainder.
  it('float32, N = 64: no remainder', () => {
    // V = 32: supervisor 63; workers 0-1 take 6 vectors: 15 + 6 + 15 + 2 + 1 = 39 (the busiest)
    // total = 63 + 6 x 39 = 297
    expect(scaledAdd(64, 'float32', dev)).toBe(297);
  });

  it('float32, N = 65: a remainder costs 13 supervisor cycles instead of 7, and the tail worker 8 more', () => {
    // V = 32, remainder 1: supervisor 69; worker 2 (5 vectors + tail): 15 + 6 + 12 + 2 + 1 + 8 + 1 = 45
    // total = 69 + 6 x 45 = 339
    expect(scaledAdd(65, 'float32', dev)).toBe(339);
  });

  it('float32, N = 512', () => {
    // V = 256: workers 0-3 take 43: 15 + 6 + 126 + 2 + 1 = 150; 63 + 6 x 150 = 963
    expect(scaledAdd(512, 'float32', dev)).toBe(963);
  });

  it('float16, N = 64: four elements per vector', () => {
    // V = 16: workers 0-3 take 3: 15 + 6 + 6 + 2 + 1 = 30; 63 + 6 x 30 = 243
    expect(scaledAdd(64, 'float16', dev)).toBe(243);
  });

  it('N = 1: no whole vector, a remainder', () => {
    // V = 0, remainder 1: supervisor 69; worker 0: 15 + 2 + 1 + 8 + 1 = 27; 69 + 6 x 27 = 231
    expect(scaledAdd(1, 'float32', dev)).toBe(231);
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

// The §6 ScaledAdd measurements (N = 64 and 512) are checked in one place, test/cycles/calibration.test.ts,
// on one model: what the simulator charges for a compute set of one vertex (the estimate plus the
// supervisor launch, added once, by sim/cost.ts), within the stated 10%.
