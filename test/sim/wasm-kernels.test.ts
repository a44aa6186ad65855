/**
 * The WebAssembly kernels against the TypeScript reference codelets: the same
 * fields, once as views of a kernel-bound tile memory and once as host
 * arrays, must give the same bits (docs/numerics.md).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Codelet, ElemArray, VertexArgs } from '../../sim/codelet.js';
import { ampMatMulReference, ampMatMulWasm, type AmpArgs } from '../../sim/codelets/amp.js';
import { addCodelet, divCodelet, mulCodelet, subCodelet, sumCodelet } from '../../sim/codelets/binary.js';
import { matMulReduceCodelet, matMulReduceWasm } from '../../sim/codelets/matmul.js';
import { absCodelet, expGradCodelet, negCodelet, reluCodelet, reluGradCodelet, sqrtCodelet } from '../../sim/codelets/unary.js';
import { decodeHalf, encodeHalf, halfToFloat, roundHalf, toHalfBits } from '../../sim/half.js';
import { broadcastStrides, indexExtent, mergeAxes } from '../../src/lower/broadcast.js';
import { TileMemory } from '../../sim/memory.js';
import { kernelModule, kernelsFor, laneWise, type KernelExports } from '../../sim/wasm/kernels.js';
import { softmaxCodelet, softmaxGradCodelet } from '../../sim/codelets/softmax.js';
import { layerNormGradXCodelet, layerNormDyXhatCodelet, layerNormStatsCodelet, normCodelets } from '../../sim/codelets/norm.js';
import { channelSumCodelets, partialsFinalCodelet } from '../../sim/codelets/nn-util.js';
import { reduceFinalCodelet, reducePartialCodelet } from '../../sim/codelets/reduce.js';
import { convBlockBiasCodelet, convBlockCodelet, convBlockReference } from '../../sim/codelets/conv-block.js';
import { convGradWBlockCodelet, convGradXBlockCodelet, gradWBlockReference, gradXBlockReference } from '../../sim/codelets/conv.js';

let mem: TileMemory;
let next = 0;

beforeAll(async () => {
  mem = new TileMemory([1 << 22], { kernels: await kernelModule(), threads: 1, slot: 0 });
});

/** Deterministic values in [-1, 1) with some exact zeros, negative zeros and large magnitudes. */
function values(n: number, seed: number, half = false): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    x[i] = i % 17 === 3 ? 0 : i % 23 === 5 ? -0 : i % 29 === 7 ? (u - 0.5) * 1e6 : u * 2 - 1;
    if (half) x[i] = roundHalf(x[i]);
  }
  return x;
}

/** A float32 view of tile memory holding `data`. */
function onTile(data: Float32Array): Float32Array {
  const v = mem.view(0, { offset: next, count: data.length, dtype: 'float32' }) as Float32Array;
  next += Math.ceil((4 * data.length) / 16) * 16 + 4; // odd alignments too
  v.set(data);
  return v;
}

function bitsOf(xs: ElemArray[]): number[] {
  return xs.flatMap((x) => [...new Uint32Array(Float32Array.from(x as Float32Array).buffer)]);
}

/** Run `c` on tile-memory views, and `reference` on host copies; return both outputs. */
function both(kernel: (a: VertexArgs) => boolean, reference: (a: VertexArgs) => void, ins: Record<string, Float32Array[]>, outs: Record<string, number[]>, params: Record<string, number>, arrays: Record<string, number[]> = {}) {
  next = 0;
  mem.arena!.top = mem.arena!.base;
  const fields = (onDevice: boolean): VertexArgs['fields'] => {
    const f: VertexArgs['fields'] = {};
    for (const [k, parts] of Object.entries(ins)) f[k] = parts.map((p) => (onDevice ? onTile(p) : p.slice()));
    for (const [k, lens] of Object.entries(outs)) f[k] = lens.map((n) => (onDevice ? onTile(new Float32Array(n).fill(NaN)) : new Float32Array(n)));
    return f;
  };
  const dev = fields(true);
  expect(kernelsFor((dev[Object.keys(ins)[0]] as Float32Array[])[0])).toBeDefined();
  const host = fields(false);
  expect(kernel({ fields: dev, params, arrays })).toBe(true);
  reference({ fields: host, params, arrays });
  return Object.keys(outs).map((k) => [bitsOf(dev[k] as ElemArray[]), bitsOf(host[k] as ElemArray[])]);
}

