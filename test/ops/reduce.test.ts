/**
 * ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd over any axes: forward against
 * onnxruntime-node over random shapes, axes and keepdims (fast-check, fixed
 * seeds), at the opsets where the axes are an attribute and where they are an
 * input; gradients against central finite differences; the tie rule of
 * ReduceMax's gradient; which lowering each shape gets (one stage, two
 * stages, the shared leading-axes reduction); the error paths.
 *
 * Tolerances:
 * - ReduceMax / ReduceMin forward: exact (they select one of the inputs).
 * - ReduceProd forward: as sums (below). Products of values in [-1, 1) of
 *   more than ~20 terms fall under atol; shorter ones differ by a few ulps.
 * - ReduceSum / ReduceMean forward: atol 1e-5, rtol 1e-5. We accumulate in
 *   float64 and round once per stage; onnxruntime accumulates in fp32. Sums
 *   here have at most 5^4 = 625 terms in [-1, 1); the largest difference seen
 *   over 400 random cases of this generator was 1.4e-6 (a few ulps of the
 *   partial sums), so the tolerance leaves ~7x, while a wrong axis, a lost or
 *   doubled partial is off by O(0.1).
 * - Gradients: the harness's 2e-3 (test/autodiff/gradcheck.test.ts): the
 *   reductions are linear, and ReduceMax is piecewise linear with its inputs
 *   spaced 0.05 apart (> 2h = 0.02), so no finite-difference step crosses a
 *   change of the max.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import type { GraphDecl } from '../../src/config/types.js';
import { UserError } from '../../src/errors.js';
import { Graph } from '../../src/ir/graph.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { ReduceOp } from '../../src/ops/reduce.js';
import { runGraph } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { checkForward, checkGrad, f32, i32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { vertexList } from '../../sim/vertex-table.js';
import { intervalList } from '../../sim/intervals.js';

const nelms = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const RUNS = { numRuns: 8, seed: 20240612 };
const SUM_TOL = { atol: 1e-5, rtol: 1e-5 };

/** Distinct values 0.05 apart in a seeded random order: no ties, and no max changes under a 1e-2 step. */
function distinct(shape: number[], seed: number): TensorSpec {
  const n = nelms(shape);
  const order = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { shape, data: Float32Array.from(order, (k) => (k - n / 2) * 0.05) };
}

/** A case: the axes as an attribute (attribute versions) or as a constant input (input versions). */
function reduceCase(op: string, opset: number, x: TensorSpec, axes: number[] | undefined, keepdims: number, extra: Record<string, number> = {}): OpCase {
  const axesInput = (op === 'ReduceSum' && opset >= 13) || opset >= 18;
  const inputs: Record<string, TensorSpec> = { x };
  const attributes: Record<string, number | number[]> = { keepdims, ...extra };
  if (axes && axes.length > 0) {
    if (axesInput) inputs.axes = i32([axes.length], axes, true);
    else attributes.axes = axes;
  }
  return { op, opset, inputs, attributes };
}

const shapeAxes = fc
  .array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 })
  .chain((shape) => fc.tuple(fc.constant(shape), fc.subarray(shape.map((_, k) => k)), fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 1, max: 1_000_000 })))
  .map(([shape, axes, negative, keepdims, seed]) => ({ shape, axes: axes.map((a) => (negative[a] ? a - shape.length : a)), keepdims, seed }));

