/**
 * The calibration points of ../shared/ipu-architecture.md §6 and what the
 * model says for each, computed from the device presets and the cycle
 * estimators exactly as the simulator charges them (sim/cost.ts
 * computeSetCost on a compute set of one vertex). Run as a script it writes
 * reports/fidelity.md; test/cycles/calibration.test.ts imports the same
 * points and fails beyond their tolerance.
 *
 *   npx tsx scripts/fidelity.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadDevicePreset } from '../src/config/devices.js';
import { CodeletRegistry } from '../sim/codelet.js';
import { ampBreakdown, ampGeometry, rowsPerWorker } from '../sim/codelets/amp.js';
import { scaledAdd } from '../sim/codelets/estimators.js';
import { registerBuiltinCodelets } from '../sim/codelets/index.js';
import { computeSetCost } from '../sim/cost.js';
import type { DeviceSpec } from '../sim/device.js';
import type { Vertex } from '../sim/program.js';
import { vertexTable } from '../sim/vertex-table.js';

export interface CalibrationPoint {
  /** Which §6 row. */
  group: 'AMP' | 'ScaledAdd' | 'STREAM triad';
  label: string;
  preset: string;
  /** The measurement as the model should reproduce it (overheads the doc names removed). */
  measured: number;
  model: number;
  unit: string;
  /** |model - measured| / measured must not exceed this. */
  tolerance: number;
  /** Where the measured value comes from and what was removed from it. */
  source: string;
  /** True for points §6 lists; false for further points from the same source. */
  inDoc: boolean;
}

function builtins(): CodeletRegistry {
  const r = new CodeletRegistry();
  registerBuiltinCodelets(r);
  return r;
}

/** What the simulator charges for a compute set of this one vertex on one tile (supervisor launch included). */
export function oneVertexTile(v: Omit<Vertex, 'tile'>, device: DeviceSpec, codelets = builtins()): number {
  return computeSetCost({ id: 0, name: 'probe', op: 'probe', vertices: vertexTable([{ ...v, tile: 0 }]) }, codelets, device).cycles;
}

/** The AMP point: fp16 [N, 16] x [16, 16] -> fp32, one AmpMatMul vertex on a tile. */
export function ampVertex(n: number): Omit<Vertex, 'tile'> {
  return {
    codelet: 'AmpMatMul',
    fields: {
      a: [{ offset: 0, count: n * 16, dtype: 'float16' }],
      b: [{ offset: 0, count: 256, dtype: 'float16' }],
      out: [{ offset: 0, count: n * 16, dtype: 'float32' }],
    },
    params: { groups: 1, rows: n, k: 16, n: 16, transA: 0, transB: 0, swap: 0 },
  };
}

/** The ScaledAdd point: a += s.b on N fp32 elements. SGDUpdate without momentum or decay is one ScaledAdd pass (w += -lr.g). */
export function scaledAddVertex(n: number): Omit<Vertex, 'tile'> {
  return {
    codelet: 'SGDUpdate',
    fields: { w: { offset: 0, count: n, dtype: 'float32' }, g: { offset: 0, count: n, dtype: 'float32' } },
    params: { lr: 0.01, momentum: 0, dampening: 0, weightDecay: 0, nesterov: 0 },
  };
}

/** STREAM triad a = b + s.c in fp32 at the load/store limit: 8 B loaded and 4 B stored per element. */
export function triadElementsPerCycle(device: DeviceSpec): number {
  return Math.min(device.loadBytesPerCycle / 8, device.storeBytesPerCycle / 4);
}

/** Counter-read overhead §6 says the ScaledAdd measurements include. */
export const SCALED_ADD_COUNTER_OVERHEAD = 45;

