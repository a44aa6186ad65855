/**
 * Cycle-estimator building blocks in the structure of PopLibs'
 * (lib/popops/*CycleEstimators*, lib/popops/PerformanceEstimation.cpp), as
 * summarised in ../shared/ipu-architecture.md §3. Every formula here is a
 * MODEL estimate, not a measurement; the calibration test checks them
 * against the published hardware measurements.
 */
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { DTYPE_BYTES } from '../program.js';

/** Per-op inner-loop cost: cycles per loop, whether the loop is vectorised, elements per unrolled loop. */
export interface LoopCost {
  cyclesPerLoop: number;
  vectorised: boolean;
  unroll: number;
}

/** Natural vector width in elements: 64-bit vectors hold 2 x f32 or 4 x f16 (ipu-architecture.md §1). */
export function vectorWidth(dtype: DeviceDType, device: DeviceSpec): number {
  return Math.max(1, device.vectorWidthBits / 8 / DTYPE_BYTES[dtype]);
}

/** Elements of an N-element MultiVertex that its busiest worker handles. */
export function perWorker(n: number, device: DeviceSpec): number {
  return Math.ceil(n / device.workersPerTile);
}

/** Inner loop over n elements (§3: vectorised: ceil(n/vw) x (cyclesPerLoop + 4), else ceil(n/unroll) x cyclesPerLoop). */
export function innerLoop(n: number, vw: number, loop: LoopCost): number {
  return loop.vectorised ? Math.ceil(n / vw) * (loop.cyclesPerLoop + 4) : Math.ceil(n / loop.unroll) * loop.cyclesPerLoop;
}

/** Unary elementwise 1-D MultiVertex: W x (17 + inner(ceil(N/W))) + 20; the 17 is 33 for exp (§3). */
export function unaryMultiVertex(n: number, dtype: DeviceDType, loop: LoopCost, device: DeviceSpec, base = 17): number {
  const W = device.workersPerTile;
  return W * (base + innerLoop(perWorker(n, device), vectorWidth(dtype, device), loop)) + 20;
}

/** Binary elementwise 1-D MultiVertex: W x ((float ? 29 : 26) + inner) + 11; in-place base 58 (§3). */
export function binaryMultiVertex(
  n: number,
  dtype: DeviceDType,
  loop: LoopCost,
  device: DeviceSpec,
  inPlace = false,
): number {
  const W = device.workersPerTile;
  const base = inPlace ? 58 : dtype === 'float32' ? 29 : 26;
  return W * (base + innerLoop(perWorker(n, device), vectorWidth(dtype, device), loop)) + 11;
}

/**
 * Unary elementwise 2-D worker vertex (PopLibs UnaryOp2D, popopsCycleEstimators.cpp):
 * 20 + the inner loop over each region, in the worker's own cycles (the tile
 * charges W x its busiest worker). `counts`: the regions' element counts.
 */
export function unaryOp2D(counts: readonly number[], dtype: DeviceDType, loop: LoopCost, device: DeviceSpec): number {
  const vw = vectorWidth(dtype, device);
  let c = 20;
  for (const n of counts) c += innerLoop(n, vw, loop);
  return c;
}

/**
 * Binary elementwise 2-D worker vertex (PopLibs BinaryOp2D): 5 + the inner loop
 * over each region; the in-place variant (BinaryOp2DInPlace) starts at 20.
 */
export function binaryOp2D(counts: readonly number[], dtype: DeviceDType, loop: LoopCost, device: DeviceSpec, inPlace = false): number {
  const vw = vectorWidth(dtype, device);
  let c = inPlace ? 20 : 5;
  for (const n of counts) c += innerLoop(n, vw, loop);
  return c;
}

/** Add, sub, mul of float or half: about 3 cycles per 64-bit vector (§3). */
export const ADD_LOOP: LoopCost = { cyclesPerLoop: 3, vectorised: false, unroll: 2 };
export function addLoop(dtype: DeviceDType): LoopCost {
  return { cyclesPerLoop: 3, vectorised: false, unroll: dtype === 'float16' ? 4 : 2 };
}
/** relu float {3, no, 2}; max/min float {3, no, 2} (§3). */
export const RELU_LOOP: LoopCost = { cyclesPerLoop: 3, vectorised: false, unroll: 2 };

/**
 * ScaledAdd a += s.b, data and b of one type, scale from a tensor, 1-D (§3),
 * with the terms §3 leaves out taken from the estimator it summarises
 * (graphcore/poplibs lib/popops/PerformanceEstimation.cpp,
 * getScaledArithmeticSupervisorCycleEstimate, as PopLibs' own modelling calls
 * it with ScaledPtr64 operand layouts in ScaledAddModelling.cpp):
 *   supervisor 21 + 6 (unpack a ScaledPtr64 pointer) + 11 + (remainder ? 13 : 7) + 12 + 6;
 *   worker 15 + [6 + 3 x (vectors - 1) when it has vectors] + 2 + 1 (exitz),
 *   plus 1 (+ the remainder: 8 float; 5 + 7 + 6 half) on the worker that handles the tail;
 *   total = supervisor + W x max worker.
 * The floor(N / vw) whole vectors go round-robin: the first (vectors mod W)
 * workers take one more (PopLibs' estimator gives every worker the floor,
 * which undercounts the busiest one).
 * Calibrated in test/cycles/calibration.test.ts against the §6 measurements.
 */
export function scaledAdd(n: number, dtype: DeviceDType, device: DeviceSpec): number {
  const W = device.workersPerTile;
  const vw = vectorWidth(dtype, device);
  const vectors = Math.floor(n / vw);
  const remainder = n % vw;
  const supervisor = 21 + 6 + 11 + (remainder ? 13 : 7) + 12 + 6;
  const perWorkerVectors = Math.floor(vectors / W);
  const extraVectors = vectors % W;
  let worst = 0;
  for (let w = 0; w < W; w++) {
    const v = perWorkerVectors + (w < extraVectors ? 1 : 0);
    let c = 15 + (v > 0 ? 6 + 3 * (v - 1) : 0) + 2;
    if (w === extraVectors) {
      c += 1;
      if (remainder) c += dtype === 'float32' ? 8 : 5 + (remainder >= 2 ? 7 : 0) + (remainder === 3 ? 6 : 0);
    }
    c += 1;
    if (c > worst) worst = c;
  }
  return supervisor + W * worst;
}

/**
 * Reduction of nIn elements into nOut outputs (§3): about 7 + 26 to start, per
 * output region 16 + 6 + 2 log2(vw) + 2, per partial vector loadOverhead(2) + 2 + 1 + 3,
 * the partial vectors shared among the workers.
 */
export function reduce(nIn: number, nOutRegions: number, dtype: DeviceDType, device: DeviceSpec): number {
  const vw = vectorWidth(dtype, device);
  const W = device.workersPerTile;
  const perRegion = 16 + 6 + 2 * Math.log2(vw) + 2;
  const perVector = 2 + 2 + 1 + 3;
  const worker = Math.ceil(nOutRegions / W) * perRegion + Math.ceil(Math.ceil(nIn / vw) / W) * perVector;
  return 7 + 26 + W * worker;
}
