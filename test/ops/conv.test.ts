/**
 * Conv: forward against onnxruntime-node (fixed cases and random geometries
 * with fast-check, every kind of planned split), grads for X, W and B against
 * finite differences, the planner, the out-of-memory failure when no split
 * fits, and the AMP estimate.
 *
 * Tolerances: fp32 forward atol 2e-5, rtol 1e-4. Each output sums K = Cg x
 * kernel products of values in [-1, 1) in fp32 on both sides, in different
 * orders (onnxruntime: im2col + GEMM with FMA); with K <= 54 here the
 * rounding differences stay below K x 2^-24 x sum|x w| ~ 1e-5. fp16:
 * atol = rtol = 4e-3 (inputs and result rounded to float16 on both sides;
 * the result's half-ulp is 2^-11 relative, twice that allows onnxruntime's
 * own fp16 accumulation). Grads: the harness default 2e-3 (see
 * test/ops/nn.test.ts), also for the planned backward passes with forced
 * splits, there with a step h = 0.5: Y is linear in X, W and B, and one
 * perturbed element moves each y_i by one product (|x|, |w| < 1) times h,
 * so each loss term y_i R_i + C_i (|R_i| < 1, C_i = |y_i R_i| + 1) stays
 * >= 0.5 and central differences are exact: only the fp32 rounding of the
 * loss remains. It sums up to ~500 terms of ~1-5 here (L ~ 1.5e3, an ulp of
 * 1.2e-4); over 2h = 1 that is ~1e-4, 20x under the tolerance (with the
 * default h = 1e-2 it would be ~6e-3: the first fixed case already showed
 * 7e-4). Split contractions change only the order of fp32 additions
 * (~K x 2^-24 relative), far below that.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunError } from '../../src/errors.js';
import { ampConvCycles } from '../../sim/codelets/nn-util.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { checkForward, checkGrad, f32, runOurs, type OpCase } from './harness.js';
import { checkForwardAllTiles, lowered } from './nn-util.js';
import type { PlanOverrides } from '../../src/lower/plan-overrides.js';
import { estimateConvPlan, planConv, type ConvShape, type ConvSplit } from '../../src/lower/conv-planner.js';
import { describeConvGradWPlan, describeConvGradXPlan, planConvGradW, planConvGradX, type ConvGradShape } from '../../src/lower/conv-grad-planner.js';
import { tiny } from '../helpers.js';
import { vertexAt } from '../../sim/vertex-table.js';
import { loadConfigText } from '../../src/config/load.js';
import { compile, run, TrainingSession } from '../../src/session.js';

const tol = { atol: 2e-5, rtol: 1e-4 };

function conv(x: number[], w: number[], attributes: OpCase['attributes'] = {}, bias = false, seed = 1): OpCase {
  return {
    op: 'Conv',
    attributes,
    inputs: { x: f32(x, seed), w: f32(w, seed + 1), ...(bias ? { b: f32([w[0]], seed + 2) } : {}) },
    ...tol,
  };
}


/** Two padded 3x3 convolutions trained with SGD on an L1 loss: the backward passes' planning tests. */
function twoConvTraining(o: { name: string; device: string; x: number[]; w1: number[]; w2: number[]; conv2?: string }): string {
  return `
name: ${o.name}
device: ${o.device}
model:
  graph:
    inputs:
      x: {shape: [${o.x.join(', ')}], dtype: float32}
    initializers:
      w1: {shape: [${o.w1.join(', ')}], init: {normal: {std: 0.1, seed: 1}}}
      w2: {shape: [${o.w2.join(', ')}], init: {normal: {std: 0.1, seed: 2}}}
    nodes:
      - {op: Conv, inputs: [x, w1], outputs: [h], attributes: {pads: [1, 1, 1, 1]}}
      - {op: Conv, inputs: [h, w2], outputs: [y], attributes: {pads: [1, 1, 1, 1]${o.conv2 ? `, ${o.conv2}` : ''}}}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
train:
  loss: {type: l1, input: y, reduction: mean}
  optimizer: {type: sgd, lr: 0.01}
  steps: 1
`;
}

