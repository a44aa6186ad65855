/**
 * Softmax and LogSoftmax, forward and backward, over groups of a row-major
 * [outer, n, inner] tensor (the softmax axis in the middle). A vertex writes
 * elements [outBegin, outBegin + len(out)) and reads the window `in` that
 * starts at flat index inBegin and covers every group those elements belong to.
 *
 * Forward (numerically stable): m = max_k x_k; s = sum_k exp(x_k - m);
 *   softmax y = exp(x - m) / s; log-softmax y = (x - m) - log s.
 * Backward: softmax dx = y (dy - sum_k dy_k y_k); log-softmax dx = dy - exp(y) sum_k dy_k.
 * Sums accumulate in fp32 (Math.fround), as the hardware's would. Over tile
 * memory a WebAssembly kernel runs each group (softmaxWasm): the same bits;
 * this code stays the reference (docs/numerics.md).
 *
 * Cost: PopLibs has no single softmax vertex; popnn's stable softmax runs
 * popops steps (reduce max, exp(x - max), reduce add, scale by the
 * reciprocal), so the estimate is those §3 building blocks over the window.
 */
import type { Codelet, VertexShape } from '../codelet.js';
import { defineCodelet } from '../define.js';
import { fieldDType, regionCount } from '../codelet.js';
import type { DeviceSpec } from '../device.js';
import { addLoop, binaryMultiVertex, reduce, unaryMultiVertex } from './estimators.js';
import { DIV_LOOP, EXP_LOOP, LOG_LOOP } from './nn-util.js';
import { separate } from '../wasm/kernels.js';

/** Calls fn(base, kStart, kEnd) for every group touching [b, e): group elements base + k inner, k in [kStart, kEnd) inside [b, e). */
function forEachGroup(b: number, e: number, n: number, inner: number, fn: (base: number, kStart: number, kEnd: number) => void): void {
  const group = n * inner;
  const ob0 = Math.floor(b / group);
  const ob1 = Math.floor((e - 1) / group);
  for (let ob = ob0; ob <= ob1; ob++) {
    const lo = Math.max(b, ob * group);
    const hi = Math.min(e, (ob + 1) * group);
    for (let j = 0; j < inner; j++) {
      const base = ob * group + j;
      const kStart = Math.max(0, Math.ceil((lo - base) / inner));
      const kEnd = Math.min(n, Math.ceil((hi - base) / inner));
      if (kStart < kEnd) fn(base, kStart, kEnd);
    }
  }
}

function groupsIn(v: VertexShape, field: string): number {
  return Math.max(1, Math.ceil(regionCount(v.fields[field]) / Math.max(1, v.params.n)));
}

function forwardCycles(v: VertexShape, device: DeviceSpec): number {
  const dtype = fieldDType(v.fields.out);
  const nIn = regionCount(v.fields.in);
  const nOut = regionCount(v.fields.out);
  const groups = groupsIn(v, 'in');
  const log = v.params.log === 1;
  return (
    reduce(nIn, groups, dtype, device) + // max
    unaryMultiVertex(nIn, dtype, EXP_LOOP(dtype), device, 33) + // exp(x - max)
    reduce(nIn, groups, dtype, device) + // sum
    (log ? unaryMultiVertex(groups, 'float32', LOG_LOOP, device) : unaryMultiVertex(groups, 'float32', DIV_LOOP('float32'), device)) + // log s or 1 / s
    binaryMultiVertex(nOut, dtype, addLoop(dtype), device) // subtract log s, or scale by 1 / s
  );
}

/**
 * Softmax on the kernel (softmax_group, per group): the reference's
 * operations in its order, exp and log the host's (docs/numerics.md). False
 * when the fields are not fp32 tile memory, out overlaps in, or the arena
 * has no room for a group's exps.
 */
export function softmaxWasm(x: Float32Array, out: Float32Array, params: Record<string, number>): boolean {
  const w = separate(out, [x]);
  if (!w) return false;
  const { n, inner, outBegin, inBegin } = params;
  const log = params.log === 1 ? 1 : 0;
  const t = w.K.arena.alloc(4 * n);
  if (t < 0) return false;
  const [px] = w.ins;
  const xs = 4 * inner;
  forEachGroup(outBegin, outBegin + out.length, n, inner, (base, kStart, kEnd) => {
    w.K.x.softmax_group(px + 4 * (base - inBegin), xs, n, w.out + 4 * (base + kStart * inner - outBegin), xs, kStart, kEnd, log, t);
  });
  return true;
}

