/**
 * LRN: forward against onnxruntime-node (fixed cases and random shapes with
 * fast-check), against a float64 reference written from the ONNX spec where
 * onnxruntime cannot serve, the grad op against central finite differences,
 * the exchange it makes, its estimate, and its errors.
 *
 * onnxruntime's CPU LRN takes only 4-D input and odd sizes. So:
 * - odd sizes, 4-D: checkForward against onnxruntime directly;
 * - 2-, 3- and 5-D: our result against onnxruntime on the same data
 *   reshaped to [N, C, prod(rest), 1] (LRN mixes only channels, so the
 *   trailing dims' shape does not matter);
 * - even sizes: against lrnReference below, a float64 transcription of the
 *   spec's formula (window [c - floor((size-1)/2), c + ceil((size-1)/2)]),
 *   itself checked against onnxruntime on odd sizes.
 *
 * Tolerances (|ours - ref| <= atol + rtol |ref|):
 * - forward fp32: both sides square and sum at most `size` values in fp32,
 *   in different orders (onnxruntime keeps a running window sum along the
 *   channels, which adds a rounding per channel step), then take s^-beta
 *   with pow: a few ulp of s, so rtol 1e-5 (~80 ulp) and atol 1e-6 for
 *   outputs near 0. A wrong window (off by one channel) or a wrong
 *   alpha / size shows at 1e-3 or more with the attributes used here.
 * - against the float64 reference: only our fp32 rounding, same bounds.
 * - float16: one float16 rounding of the result on each side: 2e-3.
 * - gradients: the harness default 2e-3 absolute (h = 1e-2; reasoning in
 *   test/autodiff/gradcheck.test.ts). alpha is 1 to 2 there, not the default
 *   1e-4, so the cross-channel term 2 alpha beta / size x sum(dy x s^(-beta-1))
 *   is O(0.1), far above the tolerance: a wrong or missing cross term fails.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { importOnnx } from '../../src/onnx/import.js';
import { channelShiftRuns } from '../../src/ops/lrn.js';
import { lrnCodelet } from '../../sim/codelets/lrn.js';
import { attr, f32 as f32Info, modelBytes, node } from '../onnx/helpers.js';
import { checkForward, checkGrad, f32, runOrt, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { checkForwardAllTiles, lowered } from './nn-util.js';
import { copyList } from '../../sim/copies.js';

interface LrnAttrs {
  size: number;
  alpha?: number;
  beta?: number;
  bias?: number;
}

const ATOL = 1e-6;
const RTOL = 1e-5;

function lrn(shape: number[], attributes: LrnAttrs, seed: number, range = 3): OpCase {
  return { op: 'LRN', attributes: { ...attributes }, inputs: { x: f32(shape, seed, 0, -range, range) }, atol: ATOL, rtol: RTOL };
}

/** Y of the ONNX spec in float64 (attributes rounded to float32, as an ONNX float attribute is). */
function lrnReference(x: Float32Array, shape: number[], a: LrnAttrs): Float64Array {
  const [N, C] = shape;
  const S = shape.slice(2).reduce((p, d) => p * d, 1);
  const alpha = Math.fround(a.alpha ?? 1e-4);
  const beta = Math.fround(a.beta ?? 0.75);
  const bias = Math.fround(a.bias ?? 1);
  const lo = Math.floor((a.size - 1) / 2);
  const hi = Math.ceil((a.size - 1) / 2);
  const y = new Float64Array(x.length);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let s = 0; s < S; s++) {
        let sq = 0;
        for (let i = Math.max(0, c - lo); i <= Math.min(C - 1, c + hi); i++) sq += x[(n * C + i) * S + s] ** 2;
        const at = (n * C + c) * S + s;
        y[at] = x[at] / (bias + (alpha / a.size) * sq) ** beta;
      }
    }
  }
  return y;
}

function expectClose(ours: ArrayLike<number>, ref: ArrayLike<number>, what: string, atol = ATOL, rtol = RTOL): void {
  expect(ours.length, `${what}: element count`).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(ours[i] - ref[i]);
    if (!(err <= atol + rtol * Math.abs(ref[i]))) expect.fail(`${what}[${i}]: ours ${ours[i]}, reference ${ref[i]} (|diff| ${err} > ${atol} + ${rtol} x |ref|)`);
  }
}

