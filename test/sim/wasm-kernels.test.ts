/**
 * The WebAssembly kernels against the TypeScript reference codelets: the same
 * fields, once as views of a kernel-bound tile memory and once as host
 * arrays, must give the same bits (docs/numerics.md).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Codelet, ElemArray, VertexArgs } from '../../sim/codelet.js';
import { ampMatMulReference, ampMatMulWasm } from '../../sim/codelets/amp.js';
import { addCodelet, divCodelet, mulCodelet, subCodelet, sumCodelet } from '../../sim/codelets/binary.js';
import { matMulReduceCodelet, matMulReduceWasm } from '../../sim/codelets/matmul.js';
import { absCodelet, expGradCodelet, negCodelet, reluCodelet, reluGradCodelet, sqrtCodelet } from '../../sim/codelets/unary.js';
import { roundHalf } from '../../sim/half.js';
import { TileMemory } from '../../sim/memory.js';
import { kernelModule, kernelsFor, laneWise } from '../../sim/wasm/kernels.js';

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
function both(kernel: (a: VertexArgs) => boolean, reference: (a: VertexArgs) => void, ins: Record<string, Float32Array[]>, outs: Record<string, number[]>, params: Record<string, number>) {
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
  expect(kernel({ fields: dev, params, arrays: {} })).toBe(true);
  reference({ fields: host, params, arrays: {} });
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
            for (const [dev, host] of both(ampMatMulWasm, ampMatMulReference, ins, outs, { ...s, transA, transB })) expect(dev).toEqual(host);
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