describe('AmpMatMul: WebAssembly kernel = TypeScript reference, bit for bit', () => {
  const shapes = [
    { groups: 1, rows: 1, k: 1, n: 1 },
    { groups: 1, rows: 4, k: 16, n: 8 },
    { groups: 1, rows: 7, k: 33, n: 21 },
    { groups: 3, rows: 5, k: 16, n: 19 },
    { groups: 2, rows: 12, k: 64, n: 40 },
    { groups: 1, rows: 9, k: 0, n: 5 },
    // The last 1, 2 or 3 rows in blocks of that many rows, with and without columns past the last 8.
    { groups: 1, rows: 2, k: 5, n: 16 },
    { groups: 1, rows: 3, k: 7, n: 8 },
    { groups: 2, rows: 14, k: 9, n: 35 },
    { groups: 1, rows: 6, k: 3, n: 3 },
  ];
  for (const s of shapes)
    for (const transA of [0, 1])
      for (const transB of [0, 1])
        for (const half of [false, true])
          it(`${JSON.stringify(s)} transA ${transA} transB ${transB}${half ? ' fp16 inputs' : ''}`, () => {
            const { groups, rows, k, n } = s;
            const a = values(groups * rows * k, 1 + rows, half);
            const b = values(groups * k * n, 2 + n, half);
            // A in two regions and the output in one region per row: the staged paths too.
            const cut = Math.floor(a.length / 3);
            const ins = { a: [a.subarray(0, cut), a.subarray(cut)], b: [b] };
            const outs = { out: rows > 2 ? Array.from({ length: groups * rows }, () => n) : [groups * rows * n] };
            for (const [dev, host] of both((a) => ampMatMulWasm(a as AmpArgs), (a) => ampMatMulReference(a as AmpArgs), ins, outs, { ...s, transA, transB })) expect(dev).toEqual(host);
          });
});

describe('Kernels.contiguous: regions listed separately but back to back run in place', () => {
  it('AmpMatMul writes an output of adjacent row regions directly, the same bits as the reference', () => {
    next = 0;
    mem.arena!.top = mem.arena!.base;
    const [rows, k, n] = [6, 20, 12];
    const a = values(rows * k, 31);
    const b = values(k * n, 32);
    const whole = onTile(new Float32Array(rows * n).fill(NaN));
    const outs = Array.from({ length: rows }, (_, r) => whole.subarray(r * n, (r + 1) * n));
    const K = kernelsFor(whole)!;
    expect(K.contiguous(outs)).toBe(whole.byteOffset);
    expect(K.contiguous([outs[0], outs[2]])).toBe(-1);
    const top = mem.arena!.top;
    expect(ampMatMulWasm({ fields: { a: [onTile(a)], b: [onTile(b)], out: outs }, params: { rows, k, n }, arrays: {} } as unknown as AmpArgs)).toBe(true);
    expect(mem.arena!.top).toBe(top); // nothing staged
    const host = [new Float32Array(rows * n)];
    ampMatMulReference({ fields: { a: [a], b: [b], out: host }, params: { rows, k, n }, arrays: {} } as unknown as AmpArgs);
    expect(bitsOf([whole])).toEqual(bitsOf(host));
  });
});

/**
 * A codelet's compute on tile memory (where its kernel applies: checked) and
 * on host arrays (its TypeScript path). `lists`: the vector fields.
 */
function viaCodelet(c: Codelet, ins: Record<string, Float32Array[]>, outs: Record<string, number[]>, params: Record<string, number> = {}, lists: string[] = []) {
  const unwrap = (f: VertexArgs['fields']) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, lists.includes(k) ? v : (v as ElemArray[])[0]]));
  return both(
    (args) => {
      const flat = (Object.values(args.fields) as ElemArray[][]).flat();
      expect(laneWise(flat[flat.length - 1], flat.slice(0, -1))).toBeDefined();
      c.compute({ ...args, fields: unwrap(args.fields) });
      return true;
    },
    (args) => c.compute({ ...args, fields: unwrap(args.fields) }),
    ins,
    outs,
    params,
  );
}

describe('elementwise kernels = TypeScript codelets, bit for bit', () => {
  const special = Float32Array.from([0, -0, 1, -1, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45, -1e-45, 1.17549435e-38, 2 ** -130]);
  const mix = (n: number, seed: number) => {
    const x = values(n, seed);
    x.set(special.subarray(0, Math.min(n, special.length)), 0);
    return x;
  };
  for (const n of [1, 3, 4, 13, 64, 1001]) {
    for (const c of [addCodelet, subCodelet, mulCodelet, divCodelet]) {
      it(`${c.name} flat, n = ${n}`, () => {
        for (const [dev, host] of viaCodelet(c, { a: [mix(n, 5)], b: [values(n, 6).reverse()] }, { out: [n] })) expect(dev).toEqual(host);
      });
      for (const len of [1, 16, 37])
        if (len < n)
          it(`${c.name} cyclic b of ${len}, n = ${n}`, () => {
            for (const [dev, host] of viaCodelet(c, { a: [mix(n, 7)], b: [values(len, 8)] }, { out: [n] }, { offset: 5 })) expect(dev).toEqual(host);
          });
    }
    for (const c of [negCodelet, absCodelet, sqrtCodelet, reluCodelet])
      it(`${c.name}, n = ${n}`, () => {
        for (const [dev, host] of viaCodelet(c, { in: [mix(n, 9)] }, { out: [n] })) expect(dev).toEqual(host);
      });
    for (const c of [reluGradCodelet, expGradCodelet])
      it(`${c.name}, n = ${n}`, () => {
        for (const [dev, host] of viaCodelet(c, { gradOut: [mix(n, 10)], fwdOut: [values(n, 11)] }, { out: [n] })) expect(dev).toEqual(host);
      });
    it(`Sum of 3, n = ${n}`, () => {
      for (const [dev, host] of viaCodelet(sumCodelet, { in: [mix(n, 12), values(n, 13), values(n, 14)] }, { out: [n] }, {}, ['in'])) expect(dev).toEqual(host);
    });
  }
  it('MatMulReduce over 3 partials into 2 output regions', () => {
    expect(matMulReduceWasm([], [])).toBe(false);
    for (const [dev, host] of viaCodelet(matMulReduceCodelet, { partials: [values(41, 1), values(41, 2), values(41, 3)] }, { out: [17, 24] }, {}, ['partials', 'out'])) expect(dev).toEqual(host);
  });
});

