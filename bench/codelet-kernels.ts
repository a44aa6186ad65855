/**
 * Each WebAssembly-backed codelet against its own TypeScript reference, on
 * the same fields: once as views of a kernel-bound tile memory (the kernel
 * runs) and once as host arrays (the reference runs). Best of several runs
 * each; the ratio is the kernel's speed-up for that vertex.
 *   npx tsx --conditions=tilesim-source bench/codelet-kernels.ts [name ...]
 */
import type { Codelet, ElemArray, VertexArgs } from '../sim/codelet.js';
import { channelSumCodelets, partialsFinalCodelet } from '../sim/codelets/nn-util.js';
import { reduceFinalCodelet, reducePartialCodelet } from '../sim/codelets/reduce.js';
import { addCodelet, mulCodelet, subCodelet } from '../sim/codelets/binary.js';
import { layerNormGradXCodelet, layerNormDyXhatCodelet, normCodelets } from '../sim/codelets/norm.js';
import { softmaxCodelet, softmaxGradCodelet } from '../sim/codelets/softmax.js';
import { TileMemory } from '../sim/memory.js';
import { kernelModule } from '../sim/wasm/kernels.js';
import { convBlockCodelet } from '../sim/codelets/conv-block.js';
import { convGradWBlockCodelet, convGradXBlockCodelet } from '../sim/codelets/conv.js';
import { decodeHalf, encodeHalf } from '../sim/half.js';
import { best } from './kernels.js';

export interface CodeletCase {
  name: string;
  codelet: Codelet;
  ins: Record<string, number | number[]>;
  outs: Record<string, number | number[]>;
  params: Record<string, number>;
  arrays?: Record<string, number[]>;
  /** The fields' type (default float32). */
  dtype?: 'int32';
  /** Elements the vertex produces or reduces, for the rate. */
  elements: number;
}

const ROWS = 256;
const N = 1024;
const E = ROWS * N;

/** A conv block vertex's geometry arrays (nn-util.ts): [1, C, H, W] -> [1, M, H', W'], a k x k kernel, stride 1. */
const convGeometry = (C: number, M: number, H: number, k: number, pad: number) => {
  const O = H + 2 * pad - k + 1;
  return { xs: [1, C, H, H, 1], ys: [1, M, O, O, 1], k: [k, k, 1], s: [1, 1, 1], d: [1, 1, 1], pb: [pad, pad, 0], pe: [pad, pad, 0] };
};
const convBlockParams = (C: number, M: number, H: number, O: number) => ({ group: 1, nCount: 1, r0: 0, rows: O, m0: 0, mCount: M, c0: 0, cCount: C, g0: 0, gCount: 1, ih0: 0, inRows: H });

