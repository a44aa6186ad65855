/**
 * The convolution block vertices (NnConvBlock[Bias], NnConvGradXBlock,
 * NnConvGradWBlock) on the WebAssembly kernels `conv_pack` and
 * `conv_acc{8,4,1}` (sim/wasm/conv-wat.ts).
 *
 * All are the same loop (dW seen the other way, convGradWWasm): per output position, a contraction (input channels
 * forward, dY channels for dX) outermost, then the valid kernel taps of each
 * axis ascending, exactly the TypeScript reference's order. Per position and
 * axis the valid taps form an arithmetic run (the padding cuts a range; for
 * dX a stride keeps every s-th), so they are tabled once per vertex and the
 * kernel never tests a bound. Lanes go across outputs that read the same
 * input value (8, 4 or 1 output channels of one group), the weights packed
 * per lane as f64 into the arena. Returns false when a field is not an fp32
 * view of the bound tile memory or the arena is full: the reference runs.
 */
import { kernelsFor, type Kernels } from '../wasm/kernels.js';
import { geometryOf, gradXGroups, type WindowArgs } from './nn-util.js';

/** One axis: per output coordinate, the valid taps as (x byte offset, weight tap offset). */
type TapsAt = (j: number) => [number, number][];

/** The 5-word runs [count, x, w, dx, dw] of one axis, or undefined if a position's taps are not one run. */
function axisRuns(positions: number, taps: TapsAt): number[] | undefined {
  const words: number[] = [];
  for (let j = 0; j < positions; j++) {
    const t = taps(j);
    const [x0, w0] = t[0] ?? [0, 0];
    const [dx, dw] = t.length > 1 ? [t[1][0] - x0, t[1][1] - w0] : [0, 0];
    for (let i = 2; i < t.length; i++) if (t[i][0] !== x0 + i * dx || t[i][1] !== w0 + i * dw) return undefined;
    words.push(t.length, x0, w0, dx, dw);
  }
  return words;
}

/** Forward taps of one axis: input i = o s - p + a d inside [0, D), x offset (i - base) x elements per step. */
function forwardTaps(o0: number, K: number, s: number, d: number, p: number, D: number, base: number, step: number, tapStride: number): TapsAt {
  return (j) => {
    const out: [number, number][] = [];
    for (let a = 0; a < K; a++) {
      const i = (o0 + j) * s - p + a * d;
      if (i >= 0 && i < D) out.push([4 * (i - base) * step, a * tapStride]);
    }
    return out;
  };
}

/** dX taps of one axis: dY o = (i + p - a d) / s when that divides and lands in [0, O). */
function gradXTaps(i0: number, K: number, s: number, d: number, p: number, O: number, base: number, step: number, tapStride: number): TapsAt {
  return (j) => {
    const out: [number, number][] = [];
    for (let a = 0; a < K; a++) {
      const t = i0 + j + p - a * d;
      if (t < 0 || t % s !== 0 || t / s >= O) continue;
      out.push([4 * (t / s - base) * step, a * tapStride]);
    }
    return out;
  };
}

/** Lane chunks [first, lanes] over `count` outputs: 8, 4 or 1 at a time, never across a group boundary. */
function chunks(count: number, groupOf: (u: number) => number): [number, 8 | 4 | 1][] {
  const out: [number, 8 | 4 | 1][] = [];
  for (let u = 0; u < count; ) {
    const w = ([8, 4] as const).find((l) => u + l <= count && groupOf(u) === groupOf(u + l - 1)) ?? 1;
    out.push([u, w]);
    u += w;
  }
  return out;
}

interface ConvJob {
  K: Kernels;
  /** The staged input (x or dY) and weights, the output's address and whether it is staged. */
  x: number;
  w: number;
  out: number;
  staged: boolean;
  table: number;
  packed: number;
}

