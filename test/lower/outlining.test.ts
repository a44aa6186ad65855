/**
 * Outlining (compile.outlining; src/lower/outline.ts, src/lower/functions.ts):
 * identical layers are lowered once and called; the numbers are bit-identical
 * to the lowering without outlining (the function is the first layer's
 * lowering, its inputs copied in and its outputs copied out, which moves no
 * value), for inference and for a training step whose backward pass reads
 * the layers' activations; every call's cycles are attributed to its own
 * layer's ops; the function's tensors share memory within a call.
 */
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { compile, Session } from '../../src/session.js';
import { findRepeats } from '../../src/lower/outline.js';
import { isGradOp } from '../../src/ir/op.js';
import { profileTables } from '../../src/report/summary.js';
import type { RunResult } from '../../src/session.js';

const LAYERS = 3;
const H = 16;

/** A small residual MLP: LAYERS x (MatMul, bias Add, Relu, MatMul, residual Add, LayerNormalization). */
function yaml(opts: { outlining: boolean; train?: boolean; dropout?: boolean }): string {
  const init: string[] = [];
  const nodes: string[] = [];
  let seed = 1;
  for (let l = 0; l < LAYERS; l++) {
    init.push(`      w${l}a: {shape: [${H}, ${H}], dtype: float32, init: {normal: {std: 0.3, seed: ${seed++}}}}`);
    init.push(`      b${l}: {shape: [${H}], dtype: float32, init: {normal: {std: 0.1, seed: ${seed++}}}}`);
    init.push(`      w${l}b: {shape: [${H}, ${H}], dtype: float32, init: {normal: {std: 0.3, seed: ${seed++}}}}`);
    init.push(`      g${l}: {shape: [${H}], dtype: float32, init: {constant: 1}}`);
    init.push(`      be${l}: {shape: [${H}], dtype: float32, init: {constant: 0}}`);
    const x = l === 0 ? 'x' : `h${l}`;
    nodes.push(`      - {op: MatMul, inputs: [${x}, w${l}a], outputs: [m${l}]}`);
    nodes.push(`      - {op: Add, inputs: [m${l}, b${l}], outputs: [a${l}]}`);
    nodes.push(`      - {op: Relu, inputs: [a${l}], outputs: [r${l}]}`);
    if (opts.dropout) nodes.push(`      - {op: Dropout, inputs: [r${l}, ratio], outputs: [d${l}]}`);
    nodes.push(`      - {op: MatMul, inputs: [${opts.dropout ? 'd' : 'r'}${l}, w${l}b], outputs: [n${l}]}`);
    nodes.push(`      - {op: Add, inputs: [n${l}, ${x}], outputs: [s${l}]}`);
    nodes.push(`      - {op: LayerNormalization, inputs: [s${l}, g${l}, be${l}], outputs: [h${l + 1}], attributes: {axis: -1}}`);
  }
  if (opts.dropout) init.push(`      ratio: {shape: [], init: {constant: 0.25}, trainable: false}`);
  return `device: tiny
model:
  graph:
    inputs: {x: {shape: [8, ${H}], dtype: float32}}
    initializers:
${init.join('\n')}
    nodes:
${nodes.join('\n')}
    outputs: [h${LAYERS}]
inputs: {x: {random: {distribution: normal, seed: 9}}}
compile: {outlining: ${opts.outlining}, outlineMinOps: 4}
${opts.train ? `train:\n  loss: {type: l1, input: h${LAYERS}}\n  optimizer: {type: sgd, lr: 0.1}\nanchors: {h${LAYERS}: final, Gradient___w0a: final}\n` : ''}`;
}

async function run(outlining: boolean, train = false) {
  const compiled = await compile(loadConfigText(yaml({ outlining, train }), 'outline.yaml'));
  const session = await Session.create(compiled, { workers: 1, numerics: true });
  try {
    const r = await session.runStep();
    const anchors = new Map([...r.anchors].map(([k, v]) => [k, Array.from(v.data as Float32Array)]));
    const checkpoint = train ? session.snapshot().tensors.map((t) => t.name).sort() : [];
    return { compiled, cycles: r.cycles, anchors, weights: session.readWeights(), phases: session.phases, checkpoint };
  } finally {
    await session.close();
  }
}

