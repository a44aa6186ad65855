/**
 * Calibration (issue 4 item 8): every calibration point of
 * ../shared/ipu-architecture.md §6, reproduced from the device presets and the
 * estimators as the simulator charges them (a compute set of one vertex on one
 * tile), printed as model vs measured, failing beyond the point's tolerance:
 * 10% everywhere, the aim of §6. The STREAM triad point is the exception: it
 * checks the preset's load/store bound, which no simulated program reaches
 * (see the last describe block). The points and the model come from
 * scripts/fidelity.ts, which also writes reports/fidelity.md.
 *
 * No constant of the model was fitted to these numbers; the hand-derived
 * tests below pin the estimators' structure (PopLibs' own, cited in
 * sim/codelets/amp.ts and sim/codelets/estimators.ts) so that reaching a
 * point by changing a constant shows up here.
 */
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { ampBreakdown, ampGeometry, ampVertexCycles, ampWorkerCycles, rowsPerWorker } from '../../sim/codelets/amp.js';
import { scaledAdd } from '../../sim/codelets/estimators.js';
import { ampVertex, calibrationPoints, oneVertexTile, relativeError, scaledAddVertex, triadElementsPerCycle } from '../../scripts/fidelity.js';

const bow = loadDevicePreset('bow');
const mk2 = loadDevicePreset('mk2');
const mk1 = loadDevicePreset('mk1');

describe('the calibration points of ipu-architecture.md §6', () => {
  const points = calibrationPoints();

  it('covers every §6 point', () => {
    const inDoc = points.filter((p) => p.inDoc).map((p) => `${p.group} ${p.measured}`);
    // AMP N = 16, 256, 2048; ScaledAdd N = 64 and 512 (375 and 1043 less 45 cycles of counter reads); the triad.
    expect(inDoc).toEqual(['AMP 402', 'AMP 1352', 'AMP 8525', 'ScaledAdd 330', 'ScaledAdd 998', 'STREAM triad 1.98']);
  });

  for (const p of points) {
    it(`${p.group}, ${p.label} on ${p.preset}: within ${p.tolerance * 100}% of ${p.measured} ${p.unit}`, () => {
      const e = relativeError(p);
      console.log(`${p.group} ${p.label}: model ${p.unit === 'cycles' ? p.model : p.model.toFixed(3)} vs measured ${p.measured} ${p.unit} (${(e * 100).toFixed(1)}%)`);
      expect(Math.abs(e)).toBeLessThanOrEqual(p.tolerance);
    });
  }
});

describe('AMP estimator structure (PopLibs ConvPartial1x1Out, hand-derived)', () => {
  it('derives the AMP geometry from the preset', () => {
    // Mk2/Bow: 64 f16 MACs/cycle = 16 units x 4; f32: 16 x 8 cycles per row / 16 inputs = 8 outputs per pass.
    expect(ampGeometry('float16', bow)).toMatchObject({ outChansPerPass: 16, passesPerGroup: 1, coreCyclesPerRow: 4, weightLoadCycles: 32 });
    expect(ampGeometry('float32', mk2)).toMatchObject({ outChansPerPass: 8, passesPerGroup: 2, coreCyclesPerRow: 8, weightLoadCycles: 32 });
    // Mk1: 32 f16 MACs/cycle = 8 units: 8 x 32 B / 16 = 16 cycles of weights, 2 passes per 16 outputs.
    expect(ampGeometry('float16', mk1)).toMatchObject({ outChansPerPass: 8, passesPerGroup: 2, weightLoadCycles: 16 });
    // One pass row: 16 inputs x outChansPerPass MACs in coreCyclesPerRow cycles is the preset's rate.
    for (const d of [mk1, mk2, bow]) {
      const h = ampGeometry('float16', d);
      const f = ampGeometry('float32', d);
      expect((16 * h.outChansPerPass) / h.coreCyclesPerRow).toBe(d.ampMacsPerCycle.float16);
      expect((16 * f.outChansPerPass) / f.coreCyclesPerRow).toBe(d.ampMacsPerCycle.float32);
    }
  });

  it('costs a worker by its rows: 37 + 4(n - 3) for half (less 7 retained), 46 + 8(n - 3) (+ zeroing) for float', () => {
    const h = ampGeometry('float16', bow);
    expect(ampWorkerCycles(3, h, true)).toBe(37 - 7);
    expect(ampWorkerCycles(43, h, true)).toBe(37 + 4 * 40 - 7);
    expect(ampWorkerCycles(43, h, false)).toBe(38 + 4 * 40 - 7);
    expect(ampWorkerCycles(2, h, true)).toBe(40 + 1 - 7); // two rows cost more than three
    expect(ampWorkerCycles(1, h, true)).toBe(31 + 1 - 7);
    expect(ampWorkerCycles(undefined, h, true)).toBe(0);
    const f = ampGeometry('float32', mk2);
    // 8 conv units: zeroing costs 4 per row; 46 + (2 + 4 x 10) + 8 x 7 = 144
    expect(ampWorkerCycles(10, f, true)).toBe(144);
    expect(ampWorkerCycles(10, f, false)).toBe(46 + 8 * 7);
    expect(rowsPerWorker(16, 6)).toEqual([3, 3, 3, 3, 2, 2]);
    expect(rowsPerWorker(4, 6)).toEqual([1, 1, 1, 1, undefined, undefined]);
  });

  it('N = 16 on Bow: 204 worker + 32 weight + 141 supervisor = 377, + 11 launch = 388', () => {
    // Workers [3, 3, 3, 3, 2, 2]: 30 and 34 cycles; max(6 x 34, 6 x 30 + 14) = 204.
    // Supervisor: 50 + 6 x 7 + (12 + 1) + (10 + 1 + (19 - 1 + (7))) = 50 + 42 + 13 + 36 = 141.
    expect(ampBreakdown({ groups: 1, rows: 16, k: 16, n: 16 }, 'float16', bow)).toEqual({ supervisor: 141, weightLoads: 32, workers: 204, passes: 1, total: 377 });
    expect(oneVertexTile(ampVertex(16), bow)).toBe(377 + bow.supervisorOverheadCycles);
  });

  it('more input groups, output groups and conv groups add passes and supervisor loops', () => {
    // k = 32 (IG = 2), n = 32 (OG = 2), 2 conv groups, 6 rows: one per worker, 31 + 1 - 7 = 25 zeroing,
    // 31 + 2 - 7 = 26 not. Every worker is busy, so the fastest's + 14 rules: max(6 x 25, 6 x 25 + 14) = 164
    // and max(6 x 26, 6 x 26 + 14) = 170. Passes 2 x 2 x 2 = 8: weights 8 x 32 = 256.
    // Workers: CG x OG x (164 + (IG - 1) x 170) = 2 x 2 x 334 = 1336.
    // Supervisor: 50 + 6 x (7 + 3 x (2 x 2 - 1)) + 2 x (13 + (15 + 2 x (19 + 6)) + (11 + 2 x (18 + 7)))
    //   = 50 + 96 + 2 x (13 + 65 + 61) = 424.
    expect(ampBreakdown({ groups: 2, rows: 6, k: 32, n: 32 }, 'float16', bow)).toEqual({ supervisor: 424, weightLoads: 256, workers: 1336, passes: 8, total: 2016 });
  });

  it('swap costs the transposed product: rows and output channels exchange roles', () => {
    const v = ampVertex(16);
    const swapped = { ...v, params: { ...v.params, rows: 4, n: 64, swap: 1 } };
    expect(oneVertexTile(swapped, bow) - bow.supervisorOverheadCycles).toBe(ampVertexCycles({ groups: 1, rows: 64, k: 16, n: 4 }, 'float16', bow));
  });
});