export const CASES: CodeletCase[] = [
  { name: `NnSoftmax [${ROWS}, ${N}] axis 1`, codelet: softmaxCodelet, ins: { in: E }, outs: { out: E }, params: { n: N, inner: 1, outBegin: 0, inBegin: 0, log: 0 }, elements: E },
  { name: `NnSoftmax (log) [${ROWS}, ${N}] axis 1`, codelet: softmaxCodelet, ins: { in: E }, outs: { out: E }, params: { n: N, inner: 1, outBegin: 0, inBegin: 0, log: 1 }, elements: E },
  { name: `NnSoftmax [16, 64, ${N / 4}] axis 1`, codelet: softmaxCodelet, ins: { in: E }, outs: { out: E }, params: { n: 64, inner: N / 4, outBegin: 0, inBegin: 0, log: 0 }, elements: E },
  { name: `NnSoftmaxGrad [${ROWS}, ${N}] axis 1`, codelet: softmaxGradCodelet, ins: { gradOut: E, y: E }, outs: { out: E }, params: { n: N, inner: 1, outBegin: 0, inBegin: 0, log: 0 }, elements: E },
  { name: `NnSoftmaxGrad (log) [${ROWS}, ${N}] axis 1`, codelet: softmaxGradCodelet, ins: { gradOut: E, y: E }, outs: { out: E }, params: { n: N, inner: 1, outBegin: 0, inBegin: 0, log: 1 }, elements: E },
  { name: `NnLayerNorm [${ROWS}, ${N}]`, codelet: normCodelets[0], ins: { in: E, scale: N, bias: N }, outs: { out: E }, params: { n: N, outBegin: 0, inBegin: 0, eps: 1e-5 }, elements: E },
  { name: `NnLayerNormGradX [${ROWS}, ${N}]`, codelet: layerNormGradXCodelet, ins: { gradOut: E, in: E, scale: N }, outs: { out: E }, params: { n: N, outBegin: 0, inBegin: 0, eps: 1e-5 }, elements: E },
  { name: `NnLayerNormDyXhat [${ROWS}, ${N}]`, codelet: layerNormDyXhatCodelet, ins: { gradOut: E, in: E }, outs: { out: E }, params: { n: N, begin: 0, inBegin: 0, eps: 1e-5 }, elements: E },
  { name: `NnChannelSum [4, 64, ${E / 256}]`, codelet: channelSumCodelets[0], ins: { in: E }, outs: { out: 64 }, params: { G: 64, inner: E / 256, begin: 0, gMin: 0 }, elements: E },
  { name: `NnBatchNormScalePartial [4, 64, ${E / 256}]`, codelet: channelSumCodelets[1], ins: { in: E, x: E, mean: 64, var: 64 }, outs: { out: 64 }, params: { G: 64, inner: E / 256, begin: 0, gMin: 0, eps: 1e-5 }, elements: E },
  { name: `NnBatchNorm [4, 64, ${E / 256}]`, codelet: normCodelets[5], ins: { in: E, scale: 64, bias: 64, mean: 64, var: 64 }, outs: { out: E }, params: { C: 64, S: E / 256, begin: 0, cMin: 0, eps: 1e-5 }, elements: E },
  { name: `NnBatchNormGradX [4, 64, ${E / 256}]`, codelet: normCodelets[6], ins: { gradOut: E, scale: 64, var: 64 }, outs: { out: E }, params: { C: 64, S: E / 256, begin: 0, cMin: 0, eps: 1e-5 }, elements: E },
  { name: `ReducePartial [${ROWS}, ${N}] over rows`, codelet: reducePartialCodelet, ins: { in: E }, outs: { out: N }, params: { offset: 0, abs: 0 }, elements: E },
  { name: `ReducePartial [${E}] to 1`, codelet: reducePartialCodelet, ins: { in: E }, outs: { out: 1 }, params: { offset: 0, abs: 1 }, elements: E },
  { name: `ReduceFinal 16 partials of ${E / 16}`, codelet: reduceFinalCodelet, ins: { partials: Array<number>(16).fill(E / 16) }, outs: { out: E / 16 }, params: { scale: 0.1 }, elements: E },
  { name: `NnPartialsFinal 16 partials of ${E / 16}`, codelet: partialsFinalCodelet, ins: { partials: Array<number>(16).fill(E / 16) }, outs: { out: E / 16 }, params: { scale: 0.1 }, arrays: { offsets: Array<number>(16).fill(0) }, elements: E },
  // NCHW bias: [4, 64, 1024] + [64, 1] (merged [256, 1024], b one element per row), and the scalar on the left.
  { name: `Add broadcast [4, 64, ${E / 256}] + [64, 1]`, codelet: addCodelet, ins: { a: E, b: 64 }, outs: { out: E }, params: { begin: 0, aBase: 0, bBase: 0 }, arrays: { shape: [4, 64, E / 256], a: [64 * (E / 256), E / 256, 1], b: [0, 1, 0] }, elements: E },
  { name: `Sub broadcast [64, 1] - [4, 64, ${E / 256}]`, codelet: subCodelet, ins: { a: 64, b: E }, outs: { out: E }, params: { begin: 0, aBase: 0, bBase: 0 }, arrays: { shape: [4, 64, E / 256], a: [0, 1, 0], b: [64 * (E / 256), E / 256, 1] }, elements: E },
  // One tile's block of a ResNet-like layer: elements are MACs.
  { name: 'NnConvBlock [1, 64, 16, 16] 3x3 pad 1 -> 64', codelet: convBlockCodelet, ins: { in: [64 * 256], weights: [64 * 64 * 9] }, outs: { out: [64 * 256] }, params: convBlockParams(64, 64, 16, 16), arrays: convGeometry(64, 64, 16, 3, 1), elements: 64 * 64 * 9 * 256 },
  { name: 'NnConvBlock [1, 256, 14, 14] 1x1 -> 64', codelet: convBlockCodelet, ins: { in: [256 * 196], weights: [64 * 256] }, outs: { out: [64 * 196] }, params: convBlockParams(256, 64, 14, 14), arrays: convGeometry(256, 64, 14, 1, 0), elements: 256 * 64 * 196 },
  { name: 'NnConvGradXBlock [1, 64, 16, 16] 3x3 pad 1 <- 64', codelet: convGradXBlockCodelet, ins: { in: [64 * 256], weights: [64 * 64 * 9] }, outs: { out: [64 * 256] }, params: { group: 1, nCount: 1, r0: 0, rows: 16, c0: 0, cCount: 64, m0: 0, mCount: 64, g0: 0, gCount: 1, oh0: 0, dyRows: 16 }, arrays: convGeometry(64, 64, 16, 3, 1), elements: 64 * 64 * 9 * 256 },
  { name: 'NnConvGradWBlock [4, 64, 16, 16] 3x3 pad 1 -> 64', codelet: convGradWBlockCodelet, ins: { gradOut: [4 * 64 * 256], in: [4 * 64 * 256] }, outs: { out: [64 * 64 * 9] }, params: { ...convBlockParams(64, 64, 16, 16), nCount: 4 }, arrays: { ...convGeometry(64, 64, 16, 3, 1), xs: [4, 64, 16, 16, 1], ys: [4, 64, 16, 16, 1] }, elements: 4 * 64 * 64 * 9 * 256 },
  { name: `Add int32 [${E}]`, codelet: addCodelet, ins: { a: E, b: E }, outs: { out: E }, params: {}, dtype: 'int32', elements: E },
  { name: `Mul int32 [${E}]`, codelet: mulCodelet, ins: { a: E, b: E }, outs: { out: E }, params: {}, dtype: 'int32', elements: E },
];