describe('Conv forward', () => {
  it('agrees with onnxruntime: pads, strides, dilations, bias, asymmetric pads', async () => {
    await checkForward(conv([1, 1, 5, 5], [1, 1, 3, 3]));
    await checkForward(conv([2, 3, 6, 7], [4, 3, 3, 3], { pads: [1, 1, 1, 1] }, true, 2));
    await checkForward(conv([1, 2, 7, 5], [3, 2, 3, 3], { strides: [2, 2], pads: [1, 0, 1, 0] }, true, 3));
    await checkForward(conv([1, 2, 7, 8], [2, 2, 3, 2], { strides: [2, 3], pads: [0, 1, 2, 0] }, false, 4));
    await checkForward(conv([1, 2, 9, 9], [2, 2, 3, 3], { dilations: [2, 2], pads: [2, 1, 2, 1] }, true, 5));
  });

  it('groups, including depthwise', async () => {
    await checkForward(conv([2, 4, 5, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1] }, true, 6));
    await checkForward(conv([1, 3, 6, 6], [6, 1, 3, 3], { group: 3, strides: [2, 2] }, true, 7));
  });

  it('auto_pad VALID, SAME_UPPER, SAME_LOWER (odd padding goes to the end or the start)', async () => {
    for (const auto_pad of ['VALID', 'SAME_UPPER', 'SAME_LOWER']) {
      await checkForward(conv([1, 2, 6, 7], [2, 2, 4, 3], { auto_pad, strides: [2, 2] }, true, 8));
      await checkForward(conv([1, 1, 5, 5], [1, 1, 2, 2], { auto_pad }, false, 9));
    }
  });

  it('1-D and 3-D, and both registered versions (1 and 11)', async () => {
    await checkForward(conv([2, 3, 9], [4, 3, 3], { pads: [1, 2], strides: [2] }, true, 10));
    await checkForward(conv([1, 2, 4, 5, 4], [2, 2, 2, 3, 2], { pads: [1, 0, 1, 0, 1, 0] }, true, 11));
    await checkForward({ ...conv([1, 2, 5, 5], [2, 2, 3, 3], { pads: [1, 1, 1, 1] }, true, 12), opset: 11 });
    await checkForward({ ...conv([1, 2, 5, 5], [2, 2, 3, 3], { kernel_shape: [3, 3] }, true, 12), opset: 10 });
  });

  it('spans all 4 tiles (each tile brings its input box and the weights of its channels)', async () => {
    await checkForwardAllTiles(conv([2, 4, 10, 10], [8, 4, 3, 3], { pads: [0, 1, 0, 1] }, true, 13));
  });

  it('every kind of planned split computes the same numbers: rows, output channels across groups, batch blocks, input channels with partial sums', async () => {
    // The planner picks one split per shape; forcing others checks the lowering of each:
    // input channels split (fp32 partials summed with the bias on the owner), output-channel
    // blocks that straddle groups, several batch items per tile, and row blocks with strides and pads.
    const cases: [OpCase, ConvSplit][] = [
      [conv([1, 16, 6, 6], [8, 16, 3, 3], { pads: [1, 1, 1, 1] }, true, 40), { nBlock: 1, rowBlock: 6, mBlock: 8, cBlock: 8 }],
      [conv([2, 6, 5, 5], [9, 2, 3, 3], { group: 3, pads: [1, 1, 1, 1] }, true, 41), { nBlock: 1, rowBlock: 5, mBlock: 4, cBlock: 2 }],
      [conv([3, 4, 5, 4], [4, 4, 2, 2], {}, false, 42), { nBlock: 2, rowBlock: 2, mBlock: 4, cBlock: 4 }],
      [conv([1, 3, 9, 7], [2, 3, 3, 3], { strides: [2, 2], pads: [1, 0, 2, 1] }, true, 43), { nBlock: 1, rowBlock: 1, mBlock: 1, cBlock: 3 }],
    ];
    for (const [c, split] of cases) {
      await checkForward({ ...c, device: tiny({ tilesPerIpu: 16 }), plans: { conv: () => split } });
    }
  });

  it('the planner splits deep layers over input channels on mk2, fits the memory limit, and is never worse than not splitting them', () => {
    const mk2 = loadDevicePreset('mk2');
    // ResNet-50's deepest 1x1 convolutions: their input does not fit beside one tile's outputs unsplit.
    for (const [C, M, hw] of [[1024, 256, 14], [2048, 512, 7], [512, 2048, 7]] as const) {
      const shape: ConvShape = { N: 1, C, M, group: 1, inDims: [hw, hw, 1], outDims: [hw, hw, 1], kernel: [1, 1, 1], stride0: 1, dilation0: 1, pad0: 0, dtype: 'float16' };
      const r = planConv(shape, mk2);
      expect(r.fallback, `${C} -> ${M}`).toBe(false);
      expect(r.plan.tempBytes).toBeLessThanOrEqual(r.plan.memoryLimit);
      expect(r.plan.tiles).toBeLessThanOrEqual(1472);
      if (C >= 1024) expect(r.plan.gC, `${C} -> ${M} splits its input channels`).toBeGreaterThan(1);
      const unsplit = estimateConvPlan(shape, { nBlock: 1, rowBlock: Math.ceil(hw / 2), mBlock: Math.ceil(M / 700), cBlock: C }, mk2);
      expect(r.plan.cycles.total).toBeLessThanOrEqual(unsplit.cycles.total);
    }
  });

  it('random geometries agree with onnxruntime (fast-check)', async () => {
    const geometry = fc.record({
      n: fc.integer({ min: 1, max: 2 }),
      group: fc.integer({ min: 1, max: 2 }),
      cg: fc.integer({ min: 1, max: 3 }),
      mg: fc.integer({ min: 1, max: 2 }),
      h: fc.integer({ min: 3, max: 7 }),
      w: fc.integer({ min: 3, max: 7 }),
      kh: fc.integer({ min: 1, max: 3 }),
      kw: fc.integer({ min: 1, max: 3 }),
      s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 })),
      d: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
      pads: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 })),
      autoPad: fc.constantFrom('NOTSET', 'NOTSET', 'SAME_UPPER', 'SAME_LOWER', 'VALID'),
      bias: fc.boolean(),
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(geometry, async (g) => {
        const pads = g.autoPad === 'NOTSET' ? g.pads : [0, 0, 0, 0];
        // onnxruntime rejects dilations with SAME_UPPER / SAME_LOWER (our side supports them).
        fc.pre(!g.autoPad.startsWith('SAME') || (g.d[0] === 1 && g.d[1] === 1));
        fc.pre((g.kh - 1) * g.d[0] + 1 <= g.h + pads[0] + pads[2] && (g.kw - 1) * g.d[1] + 1 <= g.w + pads[1] + pads[3]);
        const attributes = { group: g.group, strides: g.s, dilations: g.d, auto_pad: g.autoPad, ...(g.autoPad === 'NOTSET' ? { pads: g.pads } : {}) };
        await checkForward(conv([g.n, g.cg * g.group, g.h, g.w], [g.mg * g.group, g.cg, g.kh, g.kw], attributes, g.bias, g.seed));
      }),
      { numRuns: 20, seed: 20250101 },
    );
  });

  it('float16 agrees within float16 rounding (fp32 accumulation)', async () => {
    const c = conv([1, 2, 5, 5], [3, 2, 3, 3], { pads: [1, 1, 1, 1] }, true, 14);
    for (const t of Object.values(c.inputs)) t.dtype = 'float16';
    await checkForward({ ...c, outputDtype: 'float16', atol: 4e-3, rtol: 4e-3 });
  });
});