export function calibrationPoints(): CalibrationPoint[] {
  const bow = loadDevicePreset('bow');
  const mk2 = loadDevicePreset('mk2');
  const codelets = builtins();
  const points: CalibrationPoint[] = [];
  for (const [n, measured] of [
    [16, 402],
    [256, 1352],
    [2048, 8525],
  ]) {
    points.push({
      group: 'AMP',
      label: `fp16 [${n}, 16] x [16, 16] -> fp32`,
      preset: 'bow',
      measured,
      model: oneVertexTile(ampVertex(n), bow, codelets),
      unit: 'cycles',
      tolerance: 0.1,
      source: 'tessellate-ipu notebook "IPU Peak Flops", Bow, cycles per tile with the counter overhead removed',
      inDoc: true,
    });
  }
  for (const [n, measured, inDoc] of [
    [64, 375, true],
    [128, 467, false],
    [256, 665, false],
    [512, 1043, true],
  ] as const) {
    points.push({
      group: 'ScaledAdd',
      label: `a += s.b, N = ${n} fp32`,
      preset: 'mk2',
      measured: measured - SCALED_ADD_COUNTER_OVERHEAD,
      model: oneVertexTile(scaledAddVertex(n), mk2, codelets),
      unit: 'cycles',
      tolerance: 0.1,
      source: `tessellate-ipu tests (test_tile_lax_basic.py): ${measured} cycles measured, less ${SCALED_ADD_COUNTER_OVERHEAD} of counter reads` + (inDoc ? '' : '; a further point from the same source, not in §6'),
      inDoc,
    });
  }
  points.push({
    group: 'STREAM triad',
    label: "a = b + s.c, fp32: the preset's load/store bound (no simulated program)",
    preset: 'mk2',
    measured: 1.98,
    model: triadElementsPerCycle(mk2),
    unit: 'elements/cycle/tile',
    tolerance: 0.1,
    source: 'simehaa/IPU STREAMTriad, GC200 at 1.33 GHz, hand-written assembly',
    inDoc: true,
  });
  return points;
}

export function relativeError(p: CalibrationPoint): number {
  return (p.model - p.measured) / p.measured;
}