/**
 * The kernels a codelet called, by name (the bound kernels' exports wrapped
 * in a recording proxy): a kernel test that silently fell back to the
 * reference would compare the reference with itself.
 */
const called = new Set<string>();
function recordCalls(): void {
  const K = kernelsFor(mem.view(0, { offset: 0, count: 1, dtype: 'float32' }))!;
  const x = K.x;
  (K as { x: KernelExports }).x = new Proxy(x, {
    get(target, name) {
      called.add(String(name));
      return target[name as keyof KernelExports];
    },
  });
}

/** NaNs made one bit pattern (their payloads are not part of the contract). */
function canonical(bits: number[]): number[] {
  return bits.map((b) => ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0 ? 0x7fc00000 : b));
}

/** `c` on tile memory (which must call `kernel`) and on host arrays: the same bits. */
function sameAsReference(
  c: Codelet,
  kernel: string | undefined,
  ins: Record<string, Float32Array | Float32Array[]>,
  outs: Record<string, number>,
  params: Record<string, number>,
  arrays: Record<string, number[]> = {},
): void {
  called.clear();
  const lists = Object.keys(ins).filter((k) => Array.isArray(ins[k]));
  const unwrap = (f: VertexArgs['fields']) => Object.fromEntries(Object.entries(f).map(([k, v]) => [k, lists.includes(k) ? v : (v as ElemArray[])[0]]));
  const results = both(
    (args) => {
      c.compute({ ...args, fields: unwrap(args.fields) });
      return true;
    },
    (args) => c.compute({ ...args, fields: unwrap(args.fields) }),
    Object.fromEntries(Object.entries(ins).map(([k, v]) => [k, Array.isArray(v) ? v : [v]])),
    Object.fromEntries(Object.entries(outs).map(([k, n]) => [k, [n]])),
    params,
    arrays,
  );
  // (undefined, or an empty output: no group or row to run)
  if (kernel && Object.values(outs).some((n) => n > 0)) expect([...called]).toContain(kernel);
  for (const [dev, host] of results) expect(canonical(dev)).toEqual(canonical(host));
}