describe('Conv grads', () => {
  it('X, W and B agree with finite differences (pads, strides)', async () => {
    await checkGrad(conv([1, 2, 4, 4], [2, 2, 3, 3], { pads: [1, 1, 1, 1], strides: [2, 2] }, true, 20));
    await checkGrad(conv([2, 1, 4, 3], [2, 1, 2, 2], {}, true, 21));
  });

  it('groups, dilations, asymmetric pads and 1-D agree with finite differences', async () => {
    await checkGrad(conv([1, 4, 4, 4], [2, 2, 2, 2], { group: 2, dilations: [2, 1], pads: [1, 0, 0, 1] }, false, 22));
    await checkGrad(conv([2, 2, 7], [3, 2, 3], { strides: [2], pads: [2, 1] }, true, 23));
  });

  it('dW and dB reduce over tiles: with dY spanning all 4 tiles, they agree with finite differences', async () => {
    // X constant so only W (72 elements) and B (4) are perturbed; dY is [2, 4, 9, 9] (2592 bytes, 4 tiles).
    const c = conv([2, 2, 9, 9], [4, 2, 3, 3], { pads: [1, 1, 1, 1] }, true, 24);
    c.inputs.x.constant = true;
    // The loss sums 648 terms of ~2 in fp32 (an ulp of ~1e-4); a step of 1e-2 would leave ~6e-3 of
    // rounding noise in the difference quotient. Y is linear in W and B and the projection is linear
    // where every term stays positive, so central differences are exact at any step: h = 0.5.
    await checkGrad({ ...c, h: 0.5 });
  });
});