describe('forward against onnxruntime over random shapes, axes and keepdims', () => {
  const variants: [string, number][] = [
    ['ReduceSum', 18],
    ['ReduceSum', 11],
    ['ReduceMean', 18],
    ['ReduceMean', 13],
    ['ReduceMax', 18],
    ['ReduceMax', 12],
    ['ReduceMin', 18],
    ['ReduceMin', 12],
    ['ReduceProd', 18],
    ['ReduceProd', 13],
  ];
  for (const [op, opset] of variants) {
    it(`${op} at opset ${opset} (axes as ${(op === 'ReduceSum' && opset >= 13) || opset >= 18 ? 'an input' : 'an attribute'})`, async () => {
      await fc.assert(
        fc.asyncProperty(shapeAxes, async ({ shape, axes, keepdims, seed }) => {
          const tol = op === 'ReduceMax' || op === 'ReduceMin' ? { atol: 0, rtol: 0 } : SUM_TOL;
          await checkForward({ ...reduceCase(op, opset, f32(shape, seed), axes, keepdims), ...tol });
        }),
        RUNS,
      );
    });
  }

  it('no axes: every axis reduced; noop_with_empty_axes = 1: the identity', async () => {
    await checkForward({ ...reduceCase('ReduceSum', 13, f32([3, 4, 5], 1), undefined, 0), ...SUM_TOL });
    await checkForward({ ...reduceCase('ReduceSum', 13, f32([3, 4, 5], 2), undefined, 1, { noop_with_empty_axes: 1 }), atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceMax', 18, f32([3, 4], 3), undefined, 1, { noop_with_empty_axes: 1 }), atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceMean', 11, f32([3, 4], 4), undefined, 1), ...SUM_TOL });
    await checkForward({ ...reduceCase('ReduceProd', 18, f32([3, 4], 5, 0.5), undefined, 0), ...SUM_TOL });
  });

  it('ReduceMin and ReduceProd: float16 (rtol 1e-3, two half ulps, for the product rounded once here and per step in onnxruntime) and int32 (exact), across 16 tiles', async () => {
    const half = (t: TensorSpec): TensorSpec => ({ ...t, dtype: 'float16' });
    await checkForward({ ...reduceCase('ReduceMin', 18, half(f32([6, 40], 10)), [1], 1), outputDtype: 'float16', atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceProd', 18, half(f32([6, 8], 11, 0.5)), [0], 0), outputDtype: 'float16', atol: 0, rtol: 1e-3 });
    const ints = i32([3, 4], [3, -1, 4, 1, -5, 9, 2, 6, 5, 3, -5, 8]);
    await checkForward({ ...reduceCase('ReduceMin', 18, ints, [0], 0), outputDtype: 'int32', atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceProd', 18, ints, [1], 1), outputDtype: 'int32', atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceMin', 13, f32([16, 64], 12), [0], 1), device: tiny({ tilesPerIpu: 16 }), atol: 0, rtol: 0 });
    await checkForward({ ...reduceCase('ReduceProd', 13, f32([16, 64], 13, 0.9, 0.9, 1.1), [0], 1), device: tiny({ tilesPerIpu: 16 }), ...SUM_TOL });
  });
});

describe('gradients against central finite differences', () => {
  it('ReduceSum: a middle axis across tiles (two stages), leading axes, every axis', async () => {
    await checkGrad(reduceCase('ReduceSum', 18, f32([6, 4, 5], 1), [1], 0));
    await checkGrad(reduceCase('ReduceSum', 18, f32([4, 6], 2), [0], 1));
    await checkGrad(reduceCase('ReduceSum', 11, f32([3, 4], 3), undefined, 0));
  });

  it('ReduceMean: one stage (a row per tile), outer and inner axes together', async () => {
    await checkGrad(reduceCase('ReduceMean', 18, f32([4, 32], 4), [1], 1));
    await checkGrad(reduceCase('ReduceMean', 13, f32([2, 3, 4], 5), [0, -1], 1));
  });

  it('ReduceMax (no ties)', async () => {
    await checkGrad(reduceCase('ReduceMax', 18, distinct([6, 4, 5], 6), [1], 0));
    await checkGrad(reduceCase('ReduceMax', 18, distinct([6, 4, 5], 7), [0, 2], 1));
    await checkGrad(reduceCase('ReduceMax', 13, distinct([4, 6], 8), [-1], 1));
  });

  it('ReduceMin (no ties) and ReduceProd (X away from 0: dY x Y / X)', async () => {
    await checkGrad(reduceCase('ReduceMin', 18, distinct([6, 4, 5], 16), [1], 0));
    await checkGrad(reduceCase('ReduceMin', 12, distinct([4, 6], 17), [-1], 1));
    await checkGrad(reduceCase('ReduceProd', 18, f32([6, 4, 5], 18, 0.5, -1.5, 1.5), [1], 0));
    await checkGrad(reduceCase('ReduceProd', 13, f32([4, 6], 19, 0.5, -1.5, 1.5), [0, 1], 1));
  });

  it('ReduceMax splits the gradient equally among tied maxima', async () => {
    // Two-way ties: the central difference of each tied element is exactly dY / 2
    // (up by h: it alone is the max; down by h: the other one still is), which is the equal split.
    const x = distinct([4, 6], 9);
    const d = x.data as Float32Array;
    for (let r = 0; r < 4; r++) {
      const row = d.subarray(r * 6, r * 6 + 6);
      const top = row.indexOf(Math.max(...row));
      row[(top + 1 + r) % 6] = row[top];
    }
    await checkGrad(reduceCase('ReduceMax', 18, x, [1], 1));

    // A three-way tie: the central difference is still dY / 2 for each tied element,
    // the equal split gives dY / 3 to each: analytic = 2/3 x numeric there, exact elsewhere.
    const g = new Graph();
    const v = Float32Array.from([0.1, 0.7, -0.3, 0.7, 0.7, 0.2, -0.5, 0.9, 0.4, 0.3]);
    g.addTensor('x', { dtype: 'float32', shape: [2, 5] }, 'variable', { data: v, trainable: true });
    g.addOp(new ReduceOp({ kind: 'max', keepdims: true, axesAttr: [1], axesInput: false, noopWithEmptyAxes: false }, { domain: 'ai.onnx', type: 'ReduceMax', version: 13 }, { name: 'max' }), ['x'], ['y']);
    const [r] = await gradcheck(g, 'y', ['x'], { registry: await createRegistry([]), device: tiny() });
    for (const i of [1, 3, 4]) expect(r.analytic[i]).toBeCloseTo((2 / 3) * r.numeric[i], 4);
    expect(Math.abs(r.analytic[1])).toBeGreaterThan(0.1);
    for (const i of [0, 2, 5, 6, 8, 9]) expect(Math.abs(r.analytic[i])).toBe(0);
    expect(r.analytic[7]).toBeCloseTo(r.numeric[7], 3);
  });
});