describe('softmax and norm kernels = TypeScript codelets, bit for bit', () => {
  beforeAll(recordCalls);
  /** Values with the awkward ones: both zeros, large magnitudes (exp underflows), and fp16-representable when half. */
  const data = (len: number, seed: number, half: boolean, spread = 1) => {
    const x = values(len, seed, half);
    for (let i = 0; i < len; i++) x[i] = half ? roundHalf(x[i] * spread) : Math.fround(x[i] * spread);
    return x;
  };
  for (const half of [false, true]) {
    const tag = half ? ' fp16 values' : '';
    for (const n of [1, 3, 4, 7, 33, 1000])
      for (const inner of [1, 3])
        for (const [lo, hi] of [[0, 1], [0.25, 0.8], [0, 0]])
          for (const log of [0, 1]) {
            const outer = 3;
            const group = n * inner;
            const total = outer * group;
            const outBegin = Math.floor(lo * total);
            const outEnd = Math.max(outBegin, Math.ceil(hi * total));
            const inBegin = Math.floor(outBegin / group) * group;
            const inEnd = Math.max(inBegin + group, Math.ceil(outEnd / group) * group);
            const params = { n, inner, outBegin, inBegin, log };
            const name = `n ${n} inner ${inner} out [${outBegin}, ${outEnd})${log ? ' log' : ''}${tag}`;
            it(`NnSoftmax ${name}`, () => {
              sameAsReference(softmaxCodelet, 'softmax_group', { in: data(inEnd - inBegin, n + inner, half, 30) }, { out: outEnd - outBegin }, params);
            });
            it(`NnSoftmaxGrad ${name}`, () => {
              const y = data(inEnd - inBegin, 3 * n, half);
              if (!log) for (let i = 0; i < y.length; i++) y[i] = Math.abs(y[i]);
              sameAsReference(softmaxGradCodelet, 'softmax_grad_group', { gradOut: data(inEnd - inBegin, n, half, 5), y }, { out: outEnd - outBegin }, params);
            });
          }
    for (const n of [1, 3, 4, 13, 64, 515])
      for (const [lo, hi] of [[0, 1], [0.3, 0.7], [0.5, 0.5]]) {
        const rows = 4;
        const total = rows * n;
        const outBegin = Math.floor(lo * total);
        const outEnd = Math.max(outBegin, Math.ceil(hi * total));
        const inBegin = Math.floor(outBegin / n) * n;
        const inEnd = Math.max(inBegin + n, Math.ceil(outEnd / n) * n);
        const eps = 1e-5;
        const name = `n ${n} elements [${outBegin}, ${outEnd})${tag}`;
        const x = () => data(inEnd - inBegin, 7 + n, half, 100);
        it(`NnLayerNorm ${name}`, () => {
          sameAsReference(normCodelets[0], 'ln_row', { in: x(), scale: data(n, 8, half), bias: data(n, 9, half) }, { out: outEnd - outBegin }, { n, outBegin, inBegin, eps });
          sameAsReference(normCodelets[1], 'ln_row', { in: x(), scale: data(n, 8, half) }, { out: outEnd - outBegin }, { n, outBegin, inBegin, eps });
        });
        it(`NnLayerNormGradX ${name}`, () => {
          sameAsReference(layerNormGradXCodelet, 'ln_grad_x_row', { gradOut: data(inEnd - inBegin, 10, half), in: x(), scale: data(n, 8, half) }, { out: outEnd - outBegin }, { n, outBegin, inBegin, eps });
        });
        it(`NnLayerNormDyXhat ${name}`, () => {
          sameAsReference(layerNormDyXhatCodelet, outEnd > outBegin ? 'ln_scale_row' : undefined, { gradOut: data(outEnd - outBegin, 11, half), in: x() }, { out: outEnd - outBegin }, { n, begin: outBegin, inBegin, eps });
        });
        it(`NnLayerNormStats n ${n}${tag}`, () => {
          for (const which of [0, 1])
            sameAsReference(layerNormStatsCodelet, 'ln_stats_rows', { in: data(rows * n, 12, half, 100).subarray(n) }, { out: rows - 1 }, { n, outBegin: 1, inBegin: n, eps: 1e-3, which });
        });
      }
    for (const [G, inner, begin, len] of [[3, 5, 0, 45], [3, 5, 7, 30], [4, 1, 2, 1], [2, 7, 3, 0], [5, 4, 6, 3], [3, 16, 0, 97]]) {
      const gFirst = Math.floor(begin / inner) % G;
      const spans = Math.ceil((begin + len) / inner) - Math.floor(begin / inner);
      const [gMin, gCount] = spans >= G || gFirst + spans > G ? [0, G] : [gFirst, Math.max(1, spans)];
      const name = `G ${G} inner ${inner} [${begin}, ${begin + len})${tag}`;
      it(`NnChannelSum ${name}`, () => {
        sameAsReference(channelSumCodelets[0], 'channel_sum', { in: data(len, 13, half, 10) }, { out: gCount }, { G, inner, begin, gMin });
      });
      it(`NnBatchNormScalePartial ${name}`, () => {
        const variance = data(gCount, 16, half);
        for (let i = 0; i < gCount; i++) variance[i] = Math.abs(variance[i]);
        sameAsReference(channelSumCodelets[1], 'channel_sum', { in: data(len, 13, half, 10), x: data(len, 14, half, 3), mean: data(gCount, 15, half), var: variance }, { out: gCount }, { G, inner, begin, gMin, eps: 1e-5 });
      });
    }
  }
});

describe('reduction kernels = TypeScript codelets, bit for bit', () => {
  beforeAll(recordCalls);
  for (const half of [false, true]) {
    const tag = half ? ' fp16 values' : '';
    for (const cols of [1, 3, 4, 7, 33])
      for (const len of [0, 1, 5, 100, 1001])
        for (const abs of [0, 1])
          it(`ReducePartial cols ${cols} len ${len}${abs ? ' abs' : ''}${tag}`, () => {
            for (const offset of [0, 2, 2 * cols + 1]) sameAsReference(reducePartialCodelet, 'reduce_partial', { in: values(len, 3 + len, half) }, { out: cols }, { offset, abs });
          });
    for (const n of [0, 1, 2, 3, 4, 9, 33, 1001])
      for (const parts of [1, 3])
        it(`ReduceFinal ${parts} partials n ${n}${tag}`, () => {
          const ps = Array.from({ length: parts }, (_, p) => values(n + p, 20 + p, half));
          for (const scale of [1, 1 / 3]) sameAsReference(reduceFinalCodelet, n > 0 ? 'reduce_final' : undefined, { partials: ps }, { out: n }, { scale });
        });
  }
  for (const n of [1, 4, 13, 100])
    it(`NnPartialsFinal into ${n}`, () => {
      const lens = [n, Math.ceil(n / 2), 1, n];
      const offsets = [0, Math.floor(n / 3), n - 1, 0];
      for (const scale of [1, 1 / 7])
        sameAsReference(partialsFinalCodelet, 'scale_f64', { partials: lens.map((l, j) => values(l, 30 + j)) }, { out: n }, { scale }, { offsets });
    });
});