/** Ours on the case's shape vs onnxruntime on the same data as [N, C, prod(rest), 1]. */
async function checkViaOrt4d(c: OpCase): Promise<void> {
  const x = c.inputs.x;
  const [N, C, ...rest] = x.shape;
  const as4d: TensorSpec = { ...x, shape: [N, C, rest.reduce((p, d) => p * d, 1), 1] };
  const [ours, ref] = await Promise.all([runOurs(c), runOrt({ ...c, inputs: { x: as4d } })]);
  expectClose(ours.get('y')!, ref.y as Float32Array, `LRN ${JSON.stringify(c.attributes)} on [${x.shape.join(', ')}] vs onnxruntime on [${as4d.shape.join(', ')}]`);
}

/** Ours vs the float64 reference. */
async function checkVsReference(c: OpCase): Promise<void> {
  const x = c.inputs.x;
  const ours = (await runOurs(c)).get('y')!;
  expectClose(ours, lrnReference(x.data as Float32Array, x.shape, c.attributes as unknown as LrnAttrs), `LRN ${JSON.stringify(c.attributes)} on [${x.shape.join(', ')}] vs reference`);
}

describe('LRN forward', () => {
  it('agrees with onnxruntime: default attributes and others, C smaller than size, opset 1 and 13', async () => {
    await checkForward(lrn([1, 5, 3, 4], { size: 3 }, 1));
    await checkForward(lrn([2, 6, 3, 3], { size: 5, alpha: 0.5, beta: 0.6, bias: 2 }, 2));
    await checkForward(lrn([2, 3, 2, 2], { size: 7, alpha: 2, beta: 1, bias: 1.5 }, 3)); // C = 3 < size = 7
    await checkForward(lrn([1, 1, 4, 4], { size: 3, alpha: 1 }, 4)); // one channel: the window is the element itself
    await checkForward(lrn([1, 4, 3, 3], { size: 1, alpha: 1, beta: 0.75 }, 5));
    for (const opset of [1, 9, 13]) await checkForward({ ...lrn([2, 4, 3, 2], { size: 3, alpha: 0.3 }, 6), opset });
  });

  it('the float64 reference agrees with onnxruntime (so it can judge even sizes)', async () => {
    for (const [shape, a, seed] of [
      [[2, 6, 3, 3], { size: 5, alpha: 0.5, beta: 0.6, bias: 2 }, 7],
      [[1, 3, 2, 5], { size: 7, alpha: 2, beta: 1, bias: 1.5 }, 8],
    ] as const) {
      const c = lrn([...shape], a, seed);
      const ref = await runOrt(c);
      expectClose(ref.y as Float32Array, lrnReference(c.inputs.x.data as Float32Array, c.inputs.x.shape, a), 'onnxruntime vs reference');
    }
  });

  it('even sizes (window [c - floor((size-1)/2), c + ceil((size-1)/2)]) agree with the reference', async () => {
    await checkVsReference(lrn([2, 6, 3, 3], { size: 2, alpha: 1, beta: 0.75 }, 9));
    await checkVsReference(lrn([1, 7, 2, 3], { size: 4, alpha: 0.8, beta: 0.5, bias: 1.2 }, 10));
    await checkVsReference(lrn([2, 3, 4], { size: 6, alpha: 2 }, 11)); // 3-D, C = 3 < size = 6
  });

  it('2-D, 3-D and 5-D inputs agree with onnxruntime on the 4-D reshape', async () => {
    await checkViaOrt4d(lrn([3, 5], { size: 3, alpha: 1 }, 12));
    await checkViaOrt4d(lrn([2, 6, 7], { size: 5, alpha: 0.5, beta: 0.9 }, 13));
    await checkViaOrt4d(lrn([1, 4, 2, 3, 2], { size: 3, alpha: 1.5 }, 14));
  });

  it('float16 agrees within float16 rounding', async () => {
    const x = { ...f32([1, 5, 3, 3], 15, 0, -3, 3), dtype: 'float16' as const };
    await checkForward({ op: 'LRN', attributes: { size: 3, alpha: 0.5 }, inputs: { x }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('spans all 4 tiles (channel windows cut across tiles, remote runs brought over)', async () => {
    // 4 tiles of 64 elements = 4 channels of 16 each: every window reaches into a neighbour tile.
    await checkForwardAllTiles(lrn([1, 16, 4, 4], { size: 5, alpha: 1 }, 16));
    // Tiles of 128 elements, half a channel plane (S = 256): the runs stay apart (one per channel shift).
    await checkForwardAllTiles(lrn([1, 2, 16, 16], { size: 3, alpha: 1 }, 17));
    // Batch boundaries inside a tile's range: a window never crosses from one item into the next.
    await checkForwardAllTiles(lrn([4, 3, 3, 3], { size: 3, alpha: 1 }, 18));
  });

  it('random shapes agree with onnxruntime, odd sizes (fast-check)', async () => {
    const cases = fc.record({
      n: fc.integer({ min: 1, max: 2 }),
      c: fc.integer({ min: 1, max: 8 }),
      h: fc.integer({ min: 1, max: 5 }),
      w: fc.integer({ min: 1, max: 5 }),
      half: fc.integer({ min: 0, max: 4 }),
      alpha: fc.constantFrom(1e-4, 0.1, 1, 3),
      beta: fc.constantFrom(0.5, 0.75, 1),
      bias: fc.constantFrom(0.5, 1, 2),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(cases, async (g) => {
        await checkForward(lrn([g.n, g.c, g.h, g.w], { size: 2 * g.half + 1, alpha: g.alpha, beta: g.beta, bias: g.bias }, g.seed));
      }),
      { numRuns: 20, seed: 20250301 },
    );
  });

  it('random shapes of rank 2 to 5 and any size agree with the reference (fast-check)', async () => {
    const cases = fc.record({
      shape: fc.integer({ min: 2, max: 5 }).chain((rank) =>
        fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: rank - 2, maxLength: rank - 2 })),
      ),
      size: fc.integer({ min: 1, max: 10 }),
      alpha: fc.constantFrom(1e-4, 0.5, 2),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(cases, async (g) => {
        const [n, c, rest] = g.shape;
        await checkVsReference(lrn([n, c, ...rest], { size: g.size, alpha: g.alpha }, g.seed));
      }),
      { numRuns: 20, seed: 20250302 },
    );
  });
});

describe('LRN exchange', () => {
  it('brings each tile only the channel runs its windows reach (no covering window)', async () => {
    // [1, 16, 4, 4] on 4 tiles: 4 channels of 16 per tile; size 5 reaches 2 channels (32 elements)
    // each side, so tiles 1 and 2 receive 2 x 32 elements, tiles 0 and 3 only 32.
    const c = lrn([1, 16, 4, 4], { size: 5, alpha: 1 }, 19);
    const { program } = await lowered(c);
    const ex = program.exchanges.filter((e) => e.op === 'LRN_0');
    const received = [0, 0, 0, 0];
    for (const e of ex) for (const cp of copyList(e.copies)) if (cp.srcTile !== cp.dstTile) received[cp.dstTile] += cp.bytes;
    expect(received).toEqual([32, 64, 64, 32].map((n) => n * 4));
  });

  it('channelShiftRuns: shifted runs clipped to the batch item, merged where they touch', () => {
    // C = 4, S = 3 (block 12). Elements [4, 7) (channels 1-2) with shifts -1..1 read [1, 10): one run.
    expect(channelShiftRuns(4, 7, 4, 3, -1, 1)).toEqual([[1, 10]]);
    // Element 13 (n 1, channel 0, s 1) with shifts -2..2: channels 0-2 of item 1 only.
    expect(channelShiftRuns(13, 14, 4, 3, -2, 2)).toEqual([
      [13, 14],
      [16, 17],
      [19, 20],
    ]);
    // A range across items 0 and 1 keeps each item's shifts inside it: element 12 (item 1, channel 0)
    // reads nothing below, and 9 (item 0, channel 3, s 0) is not read at all.
    expect(channelShiftRuns(10, 14, 4, 3, -1, 0)).toEqual([
      [7, 9],
      [10, 14],
    ]);
  });
});

describe('LRN grad', () => {
  it('agrees with finite differences: odd and even sizes, 2-, 3- and 4-D, C smaller than size', async () => {
    await checkGrad(lrn([1, 4, 2, 2], { size: 3, alpha: 2, beta: 0.75, bias: 1 }, 20, 1));
    await checkGrad(lrn([2, 5, 3], { size: 4, alpha: 1.5, beta: 0.6, bias: 1.2 }, 21, 1));
    await checkGrad(lrn([2, 3, 2, 2], { size: 5, alpha: 2, beta: 1, bias: 1 }, 22, 1)); // C = 3 < size = 5
    await checkGrad(lrn([3, 4], { size: 2, alpha: 1, beta: 0.75, bias: 1 }, 23, 1));
    await checkGrad(lrn([1, 3, 4], { size: 1, alpha: 1, beta: 0.75, bias: 1 }, 24, 1));
  });

  it('agrees with finite differences across tiles', async () => {
    // 192 elements over the 4 tiles: dY and X runs come from neighbour tiles and across batch items.
    await checkGrad(lrn([2, 6, 4, 4], { size: 4, alpha: 2, beta: 0.75, bias: 1 }, 25, 1));
  });
});

describe('LRN estimate (popops steps from §3 blocks)', () => {
  it('matches the formula worked by hand', () => {
    // mk2, W = 6, float32; out 48 and in 96 elements, size 3. Per worker: 8 outputs (4 loops of 2), 16 inputs (8 loops).
    // x^2 over in: 6 x (29 + 8 x 3) + 11 = 329; binary over out: 6 x (29 + 4 x 3) + 11 = 257, taken
    // 2 (window adds) + 1 (affine) + 1 (x -beta) + 1 (x s^-beta) = 5 times = 1285;
    // log: 6 x (17 + 4 x 12) + 20 = 410; exp: 6 x (33 + 4 x 6) + 20 = 362. Total 329 + 1285 + 410 + 362 = 2386.
    const region = (count: number) => ({ offset: 0, count, dtype: 'float32' as const });
    expect(lrnCodelet.cycles({ fields: { in: [region(32), region(64)], out: region(48) }, params: { size: 3 } }, loadDevicePreset('mk2'))).toBe(2386);
  });

  it('a compute set costs its slowest tile', async () => {
    // [1, 16, 4, 4], size 5 on tiny (mk2's tile numbers): tiles 1 and 2 read 128 elements for 64 outputs.
    // Per worker: 11 outputs (6 loops), 22 inputs (11 loops). x^2: 6 x (29 + 11 x 3) + 11 = 383;
    // binary over out: 6 x (29 + 6 x 3) + 11 = 293, 4 + 1 + 1 + 1 = 7 times = 2051;
    // log 6 x (17 + 6 x 12) + 20 = 554; exp 6 x (33 + 6 x 6) + 20 = 434; vertex 3422, + 11 supervisor.
    const { phases } = await lowered(lrn([1, 16, 4, 4], { size: 5, alpha: 1 }, 26));
    expect(phases.find((p) => p.kind === 'compute' && p.name.endsWith('/lrn'))?.cycles).toBe(3433);
  });
});

describe('LRN errors', () => {
  it('a missing size names the node and the op', async () => {
    await expect(runOurs({ op: 'LRN', attributes: { alpha: 0.1 }, inputs: { x: f32([1, 3, 2, 2], 27) } })).rejects.toThrow(
      /node 'LRN_0' \(ai\.onnx::LRN:13\): attribute 'size' \(int\) is required/,
    );
  });

  it('an ONNX model whose LRN node has no size is refused at import, naming the node', async () => {
    const registry = await createRegistry([]);
    const bytes = modelBytes({ nodes: [node('LRN', ['x'], ['y'], [attr.f('alpha', 0.1)], { name: 'norm1' })], inputs: [f32Info('x', [1, 3, 2, 2])], outputs: [f32Info('y')], opset: 9 });
    expect(() => importOnnx(bytes, { file: 'lrn.onnx', registry })).toThrow(/node 'norm1' \(op type LRN, domain ai\.onnx\) is not supported: attribute 'size' \(int\) is required/);
    // With size it imports and builds: the opset-9 node is upgraded to LRN-13 (13 only added types, src/onnx/versions.ts).
    const ok = modelBytes({ nodes: [node('LRN', ['x'], ['y'], [attr.i('size', 3)], { name: 'norm1' })], inputs: [f32Info('x', [1, 3, 2, 2])], outputs: [f32Info('y')], opset: 9 });
    const g = buildGraph(importOnnx(ok, { file: 'lrn.onnx', registry }).graph, registry);
    expect(g.ops.map((o) => `${o.opid.type}:${o.opid.version}`)).toEqual(['LRN:13']);
  });

  it('rejects a size below 1 and an X without channels', async () => {
    await expect(runOurs(lrn([1, 3, 2, 2], { size: 0 }, 28))).rejects.toThrow(/op 'LRN_0' \(ai\.onnx::LRN:13\): size must be a positive integer .*, got 0/);
    await expect(runOurs(lrn([6], { size: 3 }, 29))).rejects.toThrow(/op 'LRN_0' \(ai\.onnx::LRN:13\): X must be \[N, C, \.\.\.\] \(at least 2 dims\), got float32\[6\]/);
  });
});