/** Stage inputs and output, and allocate the table and one chunk's packed weights; undefined when the kernels cannot run. */
function prepare(ins: Float32Array[][], outs: Float32Array[], outLength: number, tableWords: number, packedF64: number, extra: Float32Array[] = []): ConvJob | undefined {
  const K = outs[0] && kernelsFor(outs[0]);
  if (!K) return undefined;
  const all = [...ins.flat(), ...extra];
  if (all.some((v) => K.address(v) < 0) || outs.some((o) => K.address(o) < 0)) return undefined;
  if (outs.reduce((s, o) => s + o.length, 0) !== outLength) return undefined;
  const [x, w] = ins.map((parts) => K.stage(parts));
  // In place when the output's regions lie back to back and overlap no input (the reference reads every input before it writes).
  const direct = K.contiguous(outs);
  const staged = direct < 0 || all.some((v) => v.byteOffset < direct + 4 * outLength && direct < v.byteOffset + v.byteLength);
  const out = staged ? K.arena.alloc(4 * outLength) : direct;
  const table = K.arena.alloc(4 * tableWords);
  const packed = K.arena.alloc(8 * packedF64);
  if (x < 0 || w < 0 || out < 0 || table < 0 || packed < 0) return undefined;
  return { K, x, w, out, staged, table, packed };
}

/** Write the table: the header (its weight step, word 6, is set per chunk) and the three axes' runs after it. */
function writeTable(job: ConvJob, header: number[], axes: number[][]): void {
  const i32 = job.K.i32;
  let at = (job.table >> 2) + 13;
  const ptrs: number[] = [];
  for (const a of axes) {
    ptrs.push(at << 2);
    i32.set(a, at);
    at += a.length;
  }
  i32.set([...header, ...ptrs], job.table >> 2);
}

/** One chunk of `lanes` outputs per position (its packed weights in place): the table's weight step, then the kernel. */
function accumulate(job: ConvJob, lanes: 8 | 4 | 1, taps: number, x: number, out: number, bias: number, hasBias: boolean): void {
  job.K.i32[(job.table >> 2) + 6] = 8 * lanes * taps;
  const k = job.K.x;
  const f = lanes === 8 ? k.conv_acc8 : lanes === 4 ? k.conv_acc4 : k.conv_acc1;
  f(job.table, x, job.packed, out, bias, hasBias ? 1 : 0);
}

function finish(job: ConvJob, outs: Float32Array[]): void {
  if (!job.staged) return;
  let at = job.out >> 2;
  for (const o of outs) {
    o.set(job.K.f32.subarray(at, at + o.length));
    at += o.length;
  }
}

export interface ConvBlockFields {
  in: Float32Array[];
  weights: Float32Array[];
  bias?: Float32Array;
  out: Float32Array[];
}