describe('general broadcast binary ops on the kernels = TypeScript, bit for bit', () => {
  beforeAll(recordCalls);
  /** [out shape, a shape, b shape]: rows of a or b broadcast along the innermost merged axis, either way round. */
  const cases: [number[], number[], number[]][] = [
    [[2, 3, 20], [2, 3, 20], [3, 1]], // NCHW bias: b a scalar per row
    [[2, 3, 20], [3, 1], [2, 3, 20]], // the scalar on the left (sub, div: a_sv)
    [[4, 3, 33], [4, 1, 33], [4, 3, 1]], // both broadcast, on different axes
    [[5, 17], [5, 17], [1, 17]], // b a row reused for every row (cyclic in the lowering; general here)
    [[3, 1, 16], [3, 1, 16], [3, 1, 1]],
    [[2, 5, 6], [2, 5, 6], [5, 1]], // rows of 6: too short, TypeScript
  ];
  for (const [S, SA, SB] of cases)
    for (const c of [addCodelet, subCodelet, mulCodelet, divCodelet])
      it(`${c.name} ${JSON.stringify(S)} = ${JSON.stringify(SA)} op ${JSON.stringify(SB)}`, () => {
        const { shape, strides } = mergeAxes(S, [broadcastStrides(SA, S), broadcastStrides(SB, S)]);
        const total = S.reduce((p, d) => p * d, 1);
        const rowLen = shape[shape.length - 1];
        for (const [lo, hi] of [[0, 1], [0.3, 0.85], [0.5, 0.5]]) {
          const begin = Math.floor(lo * total);
          const end = Math.max(begin, Math.ceil(hi * total));
          const [aLo, aHi] = indexExtent(shape, strides[0], begin, end);
          const [bLo, bHi] = indexExtent(shape, strides[1], begin, end);
          const a = values(SA.reduce((p, d) => p * d, 1), 40).subarray(aLo, Math.max(aLo + 1, aHi));
          const b = values(SB.reduce((p, d) => p * d, 1), 41).subarray(bLo, Math.max(bLo + 1, bHi));
          const kernel = rowLen >= 16 && end > begin;
          sameAsReference(c, kernel ? `${c.name.toLowerCase()}_${strides[0].at(-1) ? 'v' : 's'}${strides[1].at(-1) ? 'v' : 's'}` : undefined, { a, b }, { out: end - begin }, { begin, aBase: aLo, bBase: bLo }, { shape, a: strides[0], b: strides[1] });
        }
      });
});

describe('fp16 decode and encode on the kernels = sim/half.ts, bit for bit', () => {
  beforeAll(recordCalls);
  /** `n` elements of tile memory of the given type, after `skip` bytes (odd alignments too). */
  const region = (dtype: 'float16' | 'float32', n: number, at: number) => mem.view(0, { offset: at, count: n, dtype });

  it('decodes every fp16 bit pattern as the table does, at unaligned offsets and tails', () => {
    for (const [skip, n] of [[0, 65536], [2, 65533], [6, 9]]) {
      const bits = region('float16', n, skip) as Uint16Array;
      for (let i = 0; i < n; i++) bits[i] = (i * 7 + skip) & 0xffff;
      const out = region('float32', n, 4 * 65536 + 4 * skip) as Float32Array;
      called.clear();
      decodeHalf(bits, out);
      expect([...called]).toContain('half_decode');
      const host = decodeHalf(bits.slice());
      // NaNs: the same sign (their other payload bits are not part of the contract; see canonical()).
      const signs = (v: Float32Array) => [...v].map((x, i) => (Number.isNaN(x) ? Math.sign(new Int32Array(v.buffer, v.byteOffset, v.length)[i]) : 0));
      expect(signs(out)).toEqual(signs(host));
      expect(canonical([...new Uint32Array(out.buffer, out.byteOffset, n)])).toEqual(canonical([...new Uint32Array(host.buffer)]));
    }
  });

  it('encodes as toHalfBits: a sweep of every 4099th fp32 bit pattern, midpoints, subnormals, overflow, NaNs', () => {
    const probes: number[] = [];
    for (let b = 0; b < 2 ** 32; b += 4099 * 256) probes.push(b);
    // Around every fp16 value and midpoint: the rounding boundaries.
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let h = 0; h < 0x7c00; h += 3) {
      f[0] = (halfToFloat(h) + halfToFloat(h + 1)) / 2;
      for (const d of [-1, 0, 1]) probes.push((u[0] + d) >>> 0, ((u[0] + d) | 0x80000000) >>> 0);
    }
    probes.push(0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x477fefff, 0x477ff000, 0x47800000, 0x33000000, 0x33000001, 0x387fffff, 0x38800000);
    for (const skip of [0, 4, 12]) {
      const x = region('float32', probes.length, skip) as Float32Array;
      new Uint32Array(x.buffer, x.byteOffset, probes.length).set(probes);
      const out = region('float16', probes.length, 4 * probes.length + 16 + skip / 2) as Uint16Array;
      called.clear();
      encodeHalf(x, out);
      expect([...called]).toContain('half_encode');
      expect([...out]).toEqual([...x].map(toHalfBits));
    }
  });
});