/** Softmax's gradient on the kernel (softmax_grad_group, per group); false as softmaxWasm. */
export function softmaxGradWasm(dy: Float32Array, y: Float32Array, out: Float32Array, params: Record<string, number>): boolean {
  const w = separate(out, [dy, y]);
  if (!w) return false;
  const { n, inner, outBegin, inBegin } = params;
  const log = params.log === 1 ? 1 : 0;
  const [pdy, py] = w.ins;
  const xs = 4 * inner;
  forEachGroup(outBegin, outBegin + out.length, n, inner, (base, kStart, kEnd) => {
    const at = 4 * (base - inBegin);
    w.K.x.softmax_grad_group(pdy + at, py + at, xs, n, w.out + 4 * (base + kStart * inner - outBegin), xs, kStart, kEnd, log);
  });
  return true;
}

/** The window of a vertex: groups of n along the axis, inner apart; outputs from outBegin, inputs from inBegin. */
const SOFTMAX_PARAMS = { n: 'int', inner: 'int', outBegin: 'int', inBegin: 'int', log: 'int' } as const;

export const softmaxCodelet = defineCodelet({
  name: 'NnSoftmax',
  kind: 'multi',
  fields: { in: { direction: 'input' }, out: { direction: 'output' } },
  params: SOFTMAX_PARAMS,
  compute({ fields, params }) {
    const x = fields.in;
    const out = fields.out;
    if (softmaxWasm(x, out, params)) return;
    const { n, inner, outBegin, inBegin } = params;
    const log = params.log === 1;
    forEachGroup(outBegin, outBegin + out.length, n, inner, (base, kStart, kEnd) => {
      const at = base - inBegin;
      let m = -Infinity;
      for (let k = 0; k < n; k++) m = Math.max(m, x[at + k * inner]);
      let s = 0;
      for (let k = 0; k < n; k++) s = Math.fround(s + Math.fround(Math.exp(x[at + k * inner] - m)));
      const ls = Math.fround(Math.log(s));
      for (let k = kStart; k < kEnd; k++) {
        const d = Math.fround(x[at + k * inner] - m);
        out[base + k * inner - outBegin] = log ? d - ls : Math.fround(Math.exp(d)) / s;
      }
    });
  },
  cycles: forwardCycles,
  estimateSource:
    'composed from §3 blocks as popnn runs it: reduce max + exp MultiVertex (base 33) + reduce add over the window, then 1/s (or log s) per group and one binary op per output',
});

export const softmaxGradCodelet = defineCodelet({
  name: 'NnSoftmaxGrad',
  kind: 'multi',
  fields: { gradOut: { direction: 'input' }, y: { direction: 'input' }, out: { direction: 'output' } },
  params: SOFTMAX_PARAMS,
  compute({ fields, params }) {
    const dy = fields.gradOut;
    const y = fields.y;
    const out = fields.out;
    if (softmaxGradWasm(dy, y, out, params)) return;
    const { n, inner, outBegin, inBegin } = params;
    const log = params.log === 1;
    forEachGroup(outBegin, outBegin + out.length, n, inner, (base, kStart, kEnd) => {
      const at = base - inBegin;
      let s = 0;
      if (log) for (let k = 0; k < n; k++) s = Math.fround(s + dy[at + k * inner]);
      else for (let k = 0; k < n; k++) s = Math.fround(s + Math.fround(dy[at + k * inner] * y[at + k * inner]));
      for (let k = kStart; k < kEnd; k++) {
        const i = at + k * inner;
        out[base + k * inner - outBegin] = log ? dy[i] - Math.fround(Math.exp(y[i])) * s : y[i] * Math.fround(dy[i] - s);
      }
    });
  },
  cycles(v, device) {
    const dtype = fieldDType(v.fields.out);
    const nIn = regionCount(v.fields.y);
    const nOut = regionCount(v.fields.out);
    const groups = groupsIn(v, 'y');
    const log = v.params.log === 1;
    return (
      (log ? 0 : binaryMultiVertex(nIn, dtype, addLoop(dtype), device)) + // dy y
      reduce(nIn, groups, dtype, device) + // sum
      (log ? unaryMultiVertex(nOut, dtype, EXP_LOOP(dtype), device, 33) : 0) + // exp(y)
      2 * binaryMultiVertex(nOut, dtype, addLoop(dtype), device) // subtract, multiply
    );
  },
  estimateSource: 'composed from §3 blocks: (dy y) product, reduce add per group, then two binary ops per output (plus exp(y) for log-softmax)',
});

export const softmaxCodelets: Codelet[] = [softmaxCodelet, softmaxGradCodelet];
