/**
 * MaxPool and AveragePool: forward against onnxruntime-node (fixed cases and
 * random geometries with fast-check), grads against finite differences, the
 * routing of MaxPool's gradient on ties, and the pooling estimate.
 *
 * Tolerances: MaxPool forward is exact (a max picks one input: atol = rtol
 * = 0). AveragePool: one fp32 sum of at most 27 values and a division on
 * each side, in different orders: atol 1e-6, rtol 1e-5; in float16 one
 * rounding of the result on each side: atol = rtol = 2e-3. Grads: the harness
 * default 2e-3 (see test/ops/nn.test.ts); inputs of MaxPool grads are kept
 * distinct (random floats) so no window has a tie within the step h.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadDevicePreset } from '../../src/config/devices.js';
import { poolCycles } from '../../sim/codelets/nn-util.js';
import { checkForward, checkGrad, f32, runOurs, type OpCase } from './harness.js';
import { checkForwardAllTiles, lowered } from './nn-util.js';

function pool(op: 'MaxPool' | 'AveragePool', x: number[], attributes: OpCase['attributes'], seed = 1, opset?: number): OpCase {
  const exact = op === 'MaxPool';
  return { op, attributes, inputs: { x: f32(x, seed, 0, -2, 2) }, atol: exact ? 0 : 1e-6, rtol: exact ? 0 : 1e-5, ...(opset ? { opset } : {}) };
}

describe('MaxPool and AveragePool forward', () => {
  it('agree with onnxruntime: strides, pads, ceil_mode, dilations', async () => {
    for (const op of ['MaxPool', 'AveragePool'] as const) {
      await checkForward(pool(op, [1, 2, 5, 5], { kernel_shape: [2, 2] }, 1));
      await checkForward(pool(op, [2, 3, 7, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, 2));
      await checkForward(pool(op, [1, 2, 6, 7], { kernel_shape: [3, 2], strides: [2, 3], pads: [0, 1, 2, 0] }, 3));
      await checkForward(pool(op, [1, 2, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], ceil_mode: 1 }, 4));
      // ceil_mode where the last window would start in the end pad: dropped.
      await checkForward(pool(op, [1, 1, 4, 4], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }, 5));
    }
    await checkForward(pool('MaxPool', [1, 2, 8, 8], { kernel_shape: [2, 3], dilations: [2, 2], pads: [1, 1, 0, 2] }, 6));
  });

  it('AveragePool count_include_pad 0 and 1, with ceil_mode overhanging the end pad', async () => {
    for (const count_include_pad of [0, 1]) {
      await checkForward(pool('AveragePool', [1, 2, 5, 5], { kernel_shape: [3, 3], pads: [1, 2, 2, 1], count_include_pad }, 7));
      await checkForward(pool('AveragePool', [1, 1, 6, 6], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad }, 8));
    }
  });

  it('auto_pad SAME_UPPER, SAME_LOWER, VALID', async () => {
    for (const op of ['MaxPool', 'AveragePool'] as const) {
      for (const auto_pad of ['SAME_UPPER', 'SAME_LOWER', 'VALID']) {
        await checkForward(pool(op, [1, 2, 5, 6], { kernel_shape: [2, 3], strides: [2, 2], auto_pad }, 9));
      }
    }
  });

  it('1-D and 3-D, and every registered version', async () => {
    for (const op of ['MaxPool', 'AveragePool'] as const) {
      await checkForward(pool(op, [2, 3, 9], { kernel_shape: [3], strides: [2], pads: [1, 1] }, 10));
      await checkForward(pool(op, [1, 2, 4, 5, 4], { kernel_shape: [2, 3, 2], pads: [1, 0, 1, 0, 1, 0] }, 11));
    }
    for (const opset of [8, 10, 11, 12]) await checkForward(pool('MaxPool', [1, 2, 5, 5], { kernel_shape: [3, 3], strides: [2, 2] }, 12, opset));
    for (const opset of [7, 10, 11]) await checkForward(pool('AveragePool', [1, 2, 5, 5], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 13, opset));
  });

  it('float16: max exact, average within float16 rounding (fp32 sums)', async () => {
    const x = { ...f32([1, 2, 5, 5], 18, 0, -2, 2), dtype: 'float16' as const };
    await checkForward({ op: 'MaxPool', attributes: { kernel_shape: [2, 2], pads: [1, 1, 0, 0] }, inputs: { x }, outputDtype: 'float16', atol: 0, rtol: 0 });
    await checkForward({ op: 'AveragePool', attributes: { kernel_shape: [3, 3], strides: [2, 2] }, inputs: { x }, outputDtype: 'float16', atol: 2e-3, rtol: 2e-3 });
  });

  it('span all 4 tiles', async () => {
    await checkForwardAllTiles(pool('MaxPool', [2, 4, 12, 12], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, 14));
    await checkForwardAllTiles(pool('AveragePool', [2, 4, 12, 12], { kernel_shape: [2, 2], pads: [1, 1, 0, 0], count_include_pad: 1 }, 15));
  });

  it('random geometries agree with onnxruntime (fast-check)', async () => {
    const geometry = fc.record({
      max: fc.boolean(),
      n: fc.integer({ min: 1, max: 2 }),
      c: fc.integer({ min: 1, max: 3 }),
      h: fc.integer({ min: 2, max: 8 }),
      w: fc.integer({ min: 2, max: 8 }),
      k: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 })),
      pads: fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 1 })),
      ceil: fc.integer({ min: 0, max: 1 }),
      includePad: fc.integer({ min: 0, max: 1 }),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(geometry, async (g) => {
        // ONNX: pads must be smaller than the kernel; the kernel must fit the padded input.
        fc.pre(g.pads[0] < g.k[0] && g.pads[2] < g.k[0] && g.pads[1] < g.k[1] && g.pads[3] < g.k[1]);
        fc.pre(g.k[0] <= g.h + g.pads[0] + g.pads[2] && g.k[1] <= g.w + g.pads[1] + g.pads[3]);
        const attributes = { kernel_shape: g.k, strides: g.s, pads: g.pads, ceil_mode: g.ceil, ...(g.max ? {} : { count_include_pad: g.includePad }) };
        await checkForward(pool(g.max ? 'MaxPool' : 'AveragePool', [g.n, g.c, g.h, g.w], attributes, g.seed));
      }),
      { numRuns: 20, seed: 20250102 },
    );
  });

  it('AveragePool 19 takes dilations', async () => {
    for (const count_include_pad of [0, 1]) {
      await checkForward({ ...pool('AveragePool', [1, 2, 8, 7], { kernel_shape: [2, 3], dilations: [2, 2], pads: [1, 1, 1, 0], count_include_pad, ceil_mode: 1 }, 16), opset: 19 });
    }
  });

  it('MaxPool Indices: flat indices of the first max, row- or column-major (vs a plain reference)', async () => {
    const [N, C, H, W] = [2, 3, 5, 6];
    const x = f32([N, C, H, W], 17, 0, -2, 2);
    const [OH, OW] = [3, 3]; // kernel 3, stride 2, pads 1: (5 + 2 - 3) / 2 + 1 = 3, (6 + 2 - 3) / 2 + 1 = 3
    for (const storage_order of [0, 1]) {
      const got = await runOurs({ op: 'MaxPool', attributes: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], storage_order }, inputs: { x }, outputs: ['y', 'i'] });
      const y = got.get('y')!;
      const idx = got.get('i')!;
      expect(idx).toBeInstanceOf(Int32Array);
      for (let p = 0; p < N * C; p++) {
        for (let oh = 0; oh < OH; oh++) {
          for (let ow = 0; ow < OW; ow++) {
            let best = -Infinity;
            let at = [0, 0];
            for (let h = oh * 2 - 1; h < oh * 2 + 2; h++) {
              for (let w = ow * 2 - 1; w < ow * 2 + 2; w++) {
                if (h < 0 || h >= H || w < 0 || w >= W) continue;
                if (x.data[(p * H + h) * W + w] > best) [best, at] = [x.data[(p * H + h) * W + w], [h, w]];
              }
            }
            const o = (p * OH + oh) * OW + ow;
            expect(y[o]).toBe(best);
            expect(idx[o]).toBe(p * H * W + (storage_order === 0 ? at[0] * W + at[1] : at[0] + at[1] * H));
          }
        }
      }
    }
  });
});

describe('MaxPool and AveragePool grads', () => {
  it('agree with finite differences', async () => {
    await checkGrad(pool('MaxPool', [1, 2, 4, 4], { kernel_shape: [2, 2], strides: [1, 1] }, 20));
    await checkGrad(pool('MaxPool', [1, 1, 5, 5], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 }, 21));
    await checkGrad(pool('AveragePool', [1, 2, 4, 4], { kernel_shape: [3, 3], strides: [2, 1], pads: [1, 1, 1, 1] }, 22));
    await checkGrad(pool('AveragePool', [1, 1, 5, 5], { kernel_shape: [2, 3], strides: [2, 2], pads: [1, 0, 1, 1], ceil_mode: 1, count_include_pad: 1 }, 23));
    await checkGrad(pool('MaxPool', [2, 2, 6], { kernel_shape: [3], strides: [2], dilations: [2], pads: [1, 1] }, 24));
  });

  it('MaxPool routes a tied window to its first maximum in scan order', async () => {
    const { gradcheck } = await import('../../src/autodiff/gradcheck.js');
    const { buildGraph } = await import('../../src/model/build.js');
    const { createRegistry } = await import('../../src/model/modules.js');
    const { tiny } = await import('../helpers.js');
    const { declOf } = await import('./nn-util.js');
    // One 2x2 window of equal values, then a window whose max (5) appears twice.
    const x = Float32Array.from([1, 1, 5, 5, 1, 1, 0, 5]);
    const c: OpCase = { op: 'MaxPool', attributes: { kernel_shape: [2, 2], strides: [2, 2] }, inputs: { x: { shape: [1, 1, 2, 4], data: x } } };
    const registry = await createRegistry([]);
    const d = declOf(c);
    d.initializers.push({ ...d.inputs[0], init: { kind: 'data', data: x }, trainable: true } as never);
    d.inputs = [];
    const [r] = await gradcheck(buildGraph(d, registry), 'y', ['x'], { registry, device: tiny() });
    const nonzero = [...r.analytic.keys()].filter((i) => r.analytic[i] !== 0);
    // Row-major [2, 4]: window 0 covers indices 0, 1, 4, 5 (first max: 0); window 1 covers 2, 3, 6, 7 (first max: 2).
    expect(nonzero).toEqual([0, 2]);
  });
});

describe('pooling estimate (PopLibs getPoolingCycles structure)', () => {
  it('matches the formula worked by hand', () => {
    // 12 rows of 4 over 6 workers -> 2 rows per worker, 9 kernel positions, max (rpt 4 + 3 x 4 = 16):
    // per item 20 + 3 + (2 + 4 + 2 + 4 + 2 + 16 + 1 + 1) = 55; per row 17 + 9 x 55 = 512;
    // worker 30 + 2 x 512 + 1 = 1055; total 7 + 6 x 1055 + 6 = 6343.
    expect(poolCycles({ rows: 12, rowLength: 4, kernelPositions: 9, kind: 'max' }, loadDevicePreset('mk2'))).toBe(6343);
  });

  it('a 2-D MaxPool compute set costs it: rows of the innermost dim, per vector of channels', async () => {
    // Y [1, 4, 4, 4] float32 = 256 bytes: two tiles of 32 outputs (128 bytes minimum per tile).
    // Per vertex: rows of 4, 2 channels per vector -> 4 rows, 1 per worker; 4 kernel positions, rpt 4 + 3 x 4:
    // per item 55, per row 17 + 4 x 55 = 237, worker 30 + 237 + 1 = 268, vertex 7 + 6 x 268 + 6 = 1621, + 11 supervisor.
    const { phases } = await lowered(pool('MaxPool', [1, 4, 8, 8], { kernel_shape: [2, 2], strides: [2, 2] }, 19));
    expect(phases.find((p) => p.kind === 'compute' && p.name.endsWith('/maxpool'))?.cycles).toBe(1632);
  });
});