describe('int32 Add, Sub, Mul on the kernels (Div in TypeScript) = TypeScript, bit for bit', () => {
  beforeAll(recordCalls);
  const special = [0, 1, -1, 2, -2, 3, 7, 46341, -46341, 65536, 2 ** 31 - 1, -(2 ** 31), 2 ** 30, 123456789, -987654321];
  /** int32 values: the awkward ones (overflowing products, x / 0, -2^31 / -1) then random. */
  const ints = (n: number, seed: number) => {
    const x = new Int32Array(n);
    let s = seed;
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) | 0;
      x[i] = i < special.length * 2 ? special[(i * (seed % 5 + 1)) % special.length] : i % 3 === 0 ? s : s >> 20;
    }
    return x;
  };
  let at = 0;
  const onTileI32 = (data: Int32Array) => {
    const v = mem.view(0, { offset: at, count: data.length, dtype: 'int32' }) as Int32Array;
    at += 4 * data.length + 12;
    v.set(data);
    return v;
  };
  for (const c of [addCodelet, subCodelet, mulCodelet, divCodelet])
    for (const n of [1, 3, 4, 13, 64, 1001])
      for (const blen of [...new Set([n, 1, 16, 37])].filter((l) => l <= n))
        it(`${c.name} int32 n ${n}, b of ${blen}`, () => {
          at = 0;
          mem.arena!.top = mem.arena!.base;
          const a = ints(n, 5 + n);
          const b = ints(blen, 9 + blen);
          const params = { offset: 3 };
          const host = new Int32Array(n);
          c.compute({ fields: { a: a.slice(), b: b.slice(), out: host }, params, arrays: {} });
          const dev = onTileI32(new Int32Array(n).fill(-7));
          called.clear();
          c.compute({ fields: { a: onTileI32(a), b: onTileI32(b), out: dev }, params, arrays: {} });
          const op = c.name.toLowerCase();
          // (int32 Div stays TypeScript: no kernel was faster)
          if (op !== 'div') expect([...called]).toContain(blen === 1 && n > 1 ? `${op}_i32_vs` : `${op}_i32_vv`);
          else expect([...called].filter((k) => k.includes('i32'))).toEqual([]);
          expect([...dev]).toEqual([...host]);
        });
  for (const c of [subCodelet, mulCodelet])
    it(`${c.name} int32 general broadcast, [3, 1] op [2, 3, 20]`, () => {
      at = 0;
      mem.arena!.top = mem.arena!.base;
      const S = [2, 3, 20];
      const { shape, strides } = mergeAxes(S, [broadcastStrides([3, 1], S), broadcastStrides(S, S)]);
      const a = ints(3, 11);
      const b = ints(120, 12);
      const params = { begin: 0, aBase: 0, bBase: 0 };
      const arrays = { shape, a: strides[0], b: strides[1] };
      const host = new Int32Array(120);
      c.compute({ fields: { a: a.slice(), b: b.slice(), out: host }, params, arrays });
      const dev = onTileI32(new Int32Array(120));
      called.clear();
      c.compute({ fields: { a: onTileI32(a), b: onTileI32(b), out: dev }, params, arrays });
      expect([...called]).toContain(`${c.name.toLowerCase()}_i32_sv`);
      expect([...dev]).toEqual([...host]);
    });
});

describe('BatchNorm inference and its dx on the kernels = TypeScript, bit for bit', () => {
  beforeAll(recordCalls);
  // [C, S, begin, len, cMin, channels held]: whole tensors, runs starting mid-channel, a wrap to the next sample, runs too short.
  const cases: [number, number, number, number, number, number][] = [
    [3, 20, 0, 120, 0, 3],
    [4, 17, 9, 40, 0, 4],
    [4, 33, 40, 50, 1, 2],
    [3, 16, 40, 30, 0, 3],
    [5, 8, 0, 80, 0, 5],
  ];
  for (const half of [false, true])
    for (const [C, S, begin, len, cMin, cc] of cases) {
      const name = `C ${C} S ${S} [${begin}, ${begin + len}) channels ${cMin}..${cMin + cc - 1}${half ? ' fp16 values' : ''}`;
      const kernel = S >= 16 ? 'mul_vs' : undefined;
      const ch = (seed: number, positive = false) => {
        const v = values(cc, seed, half);
        return positive ? v.map((x) => Math.abs(x) + 0.25) : v;
      };
      it(`NnBatchNorm ${name}`, () => {
        sameAsReference(normCodelets[5], kernel, { in: values(len, 50, half), scale: ch(51), bias: ch(52), mean: ch(53), var: ch(54, true) }, { out: len }, { C, S, begin, cMin, eps: Math.fround(1e-5) });
      });
      it(`NnBatchNormGradX ${name}`, () => {
        sameAsReference(normCodelets[6], kernel, { gradOut: values(len, 55, half), scale: ch(51), var: ch(54, true) }, { out: len }, { C, S, begin, cMin, eps: 1e-5 });
      });
    }
});

