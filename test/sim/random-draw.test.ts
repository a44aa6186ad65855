/**
 * Random inputs are drawn straight into tile memory (sim/random.ts,
 * Engine.write): the same bits as drawing the whole fill on the host, for any
 * split into intervals (the kernel draws fours, the loop the rest), without
 * touching a byte outside them; and end to end, a run's random inputs are
 * the values Rng always gave.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { materialize } from '../../src/model/data.js';
import { compile, run } from '../../src/session.js';
import { Rng } from '../../src/util/random.js';
import { TileMemory } from '../../sim/memory.js';
import { drawInto, type RandomDraw } from '../../sim/random.js';
import { kernelModule, kernelsFor } from '../../sim/wasm/kernels.js';

let module: WebAssembly.Module;
beforeAll(async () => {
  module = await kernelModule();
});

/** Interval lengths: odd ones, ones under four, one past the host's kernel threshold. */
const SPLIT = [5, 7, 1, 3, 13, 64, 67, 200];
const total = SPLIT.reduce((a, b) => a + b, 0);

function drawSplit(mem: TileMemory, d: RandomDraw, dtype: 'float32' | 'int32'): { got: Uint8Array; untouched: boolean } {
  const got = new Uint8Array(4 * total);
  let begin = 0;
  let untouched = true;
  SPLIT.forEach((len, tile) => {
    // Each interval sits between sentinels: a draw past its end would show.
    const bytes = mem.bytes(tile, 0, 4 * (len + 8));
    bytes.fill(0xa5);
    const view = mem.view(tile, { offset: 16, count: len, dtype }) as Float32Array | Int32Array;
    drawInto(view, d, begin);
    got.set(new Uint8Array(view.buffer, view.byteOffset, 4 * len), 4 * begin);
    untouched &&= bytes.subarray(0, 16).every((b) => b === 0xa5) && bytes.subarray(16 + 4 * len).every((b) => b === 0xa5);
    begin += len;
  });
  return { got, untouched };
}

describe('random draws into tile memory', () => {
  const draws: [RandomDraw, 'float32' | 'int32'][] = [
    [{ kind: 'randomDraw', state: 1, integer: false, low: -1, span: 2, length: total }, 'float32'],
    [{ kind: 'randomDraw', state: 0xfffffff0, integer: false, low: 1e-40, span: 2e-38, length: total }, 'float32'],
    [{ kind: 'randomDraw', state: 7, integer: true, low: -3, span: 13, length: total }, 'int32'],
    [{ kind: 'randomDraw', state: 7, integer: true, low: 0, span: 10, length: total }, 'float32'],
    // Outside int32: the kernel saturates where the loop wraps, so the loop draws these.
    [{ kind: 'randomDraw', state: 3, integer: false, low: -3e9, span: 6e9, length: total }, 'int32'],
  ];
  for (const kernels of [true, false])
    it(`gives the host fill's bits for any split into intervals, and writes nothing outside them (${kernels ? 'on the kernels' : 'a plain buffer'})`, () => {
      const mem = new TileMemory(SPLIT.map((n) => 4 * (n + 8)), kernels ? { kernels: module } : {});
      expect(kernelsFor(mem.view(0, { offset: 0, count: 1, dtype: 'float32' })) !== undefined).toBe(kernels);
      for (const [d, dtype] of draws) {
        const want = materialize(d, dtype);
        const host = dtype === 'int32' ? new Int32Array(total) : new Float32Array(total);
        if (d.integer) new Rng(d.state).fillIntegers(host, d.low, d.low + d.span - 1);
        else new Rng(d.state).fillUniform(host, d.low, d.low + d.span);
        expect(Buffer.from(want.buffer).equals(Buffer.from(host.buffer))).toBe(true);
        const { got, untouched } = drawSplit(mem, d, dtype);
        expect(Buffer.from(got).equals(Buffer.from(want.buffer))).toBe(true);
        expect(untouched).toBe(true);
      }
    });

  it('streams the values Rng draws on the host: a uniform float and an integer input, one micro-batch per replica', async () => {
    const n = 1003;
    const cfg = `
name: draws
device: {preset: m2000, ipus: 2, tiles: 16}
model:
  graph:
    inputs: {a: {shape: [${n}]}, k: {shape: [${n}], dtype: int32}}
    nodes:
      - {op: Identity, inputs: [a], outputs: [y]}
      - {op: Identity, inputs: [k], outputs: [z]}
    outputs: [y, z]
inputs:
  a: {random: {distribution: uniform, low: -1, high: 1, seed: 5}}
  k: {random: {distribution: integers, low: -4, high: 9, seed: 6}}
anchors: {y: all, z: all}
replicas: 2
`;
    const r1 = await run(await compile(loadConfigText(cfg, 'draws.yaml')), { workers: 1, numerics: true, steps: 1 });
    // Replica r streams micro-batch r: the second starts n draws into the generator.
    const micro = r1.anchors.get('y')!.data.length / n;
    expect(micro).toBe(2);
    const a = new Float32Array(micro * n);
    new Rng(5).fillUniform(a, -1, 1);
    const k = new Int32Array(micro * n);
    new Rng(6).fillIntegers(k, -4, 9);
    expect(Buffer.from(r1.anchors.get('y')!.data.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    expect(Buffer.from(r1.anchors.get('z')!.data.buffer).equals(Buffer.from(k.buffer))).toBe(true);
  });
});
