/** Input data from .npy files, batchesPerStep and PopART's anchor return types. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import { encodeNpy } from '../../src/report/npy.js';
import { compile, run } from '../../src/session.js';
import { LEAKY_MODULE, randomData } from '../helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tilesim-inputs-'));

function config(x: string, anchors: string, bps = 2, extra = ''): string {
  return `
name: inputs
device: tiny
model:
  graph:
    inputs: {x: {shape: [4, 3]}}
    initializers: {w: {shape: [3, 2], init: {value: [[1, 2], [3, 4], [5, 6]]}}}
    nodes:
      - {op: MatMul, inputs: [x, w], outputs: [h]}
      - {op: LeakyRelu, domain: custom.ops, inputs: [h], outputs: [y], attributes: {alpha: 0.5}}
    outputs: [y]
  customOps: [${LEAKY_MODULE}]
inputs:
  x: ${x}
train:
  loss: {type: l1, input: y, reduction: sum}
  optimizer: {type: sgd, lr: 0}
  steps: 1
  batchesPerStep: ${bps}
anchors: ${anchors}
${extra}`;
}

/** y = leaky(x w) on the host, for checking. */
function reference(x: Float32Array): number[] {
  const w = [1, 2, 3, 4, 5, 6];
  const y: number[] = [];
  for (let i = 0; i < 4; i++) {
    for (let j = 0; j < 2; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += x[i * 3 + k] * w[k * 2 + j];
      y.push(s >= 0 ? s : 0.5 * s);
    }
  }
  return y;
}

describe('inputs and anchors', () => {
  const batches = [randomData(12, 1), randomData(12, 2)];
  const npy = path.join(dir, 'x.npy');
  const all = new Float32Array(24);
  all.set(batches[0], 0);
  all.set(batches[1], 12);
  writeFileSync(npy, encodeNpy(all, [2, 4, 3], 'float32'));

  it('feeds an npy with a leading batch dimension batch by batch; anchor all stacks the batches', async () => {
    const cfg = loadConfigText(config(`{npy: x.npy}`, '{y: all, loss: sum}'), path.join(dir, 'c.yaml'));
    const r = await run(await compile(cfg), { workers: 1, numerics: true, steps: 1 });
    const y = r.anchors.get('y')!;
    expect(y.shape).toEqual([2, 4, 2]);
    const want = [...reference(batches[0]), ...reference(batches[1])];
    Array.from(y.data).forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
    // sum: the loss summed over the step's batches; the step's loss is their mean.
    const l1 = (b: Float32Array) => reference(b).reduce((s, v) => s + Math.abs(v), 0);
    expect(r.anchors.get('loss')!.data[0]).toBeCloseTo(l1(batches[0]) + l1(batches[1]), 3);
    expect(r.steps[0].loss).toBeCloseTo((l1(batches[0]) + l1(batches[1])) / 2, 3);
  });

  it('final keeps the last batch; everyN:2 keeps every second batch', async () => {
    const cfg = loadConfigText(config(`{npy: x.npy}`, '{y: final, h: "everyN:2"}'), path.join(dir, 'c.yaml'));
    const r = await run(await compile(cfg), { workers: 1, numerics: true, steps: 1 });
    expect(r.anchors.get('y')!.shape).toEqual([4, 2]);
    Array.from(r.anchors.get('y')!.data).forEach((v, i) => expect(v).toBeCloseTo(reference(batches[1])[i], 4));
    expect(r.anchors.get('h')!.shape).toEqual([4, 2]);
  });

  it('rejects an npy of the wrong shape, naming the file and both shapes', async () => {
    writeFileSync(path.join(dir, 'bad.npy'), encodeNpy(new Float32Array(10), [2, 5], 'float32'));
    const cfg = loadConfigText(config(`{npy: bad.npy}`, '{y: final}'), path.join(dir, 'c.yaml'));
    const compiled = await compile(cfg);
    await expect(run(compiled, { workers: 1, numerics: true, steps: 1 })).rejects.toThrow(UserError);
    await expect(run(compiled, { workers: 1, numerics: true, steps: 1 })).rejects.toThrow(/bad\.npy has shape \[2, 5\], expected \[4, 3\] or \[batches, 4, 3\]/);
  });

  it('rejects an anchor that names no tensor, with a hint', async () => {
    const cfg = loadConfigText(config(`{random: {distribution: uniform, low: -1, high: 1}}`, '{yy: final}', 1), path.join(dir, 'c.yaml'));
    await expect(compile(cfg)).rejects.toThrow(/anchors\.yy: no tensor 'yy' in the graph; did you mean 'y'\?/);
  });

  it('counts the same cycles with and without numerics', async () => {
    const cfg = loadConfigText(config(`{npy: x.npy}`, '{y: all}'), path.join(dir, 'c.yaml'));
    const compiled = await compile(cfg);
    const a = await run(compiled, { workers: 1, numerics: true, steps: 2 });
    const b = await run(compiled, { workers: 1, numerics: false, steps: 2 });
    expect(b.steps.map((s) => s.cycles)).toEqual(a.steps.map((s) => s.cycles));
    expect(b.steps[0].loss).toBeUndefined();
  });
});

describe('anchor validation', () => {
  it('rejects everyN that does not divide batchesPerStep', async () => {
    const cfg = loadConfigText(config(`{random: {distribution: uniform, low: -1, high: 1}}`, '{y: "everyN:3"}', 2), path.join(dir, 'c.yaml'));
    await expect(compile(cfg)).rejects.toThrow(/anchors\.y: everyN:3 needs batchesPerStep \(2\) to be a multiple of 3/);
  });
});

describe('float16 .npy input', () => {
  it('decodes float16 files to values', async () => {
    const { encodeHalf } = await import('../../sim/half.js');
    const values = [0.5, -1.25, 2, 3.5, -0.125, 1, 0, 4, -2, 0.75, 1.5, -3];
    writeFileSync(path.join(dir, 'half.npy'), encodeNpy(encodeHalf(values), [4, 3], 'float16'));
    const cfg = loadConfigText(config(`{npy: half.npy}`, '{y: final}', 1), path.join(dir, 'c.yaml'));
    const r = await run(await compile(cfg), { workers: 1, numerics: true, steps: 1 });
    const want = reference(Float32Array.from(values));
    Array.from(r.anchors.get('y')!.data).forEach((v, i) => expect(v).toBeCloseTo(want[i], 4));
  });
});