describe('convolution block kernels = TypeScript references, bit for bit', () => {
  beforeAll(recordCalls);
  interface Conv {
    N: number;
    C: number;
    M: number;
    D: [number, number, number];
    k: [number, number, number];
    s?: [number, number, number];
    d?: [number, number, number];
    pb?: [number, number, number];
    pe?: [number, number, number];
    group?: number;
  }
  const geometry = (c: Conv) => {
    const s = c.s ?? [1, 1, 1];
    const d = c.d ?? [1, 1, 1];
    const pb = c.pb ?? [0, 0, 0];
    const pe = c.pe ?? [0, 0, 0];
    const O = c.D.map((D, i) => Math.floor((D + pb[i] + pe[i] - d[i] * (c.k[i] - 1) - 1) / s[i]) + 1);
    return { xs: [c.N, c.C, ...c.D], ys: [c.N, c.M, ...O], k: c.k, s, d, pb, pe };
  };
  /** Cut a field into regions (several regions and odd alignments: the staged paths). */
  const cut = (x: Float32Array, parts: number) => Array.from({ length: parts }, (_, i) => x.subarray(Math.floor((i * x.length) / parts), Math.floor(((i + 1) * x.length) / parts)));
  const run = (codelet: Codelet, reference: (a: VertexArgs) => void, kernel: string, ins: Record<string, Float32Array[]>, outLen: number, outParts: number, params: Record<string, number>, arrays: Record<string, number[]>) => {
    const unwrap = (a: VertexArgs): VertexArgs => ({ ...a, fields: { ...a.fields, ...(a.fields.bias ? { bias: (a.fields.bias as Float32Array[])[0] } : {}) } });
    const outs = { out: cut(new Float32Array(outLen), outParts).map((p) => p.length) };
    const results = both(
      (a) => {
        called.clear();
        codelet.compute(unwrap(a));
        if (outLen > 0) expect([...called]).toContain(kernel);
        return true;
      },
      (a) => reference(unwrap(a)),
      ins,
      outs,
      params,
      arrays,
    );
    for (const [dev, host] of results) expect(canonical(dev)).toEqual(canonical(host));
  };

  // [name, conv, block of output rows [r0, rows], output channels [m0, mCount], input channels [c0, cCount] of a group]
  const cases: [string, Conv, [number, number], [number, number], [number, number]][] = [
    ['2D 3x3 pad 1, M 11 (8 + 1 + 1 + 1 lanes)', { N: 2, C: 5, M: 11, D: [7, 6, 1], k: [3, 3, 1], pb: [1, 1, 0], pe: [1, 1, 0] }, [0, 7], [0, 11], [0, 5]],
    ['2D rows 2..5 of 7, channels 3..14, 4 lanes + 8 lanes', { N: 1, C: 3, M: 16, D: [7, 9, 1], k: [3, 2, 1], pb: [1, 0, 0], pe: [1, 0, 0] }, [2, 4], [3, 12], [0, 3]],
    ['1D stride 2 dilation 2 asymmetric pads', { N: 3, C: 4, M: 9, D: [1, 1, 23], k: [1, 1, 4], s: [1, 1, 2], d: [1, 1, 2], pb: [0, 0, 3], pe: [0, 0, 1] }, [0, 1], [0, 9], [0, 4]],
    ['3D 2x3x2, strides 2 1 3, pads', { N: 1, C: 2, M: 5, D: [5, 6, 7], k: [2, 3, 2], s: [2, 1, 3], pb: [1, 1, 0], pe: [0, 1, 2] }, [1, 2], [0, 5], [0, 2]],
    ['grouped 3, Mg 3 (no lanes across groups)', { N: 2, C: 6, M: 9, D: [5, 5, 1], k: [3, 3, 1], pb: [1, 1, 0], pe: [1, 1, 0], group: 3 }, [0, 5], [2, 6], [0, 2]],
    ['grouped 2, Mg 8, half the input channels', { N: 1, C: 8, M: 16, D: [4, 6, 1], k: [1, 3, 1], pb: [0, 1, 0], pe: [0, 1, 0], group: 2 }, [0, 4], [0, 16], [1, 2]],
    ['depthwise 3x3 stride 2', { N: 2, C: 7, M: 7, D: [9, 8, 1], k: [3, 3, 1], s: [2, 2, 1], pb: [1, 1, 0], pe: [1, 1, 0], group: 7 }, [0, 5], [0, 7], [0, 1]],
    ['1x1, 40 input channels, M 12', { N: 2, C: 40, M: 12, D: [3, 5, 1], k: [1, 1, 1] }, [0, 3], [0, 12], [0, 40]],
    ['kernel larger than input with pads (positions with no tap)', { N: 1, C: 2, M: 4, D: [2, 2, 1], k: [5, 5, 1], pb: [4, 4, 0], pe: [4, 4, 0] }, [0, 6], [0, 4], [0, 2]],
  ];
  for (const [name, conv, [r0, rows], [m0, mCount], [c0, cCount]] of cases) {
    const geo = geometry(conv);
    const group = conv.group ?? 1;
    const [, , D0, D1, D2] = geo.xs;
    const Mg = conv.M / group;
    const Kt = conv.k[0] * conv.k[1] * conv.k[2];
    for (const bias of [false, true])
      it(`NnConvBlock${bias ? 'Bias' : ''} ${name}`, () => {
        const g0 = Math.floor(m0 / Mg);
        const gCount = Math.floor((m0 + mCount - 1) / Mg) - g0 + 1;
        const ih0 = Math.max(0, r0 * geo.s[0] - geo.pb[0]);
        const last = Math.min(D0 - 1, (r0 + rows - 1) * geo.s[0] - geo.pb[0] + (geo.k[0] - 1) * geo.d[0]);
        const inRows = Math.max(1, last - ih0 + 1);
        const params = { group, nCount: conv.N, r0, rows, m0, mCount, c0, cCount, g0, gCount, ih0, inRows };
        const x = values(conv.N * gCount * cCount * inRows * D1 * D2, 3 + mCount);
        const w = values(mCount * cCount * Kt, 4 + rows);
        const ins: Record<string, Float32Array[]> = { in: cut(x, 3), weights: cut(w, 2) };
        if (bias) ins.bias = [values(mCount, 5)];
        const outLen = conv.N * mCount * rows * geo.ys[3] * geo.ys[4];
        const codelet = bias ? convBlockBiasCodelet : convBlockCodelet;
        for (const parts of [1, 3]) run(codelet, (a) => convBlockReference(a as Parameters<typeof convBlockReference>[0]), 'conv_pack', ins, outLen, parts, params, geo);
      });
    it(`NnConvGradWBlock ${name}`, () => {
      const g0 = Math.floor(m0 / Mg);
      const gCount = Math.floor((m0 + mCount - 1) / Mg) - g0 + 1;
      const ih0 = Math.max(0, r0 * geo.s[0] - geo.pb[0]);
      const last = Math.min(D0 - 1, (r0 + rows - 1) * geo.s[0] - geo.pb[0] + (geo.k[0] - 1) * geo.d[0]);
      const inRows = Math.max(1, last - ih0 + 1);
      const params = { group, nCount: conv.N, r0, rows, m0, mCount, c0, cCount, g0, gCount, ih0, inRows };
      const dy = values(conv.N * mCount * rows * geo.ys[3] * geo.ys[4], 8 + mCount);
      const x = values(conv.N * gCount * cCount * inRows * D1 * D2, 9 + rows);
      const ins = { gradOut: cut(dy, 2), in: cut(x, 3) };
      for (const parts of [1, 2]) run(convGradWBlockCodelet, (a) => gradWBlockReference(a as Parameters<typeof gradWBlockReference>[0]), 'conv_pack', ins, mCount * cCount * Kt, parts, params, geo);
    });
    it(`NnConvGradXBlock ${name}`, () => {
      // dX rows r0 .. r0 + rows - 1 of D0 (clamped), channels [c0 + group offset, cCount) of the block's groups, all of dY's rows.
      const [, , O0, O1, O2] = geo.ys;
      const Cg = conv.C / group;
      const xr0 = Math.min(r0, D0 - 1);
      const xrows = Math.min(rows, D0 - xr0);
      const cFirst = Math.floor(m0 / Mg) * Cg + c0;
      const cLast = Math.min(conv.C, Math.floor((m0 + mCount - 1) / Mg) * Cg + c0 + cCount) - 1;
      const g0 = Math.floor(cFirst / Cg);
      const gCount = Math.floor(cLast / Cg) - g0 + 1;
      let wLen = 0;
      for (let gi = g0; gi < g0 + gCount; gi++) wLen += Mg * (Math.min(cLast + 1, (gi + 1) * Cg) - Math.max(cFirst, gi * Cg)) * Kt;
      const params = { group, nCount: conv.N, r0: xr0, rows: xrows, c0: cFirst, cCount: cLast - cFirst + 1, m0: 0, mCount: Mg, g0, gCount, oh0: 0, dyRows: O0 };
      const dy = values(conv.N * gCount * Mg * O0 * O1 * O2, 6 + Mg);
      const ins = { in: cut(dy, 2), weights: cut(values(wLen, 7), 3) };
      const outLen = conv.N * params.cCount * xrows * D1 * D2;
      for (const parts of [1, 2]) run(convGradXBlockCodelet, (a) => gradXBlockReference(a as Parameters<typeof gradXBlockReference>[0]), 'conv_pack', ins, outLen, parts, params, geo);
    });
  }
});