/** NnConvBlock[Bias] (sim/codelets/conv-block.ts) on the kernels; false: run the reference. */
export function convBlockWasm(fields: ConvBlockFields, params: Readonly<Record<string, number>>, arrays: WindowArgs['arrays']): boolean {
  const g = geometryOf(arrays);
  const [, , D0, D1, D2] = g.xs;
  const [, M, , O1, O2] = g.ys;
  const [K0, K1, K2] = g.k;
  const { group, nCount, r0, rows, m0, mCount, cCount, g0, gCount, ih0, inRows } = params;
  const Mg = M / group;
  const Kt = K0 * K1 * K2;
  const inRest = D1 * D2;
  const chanStride = inRows * inRest;
  const outPlane = rows * O1 * O2;
  const axes = [
    axisRuns(rows, forwardTaps(r0, K0, g.s[0], g.d[0], g.pb[0], D0, ih0, inRest, K1 * K2)),
    axisRuns(O1, forwardTaps(0, K1, g.s[1], g.d[1], g.pb[1], D1, 0, D2, K2)),
    axisRuns(O2, forwardTaps(0, K2, g.s[2], g.d[2], g.pb[2], D2, 0, 1, 1)),
  ];
  if (axes.some((a) => !a)) return false;
  const sum = (xs: Float32Array[]) => xs.reduce((s, x) => s + x.length, 0);
  if (sum(fields.in) < nCount * gCount * cCount * chanStride || sum(fields.weights) < mCount * cCount * Kt) return false;
  if (fields.bias && fields.bias.length < mCount) return false;
  const tableWords = 13 + 5 * (rows + O1 + O2);
  const job = prepare([fields.in, fields.weights], fields.out, nCount * mCount * outPlane, tableWords, 8 * cCount * Kt, fields.bias ? [fields.bias] : []);
  if (!job) return false;
  const bias = fields.bias ? fields.bias.byteOffset : 0;
  const groupOf = (mm: number) => Math.floor((m0 + mm) / Mg) - g0;
  writeTable(job, [nCount, 4 * gCount * cCount * chanStride, 4 * mCount * outPlane, 4 * outPlane, cCount, 4 * chanStride, 0, rows, O1, O2], axes as number[][]);
  for (const [mm, lanes] of chunks(mCount, groupOf)) {
    job.K.x.conv_pack(job.w + 4 * mm * cCount * Kt, 4 * cCount * Kt, 4 * Kt, cCount, Kt, lanes, job.packed);
    accumulate(job, lanes, Kt, job.x + 4 * groupOf(mm) * cCount * chanStride, job.out + 4 * mm * outPlane, bias + 4 * mm, fields.bias !== undefined);
  }
  finish(job, fields.out);
  return true;
}

/** NnConvGradXBlock (sim/codelets/conv.ts) on the kernels; false: run the reference. */
export function convGradXWasm(fields: { in: Float32Array[]; weights: Float32Array[]; out: Float32Array[] }, params: Readonly<Record<string, number>>, arrays: WindowArgs['arrays']): boolean {
  const g = geometryOf(arrays);
  const [, C, , D1, D2] = g.xs;
  const [, , O0, O1, O2] = g.ys;
  const [K0, K1, K2] = g.k;
  const { group, nCount, r0, rows, c0, cCount, mCount, g0, gCount, oh0, dyRows } = params;
  const Cg = C / group;
  const Kt = K0 * K1 * K2;
  const outRest = O1 * O2;
  const plane = dyRows * outRest;
  const dxPlane = rows * D1 * D2;
  const axes = [
    axisRuns(rows, gradXTaps(r0, K0, g.s[0], g.d[0], g.pb[0], O0, oh0, outRest, K1 * K2)),
    axisRuns(D1, gradXTaps(0, K1, g.s[1], g.d[1], g.pb[1], O1, 0, O2, K2)),
    axisRuns(D2, gradXTaps(0, K2, g.s[2], g.d[2], g.pb[2], O2, 0, 1, 1)),
  ];
  if (axes.some((a) => !a)) return false;
  // Where each group's weights start in the field, and the block's first c' in it (the reference's layout).
  const { wBase, cStart, cLen, total: at } = gradXGroups(c0, cCount, Cg, g0, gCount, mCount, Kt);
  const sum = (xs: Float32Array[]) => xs.reduce((s, x) => s + x.length, 0);
  if (sum(fields.in) < nCount * gCount * mCount * plane || sum(fields.weights) < at) return false;
  const job = prepare([fields.in, fields.weights], fields.out, nCount * cCount * dxPlane, 13 + 5 * (rows + D1 + D2), 8 * mCount * Kt);
  if (!job) return false;
  const groupOf = (cc: number) => Math.floor((c0 + cc) / Cg) - g0;
  writeTable(job, [nCount, 4 * gCount * mCount * plane, 4 * cCount * dxPlane, 4 * dxPlane, mCount, 4 * plane, 0, rows, D1, D2], axes as number[][]);
  for (const [cc, lanes] of chunks(cCount, groupOf)) {
    const gl = groupOf(cc);
    const cl = c0 + cc - (g0 + gl) * Cg - cStart[gl];
    job.K.x.conv_pack(job.w + 4 * (wBase[gl] + cl * Kt), 4 * Kt, 4 * cLen[gl] * Kt, mCount, Kt, lanes, job.packed);
    accumulate(job, lanes, Kt, job.x + 4 * gl * mCount * plane, job.out + 4 * cc * dxPlane, 0, false);
  }
  finish(job, fields.out);
  return true;
}