function pct(x: number): string {
  return `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
}

function slope(a: CalibrationPoint, b: CalibrationPoint, key: 'measured' | 'model', per: number): number {
  return (b[key] - a[key]) / per;
}

export function fidelityReport(): string {
  const points = calibrationPoints();
  const bow = loadDevicePreset('bow');
  const mk2 = loadDevicePreset('mk2');
  const W = bow.workersPerTile;
  const lines: string[] = [];
  lines.push(
    '# Model fidelity: the calibration points',
    '',
    'Generated by `npm run reports` (scripts/fidelity.ts); do not edit by hand. The same points are asserted by',
    'test/cycles/calibration.test.ts. Measurements: ../shared/ipu-architecture.md §6. Model: the simulator\'s cost of',
    'a compute set holding one vertex on one tile (sim/cost.ts: the vertex estimate plus the',
    `${mk2.supervisorOverheadCycles}-cycle supervisor launch), from the device presets and the estimators.`,
    '',
    '**No constant was fitted to these measurements.** Every constant of the estimators comes from PopLibs\' own',
    'estimators (graphcore/poplibs), cited next to the code; the residuals below are what is left.',
    '',
    '| what | preset | measured | model | error | tolerance | |',
    '|---|---|---:|---:|---:|---:|---|',
  );
  for (const p of points) {
    const e = relativeError(p);
    const fmt = (x: number) => (p.unit === 'cycles' ? String(x) : x.toFixed(2));
    lines.push(`| ${p.group}: ${p.label}${p.inDoc ? '' : ' (*)'} | ${p.preset} | ${fmt(p.measured)} | ${fmt(p.model)} | ${pct(e)} | ±${p.tolerance * 100}% | ${Math.abs(e) <= p.tolerance ? 'ok' : '**FAIL**'} |`);
  }
  lines.push('', 'Units: cycles per tile, except the triad (elements per cycle per tile). (*) not in §6: a further point from the same source.', '');
  lines.push('Sources of the measurements:', '');
  for (const p of points) lines.push(`- ${p.group}, ${p.label}: ${p.source}.`);

  // AMP derivation
  const amp = points.filter((p) => p.group === 'AMP');
  const g = ampGeometry('float16', bow);
  lines.push(
    '',
    '## AMP (sim/codelets/amp.ts)',
    '',
    'The ConvPartial1x1Out estimator of PopLibs (lib/poplin/PerformanceEstimation.hpp, half activations, float partials),',
    `with Bow's preset: ${bow.ampMacsPerCycle.float16} MACs/cycle = ${g.outChansPerPass} conv units x 4; a pass is [N, 16] x [16, ${g.outChansPerPass}];`,
    `weights load in ${g.outChansPerPass} x 32 B / ${bow.loadBytesPerCycle} B per cycle = ${g.weightLoadCycles} cycles. The N rows are split over ${W} workers, one work item each;`,
    'a worker with n >= 3 rows costs 37 + 4(n - 3) cycles (§3), n = 2 costs 41 and n = 1 32, each less 7 retained-state cycles;',
    `the pass costs max(${W} x slowest, ${W} x fastest + 14). The supervisor adds 50 + ${W} x 7 (retention payback) + 13 + 11 + 18 + 7 = 141.`,
    '',
    '| N | rows per worker | worker passes | weight loads | supervisor | vertex | + launch | measured |',
    '|---:|---|---:|---:|---:|---:|---:|---:|',
  );
  for (const p of amp) {
    const n = Number(/\[(\d+),/.exec(p.label)![1]);
    const b = ampBreakdown({ groups: 1, rows: n, k: 16, n: 16 }, 'float16', bow);
    lines.push(`| ${n} | ${rowsPerWorker(n, W).map((r) => r ?? 0).join(', ')} | ${b.workers} | ${b.weightLoads} | ${b.supervisor} | ${b.total} | ${p.model} | ${p.measured} |`);
  }
  const ampSlopeM = slope(amp[1], amp[2], 'measured', 342 - 43);
  const ampSlopeX = slope(amp[1], amp[2], 'model', 342 - 43);
  lines.push(
    '',
    `Residual: from N = 256 to 2048 the busiest worker goes from 43 to 342 rows; the hardware spends ${ampSlopeM.toFixed(2)} cycles per`,
    `extra row and the model ${ampSlopeX.toFixed(2)} (= ${W} workers x 4 cycles): the per-row cost is right. The model is short by a nearly constant`,
    `${amp.map((p) => p.measured - p.model).join(', ')} cycles, fixed overhead that PopLibs' estimator does not count. The simplified form of §3`,
    '(W x slowest worker + weight loads + 50) would give 6 x 37 + 32 + 50 = 304 at N = 16 (-24%): the 2-row workers, the retained',
    'state and the supervisor loop overheads of the full estimator are what bring N = 16 within 10%.',
  );

  // ScaledAdd derivation
  const sa = points.filter((p) => p.group === 'ScaledAdd');
  lines.push(
    '',
    '## ScaledAdd (sim/codelets/estimators.ts scaledAdd)',
    '',
    'PopLibs getScaledArithmeticSupervisorCycleEstimate (lib/popops/PerformanceEstimation.cpp), float data, scale from a tensor,',
    'ScaledPtr64 operands as PopLibs\' own modelling assumes: supervisor 21 + 6 + 11 + 7 + 12 + 6 = 63; worker 15 + 6 + 3 (v - 1) + 2 + 1,',
    'plus 1 on the worker that checks the tail; v = vectors of 2 floats on the busiest worker. The one modelling choice beyond',
    'PopLibs: the busiest worker gets ceil(vectors / 6), where PopLibs\' estimator gives every worker the floor.',
    '',
    '| N | vectors on busiest worker | vertex | + launch | measured - 45 |',
    '|---:|---:|---:|---:|---:|',
  );
  for (const p of sa) {
    const n = Number(/N = (\d+)/.exec(p.label)![1]);
    lines.push(`| ${n} | ${Math.ceil(n / 2 / W)} | ${scaledAdd(n, 'float32', mk2)} | ${p.model} | ${p.measured} |`);
  }
  const saSlopeM = slope(sa[0], sa[3], 'measured', 512 - 64);
  const saSlopeX = slope(sa[0], sa[3], 'model', 512 - 64);
  lines.push(
    '',
    `Residual: per element the hardware spends ${saSlopeM.toFixed(3)} cycles and the model ${saSlopeX.toFixed(3)} (6 workers x 3 cycles per 2 floats = 1.5`,
    `when the vectors divide evenly); the model is short by ${sa.map((p) => p.measured - p.model).join(', ')} cycles, again a nearly constant fixed overhead.`,
    'The measurements include "about 45" counter-read cycles (§6); the remainder is within 7%.',
  );

  const triad = points.find((p) => p.group === 'STREAM triad')!;
  lines.push(
    '',
    '## STREAM triad',
    '',
    `a = b + s.c loads 8 B and stores 4 B per fp32 element. With the preset's ${mk2.loadBytesPerCycle} B/cycle of loads and ${mk2.storeBytesPerCycle} B/cycle of stores`,
    `(§1: ld128, ld2xst64pace) a tile moves at most min(${mk2.loadBytesPerCycle} / 8, ${mk2.storeBytesPerCycle} / 4) = ${triad.model.toFixed(2)} elements per cycle; hand-written`,
    `assembly reaches ${triad.measured} (99%). This point checks the preset's load/store bandwidth, the bound the simulator's`,
    'memory-bound estimates rest on; the PopLibs-style C++/assembly vertices the simulator costs run below it (ScaledAdd above:',
    `${(512 / (sa[3].model - mk2.supervisorOverheadCycles)).toFixed(2)} elements per cycle at N = 512).`,
    '',
  );
  return lines.join('\n');
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const out = path.join(ROOT, 'reports/fidelity.md');
  writeFileSync(out, fidelityReport());
  const failed = calibrationPoints().filter((p) => Math.abs(relativeError(p)) > p.tolerance);
  process.stdout.write(`wrote ${path.relative(process.cwd(), out)}${failed.length ? ` (${failed.length} points beyond tolerance)` : ''}\n`);
}