describe('Conv grads, planned (src/lower/conv-grad-planner.ts)', () => {
  /** A forced backward split: `parts` of each dim (gradX: batch, dX rows, dX channels, dY channels per group; gradW: out channels, in channels per group, batch, dY rows). */
  type Parts = [number, number, number, number];
  const block = (size: number, parts: number) => Math.ceil(size / Math.min(parts, size));
  const gradSplits = (x: Parts, w: Parts): PlanOverrides => ({
    convGradX: (s) => ({ nBlock: block(s.N, x[0]), rowBlock: block(s.inDims[0], x[1]), cBlock: block(s.C, x[2]), mBlock: block(s.M / s.group, x[3]) }),
    convGradW: (s) => ({ mBlock: block(s.M, w[0]), cBlock: block(s.C / s.group, w[1]), nBlock: block(s.N, w[2]), rowBlock: block(s.outDims[0], w[3]) }),
  });

  it('every kind of backward split agrees with finite differences (64 tiles)', async () => {
    // Blocks that straddle groups (dX channels 3 of Cg = 2; dW rows 3 of Mg = 2), split contractions
    // (dY channels for dX, batch x dY rows for dW: fp32 partials summed in chunks over the block's
    // tiles), dX rows blocks with strides, dilations and pads, dX rows no tap reaches (1x1 stride 2,
    // ResNet's downsampling), dY rows that read only padding, 1-D.
    const device = tiny({ tilesPerIpu: 64 });
    const cases: [OpCase, Parts, Parts][] = [
      [conv([2, 4, 5, 4], [4, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1], strides: [2, 1] }, true, 50), [1, 3, 2, 2], [2, 2, 2, 2]],
      [conv([1, 3, 6, 5], [2, 3, 2, 2], { dilations: [2, 1], pads: [0, 0, 3, 1], strides: [3, 1] }, false, 51), [1, 6, 3, 1], [2, 3, 1, 3]],
      [conv([1, 4, 5, 5], [3, 4, 1, 1], { strides: [2, 2] }, false, 52), [1, 5, 2, 3], [3, 2, 1, 3]],
      [conv([2, 3, 7], [4, 3, 3], { strides: [2], pads: [2, 1] }, true, 53), [2, 3, 3, 2], [2, 1, 2, 2]],
      [conv([1, 6, 4, 4], [6, 1, 3, 3], { group: 6, pads: [1, 1, 1, 1] }, false, 54), [1, 2, 4, 1], [4, 1, 1, 2]],
    ];
    for (const [c, x, w] of cases) await checkGrad({ ...c, device, h: 0.5, plans: gradSplits(x, w) });
  });

  it('random geometries with random backward splits agree with finite differences (fast-check, 16 tiles)', async () => {
    const parts = fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 }));
    const geometry = fc.record({
      n: fc.integer({ min: 1, max: 2 }),
      group: fc.integer({ min: 1, max: 2 }),
      cg: fc.integer({ min: 1, max: 2 }),
      mg: fc.integer({ min: 1, max: 2 }),
      h: fc.integer({ min: 3, max: 6 }),
      w: fc.integer({ min: 3, max: 5 }),
      kh: fc.integer({ min: 1, max: 3 }),
      kw: fc.integer({ min: 1, max: 2 }),
      s: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 })),
      d: fc.tuple(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 2 })),
      pads: fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 1 })),
      x: parts,
      wp: parts,
      seed: fc.integer({ min: 1, max: 1000 }),
    });
    await fc.assert(
      fc.asyncProperty(geometry, async (g) => {
        fc.pre((g.kh - 1) * g.d[0] + 1 <= g.h + g.pads[0] + g.pads[2] && (g.kw - 1) * g.d[1] + 1 <= g.w + g.pads[1] + g.pads[3]);
        const c = conv([g.n, g.cg * g.group, g.h, g.w], [g.mg * g.group, g.cg, g.kh, g.kw], { group: g.group, strides: g.s, dilations: g.d, pads: g.pads }, false, g.seed);
        await checkGrad({ ...c, device: tiny({ tilesPerIpu: 16 }), h: 0.5, plans: gradSplits(g.x, g.wp) });
      }),
      { numRuns: 12, seed: 20250102 },
    );
  });

  it("on mk2 (1472 tiles) the planner's own backward plans agree with finite differences", async () => {
    await checkGrad({ ...conv([2, 4, 6, 5], [6, 2, 3, 3], { group: 2, pads: [1, 1, 1, 1], strides: [2, 1] }, true, 55), device: loadDevicePreset('mk2'), h: 0.5 });
  });

  it('the simulator charges the backward compute sets what the planner estimates (tiny device, float32)', async () => {
    const config = twoConvTraining({ name: 'convgrad', device: 'tiny', x: [1, 16, 8, 8], w1: [16, 16, 3, 3], w2: [8, 16, 3, 3], conv2: 'strides: [2, 2]' });
    const session = await TrainingSession.create(await compile(loadConfigText(config, '/tmp/convgrad.yaml')), { workers: 1, numerics: false });
    try {
      await session.runStep();
      const computeOf = (suffix: string) => session.phases.filter((p) => p.kind === 'compute' && p.name.endsWith(suffix)).map((p) => p.cycles);
      const s2: ConvGradShape = { N: 1, C: 16, M: 8, group: 1, inDims: [8, 8, 1], outDims: [4, 4, 1], kernel: [3, 3, 1], stride0: 2, dilation0: 1, pad0: 1, strides: [2, 2, 1], dtype: 'float32' };
      const s1: ConvGradShape = { ...s2, M: 16, outDims: [8, 8, 1], stride0: 1, strides: [1, 1, 1] };
      // dX only of the second convolution (x is not trained); dW of both.
      expect(computeOf('/conv-grad-x')).toEqual([planConvGradX(s2, tiny()).plan.cycles.compute]);
      expect(computeOf('/conv-grad-w').sort()).toEqual([planConvGradW(s1, tiny()).plan.cycles.compute, planConvGradW(s2, tiny()).plan.cycles.compute].sort());
    } finally {
      await session.close();
    }
  });

  it('dX reads its weights as one block per tile, rearranged once into the plan\'s blocks (mk2, 64 tiles)', async () => {
    const config = twoConvTraining({ name: 'convgrad-weights', device: '{preset: mk2, tiles: 64}', x: [1, 64, 8, 8], w1: [64, 64, 3, 3], w2: [96, 64, 3, 3] });
    const { program } = await compile(loadConfigText(config, '/tmp/convgrad-weights.yaml'));
    // The second conv's dX: one exchange moves w2 into the plan's blocks (w2's elements, each once) ...
    const rearranged = program.exchanges.filter((e) => e.name.endsWith('/conv-grad-x/weights-by-block'));
    expect(rearranged).toHaveLength(1);
    let bytes = 0;
    for (let i = 0; i < rearranged[0].copies.count; i++) bytes += rearranged[0].copies.bytes[i] * (rearranged[0].copies.runs?.[i] ?? 1);
    expect(bytes).toBe(96 * 64 * 9 * 4);
    // ... and each dX vertex reads its weights as one region.
    const sets = program.computeSets.filter((c) => c.name.endsWith('/conv-grad-x'));
    expect(sets).toHaveLength(1);
    const t = sets[0].vertices;
    expect(t.count).toBeGreaterThan(1);
    for (let i = 0; i < t.count; i++) expect(vertexAt(t, i).fields.weights).toHaveLength(1);
  });

  it('trains to byte-identical weights, losses and outputs with 1, 2 and 3 workers (each block vertex runs whole on one thread)', async () => {
    const config = `
name: convdet
device: tiny
model:
  graph:
    inputs:
      x: {shape: [2, 6, 8, 8], dtype: float32}
    initializers:
      w1: {shape: [12, 6, 3, 3], init: {normal: {std: 0.2, seed: 1}}}
      b1: {shape: [12], init: {normal: {std: 0.1, seed: 3}}}
      w2: {shape: [8, 6, 3, 3], init: {normal: {std: 0.2, seed: 2}}}
    nodes:
      - {op: Conv, inputs: [x, w1, b1], outputs: [h], attributes: {pads: [1, 1, 1, 1]}}
      - {op: Conv, inputs: [h, w2], outputs: [y], attributes: {pads: [1, 0, 1, 0], strides: [2, 1], group: 2}}
    outputs: [y]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
train:
  loss: {type: l1, input: y, reduction: mean}
  optimizer: {type: sgd, lr: 0.05}
  steps: 3
`;
    const compiled = await compile(loadConfigText(config, '/tmp/convdet.yaml'));
    const bits = (x: unknown) => [...new Uint32Array(Float32Array.from(x as Float32Array).buffer)];
    const results = [];
    for (const workers of [1, 2, 3]) {
      const r = await run(compiled, { workers, numerics: true, steps: 3, inlineBelow: 0 });
      results.push({ losses: r.steps.map((s) => s.loss), weights: [...r.weights].map(([k, v]) => [k, bits(v)]) });
    }
    expect(results[0].losses.every((l) => Number.isFinite(l))).toBe(true);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });

  it('the backward plans of ResNet-50 layers fit the memory limit on mk2', () => {
    const mk2 = loadDevicePreset('mk2');
    // [C, M, input hw, kernel, stride]: 3x3 at 56, the deepest 1x1s, a 3x3 stride 2, a 1x1 stride-2 downsample, the 7x7 stem (dW only: X is data).
    for (const [C, M, hw, k, st] of [[64, 64, 56, 3, 1], [1024, 256, 14, 1, 1], [512, 2048, 7, 1, 1], [256, 256, 28, 3, 2], [1024, 2048, 14, 1, 2], [3, 64, 224, 7, 2]] as const) {
      const p = Math.floor((k - 1) / 2);
      const o = Math.floor((hw + 2 * p - k) / st) + 1;
      const s: ConvGradShape = { N: 1, C, M, group: 1, inDims: [hw, hw, 1], outDims: [o, o, 1], kernel: [k, k, 1], stride0: st, dilation0: 1, pad0: p, strides: [st, st, 1], dtype: 'float32' };
      for (const r of [planConvGradX(s, mk2), planConvGradW(s, mk2)]) {
        expect(r.fallback, `${C} -> ${M} at ${hw}`).toBe(false);
        expect(r.plan.tempBytes).toBeLessThanOrEqual(r.plan.memoryLimit);
        expect(r.plan.tiles).toBeLessThanOrEqual(1472);
      }
    }
  });

  it('when no split fits, the plans take the least memory and say so', () => {
    const small = tiny({ bytesPerTile: 8192 });
    const s: ConvGradShape = { N: 1, C: 64, M: 64, group: 1, inDims: [32, 32, 1], outDims: [32, 32, 1], kernel: [3, 3, 1], stride0: 1, dilation0: 1, pad0: 1, strides: [1, 1, 1], dtype: 'float32' };
    const x = planConvGradX(s, small);
    const w = planConvGradW(s, small);
    for (const r of [x, w]) {
      expect(r.fallback).toBe(true);
      expect(r.plan.tiles).toBeLessThanOrEqual(4);
    }
    expect(describeConvGradXPlan(s, x)).toMatch(/^dX of \[1, 64, 32, 32\] \* 64 x 3x3 float32: .* no split fits 4915 B of temporaries per tile: took the one needing the least/);
    expect(describeConvGradWPlan(s, w)).toMatch(/^dW of .* no split fits/);
  });
});