describe('outlining', () => {
  it("clones of optimizer updates keep their per-vertex step counters (a checkpoint's restore broadcasts those)", async () => {
    const adam = (outlining: boolean) => yaml({ outlining, train: true }).replace('optimizer: {type: sgd, lr: 0.1}', 'optimizer: {type: adam, lr: 0.01}');
    const perVertex = async (outlining: boolean) => (await compile(loadConfigText(adam(outlining), 'outline.yaml'))).program.tensors.filter((t) => t.perVertex).map((t) => t.shape[0]);
    const plain = await perVertex(false);
    // One step counter per weight (5 a layer).
    expect(plain).toHaveLength(5 * LAYERS);
    expect(await perVertex(true)).toEqual(plain);
  });

  it('leaves out ops that draw random numbers (each Dropout its own seed) and their grads', async () => {
    const compiled = await compile(loadConfigText(yaml({ outlining: false, train: true, dropout: true }), 'outline.yaml'));
    const groups = findRepeats(compiled.schedule, compiled.graph, { minOps: 2 });
    const outlined = groups.flatMap((g) => g.starts.flatMap((s) => compiled.schedule.slice(s, s + g.length)));
    expect(compiled.schedule.some((op) => op.opid.type === 'Dropout')).toBe(true);
    for (const op of outlined) expect(op.opid.type.startsWith('Dropout') || (isGradOp(op) && op.fwdOp.opid.type === 'Dropout'), op.name).toBe(false);
  });

  it('finds the layers as one repeated sequence', async () => {
    const { compiled } = await run(false);
    const groups = findRepeats(compiled.schedule, compiled.graph, { minOps: 4 });
    expect(groups).toHaveLength(1);
    // 6 ops a layer; the first layer's input is a stream and the others' an activation, which outlining does not tell apart.
    expect(groups[0].length % 6).toBe(0);
    expect(groups[0].starts.length * groups[0].length).toBeGreaterThanOrEqual((LAYERS - 1) * 6);
  });

  it('lowers identical layers once: a third of the compute sets and vertices, the same numbers bit for bit', async () => {
    const plain = await run(false);
    const outlined = await run(true);
    const count = (c: typeof plain.compiled) => ({ sets: c.program.computeSets.length, vertices: c.program.computeSets.reduce((s, cs) => s + cs.vertices.count, 0) });
    const a = count(plain.compiled);
    const b = count(outlined.compiled);
    // LAYERS layers lowered once: at most the compute sets of one layer remain, beside none outside them.
    expect(b.sets).toBeLessThanOrEqual(Math.ceil(a.sets / LAYERS));
    expect(b.vertices).toBeLessThanOrEqual(Math.ceil(a.vertices / LAYERS));
    expect(outlined.anchors.get(`h${LAYERS}`)).toEqual(plain.anchors.get(`h${LAYERS}`));
    // Code and vertex state are counted once: no more of either on any tile.
    const mem = (c: typeof plain.compiled, k: 'code' | 'vertexState') => c.program.memory!.reduce((s, m) => s + m[k], 0);
    expect(mem(outlined.compiled, 'vertexState')).toBeLessThan(mem(plain.compiled, 'vertexState'));
    expect(mem(outlined.compiled, 'code')).toBeLessThanOrEqual(mem(plain.compiled, 'code'));
    // The function's tensors share memory by their lifetimes within a call (its frame), as one layer's would:
    // no tile's peak of temporaries is above the plain lowering's.
    const peak = (c: typeof plain.compiled) => Math.max(...c.program.memory!.map((m) => m.temporaries));
    expect(peak(outlined.compiled)).toBeLessThanOrEqual(peak(plain.compiled));
  });

  it('attributes every call to its own layer: each op has its compute phases, as without outlining, plus the calls\' copies', async () => {
    const plain = await run(false);
    const outlined = await run(true);
    const computeOps = (phases: typeof plain.phases) => new Set(phases.filter((p) => p.kind === 'compute').map((p) => p.op));
    expect(computeOps(outlined.phases)).toEqual(computeOps(plain.phases));
    const perOp = (phases: typeof plain.phases) => {
      const m = new Map<string, number>();
      for (const p of phases) if (p.kind === 'compute') m.set(p.op, (m.get(p.op) ?? 0) + p.cycles);
      return m;
    };
    // The same vertices on the same tiles: each op's compute cycles are the same.
    expect(perOp(outlined.phases)).toEqual(perOp(plain.phases));
    const calls = new Set(outlined.phases.filter((p) => p.kind === 'exchange' && /^fn0\/call\d+$/.test(p.op)).map((p) => p.op));
    expect(calls.size).toBeGreaterThanOrEqual(LAYERS - 1);
    // The profile's op table has a row per call, type Call, with its copies' cycles.
    const tables = profileTables({ compiled: outlined.compiled, steps: [{ step: 0, cycles: outlined.cycles }], phases: outlined.phases } as unknown as RunResult);
    const callRows = tables.ops.filter((o) => o.type === 'Call');
    expect(callRows.map((o) => o.name)).toEqual(Array.from({ length: callRows.length }, (_, k) => `fn0/call${k}`));
    expect(callRows.length).toBeGreaterThanOrEqual(LAYERS - 1);
    for (const row of callRows) expect(row.exchange).toBeGreaterThan(0);
    // The copies cost cycles: outlining trades them for compile time and memory.
    expect(outlined.cycles).toBeGreaterThan(plain.cycles);
  });

  it('a training step: the backward pass reads the calls\' activations; updates and gradients bit-identical', async () => {
    const plain = await run(false, true);
    const outlined = await run(true, true);
    expect(outlined.compiled.program.computeSets.length).toBeLessThan(plain.compiled.program.computeSets.length);
    expect(outlined.anchors.get('Gradient___w0a')).toEqual(plain.anchors.get('Gradient___w0a'));
    for (const [name, w] of plain.weights) expect(Array.from(outlined.weights.get(name)!), name).toEqual(Array.from(w));
    // A checkpoint holds the same tensors either way: a function's copies of the weights are not weights.
    expect(outlined.checkpoint).toEqual(plain.checkpoint);
    // A weight-gradient matmul in a function maps its output like the weight, as without outlining (its
    // weight there is the function's parameter, a constant): the update then reads both on the same tiles.
    const likeWeight = (c: typeof plain.compiled) => new Map((c.program.notes ?? []).filter((n) => n.text.startsWith('output is the gradient of')).map((n) => [n.op, n.text]));
    const outlinedLike = likeWeight(outlined.compiled);
    expect(outlinedLike.size).toBeGreaterThan(0);
    for (const [op, text] of outlinedLike) expect(text, op).toBe(likeWeight(plain.compiled).get(op));
    const grads = outlined.compiled.schedule.filter((op) => op.opid.type === 'MatMulRhsGrad').map((op) => op.name);
    const inFunctions = grads.filter((op) => outlined.compiled.program.computeSets.some((cs) => cs.op === op));
    expect(inFunctions.length).toBeGreaterThan(0);
    for (const op of inFunctions) expect(outlinedLike.has(op), op).toBe(true);
  });
});
