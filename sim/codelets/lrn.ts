/**
 * LRN (local response normalisation across channels) and its gradient over a
 * row-major [N, C, S] tensor. A vertex writes elements [outBegin, outBegin +
 * len(out)) and reads its inputs as sorted runs of flat elements
 * (src/ops/lrn.ts, channelShiftRuns): run k starts at `${p}Begin[k]` and
 * holds `${p}lens[k]` elements, handed over one region per run or gathered
 * into one region (LowerContext.gather).
 *
 * With lo = floor((size - 1) / 2), hi = ceil((size - 1) / 2):
 *   s[c] = bias + alpha / size sum of x[i]^2, i in [c - lo, c + hi] ∩ [0, C);
 *   forward  y[c] = x[c] s[c]^-beta;
 *   backward dx[c] = dy[c] s[c]^-beta - 2 alpha beta / size x[c] sum of t[j],
 *     j in [c - hi, c + lo] ∩ [0, C), t[j] = dy[j] x[j] s[j]^(-beta - 1).
 * Sums accumulate in fp32 (Math.fround) in increasing channel order.
 *
 * Cost: PopLibs has no LRN vertex. PopART's LRN Opx (graphcore/popart
 * willow/src/popx/op/lrnx.cpp) runs popops steps: square the input, add
 * size - 1 channel-shifted slices of the squares in place, map bias +
 * alpha / size sum, then map x pow(s, -beta). The estimate composes the §3
 * blocks of those steps over the vertex's share: the squares (one binary op
 * per input element it reads), size - 1 shifted adds and the affine map per
 * output, pow as exp(-beta log s) (log and exp 1-D MultiVertex loops, exp
 * with its base of 33, a multiply between), then one multiply by x. The grad
 * estimate follows the same blocks for the terms below. (PopART's grad keeps
 * only the diagonal term dy (s^-beta - 2 alpha beta x^2 s^(-beta-1)); this
 * one is the full derivative, the other channels' windows included.)
 */
import type { Codelet, ElemArray } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceSpec } from '../device.js';
import type { DeviceDType } from '../program.js';
import { addLoop, binaryMultiVertex, unaryMultiVertex } from './estimators.js';
import { EXP_LOOP, LOG_LOOP } from './nn-util.js';

/** Read access to a field handed over as sorted runs of flat elements. */
class Runs {
  private readonly data: Float32Array;
  private readonly begins: number[];
  /** Offset of each run in `data`. */
  private readonly offsets: number[];
  private readonly ends: number[];
  /** `regions`: the field; `lens` and `begins`: its runs' lengths and first flat elements (arrays <prefix>lens, <prefix>Begin). */
  constructor(regions: Float32Array[], lens: number[], begins: number[]) {
    this.begins = begins;
    // One region per run, or all runs gathered into one.
    this.data = regions.length === 1 ? regions[0] : concat(regions);
    this.offsets = [];
    this.ends = [];
    let at = 0;
    for (let k = 0; k < lens.length; k++) {
      this.offsets.push(at);
      this.ends.push(this.begins[k] + lens[k]);
      at += lens[k];
    }
  }
  /** Index in the joined data of flat element i (which must be in a run). */
  index(i: number): number {
    let a = 0;
    let b = this.begins.length - 1;
    while (a < b) {
      const m = (a + b + 1) >> 1;
      if (this.begins[m] <= i) a = m;
      else b = m - 1;
    }
    if (i < this.begins[a] || i >= this.ends[a]) throw new Error(`internal: LRN vertex reads element ${i}, which is not in its runs`);
    return this.offsets[a] + i - this.begins[a];
  }
  at(i: number): number {
    return this.data[this.index(i)];
  }
  /** Length of the joined data. */
  get length(): number {
    return this.data.length;
  }
  /** Calls fn(i, q) for every flat element i of the runs, q its index in the joined data. */
  each(fn: (i: number, q: number) => void): void {
    for (let k = 0; k < this.begins.length; k++) {
      for (let i = this.begins[k], q = this.offsets[k]; i < this.ends[k]; i++, q++) fn(i, q);
    }
  }
}

function concat(regions: ElemArray[]): Float32Array {
  const out = new Float32Array(regions.reduce((s, r) => s + r.length, 0));
  let at = 0;
  for (const r of regions) {
    out.set(r as Float32Array, at);
    at += r.length;
  }
  return out;
}

interface Geometry {
  C: number;
  S: number;
  lo: number;
  hi: number;
}

/** Channel of flat element i and the channel window [cLo, cHi] of shifts [-below, above] inside [0, C). */
function channelWindow(i: number, g: Geometry, below: number, above: number): [number, number, number] {
  const c = Math.floor(i / g.S) % g.C;
  return [c, Math.max(0, c - below), Math.min(g.C - 1, c + above)];
}

/** s = bias + alpha / size sum of x^2 over the channel window of flat element i. */
function scaleAt(x: Runs, i: number, g: Geometry, p: { bias: number; alpha: number; size: number }): number {
  const [c, cLo, cHi] = channelWindow(i, g, g.lo, g.hi);
  let sq = 0;
  for (let k = cLo; k <= cHi; k++) {
    const v = x.at(i + (k - c) * g.S);
    sq = Math.fround(sq + Math.fround(v * v));
  }
  return Math.fround(p.bias + Math.fround(Math.fround(p.alpha / p.size) * sq));
}

const geometry = (p: Geometry): Geometry => ({ C: p.C, S: p.S, lo: p.lo, hi: p.hi });