describe('Conv lowering limits and errors', () => {
  it('a convolution no split can fit fails with an out-of-memory RunError naming the tile', async () => {
    // One output from 8 input channels (one AMP grain, so no input-channel split) of 160 x 160:
    // the single tile computing it needs all of X and W, 2 x 819 KB.
    const c = conv([1, 8, 160, 160], [1, 8, 160, 160], {}, false, 30);
    const err = await runOurs(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunError);
    expect((err as Error).message).toMatch(/Out of memory on tile 0: \d+ bytes used but tiles only have 638976 bytes/);
  });

  it('rejects bad geometry, naming the attribute', async () => {
    await expect(runOurs(conv([1, 3, 5, 5], [2, 2, 3, 3], { group: 2 }))).rejects.toThrow(/group 2 must divide the input channels \(3\)/);
    await expect(runOurs(conv([1, 2, 5, 5], [2, 2, 3, 3], { kernel_shape: [2, 2] }))).rejects.toThrow(/kernel_shape \[2, 2\] differs from W's spatial dims \[3, 3\]/);
    await expect(runOurs(conv([1, 2, 5, 5], [2, 2, 3, 3], { auto_pad: 'SAME' }))).rejects.toThrow(/auto_pad 'SAME' is not supported; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER/);
    await expect(runOurs(conv([1, 2, 2, 2], [2, 2, 3, 3]))).rejects.toThrow(/kernel \(extent 3 with dilation 1\) is larger than spatial dim 0 of the padded input \(2\)/);
  });
});

describe('Conv cycle estimate (AMP, PopLibs ConvPartial1x1Out structure)', () => {
  const mk2 = loadDevicePreset('mk2');

  it('matches the formula worked by hand for one pass', () => {
    // half, 16 in x 16 out channels, 1x1, 60 positions: 10 rows per worker.
    // worker with zeroing: 43 + (2 + 4 x 10) + 4 x (10 - 3) = 113; inner = 6 x 113 = 678;
    // weight loads 16 x 16 x 2 / 16 = 32; total 50 + (11 + (10 + (18 + 6 + 32 + 678))) = 805.
    expect(ampConvCycles({ convGroups: 1, inChans: 16, outChans: 16, kernelPositions: 1, positions: 60, dtype: 'float16' }, mk2)).toBe(805);
  });

  it('approaches MACs / ampMacsPerCycle for deep contractions (within 10%), half and float', () => {
    for (const [dtype, rate] of [['float16', 64], ['float32', 16]] as const) {
      const w = { convGroups: 1, inChans: 512, outChans: 64, kernelPositions: 9, positions: 6000, dtype };
      const macs = w.inChans * w.outChans * w.kernelPositions * w.positions;
      const ratio = ampConvCycles(w, mk2) / (macs / rate);
      expect(ratio).toBeGreaterThan(1);
      expect(ratio).toBeLessThan(1.1);
    }
  });

  it('a conv compute set costs its vertex estimate (tiny device, float32), and the planner predicts it', async () => {
    // Forced split: Y [1, 16, 8, 8] over 4 tiles, 4 output channels (64 positions each) per tile, Cg = 16, 1x1.
    // float: 8 in-chans per AMP group -> 2 in-groups, 1 out-group; 11 rows per worker;
    // worker 50 + 8 x 8 = 114, with zeroing 50 + (2 + 8 x 11) + 64 = 204; loads 16 x 8 x 4 / 16 = 32;
    // 50 + (11 + (13 + (24 + 32 + 6 x 114)) + (10 + (24 + 32 + 6 x 204))) = 2104, + 11 supervisor = 2115.
    const split = { nBlock: 1, rowBlock: 8, mBlock: 4, cBlock: 16 };
    {
      const { phases } = await lowered({ ...conv([1, 16, 8, 8], [16, 16, 1, 1], {}, false, 31), plans: { conv: () => split } });
      const cs = phases.find((p) => p.kind === 'compute' && p.name.endsWith('/conv'));
      expect(cs?.cycles).toBe(2115);
    }
    const shape: ConvShape = { N: 1, C: 16, M: 16, group: 1, inDims: [8, 8, 1], outDims: [8, 8, 1], kernel: [1, 1, 1], stride0: 1, dilation0: 1, pad0: 0, dtype: 'float32' };
    expect(estimateConvPlan(shape, split, tiny()).cycles.compute).toBe(2115);
    // Unforced: the planner's compute estimate is what the simulator charges for the compute set.
    const planned = planConv(shape, tiny()).plan;
    const { phases } = await lowered(conv([1, 16, 8, 8], [16, 16, 1, 1], {}, false, 31));
    expect(phases.find((p) => p.kind === 'compute' && p.name.endsWith('/conv'))?.cycles).toBe(planned.cycles.compute);
  });
});

describe('nn ops composed', () => {
  it('a small CNN (Conv, BatchNormalization, MaxPool, GlobalAveragePool, Softmax) agrees with finite differences end to end', async () => {
    const { gradcheck } = await import('../../src/autodiff/gradcheck.js');
    const { buildGraph } = await import('../../src/model/build.js');
    const { createRegistry } = await import('../../src/model/modules.js');
    const { tiny } = await import('../helpers.js');
    const loc = { file: '<cnn test>', line: 1, col: 1 };
    const v = (name: string, t: ReturnType<typeof f32>, trainable: boolean) => ({ name, shape: t.shape, dtype: 'float32', loc, init: { kind: 'data', data: t.data }, trainable });
    const node = (op: string, inputs: string[], output: string, attributes = {}) => ({ op, domain: '', name: output, inputs, outputs: [output], attributes, loc });
    const registry = await createRegistry([]);
    const decl = {
      inputs: [],
      initializers: [
        v('x', f32([2, 2, 6, 6], 40), false),
        v('w', f32([3, 2, 3, 3], 41), true),
        v('cb', f32([3], 42), true),
        v('s', f32([3], 43), true),
        v('b', f32([3], 44), true),
        v('mean', f32([3], 45), false),
        v('var', f32([3], 46, 0, 0.5, 1.5), false),
      ],
      nodes: [
        node('Conv', ['x', 'w', 'cb'], 'c', { pads: [1, 1, 1, 1], strides: [1, 1] }),
        node('BatchNormalization', ['c', 's', 'b', 'mean', 'var'], 'n'),
        node('MaxPool', ['n'], 'p', { kernel_shape: [2, 2], strides: [2, 2] }),
        node('GlobalAveragePool', ['p'], 'g'),
        node('Softmax', ['g'], 'y', { axis: 1 }),
      ],
      outputs: ['y'],
      opset: 13,
    } as never;
    const results = await gradcheck(buildGraph(decl, registry), 'y', ['w', 'cb', 's', 'b'], { registry, device: tiny() });
    for (const r of results) {
      expect(r.maxAbsError, `d/d${r.tensor}`).toBeLessThan(2e-3);
      expect(Math.max(...r.analytic.map(Math.abs)), `d/d${r.tensor} is not trivially 0`).toBeGreaterThan(1e-2);
    }
  });
});