describe('lowering', () => {
  /** Lower and run one reduce node; the program's compute sets and tensors. */
  async function lowered(x: number[], axes: number[]) {
    const registry = await createRegistry([]);
    const loc = { file: 't', line: 1, col: 1 };
    const decl = {
      inputs: [{ name: 'x', shape: x, dtype: 'float32', loc }],
      initializers: [{ name: 'axes', shape: [axes.length], dtype: 'int32', loc, init: { kind: 'data', data: Int32Array.from(axes) }, trainable: false }],
      nodes: [{ op: 'ReduceSum', domain: '', name: 'r', inputs: ['x', 'axes'], outputs: ['y'], attributes: { keepdims: 0 }, loc }],
      outputs: ['y'],
      opset: 18,
    } as unknown as GraphDecl;
    const graph = buildGraph(decl, registry);
    const { program, outputs } = await runGraph({ graph, registry, device: tiny(), inputs: { x: f32(x, 1).data }, outputs: ['y'] });
    const sets = program.computeSets.filter((c) => c.op === 'r');
    return { sets: sets.map((c) => [c.name, [...new Set(vertexList(c.vertices).map((v) => v.codelet))]]), y: program.tensors.find((t) => t.name === 'y')!, outputs };
  }

  it('one stage when every output element has its inputs on one tile; the output goes where they are', async () => {
    // [4, 32] on 4 tiles: one row per tile, each row reduced where it lives.
    const { sets, y } = await lowered([4, 32], [1]);
    expect(sets).toEqual([['r/reduce', ['ReduceAxesPartial']]]);
    expect(intervalList(y.intervals).map((i) => [i.tile, i.begin, i.end])).toEqual([
      [0, 0, 1],
      [1, 1, 2],
      [2, 2, 3],
      [3, 3, 4],
    ]);
  });

  it('two stages when a reduced group spans tiles', async () => {
    // [6, 4, 5] (120 elements, 32 per tile) over axis 1: tile boundaries cut groups.
    const { sets } = await lowered([6, 4, 5], [1]);
    expect(sets).toEqual([
      ['r/reduce/partials', ['ReduceAxesPartial']],
      ['r/reduce/final', ['ReduceAxesFinal']],
    ]);
  });

  it('sums over leading axes go through the shared two-stage reduceLeading', async () => {
    const { sets } = await lowered([4, 6, 5], [0, 1]);
    expect(sets.flatMap(([, c]) => c as string[]).some((c) => c.startsWith('ReduceAxes'))).toBe(false);
    expect(sets.length).toBeGreaterThan(0);
  });
});

describe('errors', () => {
  async function userError(c: OpCase): Promise<UserError> {
    const e = await runOurs(c).then(
      () => null,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(UserError);
    return e as UserError;
  }

  it('axes from a non-constant input', async () => {
    const e = await userError({ op: 'ReduceSum', opset: 13, inputs: { x: f32([3, 4], 1), axes: i32([1], [1]) } });
    expect(e.message).toContain("op 'ReduceSum_0' (ai.onnx::ReduceSum:13)");
    expect(e.message).toContain("axes (input 1 'axes') must be a constant initializer");
    expect(e.message).toContain('it is a streamed graph input');
  });

  it('axes out of range or repeated', async () => {
    const r = await userError(reduceCase('ReduceMean', 18, f32([3, 4], 1), [2], 1));
    expect(r.message).toContain("axis 2 is out of range for input 'x' of rank 2 (axes must be in [-2, 1])");
    const d = await userError(reduceCase('ReduceMax', 13, f32([3, 4], 1), [1, -1], 1));
    expect(d.message).toContain('axes [1, -1] name axis 1 twice');
  });

  it('an axes attribute where the version takes an input', async () => {
    const e = await userError({ op: 'ReduceSum', opset: 13, inputs: { x: f32([3, 4], 1) }, attributes: { axes: [1] } });
    expect(e.message).toContain("unknown attribute 'axes'");
  });
});
