/**
 * Elementwise ops in place (LowerContext.canWriteInPlace and the in-place
 * paths of mapElementwise / mapBinaryBroadcast in src/lower/elementwise.ts):
 * in place exactly when safe, the output an alias of the input, the
 * in-place estimator variant (BinaryOp1DInPlace, base 58), and the same
 * numbers either way.
 */
import { describe, expect, it } from 'vitest';
import { computeSetCost } from '../../sim/cost.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import { Graph } from '../../src/ir/graph.js';
import { Op } from '../../src/ir/op.js';
import { OpRegistry } from '../../src/ir/registry.js';
import { LowerContext } from '../../src/lower/context.js';
import { DeviceGraph } from '../../src/lower/devicegraph.js';
import { mapBinaryBroadcast, mapElementwise } from '../../src/lower/elementwise.js';
import { lowerGraph } from '../../src/lower/lower.js';
import { runGraph } from '../../src/session.js';
import { randomData, tiny } from '../helpers.js';
import { addCodelet } from '../../sim/codelets/binary.js';
import { vertexList } from '../../sim/vertex-table.js';

class TestOp extends Op {
  constructor(type: string, name: string) {
    super({ domain: 'test', type, version: 1 }, { name });
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
}

function registry(): OpRegistry {
  const r = new OpRegistry();
  const id = (type: string) => ({ domain: 'test', type, version: 1 });
  // a + b, equal shapes, through mapElementwise
  r.add({ id: id('EwAdd'), lower: (_op, ctx) => mapElementwise(ctx, addCodelet, { a: ctx.input(0), b: ctx.input(1) }, ctx.output(0, { like: ctx.input(0) }), { offset: 0 }) });
  // a + bias (a trailing block), through mapBinaryBroadcast
  r.add({ id: id('Bias'), lower: (_op, ctx) => mapBinaryBroadcast(ctx, addCodelet, ctx.input(0), ctx.input(1), ctx.output(0, { like: ctx.input(0) })) });
  r.add({ id: id('Alias'), lower: (_op, ctx) => ctx.aliasOutput(0, ctx.input(0)) });
  return r;
}

const X = randomData(128, 1);
const C = randomData(128, 2);
const B = randomData(16, 3);

/** x: stream [8, 16]; c: variable [8, 16]; b: variable [16]; then the given ops. */
function graph(ops: [type: string, inputs: string[], output: string][]): Graph {
  const g = new Graph();
  g.addTensor('x', { dtype: 'float32', shape: [8, 16] }, 'stream');
  g.addTensor('c', { dtype: 'float32', shape: [8, 16] }, 'variable', { data: C });
  g.addTensor('b', { dtype: 'float32', shape: [16] }, 'variable', { data: B });
  for (const [type, inputs, out] of ops) g.addOp(new TestOp(type, `${type}:${out}`), inputs, [out]);
  return g;
}

async function lower(g: Graph, anchors: string[]) {
  const codelets = await loadCodeletRegistry([]);
  const l = lowerGraph({ graph: g, schedule: g.schedule(), registry: registry(), codelets, device: tiny(), anchors, codeletModules: [] });
  const cycles = (op: string) => {
    const cs = l.program.computeSets.find((c) => c.op === op)!;
    return computeSetCost(cs, codelets, l.program.device).cycles;
  };
  return { ...l, cycles };
}

async function run(g: Graph, anchors: string[]) {
  return (await runGraph({ graph: g, registry: registry(), device: tiny(), inputs: { x: X }, outputs: anchors })).outputs;
}

// float32 references
const h = Array.from(X, (v, i) => Math.fround(v + C[i]));
const y = h.map((v, i) => Math.fround(v + B[i % 16]));

describe('in place when safe', () => {
  it('writes y = h + b into h when nothing reads h later: y is h, the tensor made for y is dropped', async () => {
    const l = await lower(graph([['EwAdd', ['x', 'c'], 'h'], ['Bias', ['h', 'b'], 'y']]), ['y']);
    expect(l.tensorOf.get('y')).toBe(l.tensorOf.get('h'));
    const made = l.program.tensors.find((t) => t.name === 'y')!;
    expect(made.intervals.count).toBe(0);
    const bias = l.program.computeSets.find((c) => c.op === 'Bias:y')!;
    for (const v of vertexList(bias.vertices)) expect(v.fields.a).toEqual(v.fields.out);
    // 32 elements per tile: BinaryOp1DInPlace 6 x (58 + ceil(ceil(32/6)/2) x 3) + 11 = 413, + 11 supervisor = 424
    expect(l.cycles('Bias:y')).toBe(424);
    // h = x + c reads a stream and a variable: neither may be overwritten
    expect(l.tensorOf.get('h')).not.toBe(l.tensorOf.get('x'));
    expect(l.tensorOf.get('h')).not.toBe(l.tensorOf.get('c'));
  });

  it('does not when h is read later (an anchor), with the same numbers', async () => {
    const g = () => graph([['EwAdd', ['x', 'c'], 'h'], ['Bias', ['h', 'b'], 'y']]);
    const l = await lower(g(), ['y', 'h']);
    expect(l.tensorOf.get('y')).not.toBe(l.tensorOf.get('h'));
    // out of place: 6 x (29 + 9) + 11 = 239, + 11 = 250
    expect(l.cycles('Bias:y')).toBe(250);
    const outOfPlace = await run(g(), ['y', 'h']);
    const inPlace = await run(g(), ['y']);
    expect([...outOfPlace.get('y')!]).toEqual(y);
    expect([...inPlace.get('y')!]).toEqual(y);
    expect([...outOfPlace.get('h')!]).toEqual(h);
  });

  it('does not when a later op reads h under another name (an alias); the later op then may', async () => {
    // u = alias of h; y = h + b must not overwrite h: z = u + c reads it afterwards. z itself may overwrite u.
    const g = () => graph([['EwAdd', ['x', 'c'], 'h'], ['Alias', ['h'], 'u'], ['Bias', ['h', 'b'], 'y'], ['EwAdd', ['u', 'c'], 'z']]);
    const l = await lower(g(), ['y', 'z']);
    expect(l.tensorOf.get('u')).toBe(l.tensorOf.get('h'));
    expect(l.tensorOf.get('y')).not.toBe(l.tensorOf.get('h'));
    expect(l.tensorOf.get('z')).toBe(l.tensorOf.get('h'));
    const out = await run(g(), ['y', 'z']);
    expect([...out.get('y')!]).toEqual(y);
    expect([...out.get('z')!]).toEqual(h.map((v, i) => Math.fround(v + C[i])));
  });

  it('never overwrites a variable, a stream, or an input of another dtype or shape', async () => {
    const l = await lower(graph([['Bias', ['c', 'b'], 'y'], ['EwAdd', ['x', 'c'], 'z']]), ['y', 'z']);
    expect(l.tensorOf.get('y')).not.toBe(l.tensorOf.get('c'));
    expect(l.tensorOf.get('z')).not.toBe(l.tensorOf.get('x'));

    const dg = new DeviceGraph(tiny());
    const ig = graph([['EwAdd', ['x', 'c'], 'h']]);
    const op = ig.schedule()[0];
    const tensors = new Map([
      ['x', dg.addTensor('x', 'float32', [8, 16], 'activation')],
      ['c', dg.addTensor('c', 'float32', [8, 16], 'activation')],
    ]);
    // activations, nothing later, not anchors: both may be overwritten; without a schedule never
    const ctx = new LowerContext(dg, op, tensors, () => 'activation', { position: 0, lastRead: new Map([['x', 0], ['c', 0]]), anchors: new Set() });
    expect([ctx.canWriteInPlace(0), ctx.canWriteInPlace(1)]).toEqual([true, true]);
    expect(new LowerContext(dg, op, tensors, () => 'activation').canWriteInPlace(0)).toBe(false);
    const later = new LowerContext(dg, op, tensors, () => 'activation', { position: 0, lastRead: new Map([['c', 1]]), anchors: new Set(['x']) });
    expect([later.canWriteInPlace(0), later.canWriteInPlace(1)]).toEqual([false, false]);
    // output 0 of another shape
    ig.tensor('h').info = { dtype: 'float32', shape: [128] };
    expect(ctx.canWriteInPlace(0)).toBe(false);
  });

  it('saves the memory of the output', async () => {
    const g = () => graph([['EwAdd', ['x', 'c'], 'h'], ['Bias', ['h', 'b'], 'y'], ['EwAdd', ['y', 'c'], 'z']]);
    // in place twice (y into h, z into y): h, y, z share one tensor.
    const inPlace = await lower(g(), ['z']);
    expect(new Set(['h', 'y', 'z'].map((n) => inPlace.tensorOf.get(n))).size).toBe(1);
    const out = await run(g(), ['z']);
    expect([...out.get('z')!]).toEqual(y.map((v, i) => Math.fround(v + C[i])));
    // Tile 1 (32 elements of each [8, 16] tensor, 128 B): always live x and c, 256 B. Batch steps: 0 x in,
    // 1 h, 2 exchange of b (a 64 B copy), 3 y, 4 z, then the anchors out.
    // In place: h [1, 5] at 256, the copy of b [2, 3] at 384 -> 192 B of temporaries.
    expect(inPlace.program.memory![1]).toMatchObject({ alwaysLive: 256, temporaries: 192 });
    // h, y, z all anchored: h [1, 7] at 256, b's copy [2, 3] at 384, y [3, 7] at 448, z [4, 7] at 576 -> 448 B.
    const outOfPlace = await lower(g(), ['h', 'y', 'z']);
    expect(outOfPlace.program.memory![1]).toMatchObject({ alwaysLive: 256, temporaries: 448 });
  });
});