/** The window size a cycles() call sees: the vertex's, or 5 (AlexNet's) for a vertex probed without it (`sim vertex`). */
const sizeOf = (v: { params: { size?: number } }): number => v.params.size ?? 5;

/**
 * Cycles of s and s^p over n positions from a window of nIn inputs: the
 * squares (one binary op per input), size - 1 shifted adds, the affine
 * bias + alpha / size sum, log, a multiply by the exponent and exp.
 */
function powerCycles(nIn: number, n: number, size: number, dtype: DeviceDType, device: DeviceSpec): number {
  const f32 = addLoop('float32');
  return (
    binaryMultiVertex(nIn, dtype, addLoop(dtype), device) + // x^2 over the window
    Math.max(0, size - 1) * binaryMultiVertex(n, 'float32', f32, device) + // window sum: size - 1 shifted adds
    binaryMultiVertex(n, 'float32', f32, device) + // bias + alpha / size sum
    unaryMultiVertex(n, 'float32', LOG_LOOP, device) + // log s
    binaryMultiVertex(n, 'float32', f32, device) + // p log s
    unaryMultiVertex(n, 'float32', EXP_LOOP('float32'), device, 33) // exp
  );
}

/** The LRN geometry (layout) and attributes, and the vertex's first output. */
const LRN_PARAMS = { C: 'int', S: 'int', lo: 'int', hi: 'int', size: 'int', alpha: 'float', beta: 'float', bias: 'float', outBegin: 'int' } as const;

export const lrnCodelet = defineCodelet({
  name: 'NnLrn',
  kind: 'multi',
  fields: { in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: LRN_PARAMS,
  arrays: { xlens: 'ints', xBegin: 'ints' },
  compute(args) {
    const out = args.fields.out;
    const p = args.params;
    const g = geometry(p);
    const x = new Runs(args.fields.in, args.arrays.xlens, args.arrays.xBegin);
    for (let o = 0; o < out.length; o++) {
      const i = p.outBegin + o;
      const s = scaleAt(x, i, g, p);
      out[o] = Math.fround(x.at(i) * Math.fround(Math.pow(s, -p.beta)));
    }
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const n = regionCount(v.fields.out);
    // s^-beta, then y = x s^-beta.
    return powerCycles(regionCount(v.fields.in), n, sizeOf(v), dtype, device) + binaryMultiVertex(n, dtype, addLoop(dtype), device);
  },
  estimateSource:
    "PopART's LRN Opx as popops steps (lrnx.cpp; PopLibs has no LRN vertex), from §3 blocks: x^2 over the window, size - 1 shifted adds, bias + alpha/size sum, s^-beta as exp(-beta log s) (log loop 12/2, exp base 33), times x",
});

export const lrnGradCodelet = defineCodelet({
  name: 'NnLrnGrad',
  kind: 'multi',
  fields: { gradOut: { direction: 'input', vector: true }, in: { direction: 'input', vector: true }, out: { direction: 'output' } },
  params: LRN_PARAMS,
  arrays: { glens: 'ints', gBegin: 'ints', xlens: 'ints', xBegin: 'ints' },
  compute(args) {
    const out = args.fields.out;
    const p = args.params;
    const g = geometry(p);
    const dy = new Runs(args.fields.gradOut, args.arrays.glens, args.arrays.gBegin);
    const x = new Runs(args.fields.in, args.arrays.xlens, args.arrays.xBegin);
    // t = dy x s^(-beta - 1) at every position of the dy runs (the j of the output's windows).
    const t = new Float32Array(dy.length);
    dy.each((j, q) => {
      const s = scaleAt(x, j, g, p);
      t[q] = Math.fround(Math.fround(dy.at(j) * x.at(j)) * Math.fround(Math.pow(s, -p.beta - 1)));
    });
    const k = Math.fround((2 * p.alpha * p.beta) / p.size);
    for (let o = 0; o < out.length; o++) {
      const i = p.outBegin + o;
      // Channels j whose window [j - lo, j + hi] holds c: j in [c - hi, c + lo].
      const [c, jLo, jHi] = channelWindow(i, g, g.hi, g.lo);
      let sum = 0;
      for (let jc = jLo; jc <= jHi; jc++) sum = Math.fround(sum + t[dy.index(i + (jc - c) * g.S)]);
      const s = scaleAt(x, i, g, p);
      out[o] = Math.fround(Math.fround(dy.at(i) * Math.fround(Math.pow(s, -p.beta))) - Math.fround(Math.fround(k * x.at(i)) * sum));
    }
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const n = regionCount(v.fields.out);
    const nT = regionCount(v.fields.gradOut);
    const size = sizeOf(v);
    const f32 = addLoop('float32');
    return (
      powerCycles(regionCount(v.fields.in), nT, size, dtype, device) + // s^(-beta - 1) over the dy window
      2 * binaryMultiVertex(nT, 'float32', f32, device) + // t = dy x s^(-beta - 1)
      Math.max(0, size - 1) * binaryMultiVertex(n, 'float32', f32, device) + // sum of t over the transposed window
      binaryMultiVertex(n, 'float32', f32, device) + // s^-beta = s^(-beta - 1) s
      3 * binaryMultiVertex(n, dtype, addLoop(dtype), device) // dy s^-beta, k x sum, subtract
    );
  },
  estimateSource:
    'composed from §3 blocks as popops steps: s^(-beta-1) over the dy window as in NnLrn, t = dy x s^(-beta-1) (2 binary ops), size - 1 shifted adds of t, s^-beta (1 binary op), then 3 binary ops per output',
});

export const lrnCodelets: Codelet[] = [lrnCodelet, lrnGradCodelet];
