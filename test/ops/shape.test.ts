/**
 * The shape ops: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Concat,
 * Slice, Gather. Shape ops only move data, so every forward result must equal
 * onnxruntime's exactly (atol 0, rtol 0), float16 and int32 included.
 * Gradients are checked against central finite differences with the
 * harness's default tolerance (2e-3: the ops are linear, so the only error
 * is fp32 rounding of the projected loss divided by 2h).
 *
 * "Spans 4 tiles" cases use tensors of at least 192 float32 elements, which
 * the tiny device's linear mapping (at least 128 bytes per tile) spreads over
 * all 4 tiles; the tests check that the data really crossed tiles.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { GraphDecl } from '../../src/config/types.js';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { runGraph } from '../../src/session.js';
import { tiny } from '../helpers.js';
import { checkForward, checkGrad, f32, i32, type OpCase, type TensorSpec } from './harness.js';
import { copyList } from '../../sim/copies.js';
import { vertexList } from '../../sim/vertex-table.js';
import { intervalList } from '../../sim/intervals.js';
import { boxOf, tightPieces } from '../../src/lower/rearrange.js';

const EXACT = { atol: 0, rtol: 0 };
const half = (shape: number[], seed: number) => ({ ...f32(shape, seed, 0, -8, 8), dtype: 'float16' as const });
const ints = (shape: number[], seed: number): TensorSpec => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Int32Array.from({ length: n }, (_, i) => ((i * 7919 + seed * 104729) % 2001) - 1000) };
};

/** The case as a graph declaration (what the harness builds), for inspecting the lowered program. */
function declOf(c: OpCase): GraphDecl {
  const loc = { file: `<${c.op} test>`, line: 1, col: 1 };
  const dtype = (t: TensorSpec) => (t.data instanceof Int32Array ? 'int32' : (t.dtype ?? 'float32'));
  return {
    inputs: Object.entries(c.inputs)
      .filter(([, t]) => !t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc })),
    initializers: Object.entries(c.inputs)
      .filter(([, t]) => t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtype(t), loc, init: { kind: 'data', data: t.data }, trainable: false })),
    nodes: [{ op: c.op, domain: '', name: `${c.op}_0`, inputs: Object.keys(c.inputs), outputs: ['y'], attributes: c.attributes ?? {}, loc }],
    outputs: ['y'],
    opset: c.opset ?? 18,
  } as GraphDecl;
}

/** Run the case in the simulator and report how the op moved data. */
async function inspect(c: OpCase) {
  const registry = await createRegistry([]);
  const graph = buildGraph(declOf(c), registry);
  const inputs: Record<string, Float32Array | Int32Array> = {};
  for (const [name, t] of Object.entries(c.inputs)) if (!t.constant) inputs[name] = t.data;
  const r = await runGraph({ graph, registry, device: tiny(), inputs, outputs: ['y'] });
  const op = `${c.op}_0`;
  const exchanges = r.program.exchanges.filter((e) => e.op === op);
  const copies = exchanges.flatMap((e) => copyList(e.copies));
  const y = r.program.tensors.find((t) => t.name === 'y');
  return {
    computeSets: r.program.computeSets.filter((cs) => cs.op === op),
    exchanges,
    copies,
    crossTile: copies.filter((x) => x.srcTile !== x.dstTile).length,
    /** Tiles holding the output (undefined when it is an alias of an input). */
    outTiles: y ? new Set(intervalList(y.intervals).map((i) => i.tile)).size : undefined,
    cycles: r.phases.filter((p) => p.op === op).reduce((s, p) => s + p.cycles, 0),
    outputs: r.outputs,
    program: r.program,
  };
}

/** Elements a vertex's `in` field reads (one region or a list). */
function inCount(v: { fields: Record<string, unknown> }): number {
  const f = v.fields.in as { count: number } | { count: number }[];
  return Array.isArray(f) ? f.reduce((s, r) => s + r.count, 0) : f.count;
}