describe('ScaledAdd estimator structure (PopLibs scaled arithmetic, hand-derived)', () => {
  it('float32: supervisor 63, busiest worker 15 + 6 + 3 (v - 1) + 2 + 1', () => {
    // N = 64: 32 vectors, 6 on workers 0 and 1: 15 + 6 + 15 + 2 + 1 = 39; 63 + 6 x 39 = 297.
    expect(scaledAdd(64, 'float32', mk2)).toBe(297);
    // N = 512: 256 vectors, 43 on workers 0-3: 15 + 6 + 126 + 2 + 1 = 150; 63 + 900 = 963.
    expect(scaledAdd(512, 'float32', mk2)).toBe(963);
    // N = 65: a remainder element: supervisor 69; worker 2 has 5 vectors + the tail: 15 + 6 + 12 + 2 + 1 + 8 + 1 = 45.
    expect(scaledAdd(65, 'float32', mk2)).toBe(69 + 6 * 45);
    // float16, N = 64: 16 vectors of 4, 3 on workers 0-3: 15 + 6 + 6 + 2 + 1 = 30; 63 + 180 = 243.
    expect(scaledAdd(64, 'float16', mk2)).toBe(243);
  });

  it('is what the simulator charges for one SGD step without momentum (one ScaledAdd pass)', () => {
    expect(oneVertexTile(scaledAddVertex(512), mk2)).toBe(963 + mk2.supervisorOverheadCycles);
  });
});

/**
 * The STREAM triad point compares hand-written assembly with the preset's
 * load/store bandwidth, not with a simulated program: the simulator costs
 * PopLibs-style vertices, which run below that bound. What it can check is
 * that the simulator never charges a triad-shaped vertex (ScaledAdd: two
 * loads and one store per element) less than the bound allows.
 */
describe('STREAM triad bound', () => {
  it('is the load/store limit of the preset: 8 B in and 4 B out per fp32 element', () => {
    expect(triadElementsPerCycle(mk2)).toBe(2);
    expect(triadElementsPerCycle({ ...mk2, storeBytesPerCycle: 4 })).toBe(1);
  });

  it('is never beaten by what the simulator charges for a triad-shaped vertex', () => {
    for (const n of [64, 512, 4096, 32768]) {
      const perCycle = n / oneVertexTile(scaledAddVertex(n), mk2);
      console.log(`ScaledAdd N=${n}: ${perCycle.toFixed(3)} elements/cycle charged, bound ${triadElementsPerCycle(mk2)}`);
      expect(perCycle).toBeLessThanOrEqual(triadElementsPerCycle(mk2));
      // Long vectors amortise the launch: PopLibs' loop moves 2 floats per 3 cycles per worker (2/3 per cycle), a third of the bound.
      if (n >= 4096) expect(perCycle).toBeGreaterThan(0.3 * triadElementsPerCycle(mk2));
    }
  });
});