describe('the copies kernel = memmoves in order', () => {
  it('copies records of every size from 0 to 300 bytes, at any alignment, overlapping either way or chained, as copyWithin one by one', () => {
    const K = kernelsFor(mem.view(0, { offset: 0, count: 1, dtype: 'float32' }))!;
    const all = new Uint8Array(mem.buffer, 0, 1 << 16);
    const records: [number, number, number][] = [];
    let s = 12345;
    const rand = (n: number) => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % n);
    for (let b = 0; b <= 300; b++) records.push([rand(30000), 30000 + rand(30000), b]);
    // Overlapping: destination inside the source (a forward copy would smear), source inside the destination, the same place.
    records.push([1000, 1037, 200], [2037, 2000, 200], [3000, 3000, 64], [4000, 4001, 130], [5001, 5000, 130]);
    // Chained: a later copy reads what an earlier one wrote.
    records.push([100, 40000, 90], [40000, 50000, 90]);
    for (let i = 0; i < all.length; i++) all[i] = (i * 7 + (i >> 8)) & 255;
    const want = all.slice();
    for (const [src, dst, n] of records) want.copyWithin(dst, src, src + n);
    const planAt = 1 << 16;
    const plan = new Uint32Array(mem.buffer, planAt, 3 * records.length);
    records.forEach((r, i) => plan.set(r, 3 * i));
    K.x.copies(planAt, records.length);
    expect(Buffer.from(all).equals(Buffer.from(want))).toBe(true);
  });
});