/** Gradient check with runtime int32 inputs (streamed, not constant): the harness only feeds constants. */
async function checkGradRuntimeInts(c: OpCase, tol = 2e-3): Promise<void> {
  const registry = await createRegistry([]);
  const d = declOf(c);
  const wrt = d.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  d.initializers.push(...d.inputs.filter((i) => wrt.includes(i.name)).map((i) => ({ ...i, init: { kind: 'data' as const, data: c.inputs[i.name].data }, trainable: true })));
  d.inputs = d.inputs.filter((i) => !wrt.includes(i.name));
  const graph = buildGraph(d, registry);
  // A streamed int input keeps its values on the tensor, where gradcheck's host side reads them.
  for (const i of d.inputs) graph.tensor(i.name).data = c.inputs[i.name].data;
  const results = await gradcheck(graph, 'y', wrt, { registry, device: tiny() });
  for (const r of results) {
    expect(r.maxAbsError, `d/d${r.tensor}: worst element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(tol);
    expect(Math.max(...r.analytic.map(Math.abs))).toBeGreaterThan(1e-2);
  }
}

describe('Reshape', () => {
  it('0 copies a dimension and -1 is inferred, at opsets 11 (v5), 13 and 18 (v14)', async () => {
    for (const opset of [11, 13, 18]) {
      await checkForward({ op: 'Reshape', opset, inputs: { x: f32([2, 3, 4], 1), s: i32([3], [4, 0, -1], true) }, ...EXACT });
    }
    await checkForward({ op: 'Reshape', inputs: { x: f32([2, 3, 4], 2), s: i32([1], [-1], true) }, ...EXACT });
    await checkForward({ op: 'Reshape', inputs: { x: half([6, 4], 3), s: i32([3], [2, -1, 4], true) }, outputDtype: 'float16', ...EXACT });
    await checkForward({ op: 'Reshape', inputs: { x: ints([6, 4], 4), s: i32([2], [3, 8], true) }, outputDtype: 'int32', ...EXACT });
  });

  it('allowzero = 1 keeps a literal 0: same result without zeros, an error when the sizes then differ', async () => {
    await checkForward({ op: 'Reshape', attributes: { allowzero: 1 }, inputs: { x: f32([2, 3], 5), s: i32([2], [3, 2], true) }, ...EXACT });
    await expect(checkForward({ op: 'Reshape', attributes: { allowzero: 1 }, inputs: { x: f32([2, 3], 5), s: i32([2], [0, 3], true) } })).rejects.toThrow(
      /op 'Reshape_0' \(ai\.onnx::Reshape:14\): cannot reshape input 0 'x' float32\[2, 3\] \(6 elements\) to shape \[0, 3\] \(input 1 's'\): that shape holds 0 elements/,
    );
  });

  it('is an alias over 4 tiles: no compute set, no exchange, no cycles', async () => {
    const c: OpCase = { op: 'Reshape', inputs: { x: f32([8, 24], 6), s: i32([3], [4, -1, 6], true) }, ...EXACT };
    await checkForward(c);
    const r = await inspect(c);
    expect(r.computeSets).toHaveLength(0);
    expect(r.exchanges).toHaveLength(0);
    expect(r.cycles).toBe(0);
    const x = r.program.tensors.find((t) => t.name === 'x')!;
    expect(new Set(intervalList(x.intervals).map((i) => i.tile)).size).toBe(4);
  });

  it('has a gradient (the output gradient read back, an alias)', async () => {
    await checkGrad({ op: 'Reshape', inputs: { x: f32([3, 4], 7), s: i32([2], [2, 6], true) } });
  });

  it('fails naming the node and both shapes on incompatible sizes, and on a second -1', async () => {
    await expect(checkForward({ op: 'Reshape', inputs: { x: f32([2, 3], 8), s: i32([2], [4, 2], true) } })).rejects.toThrow(
      /op 'Reshape_0' .*cannot reshape input 0 'x' float32\[2, 3\] \(6 elements\) to shape \[4, 2\] \(input 1 's'\): that shape holds 8 elements/,
    );
    await expect(checkForward({ op: 'Reshape', inputs: { x: f32([2, 3], 8), s: i32([2], [4, -1], true) } })).rejects.toThrow(
      /cannot reshape input 0 'x' float32\[2, 3\] \(6 elements\) to shape \[4, -1\].*hold 4 elements, which does not divide 6/,
    );
    await expect(checkForward({ op: 'Reshape', inputs: { x: f32([2, 3], 8), s: i32([2], [-1, -1], true) } })).rejects.toThrow(/-1 appears twice/);
  });

  it('rejects a shape that is not a constant, naming the node and the input', async () => {
    await expect(checkForward({ op: 'Reshape', inputs: { x: f32([2, 3], 9), s: i32([2], [3, 2]) } })).rejects.toThrow(
      /op 'Reshape_0' \(ai\.onnx::Reshape:14\): the shape \(input 1 's'\) must be a constant initializer \(trainable: false\).*it is a streamed graph input/,
    );
  });
});

describe('Flatten', () => {
  it('flattens at every axis, negative included, at opsets 11 and 13', async () => {
    for (const axis of [0, 1, 2, 3, -1, -3]) {
      await checkForward({ op: 'Flatten', opset: axis % 2 ? 11 : 13, attributes: { axis }, inputs: { x: f32([2, 3, 4], 10 + axis) }, ...EXACT });
    }
  });

  it('has a gradient and rejects an axis out of range', async () => {
    await checkGrad({ op: 'Flatten', attributes: { axis: 2 }, inputs: { x: f32([2, 3, 2], 11) } });
    await expect(checkForward({ op: 'Flatten', attributes: { axis: 4 }, inputs: { x: f32([2, 3, 4], 12) } })).rejects.toThrow(
      /op 'Flatten_0' \(ai\.onnx::Flatten:13\): axis 4 is out of range for input 0 'x' float32\[2, 3, 4\] \(rank 3: valid axes are -3 to 3\)/,
    );
  });
});

describe('Squeeze and Unsqueeze', () => {
  it('Squeeze-11 takes axes as an attribute, Squeeze-13 as a constant input, both default to every size-1 axis', async () => {
    await checkForward({ op: 'Squeeze', opset: 11, attributes: { axes: [0, -1] }, inputs: { x: f32([1, 3, 1, 4, 1], 13) }, ...EXACT });
    await checkForward({ op: 'Squeeze', opset: 11, inputs: { x: f32([1, 3, 1, 4, 1], 14) }, ...EXACT });
    await checkForward({ op: 'Squeeze', opset: 13, inputs: { x: f32([1, 3, 1, 4, 1], 15), axes: i32([2], [2, -5], true) }, ...EXACT });
    await checkForward({ op: 'Squeeze', opset: 18, inputs: { x: f32([1, 3, 1, 4, 1], 16) }, ...EXACT });
  });

  it('Unsqueeze-11 takes axes as an attribute, Unsqueeze-13 as a constant input; negative axes count in the output', async () => {
    await checkForward({ op: 'Unsqueeze', opset: 11, attributes: { axes: [0, 3] }, inputs: { x: f32([3, 4], 17) }, ...EXACT });
    await checkForward({ op: 'Unsqueeze', opset: 13, inputs: { x: f32([3, 4], 18), axes: i32([2], [-1, 1], true) }, ...EXACT });
    await checkForward({ op: 'Unsqueeze', opset: 18, inputs: { x: ints([3, 4], 19), axes: i32([1], [2], true) }, outputDtype: 'int32', ...EXACT });
  });

  it('have gradients', async () => {
    await checkGrad({ op: 'Squeeze', opset: 13, inputs: { x: f32([3, 1, 4], 20), axes: i32([1], [1], true) } });
    await checkGrad({ op: 'Unsqueeze', opset: 11, attributes: { axes: [1] }, inputs: { x: f32([3, 4], 21) } });
  });

  it('name the node, the axes and the shape on a bad axis; a non-constant axes input is an error', async () => {
    await expect(checkForward({ op: 'Squeeze', opset: 13, inputs: { x: f32([1, 3], 22), axes: i32([1], [1], true) } })).rejects.toThrow(
      /op 'Squeeze_0' \(ai\.onnx::Squeeze:13\): cannot squeeze axis 1 of input 0 'x' float32\[1, 3\]: its size is 3, not 1/,
    );
    await expect(checkForward({ op: 'Squeeze', opset: 11, attributes: { axes: [2] }, inputs: { x: f32([1, 3], 23) } })).rejects.toThrow(
      /op 'Squeeze_0' \(ai\.onnx::Squeeze:11\): axes \[2\]: axis 2 is out of range for input 0 'x' float32\[1, 3\] \(rank 2: valid axes are -2 to 1\)/,
    );
    await expect(checkForward({ op: 'Unsqueeze', opset: 13, inputs: { x: f32([3], 24), axes: i32([1], [2], true) } })).rejects.toThrow(
      /op 'Unsqueeze_0' .*axes \[2\]: axis 2 is out of range for the output of rank 2 \(input 0 'x' float32\[3\] plus 1 new axes\)/,
    );
    await expect(checkForward({ op: 'Unsqueeze', opset: 13, inputs: { x: f32([3], 25), axes: i32([1], [0]) } })).rejects.toThrow(
      /op 'Unsqueeze_0' .*the axes \(input 1 'axes'\) must be a constant initializer/,
    );
  });
});

describe('Transpose', () => {
  it('permutes axes (default: reversed) at opsets 11 and 18, float32, float16 and int32', async () => {
    await checkForward({ op: 'Transpose', opset: 11, inputs: { x: f32([2, 3, 4], 26) }, ...EXACT });
    await checkForward({ op: 'Transpose', attributes: { perm: [1, 2, 0] }, inputs: { x: f32([2, 3, 4], 27) }, ...EXACT });
    await checkForward({ op: 'Transpose', attributes: { perm: [0, 2, 1] }, inputs: { x: half([3, 5, 7], 28) }, outputDtype: 'float16', ...EXACT });
    await checkForward({ op: 'Transpose', attributes: { perm: [1, 0] }, inputs: { x: ints([5, 6], 29) }, outputDtype: 'int32', ...EXACT });
  });

  it('spans 4 tiles with per-element Rearrange vertices, each reading only the elements its range needs (staged by the exchange)', async () => {
    const c: OpCase = { op: 'Transpose', attributes: { perm: [2, 0, 1] }, inputs: { x: f32([4, 6, 8], 30) }, ...EXACT };
    await checkForward(c);
    const r = await inspect(c);
    expect(r.outTiles).toBe(4);
    const vertices = r.computeSets.flatMap((cs) => vertexList(cs.vertices));
    expect(vertices.map((v) => v.codelet)).toEqual(['Rearrange', 'Rearrange', 'Rearrange', 'Rearrange']);
    // Each tile holds 48 outputs (2 rows of 24) and reads exactly those 48 source elements,
    // not the 185-element interval covering them.
    expect(vertices.map(inCount)).toEqual([48, 48, 48, 48]);
    // Their runs arrive packed, one buffer per tile, in the compute set's one exchange.
    expect(vertices.map((v) => (v.fields.in as unknown[]).length)).toEqual([1, 1, 1, 1]);
    expect(r.exchanges.map((e) => e.name)).toEqual(['Transpose_0/transpose/exchange']);
    expect(r.crossTile).toBeGreaterThan(0);
    expect(r.cycles).toBeGreaterThan(0);
    // A transpose too big for one tile's share of a covering interval still fits: 96 x 96 floats, each
    // tile reads its 2304 outputs' worth, not ~3/4 of the 36 KiB source.
    const big = await inspect({ op: 'Transpose', inputs: { x: f32([96, 96], 76) } });
    const reads = big.computeSets.flatMap((cs) => vertexList(cs.vertices).map(inCount));
    expect(reads).toEqual([2304, 2304, 2304, 2304]);
    const xs = (await inspect({ op: 'Transpose', inputs: { x: f32([96, 96], 76) } })).outputs.get('y')!;
    expect(xs[1]).toBe(f32([96, 96], 76).data[96]);
  });

  it('reads exactly the outputs\' elements when tile ranges end mid-row: a range is cut where its box is not tight', async () => {
    // [10, 30] -> [30, 10] on 4 tiles: ranges of about 75 outputs end inside rows of 10. Read as one box, a
    // range crossing rows j and j + 7 would stage all of rows j to j + 7 (the box around it).
    const c: OpCase = { op: 'Transpose', attributes: { perm: [1, 0] }, inputs: { x: f32([10, 30], 77) }, ...EXACT };
    await checkForward(c);
    const r = await inspect(c);
    const vertices = r.computeSets.flatMap((cs) => vertexList(cs.vertices));
    expect(vertices.every((v) => v.codelet === 'Rearrange')).toBe(true);
    expect(vertices.map(inCount).reduce((a, b) => a + b, 0)).toBe(300);
    // More vertices than tiles: each crossing range is a head, whole rows and a tail.
    expect(vertices.length).toBeGreaterThan(4);
    await checkGrad({ op: 'Transpose', attributes: { perm: [1, 0] }, inputs: { x: f32([10, 30], 78) } });
  });

  it('cuts a range into ranges whose boxes hold exactly them (tightPieces, property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }).chain((shape) => {
          const n = shape.reduce((a, b) => a * b, 1);
          return fc.tuple(fc.constant(shape), fc.nat(n - 1), fc.integer({ min: 1, max: n })).map(([sh, b, len]) => [sh, b, Math.min(n, b + len)] as const);
        }),
        ([shape, begin, end]) => {
          const pieces = tightPieces(shape, begin, end);
          // In order, back to back, covering [begin, end).
          expect(pieces[0][0]).toBe(begin);
          expect(pieces[pieces.length - 1][1]).toBe(end);
          for (let i = 1; i < pieces.length; i++) expect(pieces[i][0]).toBe(pieces[i - 1][1]);
          const view = { shape: [...shape], strides: shape.map(() => 1), offset: 0 };
          for (const [b, e] of pieces) {
            expect(e).toBeGreaterThan(b);
            const { lo, hi } = boxOf(view, b, e);
            expect(lo.reduce((c, l, k) => c * (hi[k] - l + 1), 1)).toBe(e - b);
          }
          expect(pieces.length).toBeLessThanOrEqual(Math.max(1, 2 * shape.length - 1));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('copies long runs by the exchange when the innermost axis stays put; an identity of the data is an alias', async () => {
    const c: OpCase = { op: 'Transpose', attributes: { perm: [1, 0, 2] }, inputs: { x: f32([6, 4, 8], 31) }, ...EXACT };
    await checkForward(c);
    const r = await inspect(c);
    expect(r.computeSets).toHaveLength(0);
    expect(r.exchanges).toHaveLength(1);
    expect(r.crossTile).toBeGreaterThan(0);
    // Moving a size-1 axis changes nothing in row-major order.
    const a = await inspect({ op: 'Transpose', attributes: { perm: [1, 0, 2] }, inputs: { x: f32([1, 6, 5], 32) } });
    expect(a.outTiles).toBeUndefined();
    expect(a.cycles).toBe(0);
  });

  it('has a gradient through both lowerings', async () => {
    await checkGrad({ op: 'Transpose', attributes: { perm: [2, 0, 1] }, inputs: { x: f32([2, 3, 4], 33) } });
    await checkGrad({ op: 'Transpose', attributes: { perm: [1, 0, 2] }, inputs: { x: f32([2, 3, 4], 34) } });
  });

  it('rejects a perm that is not a permutation, naming the node and the shape', async () => {
    await expect(checkForward({ op: 'Transpose', attributes: { perm: [0, 0] }, inputs: { x: f32([2, 3], 35) } })).rejects.toThrow(
      /op 'Transpose_0' \(ai\.onnx::Transpose:13\): perm \[0, 0\] is not a permutation of the axes of input 0 'x' float32\[2, 3\] \(each of 0 to 1 once\)/,
    );
  });
});

describe('Concat', () => {
  it('joins along every axis, negative included, at opsets 11 and 13; float16 and int32', async () => {
    for (const axis of [0, 1, 2, -1]) {
      await checkForward({
        op: 'Concat',
        opset: axis === 1 ? 11 : 13,
        attributes: { axis },
        inputs: { a: f32([2, 3, 4], 36), b: f32(axis === 0 ? [1, 3, 4] : axis === 1 ? [2, 1, 4] : [2, 3, 5], 37), c: f32(axis === 0 ? [3, 3, 4] : axis === 1 ? [2, 2, 4] : [2, 3, 1], 38) },
        ...EXACT,
      });
    }
    await checkForward({ op: 'Concat', attributes: { axis: 1 }, inputs: { a: half([3, 2], 39), b: half([3, 5], 40) }, outputDtype: 'float16', ...EXACT });
    await checkForward({ op: 'Concat', attributes: { axis: 0 }, inputs: { a: ints([2, 3], 41), b: ints([1, 3], 42) }, outputDtype: 'int32', ...EXACT });
  });

  it('along axis 0 keeps every piece on its tiles (no exchange traffic); along axis 1 it moves runs across 4 tiles', async () => {
    const c0: OpCase = { op: 'Concat', attributes: { axis: 0 }, inputs: { a: f32([8, 24], 43), b: f32([4, 24], 44) }, ...EXACT };
    await checkForward(c0);
    const r0 = await inspect(c0);
    expect(r0.outTiles).toBe(4);
    expect(r0.crossTile).toBe(0);
    expect(r0.computeSets).toHaveLength(0);
    const c1: OpCase = { op: 'Concat', attributes: { axis: 1 }, inputs: { a: f32([8, 24], 45), b: f32([8, 8], 46) }, ...EXACT };
    await checkForward(c1);
    const r1 = await inspect(c1);
    expect(r1.outTiles).toBe(4);
    expect(r1.crossTile).toBeGreaterThan(0);
    expect(r1.computeSets).toHaveLength(0);
    // 8 rows x 2 inputs = 16 runs, split only where tiles end.
    expect(r1.copies.length).toBeLessThan(16 + 2 * 8);
  });

  it('has a gradient for every input (slices of dY)', async () => {
    await checkGrad({ op: 'Concat', attributes: { axis: 1 }, inputs: { a: f32([2, 3, 2], 47), b: f32([2, 1, 2], 48), c: f32([2, 2, 2], 49) } });
    await checkGrad({ op: 'Concat', attributes: { axis: -1 }, inputs: { a: f32([3, 2], 50), b: f32([3, 3], 51) } });
  });

  it('rejects mismatched shapes naming the node and both inputs, and an axis out of range', async () => {
    await expect(checkForward({ op: 'Concat', attributes: { axis: 0 }, inputs: { a: f32([2, 3], 52), b: f32([2, 4], 53) } })).rejects.toThrow(
      /op 'Concat_0' \(ai\.onnx::Concat:13\): cannot concatenate input 0 'a' float32\[2, 3\] and input 1 'b' float32\[2, 4\] along axis 0/,
    );
    await expect(checkForward({ op: 'Concat', attributes: { axis: 2 }, inputs: { a: f32([2, 3], 54), b: f32([2, 3], 55) } })).rejects.toThrow(
      /op 'Concat_0' .*axis 2 is out of range for input 0 'a' float32\[2, 3\] \(rank 2: valid axes are -2 to 1\)/,
    );
  });
});

describe('Slice', () => {
  const INT_MAX = 2147483647;
  const INT_MIN = -2147483648;

  it('takes starts, ends, axes and steps as constant inputs (opsets 10, 11, 13, 18), with clamping and omitted axes/steps', async () => {
    const x = f32([5, 6, 4], 56);
    await checkForward({ op: 'Slice', opset: 10, inputs: { x, s: i32([2], [1, 2], true), e: i32([2], [4, 5], true) }, ...EXACT });
    await checkForward({ op: 'Slice', opset: 11, inputs: { x, s: i32([1], [1], true), e: i32([1], [INT_MAX], true), a: i32([1], [-1], true) }, ...EXACT });
    await checkForward({ op: 'Slice', opset: 13, inputs: { x, s: i32([2], [-4, 0], true), e: i32([2], [-1, 100], true), a: i32([2], [1, 0], true), st: i32([2], [2, 1], true) }, ...EXACT });
    // An empty result ([5, 6, 0]).
    await checkForward({ op: 'Slice', inputs: { x, s: i32([1], [2], true), e: i32([1], [2], true), a: i32([1], [2], true) }, ...EXACT });
  });

  it('negative steps reverse (to the very beginning with a large negative end)', async () => {
    const x = f32([5, 6, 4], 57);
    await checkForward({ op: 'Slice', inputs: { x, s: i32([1], [-1], true), e: i32([1], [INT_MIN], true), a: i32([1], [2], true), st: i32([1], [-1], true) }, ...EXACT });
    await checkForward({ op: 'Slice', inputs: { x, s: i32([2], [4, 5], true), e: i32([2], [0, -7], true), a: i32([2], [0, 1], true), st: i32([2], [-2, -3], true) }, ...EXACT });
    await checkForward({ op: 'Slice', inputs: { x: ints([7, 3], 58), s: i32([1], [10], true), e: i32([1], [-10], true), a: i32([1], [0], true), st: i32([1], [-3], true) }, outputDtype: 'int32', ...EXACT });
    await checkForward({ op: 'Slice', inputs: { x: half([6, 6], 59), s: i32([1], [5], true), e: i32([1], [0], true), a: i32([1], [1], true), st: i32([1], [-2], true) }, outputDtype: 'float16', ...EXACT });
  });

  it('over 4 tiles: rows by exchange copies, a strided slice by Rearrange vertices, a leading block stays on its tiles', async () => {
    const x = f32([16, 24], 60);
    const rows: OpCase = { op: 'Slice', inputs: { x, s: i32([2], [3, 4], true), e: i32([2], [16, 20], true) }, ...EXACT };
    await checkForward(rows);
    const r = await inspect(rows);
    expect(r.computeSets).toHaveLength(0);
    expect(r.crossTile).toBeGreaterThan(0);
    expect(r.outTiles).toBe(4);
    const strided: OpCase = { op: 'Slice', inputs: { x, s: i32([2], [1, 23], true), e: i32([2], [16, 0], true), a: i32([2], [0, 1], true), st: i32([2], [1, -3], true) }, ...EXACT };
    await checkForward(strided);
    const s = await inspect(strided);
    expect(s.computeSets.flatMap((cs) => vertexList(cs.vertices).map((v) => v.codelet))).toContain('Rearrange');
    // Every third column backwards, rows all local: each tile reads its 32 single elements in place (a list of regions).
    const local: OpCase = { op: 'Slice', inputs: { x, s: i32([1], [23], true), e: i32([1], [0], true), a: i32([1], [1], true), st: i32([1], [-3], true) }, ...EXACT };
    await checkForward(local);
    const lv = (await inspect(local)).computeSets.flatMap((cs) => vertexList(cs.vertices));
    expect(lv.map((v) => (v.fields.in as unknown[]).length)).toEqual([32, 32, 32, 32]);
    // Every other column: the interval covering a tile's rows is at most twice what it needs, so the
    // vertices read it whole (in place here: each tile's rows are already local) instead of staging single elements.
    const even: OpCase = { op: 'Slice', inputs: { x, s: i32([1], [0], true), e: i32([1], [24], true), a: i32([1], [1], true), st: i32([1], [2], true) }, ...EXACT };
    await checkForward(even);
    const ev = await inspect(even);
    const vs = ev.computeSets.flatMap((cs) => vertexList(cs.vertices));
    expect(vs.length).toBe(4);
    for (const v of vs) expect(inCount(v)).toBe(2 * (v.fields.out as { count: number }).count - 1);
    const block: OpCase = { op: 'Slice', inputs: { x, s: i32([1], [2], true), e: i32([1], [14], true) }, ...EXACT };
    await checkForward(block);
    const b = await inspect(block);
    expect(b.crossTile).toBe(0);
    expect(b.computeSets).toHaveLength(0);
  });

  it('has a gradient that scatters into zeros, through the copy and the per-element lowering', async () => {
    const x = f32([4, 6], 61);
    await checkGrad({ op: 'Slice', inputs: { x, s: i32([1], [1], true), e: i32([1], [6], true), a: i32([1], [1], true) } });
    await checkGrad({ op: 'Slice', inputs: { x, s: i32([2], [3, -1], true), e: i32([2], [0, INT_MIN], true), a: i32([2], [0, 1], true), st: i32([2], [-2, -2], true) } });
    await checkGrad({ op: 'Slice', inputs: { x: f32([5, 2], 62), s: i32([1], [1], true), e: i32([1], [4], true) } });
  });

  it('rejects non-constant starts, a zero step and axes out of range, naming the node', async () => {
    const x = f32([4, 6], 63);
    await expect(checkForward({ op: 'Slice', inputs: { x, s: i32([1], [1]), e: i32([1], [3], true) } })).rejects.toThrow(
      /op 'Slice_0' \(ai\.onnx::Slice:13\): starts \(input 1 's'\) must be a constant initializer .*it is a streamed graph input/,
    );
    await expect(checkForward({ op: 'Slice', inputs: { x, s: i32([1], [1], true), e: i32([1], [3], true), a: i32([1], [0], true), st: i32([1], [0], true) } })).rejects.toThrow(
      /op 'Slice_0' .*step for axis 0 is 0/,
    );
    await expect(checkForward({ op: 'Slice', inputs: { x, s: i32([1], [1], true), e: i32([1], [3], true), a: i32([1], [2], true) } })).rejects.toThrow(
      /op 'Slice_0' .*axes \[2\]: axis 2 is out of range for input 0 'x' float32\[4, 6\] \(rank 2: valid axes are -2 to 1\)/,
    );
  });
});

describe('Gather', () => {
  it('looks up embedding rows with runtime int32 indices of any shape (repeats, negatives) at opsets 11 and 13', async () => {
    const table = f32([10, 8], 64);
    await checkForward({ op: 'Gather', opset: 11, inputs: { table, idx: i32([2, 3], [3, 0, 9, 3, -1, 5]) }, ...EXACT });
    await checkForward({ op: 'Gather', opset: 13, inputs: { table, idx: i32([], [7]) }, ...EXACT });
    await checkForward({ op: 'Gather', inputs: { table: half([10, 3], 65), idx: i32([4], [1, 1, 9, 0]) }, outputDtype: 'float16', ...EXACT });
    await checkForward({ op: 'Gather', inputs: { table: ints([6, 2], 66), idx: i32([3], [5, -6, 2]) }, outputDtype: 'int32', ...EXACT });
  });

  it('gathers along any axis with constant indices, by exchange copies or by GatherSlices vertices', async () => {
    const x = f32([3, 5, 4], 67);
    await checkForward({ op: 'Gather', attributes: { axis: 1 }, inputs: { x, idx: i32([2, 2], [4, 0, -2, 4], true) }, ...EXACT });
    await checkForward({ op: 'Gather', attributes: { axis: -1 }, inputs: { x, idx: i32([3], [3, 3, 0], true) }, ...EXACT });
    await checkForward({ op: 'Gather', attributes: { axis: 2 }, inputs: { x, idx: i32([2], [1, 2]) }, ...EXACT });
    const copies = await inspect({ op: 'Gather', inputs: { x: f32([6, 8], 68), idx: i32([4], [5, 0, 1, 5], true) } });
    expect(copies.computeSets).toHaveLength(0);
    expect(copies.copies.length).toBeGreaterThan(0);
  });

  it('runtime indices: a multiSlice plan looks each index up where the table lives, never copying the table', async () => {
    const c: OpCase = { op: 'Gather', inputs: { table: f32([40, 6], 69), idx: i32([8, 4], Array.from({ length: 32 }, (_, i) => (i * 13) % 40)) }, ...EXACT };
    await checkForward(c);
    const r = await inspect(c);
    expect(r.program.notes?.some((n) => n.op === 'Gather_0' && /runtime indices: multiSlice plan/.test(n.text))).toBe(true);
    expect(r.computeSets.flatMap((cs) => vertexList(cs.vertices).map((v) => v.codelet))).toContain('MultiSlice');
    // The table was created where the lookup reads it: no exchange copy reads its bytes.
    const table = r.program.tensors.find((t) => t.name === 'table')!;
    const bytes = (tile: number) => intervalList(table.intervals).filter((i) => i.tile === tile).map((i) => [i.offset, i.offset + (i.end - i.begin) * 4]);
    expect(r.copies.filter((x) => bytes(x.srcTile).some(([lo, hi]) => x.srcOffset < hi && x.srcOffset + x.bytes > lo))).toEqual([]);
  });

  it('the data gradient adds rows at their indices, repeated indices accumulating (runtime and constant indices)', async () => {
    await checkGradRuntimeInts({ op: 'Gather', inputs: { table: f32([5, 3], 70), idx: i32([2, 3], [1, 4, 1, 0, 1, -1]) } });
    await checkGrad({ op: 'Gather', attributes: { axis: 1 }, inputs: { x: f32([2, 4, 3], 71), idx: i32([3], [2, 0, 2], true) } });
    await checkGrad({ op: 'Gather', inputs: { x: f32([4, 6], 72), idx: i32([3], [3, 3, 1], true) } });
  });

  it('gradient over 4 tiles with repeats and rows nobody gathers (zeroed)', async () => {
    await checkGradRuntimeInts({ op: 'Gather', inputs: { table: f32([24, 8], 73), idx: i32([5], [0, 23, 0, 7, 0]) } });
    // Constant indices: each tile reads only the rows landing on it; tile 2 (table rows 12-17) gets none and is zeroed.
    await checkGrad({ op: 'Gather', inputs: { table: f32([24, 8], 83), idx: i32([5], [0, 23, 0, 7, 0], true) } });
  });

  it('rejects a constant index out of range and an axis out of range, naming the node and the shapes', async () => {
    await expect(checkForward({ op: 'Gather', inputs: { t: f32([4, 2], 74), idx: i32([2], [1, 4], true) } })).rejects.toThrow(
      /op 'Gather_0' \(ai\.onnx::Gather:13\): index 4 \(element 1 of input 1 'idx' int32\[2\]\) is out of range for axis 0 of input 0 't' float32\[4, 2\] \(valid: -4 to 3\)/,
    );
    await expect(checkForward({ op: 'Gather', attributes: { axis: 2 }, inputs: { t: f32([4, 2], 75), idx: i32([1], [0]) } })).rejects.toThrow(
      /op 'Gather_0' .*axis 2 is out of range for input 0 't' float32\[4, 2\]/,
    );
  });
});

describe('shape ops: registration, remaining error paths, cycle estimates', () => {
  it('resolve at every opset from 11 to 18 to the version whose semantics apply', async () => {
    const registry = await createRegistry([]);
    const expected: Record<string, (opset: number) => number> = {
      Reshape: (o) => (o >= 14 ? 14 : o >= 13 ? 13 : 5),
      Flatten: (o) => (o >= 13 ? 13 : 11),
      Squeeze: (o) => (o >= 13 ? 13 : 11),
      Unsqueeze: (o) => (o >= 13 ? 13 : 11),
      Concat: (o) => (o >= 13 ? 13 : 11),
      Slice: (o) => (o >= 13 ? 13 : 11),
      Gather: (o) => (o >= 13 ? 13 : 11),
      Transpose: (o) => (o >= 13 ? 13 : 1),
    };
    for (const [type, v] of Object.entries(expected)) {
      for (let opset = 11; opset <= 18; opset++) expect(registry.resolve('', type, opset).id.version, `${type} at opset ${opset}`).toBe(v(opset));
    }
    for (const type of ['ReshapeGrad', 'TransposeGrad', 'ConcatGrad', 'SliceGrad', 'GatherGrad']) expect(registry.exact({ domain: 'ai.graphcore', type, version: 1 })?.lower).toBeDefined();
  });

  it('every other setup error names the node and what is wrong', async () => {
    const registry = await createRegistry([]);
    const fails = (c: OpCase, re: RegExp) => expect(() => buildGraph(declOf(c), registry), re.source).toThrow(re);
    const x = f32([2, 3], 77);
    const shape = (v: number[]) => i32([v.length], v, true);
    fails({ op: 'Reshape', inputs: { x, s: shape([2, 3, 0]) } }, /op 'Reshape_0' .*0 at position 2 copies dimension 2 of the input, which has only 2/);
    fails({ op: 'Reshape', inputs: { x, s: shape([-2, 3]) } }, /op 'Reshape_0' .*dimension -2 at position 0 is negative/);
    fails({ op: 'Reshape', attributes: { allowzero: 1 }, inputs: { x, s: shape([0, -1]) } }, /op 'Reshape_0' .*with allowzero = 1 a shape may not hold both 0 and -1/);
    fails({ op: 'Reshape', inputs: { x, s: { shape: [2], data: Float32Array.from([3, 2]), constant: true } } }, /op 'Reshape_0' .*the shape \(input 1 's'\) must be an integer tensor \(ONNX int64\), got float32\[2\]/);
    fails({ op: 'Reshape', inputs: { x, s: i32([1, 2], [3, 2], true) } }, /op 'Reshape_0' .*the shape \(input 1 's'\) must be 1-D, got int32\[1, 2\]/);
    fails({ op: 'Squeeze', opset: 11, attributes: { axes: [0, -2] }, inputs: { x: f32([1, 3], 78) } }, /op 'Squeeze_0' .*axes \[0, -2\] names axis 0 twice/);
    fails({ op: 'Unsqueeze', inputs: { x, axes: i32([0], [], true) } }, /op 'Unsqueeze_0' .*needs at least one axis to insert/);
    fails({ op: 'Concat', attributes: { axis: 0 }, inputs: { a: x, b: ints([1, 3], 79) } }, /op 'Concat_0' .*inputs must share one dtype: input 0 'a' float32\[2, 3\] and input 1 'b' int32\[1, 3\]/);
    fails({ op: 'Concat', attributes: { axis: 0 }, inputs: { a: f32([], 80), b: f32([], 81) } }, /op 'Concat_0' .*cannot concatenate scalars/);
    fails({ op: 'Slice', inputs: { x, s: shape([0, 0]), e: shape([1]) } }, /op 'Slice_0' .*starts, ends, axes and steps must have one length, got starts 2, ends 1, axes 2, steps 2/);
    fails({ op: 'Gather', inputs: { t: x, idx: { shape: [1], data: Float32Array.from([0]) } } }, /op 'Gather_0' .*indices \(input 1 'idx' float32\[1\]\) must be an integer tensor/);
    fails({ op: 'Gather', inputs: { t: f32([], 82), idx: i32([1], [0]) } }, /op 'Gather_0' .*cannot gather from a scalar/);
  });

  it('cycle estimates follow the PopLibs formulas they cite', async () => {
    const { rearrangeCodelet, zeroRegionsCodelet, gatherSlicesCodelet, gatherSlicesGradCodelet } = await import('../../sim/codelets/shape.js');
    const d = tiny();
    const reg = (count: number, dtype: 'float32' | 'float16' = 'float32') => ({ offset: 0, count, dtype });
    // Transpose2d slow path per worker (13 + 8 + 5 rows + 2 per element; half 15, 2.5), W = 6, + 7:
    // 48 outputs in 2 rows of 24: 7 + 6 x (21 + 5 x 1 + 2 x 8) = 259; half: 7 + 6 x (23 + 5 + 20) = 295.
    const shape = { shape: [8, 24], strides: [1, 8] };
    expect(rearrangeCodelet.cycles({ fields: { in: [reg(48)], out: reg(48) }, params: { begin: 0 }, arrays: shape }, d)).toBe(259);
    expect(rearrangeCodelet.cycles({ fields: { in: [reg(48, 'float16')], out: reg(48, 'float16') }, params: { begin: 0 }, arrays: shape }, d)).toBe(295);
    // Fill2D: 5 + 1 + (Fill(10) - 3) + (Fill(3) - 3), Fill(n) = 16 + n/2 + 6 + (n odd) + 1: 5 + 1 + 25 + 22.
    expect(zeroRegionsCodelet.cycles({ fields: { out: [reg(10), reg(3)] }, params: {} }, d)).toBe(53);
    // MultiSlice: 32 outputs = 2 rows of 16: (30 + 1 x (19 + 8 x 2)) x 6 = 390.
    expect(gatherSlicesCodelet.cycles({ fields: { data: reg(160), indices: reg(2), out: reg(32) }, params: { inner: 16, begin: 0 } }, d)).toBe(390);
    // Fill of 32 over 6 workers (6 x Fill(6) = 156) + MultiUpdateOp add over 3 rows of 16: (3 + 29 + 3 x (11 + 3 x 15)) x 6 = 1200.
    expect(gatherSlicesGradCodelet.cycles({ fields: { gradOut: reg(48), indices: reg(3), out: reg(32) }, params: { inner: 16 } }, d)).toBe(1356);
  });
});