/**
 * NnConvGradWBlock (sim/codelets/conv.ts) on the kernels; false: run the reference.
 * The same loop seen the other way: the outputs are the kernel taps (a, b, e)
 * of each input channel, the contraction the batch items, the "taps" the
 * output positions (o0, o1, o2) a tap's input stays inside for (one run per
 * axis), lanes across output channels of one group with dY packed per lane.
 */
export function convGradWWasm(fields: { gradOut: Float32Array[]; in: Float32Array[]; out: Float32Array[] }, params: Readonly<Record<string, number>>, arrays: WindowArgs['arrays']): boolean {
  const g = geometryOf(arrays);
  const [, , D0, D1, D2] = g.xs;
  const [, M, , O1, O2] = g.ys;
  const [K0, K1, K2] = g.k;
  const { group, nCount, r0, rows, m0, mCount, cCount, g0, gCount, ih0, inRows } = params;
  const Mg = M / group;
  const Kt = K0 * K1 * K2;
  const inRest = D1 * D2;
  const chanStride = inRows * inRest;
  const P = rows * O1 * O2;
  /** Per tap a of one axis: output coordinates o (from o0, `count` of them) whose input i = o s - p + a d is in [0, D). */
  const runs = (count: number, o0: number, s: number, d: number, p: number, D: number, base: number, xStep: number, wStep: number): TapsAt => (a) => {
    const out: [number, number][] = [];
    for (let j = 0; j < count; j++) {
      const i = (o0 + j) * s - p + a * d;
      if (i >= 0 && i < D) out.push([4 * (i - base) * xStep, j * wStep]);
    }
    return out;
  };
  const axes = [
    axisRuns(K0, runs(rows, r0, g.s[0], g.d[0], g.pb[0], D0, ih0, inRest, O1 * O2)),
    axisRuns(K1, runs(O1, 0, g.s[1], g.d[1], g.pb[1], D1, 0, D2, O2)),
    axisRuns(K2, runs(O2, 0, g.s[2], g.d[2], g.pb[2], D2, 0, 1, 1)),
  ];
  if (axes.some((a) => !a)) return false;
  const sum = (xs: Float32Array[]) => xs.reduce((s, x) => s + x.length, 0);
  if (sum(fields.gradOut) < nCount * mCount * P || sum(fields.in) < nCount * gCount * cCount * chanStride) return false;
  // Inputs in the job's order: the one read as scalars (X), then the one packed per lane (dY).
  const job = prepare([fields.in, fields.gradOut], fields.out, mCount * cCount * Kt, 13 + 5 * (K0 + K1 + K2), 8 * nCount * P);
  if (!job) return false;
  writeTable(job, [cCount, 4 * chanStride, 4 * Kt, 4 * cCount * Kt, nCount, 4 * gCount * cCount * chanStride, 0, K0, K1, K2], axes as number[][]);
  const groupOf = (mm: number) => Math.floor((m0 + mm) / Mg) - g0;
  for (const [mm, lanes] of chunks(mCount, groupOf)) {
    job.K.x.conv_pack(job.w + 4 * mm * P, 4 * P, 4 * mCount * P, nCount, P, lanes, job.packed);
    accumulate(job, lanes, P, job.x + 4 * groupOf(mm) * cCount * chanStride, job.out + 4 * mm * cCount * Kt, 0, false);
  }
  finish(job, fields.out);
  return true;
}