function fill(x: Float32Array, seed: number): void {
  let st = seed >>> 0;
  for (let i = 0; i < x.length; i++) {
    st = (Math.imul(st, 1664525) + 1013904223) >>> 0;
    x[i] = (st / 2 ** 32) * 4 - 2;
  }
}

export interface CodeletRate {
  name: string;
  /** ms per call: the TypeScript reference, the kernel. */
  ts: number;
  wasm: number;
  speedup: number;
}

export async function codeletKernels(cases = CASES, log: (s: string) => void = () => {}): Promise<CodeletRate[]> {
  const sizes = (f: Record<string, number | number[]>) => Object.values(f).flatMap((v) => (Array.isArray(v) ? v : [v]));
  const bytes = Math.max(...cases.map((c) => 4 * [...sizes(c.ins), ...sizes(c.outs)].reduce((s, n) => s + n + 16, 0)));
  const mem = new TileMemory([bytes], { kernels: await kernelModule(), threads: 1, slot: 0 });
  const rates: CodeletRate[] = [];
  for (const c of cases) {
    let at = 0;
    let seed = 1;
    const build = (onTile: boolean): VertexArgs['fields'] => {
      at = 0;
      const f: VertexArgs['fields'] = {};
      const make = (n: number, input: boolean): Float32Array | Int32Array => {
        const v = onTile ? (mem.view(0, { offset: at, count: n, dtype: 'float32' }) as Float32Array) : new Float32Array(n);
        at += 4 * n + 16;
        if (input) fill(v, seed++);
        // int32 fields: the same bytes seen as integers (every bit pattern is one).
        return c.dtype === 'int32' ? new Int32Array(v.buffer, v.byteOffset, n) : v;
      };
      for (const [k, v] of Object.entries(c.ins)) f[k] = Array.isArray(v) ? v.map((n) => make(n, true)) : make(v, true);
      for (const [k, v] of Object.entries(c.outs)) f[k] = Array.isArray(v) ? v.map((n) => make(n, false)) : make(v, false);
      return f;
    };
    const host = build(false);
    seed = 1;
    const dev = build(true);
    const run = (fields: Record<string, ElemArray | ElemArray[]>) => () => {
      mem.arena!.top = mem.arena!.base;
      c.codelet.compute({ fields, params: c.params, arrays: c.arrays ?? {} });
    };
    const ts = best(5, run(host));
    const wasm = best(5, run(dev));
    const r = { name: c.name, ts, wasm, speedup: ts / wasm };
    rates.push(r);
    log(`${c.name}: TypeScript ${ts.toFixed(2)} ms, kernel ${wasm.toFixed(2)} ms (${((c.elements / wasm) * 1e-6).toFixed(3)} Gelem/s): ${r.speedup.toFixed(2)}x`);
  }
  return rates;
}

/** fp16 decode and encode at the vertex boundary (sim/execute.ts): tile memory (the kernels) against host arrays (the table and toHalfBits). */
export async function halfRates(log: (s: string) => void = () => {}): Promise<CodeletRate[]> {
  const mem = new TileMemory([6 * E + 64], { kernels: await kernelModule(), threads: 1, slot: 0 });
  const bits = mem.view(0, { offset: 0, count: E, dtype: 'float16' }) as Uint16Array;
  const floats = mem.view(0, { offset: 2 * E + 16, count: E, dtype: 'float32' }) as Float32Array;
  fill(floats, 3);
  const hostFloats = floats.slice();
  const hostBits = new Uint16Array(E);
  encodeHalf(hostFloats, hostBits);
  bits.set(hostBits);
  const rates: CodeletRate[] = [];
  for (const [name, ts, wasm] of [
    ['fp16 decode', () => decodeHalf(hostBits, hostFloats), () => decodeHalf(bits, floats)],
    ['fp16 encode', () => encodeHalf(hostFloats, hostBits), () => encodeHalf(floats, bits)],
  ] as const) {
    const r = { name: `${name} of ${E}`, ts: best(5, ts), wasm: best(5, wasm), speedup: 0 };
    r.speedup = r.ts / r.wasm;
    rates.push(r);
    log(`${r.name}: TypeScript ${r.ts.toFixed(2)} ms, kernel ${r.wasm.toFixed(3)} ms: ${r.speedup.toFixed(2)}x`);
  }
  return rates;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const only = process.argv.slice(2);
  await codeletKernels(only.length ? CASES.filter((c) => only.some((o) => c.name.includes(o))) : CASES, console.log);
  if (!only.length || only.includes('fp16')) await halfRates(console.log);
}
