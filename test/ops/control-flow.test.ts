/**
 * ONNX If and Loop (src/ops/control-flow.ts, src/model/control-flow.ts):
 * numbers against onnxruntime-node on whole models written here with
 * onnx-proto, and cycles: only the branch taken is charged (plus the sync
 * that carries the predicate), a constant condition costs exactly its
 * branch, and a timing-only run charges the longer branch.
 *
 * Tolerance: 1e-5 relative + 1e-6 absolute; the graphs are short chains of
 * float32 elementwise ops and small reductions, rounded as onnxruntime
 * rounds them up to summation order.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { autodiff } from '../../src/autodiff/autodiff.js';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import { L1Op } from '../../src/ops/loss.js';
import { copyList } from '../../sim/copies.js';
import type { LoopGradOp } from '../../src/ops/control-flow.js';
import { UserError } from '../../src/errors.js';
import type { OpRegistry } from '../../src/ir/registry.js';
import { lowerGraph } from '../../src/lower/lower.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { exportOnnx } from '../../src/onnx/export.js';
import { parseOnnx } from '../../src/onnx/import.js';
import { compile, run, runGraph } from '../../src/session.js';
import { loadConfig } from '../../src/config/load.js';
import { Engine } from '../../sim/engine.js';
import { loadCodeletRegistry } from '../../sim/modules.js';
import { decodeHalf, encodeHalf } from '../../sim/half.js';
import { tiny } from '../helpers.js';
import { attr, DT, f32, floatTensor, int64Tensor, modelBytes, node, valueInfo, writeTemp } from '../onnx/helpers.js';

const AT_GRAPH = 5;
const graphAttr = (name: string, g: onnxProto.onnx.IGraphProto): onnxProto.onnx.IAttributeProto => ({ name, type: AT_GRAPH, g });
const boolInfo = (name: string, dims: number[]) => valueInfo(name, DT.BOOL, dims);
const boolTensor = (name: string, v: boolean): onnxProto.onnx.ITensorProto => ({ name, dims: [], dataType: DT.BOOL, int32Data: [v ? 1 : 0] });
/** A float value info or initializer, float16 when `half`. */
const fl = (half: boolean) => (name: string, dims: number[]) => valueInfo(name, half ? DT.FLOAT16 : DT.FLOAT, dims);
const ft = (half: boolean) => (name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto =>
  half ? { name, dims, dataType: DT.FLOAT16, int32Data: Array.from(encodeHalf(Float32Array.from(values))) } : floatTensor(name, dims, values);

let registry: OpRegistry;
beforeAll(async () => {
  registry = await createRegistry([]);
});

type Feeds = Record<string, { shape: number[]; data: Float32Array }>;

async function ours(bytes: Uint8Array, feeds: Feeds, outputs: string[]) {
  const { graph: decl } = parseOnnx(bytes);
  const graph = buildGraph(decl, registry, { inference: true });
  const inputs = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, v.data]));
  const r = await runGraph({ graph, registry, device: tiny(), inputs, outputs });
  const cycles = r.phases.reduce((a, p) => a + p.cycles, 0);
  return { outputs: r.outputs, phases: r.phases, cycles, program: r.program, graph };
}

async function theirs(bytes: Uint8Array, feeds: Feeds, outputs: string[], half: boolean) {
  const s = await ort.InferenceSession.create(bytes);
  const r = await s.run(Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, half ? new ort.Tensor('float16', encodeHalf(v.data), v.shape) : new ort.Tensor('float32', v.data, v.shape)])));
  return new Map(outputs.map((o) => [o, r[o].data instanceof Uint16Array ? decodeHalf(r[o].data) : Float32Array.from(r[o].data as Float32Array)]));
}

/**
 * Ours against onnxruntime. float16 (`half`): both round every op's result to float16, possibly differently
 * by an ulp; a few ops chained over four passes: 4 ulps (4 x 2^-10 relative) + 1e-3 absolute.
 */
async function matchOrt(bytes: Uint8Array, feeds: Feeds, outputs: string[], half = false) {
  const a = await ours(bytes, feeds, outputs);
  const b = await theirs(bytes, feeds, outputs, half);
  const [atol, rtol] = half ? [1e-3, 4 / 1024] : [1e-6, 1e-5];
  for (const o of outputs) {
    const x = a.outputs.get(o)!;
    const y = b.get(o)!;
    expect(x.length, o).toBe(y.length);
    for (let i = 0; i < y.length; i++) expect(Math.abs(x[i] - y[i]), `${o}[${i}]: ours ${x[i]}, onnxruntime ${y[i]}`).toBeLessThanOrEqual(atol + rtol * Math.abs(y[i]));
  }
  return a;
}

/** Cycles of a timing-only run of the model's batch program. */
async function timingOnly(bytes: Uint8Array, outputs: string[]): Promise<number> {
  const { graph: decl } = parseOnnx(bytes);
  const graph = buildGraph(decl, registry, { inference: true });
  const codelets = await loadCodeletRegistry([]);
  const { program } = lowerGraph({ graph, schedule: graph.schedule(), registry, codelets, device: tiny(), anchors: outputs, codeletModules: [] });
  const engine = await Engine.create(program, { workers: 1, numerics: false });
  const io = { toDevice: () => new Float32Array(0), fromDevice: () => undefined };
  try {
    await engine.run('weightsFromHost', io, -1);
    const start = engine.cycles;
    await engine.run('batch', io, 0);
    return engine.cycles - start;
  } finally {
    await engine.destroy();
  }
}

const X = Float32Array.from([0.5, -1.25, 2, 0.75, -0.5, 1.5]);
const W = [0.3, -0.7, 1.1, 0.9, -0.2, 0.4];

/**
 * y = If(sum(x) > 0, then: Relu(x * w), else: a heavier branch, ((x - w) * w + x) * x), with w an
 * outer initializer both branches read. `cond`: a constant condition instead of the computed one.
 */
function ifModel(cond?: boolean, half = false): Uint8Array {
  const f32 = fl(half);
  const floatTensor = ft(half);
  const then: onnxProto.onnx.IGraphProto = {
    name: 'then',
    node: [node('Mul', ['x', 'w'], ['t0']), node('Relu', ['t0'], ['t_out'])],
    output: [f32('t_out', [2, 3])],
  };
  const els: onnxProto.onnx.IGraphProto = {
    name: 'else',
    node: [node('Sub', ['x', 'w'], ['e0']), node('Mul', ['e0', 'w'], ['e1']), node('Add', ['e1', 'x'], ['e2']), node('Mul', ['e2', 'x'], ['e_out'])],
    output: [f32('e_out', [2, 3])],
  };
  const condNodes =
    cond === undefined
      ? [node('ReduceSum', ['x'], ['s'], [attr.i('keepdims', 0)]), node('Greater', ['s', 'zero'], ['c'])]
      : [node('Constant', [], ['c'], [{ name: 'value', type: 4, t: boolTensor('c', cond) }])];
  return modelBytes({
    nodes: [...condNodes, node('If', ['c'], ['y'], [graphAttr('then_branch', then), graphAttr('else_branch', els)])],
    inputs: [f32('x', [2, 3])],
    outputs: [f32('y', [2, 3])],
    initializers: [floatTensor('w', [2, 3], W), floatTensor('zero', [], [0])],
  });
}

/** The then- or else-branch alone, as a plain graph: what a constant If must cost. */
function branchModel(which: 'then' | 'else'): Uint8Array {
  const nodes =
    which === 'then'
      ? [node('Mul', ['x', 'w'], ['t0']), node('Relu', ['t0'], ['t_out'])]
      : [node('Sub', ['x', 'w'], ['e0']), node('Mul', ['e0', 'w'], ['e1']), node('Add', ['e1', 'x'], ['e2']), node('Mul', ['e2', 'x'], ['e_out'])];
  return modelBytes({
    nodes: [...nodes, node('Identity', [which === 'then' ? 't_out' : 'e_out'], ['y'])],
    inputs: [f32('x', [2, 3])],
    outputs: [f32('y', [2, 3])],
    initializers: [floatTensor('w', [2, 3], W)],
  });
}

const neg = Float32Array.from(X, (v) => -v);

/**
 * y = If(max(x) > 1, then: If(max(x) < 3, Abs(x), w), else: x), each pass-through an Identity.
 * `x`: x as an initializer of these values (trainable) instead of an input.
 */
function nestedIfModel(x?: Float32Array): Uint8Array {
  const inner: onnxProto.onnx.IGraphProto = {
    name: 'inner',
    node: [node('If', ['c2'], ['in_out'], [
      graphAttr('then_branch', { name: 't2', node: [node('Abs', ['x'], ['abs'])], output: [f32('abs', [2, 3])] }),
      graphAttr('else_branch', { name: 'e2', node: [node('Identity', ['w'], ['we'])], output: [f32('we', [2, 3])] }),
    ])],
    output: [f32('in_out', [2, 3])],
  };
  return modelBytes({
    nodes: [
      node('ReduceMax', ['x'], ['mx'], [attr.i('keepdims', 0)]),
      node('Greater', ['mx', 'one'], ['c1']),
      node('Less', ['mx', 'three'], ['c2']),
      node('If', ['c1'], ['y'], [graphAttr('then_branch', inner), graphAttr('else_branch', { name: 'e1', node: [node('Identity', ['x'], ['xe'])], output: [f32('xe', [2, 3])] })]),
    ],
    inputs: x ? [] : [f32('x', [2, 3])],
    outputs: [f32('y', [2, 3])],
    initializers: [...(x ? [floatTensor('x', [2, 3], [...x])] : []), floatTensor('w', [2, 3], W), floatTensor('one', [], [1]), floatTensor('three', [], [3])],
  });
}

describe('If', () => {
  // onnxruntime refuses a branch returning an outer tensor directly: through Identity, as ONNX asks.
  it('branches that pass outer tensors through, and an If nested in a branch', async () => {
    const bytes = nestedIfModel();
    for (const scale of [0.4, 1, 2]) await matchOrt(bytes, { x: { shape: [2, 3], data: Float32Array.from(X, (v) => v * scale) } }, ['y']);
  });

  it('a runtime predicate: each branch matches onnxruntime; both branches are allocated', async () => {
    const r = await matchOrt(ifModel(), { x: { shape: [2, 3], data: X } }, ['y']); // sum > 0: then
    await matchOrt(ifModel(), { x: { shape: [2, 3], data: neg } }, ['y']); // sum < 0: else
    // As Poplar does: the tensors of the branch not taken have tile memory too (the first of each branch: the
    // later ones are written in place into it).
    for (const name of ['t0', 'e0']) expect(r.program.tensors.find((t) => t.name === name)?.intervals.count, name).toBeGreaterThan(0);
  });

  it('float16: a runtime predicate, each branch', async () => {
    await matchOrt(ifModel(undefined, true), { x: { shape: [2, 3], data: X } }, ['y'], true);
    await matchOrt(ifModel(undefined, true), { x: { shape: [2, 3], data: neg } }, ['y'], true);
  });

  it('a constant predicate: matches onnxruntime, and no switch is made', async () => {
    for (const c of [true, false]) {
      const r = await matchOrt(ifModel(c), { x: { shape: [2, 3], data: X } }, ['y']);
      expect(r.graph.ops.some((o) => o.opid.type === 'If')).toBe(false);
      expect(JSON.stringify(r.program.programs.batch)).not.toContain('switch');
    }
  });

  it('cycles: a constant predicate costs exactly the branch it selects', async () => {
    const feeds = { x: { shape: [2, 3], data: X } };
    expect((await ours(ifModel(true), feeds, ['y'])).cycles).toBe((await ours(branchModel('then'), feeds, ['y'])).cycles);
    expect((await ours(ifModel(false), feeds, ['y'])).cycles).toBe((await ours(branchModel('else'), feeds, ['y'])).cycles);
  });

  it('cycles: a runtime predicate charges the branch taken and the predicate, never the other branch', async () => {
    const taken = await ours(ifModel(), { x: { shape: [2, 3], data: X } }, ['y']);
    const other = await ours(ifModel(), { x: { shape: [2, 3], data: neg } }, ['y']);
    const ops = (r: typeof taken) => new Set(r.phases.filter((p) => p.kind === 'compute').map((p) => p.op));
    // Then-branch ops are named after their first output in the import (Mul_0, Relu_1 in then; Sub_0 ... in else).
    const thenOps = ['Mul_0', 'Relu_1'];
    const elseOps = ['Sub_0', 'Mul_1', 'Add_2', 'Mul_3'];
    expect(thenOps.every((o) => ops(taken).has(o))).toBe(true);
    expect(elseOps.some((o) => ops(taken).has(o))).toBe(false);
    expect(elseOps.every((o) => ops(other).has(o))).toBe(true);
    expect(thenOps.some((o) => ops(other).has(o))).toBe(false);
    // The predicate's cost: its ops (ReduceSum, Greater) run, and one sync enters the switch (the If's first phase;
    // its only other phases are the branch's copy of its output: an exchange and its sync).
    expect(taken.phases.some((p) => p.op === 'ReduceSum_0')).toBe(true);
    const ifPhases = taken.phases.filter((p) => p.op === 'If_2').map((p) => p.kind);
    expect(ifPhases).toEqual(['sync', 'sync', 'exchange']);
    // The heavier else branch costs more; each run costs its branch exactly: the difference of the runs is the
    // difference of the branches' phases.
    const branchCycles = (r: typeof taken, names: string[]) => r.phases.filter((p) => names.includes(p.op)).reduce((a, p) => a + p.cycles, 0);
    expect(other.cycles).toBeGreaterThan(taken.cycles);
    expect(other.cycles - branchCycles(other, elseOps)).toBe(taken.cycles - branchCycles(taken, thenOps));
  });

  it('export refuses a graph with an If, naming it', async () => {
    const { graph: decl } = parseOnnx(ifModel());
    const graph = buildGraph(decl, registry, { inference: true });
    expect(() => exportOnnx(graph, { outputs: ['y'], registry })).toThrow(/op 'If_2' \(ai\.onnx::If:\d+\) is control flow, and exporting If and Loop/);
  });

  it('timing only: the longer branch is charged (the predicate is not computed)', async () => {
    const heavier = await ours(ifModel(), { x: { shape: [2, 3], data: neg } }, ['y']);
    expect(await timingOnly(ifModel(), ['y'])).toBe(heavier.cycles);
  });
});

/**
 * A counted Loop: M = 4, cond true. Carried acc [3] and k (a float count), the body
 * acc' = acc * w + x + float(i), k' = k + 1; scan outputs acc' and relu(acc' - 1) per iteration.
 */
function loopModel(trip = 4, half = false): Uint8Array {
  const f32 = fl(half);
  const floatTensor = ft(half);
  const body: onnxProto.onnx.IGraphProto = {
    name: 'body',
    input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3]), f32('k', [])],
    node: [
      node('Identity', ['cond_in'], ['cond_out']),
      node('Cast', ['i'], ['fi'], [attr.i('to', half ? DT.FLOAT16 : DT.FLOAT)]),
      node('Mul', ['acc', 'w'], ['a0']),
      node('Add', ['a0', 'x'], ['a1']),
      node('Add', ['a1', 'fi'], ['acc_out']),
      node('Add', ['k', 'one'], ['k_out']),
      node('Sub', ['acc_out', 'one'], ['s0']),
      node('Relu', ['s0'], ['scan_relu']),
      node('Identity', ['acc_out'], ['scan_acc']),
    ],
    output: [boolInfo('cond_out', []), f32('acc_out', [3]), f32('k_out', []), f32('scan_acc', [3]), f32('scan_relu', [3])],
  };
  return modelBytes({
    nodes: [node('Loop', ['M', 'c', 'acc0', 'k0'], ['acc_final', 'k_final', 'accs', 'relus'], [graphAttr('body', body)])],
    inputs: [f32('x', [3]), f32('acc0', [3])],
    outputs: [f32('acc_final', [3]), f32('k_final', []), f32('accs', [trip, 3]), f32('relus', [trip, 3])],
    initializers: [int64Tensor('M', [], [trip]), boolTensor('c', true), floatTensor('w', [3], [0.5, -1, 0.25]), floatTensor('k0', [], [0]), floatTensor('one', [], [1])],
  });
}

describe('Loop', () => {
  const feeds = { x: { shape: [3], data: Float32Array.from([0.1, -0.4, 0.9]) }, acc0: { shape: [3], data: Float32Array.from([1, 2, -3]) } };
  const outs = ['acc_final', 'k_final', 'accs', 'relus'];

  it('a constant trip count with carried values and scan outputs matches onnxruntime', async () => {
    const r = await matchOrt(loopModel(), feeds, outs);
    expect(r.outputs.get('k_final')![0]).toBe(4);
  });

  it('a Loop nested in a Loop body: the inner loop restarts each outer pass, its scan read by the outer body', async () => {
    // Inner (3 passes): p' = p * w + acc (acc: the outer carried value, an outer-scope read); scan p'.
    const inner: onnxProto.onnx.IGraphProto = {
      name: 'inner',
      input: [valueInfo('j', DT.INT64, []), boolInfo('ic', []), f32('p', [3])],
      node: [node('Identity', ['ic'], ['ic_out']), node('Mul', ['p', 'w'], ['p0']), node('Add', ['p0', 'acc'], ['p_out']), node('Identity', ['p_out'], ['p_scan'])],
      output: [boolInfo('ic_out', []), f32('p_out', [3]), f32('p_scan', [3])],
    };
    // Outer (4 passes): acc' = acc + sum over the inner scan's passes; scan acc'.
    const outer: onnxProto.onnx.IGraphProto = {
      name: 'outer',
      input: [valueInfo('i', DT.INT64, []), boolInfo('oc', []), f32('acc', [3])],
      node: [
        node('Identity', ['oc'], ['oc_out']),
        node('Loop', ['three', 'c', 'x'], ['p_last', 'ps'], [graphAttr('body', inner)], { name: 'inner_loop' }),
        node('ReduceSum', ['ps', 'axis0'], ['psum'], [attr.i('keepdims', 0)]),
        node('Add', ['acc', 'psum'], ['a1']),
        node('Sub', ['a1', 'p_last'], ['acc_out']),
        node('Identity', ['acc_out'], ['acc_scan']),
      ],
      output: [boolInfo('oc_out', []), f32('acc_out', [3]), f32('acc_scan', [3])],
    };
    const bytes = modelBytes({
      nodes: [node('Loop', ['M', 'c', 'acc0'], ['acc_final', 'accs'], [graphAttr('body', outer)], { name: 'outer_loop' })],
      inputs: [f32('x', [3]), f32('acc0', [3])],
      outputs: [f32('acc_final', [3]), f32('accs', [4, 3])],
      initializers: [int64Tensor('M', [], [4]), int64Tensor('three', [], [3]), int64Tensor('axis0', [1], [0]), boolTensor('c', true), floatTensor('w', [3], [0.5, -0.25, 0.75])],
    });
    const r = await matchOrt(bytes, feeds, ['acc_final', 'accs']);
    const outerRepeat = r.program.programs.batch.find((s) => s.kind === 'repeat');
    expect(outerRepeat?.kind === 'repeat' && outerRepeat.count === 4 && outerRepeat.body.some((s) => s.kind === 'repeat' && s.count === 3)).toBe(true);
  });

  it('float16: carried values and scan outputs', async () => {
    await matchOrt(loopModel(4, true), feeds, outs, true);
  });

  it('is a repeat of the body: cycles grow by one body per iteration', async () => {
    // Device cycles: the host copies of the scan outputs grow with the trip count too.
    const c = async (n: number) => (await ours(loopModel(n), feeds, outs)).phases.filter((p) => p.kind !== 'streamCopy').reduce((a, p) => a + p.cycles, 0);
    const [c2, c3, c4] = [await c(2), await c(3), await c(4)];
    expect(c3 - c2).toBeGreaterThan(0);
    expect(c4 - c3).toBe(c3 - c2);
    const r = await ours(loopModel(4), feeds, outs);
    expect(r.program.programs.batch.some((s) => s.kind === 'repeat' && s.count === 4)).toBe(true);
  });

  it('timing only: the same cycles as the numerics run', async () => {
    const r = await ours(loopModel(), feeds, outs);
    expect(await timingOnly(loopModel(), outs)).toBe(r.cycles);
  });

  it('a trip count made constant by folding, and zero iterations: the initial values, empty scans', async () => {
    const body: onnxProto.onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3])],
      node: [node('Identity', ['cond_in'], ['cond_out']), node('Mul', ['acc', 'x'], ['acc_out']), node('Neg', ['acc_out'], ['neg'])],
      output: [boolInfo('cond_out', []), f32('acc_out', [3]), f32('neg', [3])],
    };
    const bytes = (m: number) =>
      modelBytes({
        nodes: [node('Sub', ['m', 'one'], ['M']), node('Loop', ['M', '', 'acc0'], ['acc_final', 'negs'], [graphAttr('body', body)])],
        inputs: [f32('x', [3]), f32('acc0', [3])],
        outputs: [f32('acc_final', [3]), f32('negs', [m - 1, 3])],
        initializers: [int64Tensor('m', [], [m]), int64Tensor('one', [], [1])],
      });
    await matchOrt(bytes(4), feeds, ['acc_final', 'negs']);
    const r = await matchOrt(bytes(1), feeds, ['acc_final', 'negs']);
    expect(Array.from(r.outputs.get('acc_final')!)).toEqual([1, 2, -3]);
  });

  /** acc doubles while sum(acc) < lim, at most M passes; the loop runs only when sum(x) > 0 (`runtimeCond`). */
  function whileModel(opts: { m: number; runtimeCond?: boolean; scan?: boolean }): Uint8Array {
    const body: onnxProto.onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3])],
      node: [
        node('Add', ['acc', 'acc'], ['acc_out']),
        node('ReduceSum', ['acc_out'], ['s'], [attr.i('keepdims', 0)]),
        node('Less', ['s', 'lim'], ['cond_out']),
        ...(opts.scan ? [node('Neg', ['acc_out'], ['neg'])] : []),
      ],
      output: [boolInfo('cond_out', []), f32('acc_out', [3]), ...(opts.scan ? [f32('neg', [3])] : [])],
    };
    return modelBytes({
      nodes: [
        ...(opts.runtimeCond ? [node('ReduceSum', ['x'], ['sx'], [attr.i('keepdims', 0)]), node('Greater', ['sx', 'zero'], ['c'])] : []),
        node('Loop', ['M', 'c', 'acc0'], ['acc_final', ...(opts.scan ? ['negs'] : [])], [graphAttr('body', body)], { name: 'until' }),
      ],
      inputs: [f32('x', [3]), f32('acc0', [3])],
      outputs: [f32('acc_final', [3]), ...(opts.scan ? [f32('negs', [opts.m, 3])] : [])],
      initializers: [int64Tensor('M', [], [opts.m]), ...(opts.runtimeCond ? [floatTensor('zero', [], [0])] : [boolTensor('c', true)]), floatTensor('lim', [], [100])],
    });
  }

  it('a condition computed in the body: a repeat while it holds (RepeatWhileTrue), matching onnxruntime', async () => {
    // sum(acc0) = 0.6: doubling passes 100 after 8 passes; M = 5 stops first, M = 20 does not.
    const acc0 = { shape: [3], data: Float32Array.from([0.1, 0.2, 0.3]) };
    for (const m of [5, 20]) {
      const r = await matchOrt(whileModel({ m }), { x: feeds.x, acc0 }, ['acc_final']);
      expect(r.program.programs.batch.some((s) => s.kind === 'repeatWhile' && s.maxCount === m)).toBe(true);
    }
    // Each pass is entered through one sync reading the condition: 8 passes and the check that ends them.
    const r = await ours(whileModel({ m: 20 }), { x: feeds.x, acc0 }, ['acc_final']);
    expect(r.phases.filter((p) => p.op === 'until' && p.kind === 'sync' && p.name === 'sync').length).toBeGreaterThanOrEqual(9);
    // Timing only: every one of the M passes is charged (an upper bound); equal when the loop runs them all.
    expect(await timingOnly(whileModel({ m: 20 }), ['acc_final'])).toBeGreaterThan(r.cycles);
    expect(await timingOnly(whileModel({ m: 5 }), ['acc_final'])).toBe((await ours(whileModel({ m: 5 }), { x: feeds.x, acc0 }, ['acc_final'])).cycles);
  });

  it('a condition input computed at run time: no pass when it is false', async () => {
    const acc0 = { shape: [3], data: Float32Array.from([0.1, 0.2, 0.3]) };
    await matchOrt(whileModel({ m: 20, runtimeCond: true }), { x: feeds.x, acc0 }, ['acc_final']);
    const r = await matchOrt(whileModel({ m: 20, runtimeCond: true }), { x: { shape: [3], data: Float32Array.from([-1, -1, -1]) }, acc0 }, ['acc_final']);
    expect(Array.from(r.outputs.get('acc_final')!)).toEqual(Array.from(acc0.data));
  });

  it('scan outputs of a data-dependent loop are a UserError naming the node', async () => {
    const { graph: decl } = parseOnnx(whileModel({ m: 10, scan: true }));
    expect(() => buildGraph(decl, registry, { inference: true })).toThrow(/node 'until' \(Loop\): its condition is computed at run time \(body output 'cond_out'\), so its 1 scan output\(s\) would have a data-dependent length/);
  });

  it('a trip count computed at run time is a UserError naming the node', async () => {
    const body: onnxProto.onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3])],
      node: [node('Identity', ['cond_in'], ['cond_out']), node('Add', ['acc', 'acc'], ['acc_out'])],
      output: [boolInfo('cond_out', []), f32('acc_out', [3])],
    };
    const bytes = modelBytes({
      nodes: [node('Loop', ['', 'c', 'acc0'], ['acc_final'], [graphAttr('body', body)], { name: 'myloop' })],
      inputs: [f32('acc0', [3])],
      outputs: [f32('acc_final', [3])],
      initializers: [boolTensor('c', true)],
    });
    const { graph: decl } = parseOnnx(bytes);
    expect(() => buildGraph(decl, registry, { inference: true })).toThrow(UserError);
    expect(() => buildGraph(decl, registry, { inference: true })).toThrow(/node 'myloop' \(Loop\): it has no trip count M; tilesim needs M known at compile time/);
  });
});

/**
 * y = If(sum(x) > 0, then: Relu(x * w), else: ((x - w) * w + x) * x + b), with x, w and b trainable
 * initializers (b read by the else-branch only); x an input when not given. `cond`: a constant condition
 * instead (the branch inlined).
 */
function ifGradModel(x?: Float32Array, cond?: boolean): Uint8Array {
  const then: onnxProto.onnx.IGraphProto = { name: 'then', node: [node('Mul', ['x', 'w'], ['t0']), node('Relu', ['t0'], ['t_out'])], output: [f32('t_out', [2, 3])] };
  const els: onnxProto.onnx.IGraphProto = {
    name: 'else',
    node: [node('Sub', ['x', 'w'], ['e0']), node('Mul', ['e0', 'w'], ['e1']), node('Add', ['e1', 'x'], ['e2']), node('Mul', ['e2', 'x'], ['e3']), node('Add', ['e3', 'b'], ['e_out'])],
    output: [f32('e_out', [2, 3])],
  };
  const condNodes =
    cond === undefined
      ? [node('ReduceSum', ['x'], ['s'], [attr.i('keepdims', 0)]), node('Greater', ['s', 'zero'], ['c'])]
      : [node('Constant', [], ['c'], [{ name: 'value', type: 4, t: boolTensor('c', cond) }])];
  return modelBytes({
    nodes: [...condNodes, node('If', ['c'], ['y'], [graphAttr('then_branch', then), graphAttr('else_branch', els)])],
    inputs: x ? [] : [f32('x', [2, 3])],
    outputs: [f32('y', [2, 3])],
    initializers: [...(x ? [floatTensor('x', [2, 3], [...x])] : []), floatTensor('w', [2, 3], W), floatTensor('b', [2, 3], [0.1, 0.2, 0.3, -0.1, -0.2, -0.3]), floatTensor('zero', [], [0])],
  });
}

describe('If gradients (IfGrad: an If over the branches\' grad ops)', () => {
  /**
   * Against central finite differences (h = 1e-2) of the same simulated model. sum(x) is +-3, so no step
   * flips the condition, and |x w| >= 0.1 keeps Relu off its kink. Each branch is at most quadratic in any one
   * element, so central differences are exact up to fp32 rounding of the loss (~20, so ~2e-6 / 2h = 1e-4):
   * tolerance 1e-3.
   */
  async function grads(bytes: Uint8Array, wrt = ['x', 'w', 'b']) {
    const { graph: decl } = parseOnnx(bytes);
    const graph = buildGraph(decl, registry);
    const results = await gradcheck(graph, 'y', wrt, { registry, device: tiny() });
    for (const r of results) expect(r.maxAbsError, `d/d${r.tensor}: element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(1e-3);
    return { graph, results: new Map(results.map((r) => [r.tensor, r])) };
  }

  it('a runtime condition, each value: matches finite differences; b, read by the else-branch only, gets zero from the then-branch', async () => {
    const taken = await grads(ifGradModel(X));
    expect(taken.graph.ops.some((o) => o.opid.type === 'IfGrad')).toBe(true);
    expect([...taken.results.get('b')!.analytic].every((v) => v === 0)).toBe(true);
    const other = await grads(ifGradModel(neg));
    expect([...other.results.get('b')!.analytic].some((v) => v !== 0)).toBe(true);
  });

  it('a condition known at build time: the branch is inlined and its gradient matches finite differences', async () => {
    for (const c of [true, false]) {
      const { graph } = await grads(ifGradModel(X, c), c ? ['x', 'w'] : ['x', 'w', 'b']);
      expect(graph.ops.some((o) => o.opid.type === 'If' || o.opid.type === 'IfGrad')).toBe(false);
    }
  });

  it('an If nested in a branch, and branches passing outer tensors through: each of the three paths matches finite differences', async () => {
    // max(x) is 0.8, 2 and 4: the outer else (y = x), the inner then (Abs), the inner else (y = w, so x gets zero).
    const dx = [];
    for (const scale of [0.4, 1, 2]) dx.push((await grads(nestedIfModel(Float32Array.from(X, (v) => v * scale)), ['x', 'w'])).results.get('x')!.analytic);
    expect([...dx[2]].every((v) => v === 0)).toBe(true);
  });

  it('training through a runtime If (sgd, L1 loss on y): the loss goes down with either branch taken', async () => {
    for (const x of [X, neg]) {
      const dir = writeTemp({ 'if.onnx': ifGradModel() });
      const rows = JSON.stringify([[...x.slice(0, 3)], [...x.slice(3)]]);
      writeFileSync(path.join(dir, 'cfg.yaml'), `device: tiny\nmodel:\n  onnx: if.onnx\ninputs:\n  x: {value: ${rows}}\ntrain:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.05}\n`);
      const r = await run(await compile(loadConfig(path.join(dir, 'cfg.yaml'))), { workers: 1, numerics: true, steps: 4 });
      const losses = r.steps.map((s) => s.loss!);
      for (let i = 1; i < losses.length; i++) expect(losses[i], `step ${i} of ${losses.join(', ')}`).toBeLessThan(losses[i - 1]);
    }
  });

  it('an If of two outputs, one off the loss\'s path: its branch ops take no part (the gradient matches finite differences)', async () => {
    const then: onnxProto.onnx.IGraphProto = { name: 'then', node: [node('Mul', ['x', 'w'], ['t0']), node('Exp', ['t0'], ['t1'])], output: [f32('t0', [2, 3]), f32('t1', [2, 3])] };
    const els: onnxProto.onnx.IGraphProto = { name: 'else', node: [node('Sub', ['x', 'w'], ['e0']), node('Neg', ['e0'], ['e1'])], output: [f32('e0', [2, 3]), f32('e1', [2, 3])] };
    const bytes = modelBytes({
      nodes: [node('ReduceSum', ['x'], ['s'], [attr.i('keepdims', 0)]), node('Greater', ['s', 'zero'], ['c']), node('If', ['c'], ['y', 'unused'], [graphAttr('then_branch', then), graphAttr('else_branch', els)])],
      inputs: [],
      outputs: [f32('y', [2, 3]), f32('unused', [2, 3])],
      initializers: [floatTensor('x', [2, 3], [...X]), floatTensor('w', [2, 3], W), floatTensor('zero', [], [0])],
    });
    await grads(bytes, ['x', 'w']);
  });

  it('the grad ops of each branch run only when it is taken (the switch holds them)', async () => {
    const { graph } = await grads(ifGradModel(X));
    const grad = graph.ops.find((o) => o.opid.type === 'IfGrad')!;
    const owned = [...graph.regions].filter(([, r]) => r.owner === grad).map(([op, r]) => [op.opid.type, r.branch]);
    expect(owned).toContainEqual(['ReluGrad', 0]);
    expect(owned.filter(([, b]) => b === 1).length).toBeGreaterThanOrEqual(4);
  });
});

/**
 * A counted Loop of `trip` passes over trainable x, w (read from outside) and acc0 (the initial carried value),
 * each of n elements:
 * acc' = acc * w + x + 0.25 float(i), scan acc' * acc'; y = acc_final + the scan summed over the passes.
 */
function loopGradModel(trip: number, n = 3): Uint8Array {
  const vals = (v: number[]) => Array.from({ length: n }, (_, i) => v[i % 3]);
  const body: onnxProto.onnx.IGraphProto = {
    name: 'body',
    input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [n])],
    node: [
      node('Identity', ['cond_in'], ['cond_out']),
      node('Cast', ['i'], ['fi'], [attr.i('to', DT.FLOAT)]),
      node('Mul', ['fi', 'quarter'], ['qi']),
      node('Mul', ['acc', 'w'], ['a0']),
      node('Add', ['a0', 'x'], ['a1']),
      node('Add', ['a1', 'qi'], ['acc_out']),
      node('Mul', ['acc_out', 'acc_out'], ['sq']),
    ],
    output: [boolInfo('cond_out', []), f32('acc_out', [n]), f32('sq', [n])],
  };
  return modelBytes({
    nodes: [
      node('Loop', ['M', 'c', 'acc0'], ['acc_final', 'sqs'], [graphAttr('body', body)]),
      node('ReduceSum', ['sqs', 'axis0'], ['sq_sum'], [attr.i('keepdims', 0)]),
      node('Add', ['acc_final', 'sq_sum'], ['y']),
    ],
    inputs: [],
    outputs: [f32('y', [n])],
    initializers: [
      int64Tensor('M', [], [trip]),
      boolTensor('c', true),
      int64Tensor('axis0', [1], [0]),
      floatTensor('x', [n], vals([0.3, -0.2, 0.5])),
      floatTensor('w', [n], vals([0.6, -0.7, 0.4])),
      floatTensor('acc0', [n], vals([0.5, 1, -0.5])),
      floatTensor('quarter', [], [0.25]),
    ],
  });
}

describe('Loop gradients (LoopGrad: the body\'s grad ops, last pass first, over stashed forward values)', () => {
  /**
   * Against central finite differences (h = 3e-3) of the same simulated model. y is a polynomial of degree 6
   * in w over three passes: the truncation error (h^2/6 times the third derivative) stays under 1e-4 here (it
   * falls 9x from h = 1e-2, as h^2 does), and the fp32 rounding of the loss (~10, ulp ~1e-6) over 2h adds ~2e-4:
   * tolerance 1e-3.
   */
  it('a counted loop: carried value, outer tensors and scan output match finite differences', async () => {
    const { graph: decl } = parseOnnx(loopGradModel(3));
    const graph = buildGraph(decl, registry);
    const results = await gradcheck(graph, 'y', ['x', 'w', 'acc0'], { registry, device: tiny(), h: 3e-3 });
    for (const r of results) expect(r.maxAbsError, `d/d${r.tensor}: element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(1e-3);
    // The forward body stashes what the grad ops read (the carried input for Mul's gradient, acc_out for the
    // square's); the LoopGrad is a repeat of as many passes.
    const grad = graph.ops.find((o) => o.opid.type === 'LoopGrad') as LoopGradOp;
    expect(grad.shape.trip).toBe(3);
    const stashed = graph.ops.filter((o) => o.opid.type === 'LoopStash').map((o) => o.inId(0));
    expect(stashed).toContain('acc_out');
  });

  it('an If in the loop body whose branch values the grad reads: stashed after the If, matching finite differences', async () => {
    // acc' = If(i > 0, tanh(acc * w), acc * w + x): TanhGrad reads tanh's output, made inside the branch.
    const body: onnxProto.onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3])],
      node: [
        node('Identity', ['cond_in'], ['cond_out']),
        node('Greater', ['i', 'zero_i'], ['later']),
        node('Mul', ['acc', 'w'], ['a0']),
        node('If', ['later'], ['acc_out'], [
          graphAttr('then_branch', { name: 't', node: [node('Tanh', ['a0'], ['th'])], output: [f32('th', [3])] }),
          graphAttr('else_branch', { name: 'e', node: [node('Add', ['a0', 'x'], ['ax'])], output: [f32('ax', [3])] }),
        ]),
      ],
      output: [boolInfo('cond_out', []), f32('acc_out', [3])],
    };
    const bytes = modelBytes({
      nodes: [node('Loop', ['M', 'c', 'acc0'], ['y'], [graphAttr('body', body)])],
      inputs: [],
      outputs: [f32('y', [3])],
      initializers: [int64Tensor('M', [], [3]), boolTensor('c', true), int64Tensor('zero_i', [], [0]), floatTensor('x', [3], [0.3, -0.2, 0.5]), floatTensor('w', [3], [1.2, -0.9, 0.8]), floatTensor('acc0', [3], [0.5, 1, -0.7])],
    });
    const graph = buildGraph(parseOnnx(bytes).graph, registry);
    const results = await gradcheck(graph, 'y', ['x', 'w', 'acc0'], { registry, device: tiny(), h: 3e-3 });
    for (const r of results) expect(r.maxAbsError, `d/d${r.tensor}: element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(1e-3);
    const stashes = graph.ops.filter((o) => o.opid.type === 'LoopStash');
    const th = stashes.find((o) => o.inId(0) === 'th');
    expect(th?.inputs.length, 'the stash of a branch value also reads the If, to come after it').toBe(3);
  });

  it('each grad pass reads its slot where it lies: the restores move only the pass number between tiles', async () => {
    // 4096 elements: spread over the tiny device's 4 tiles.
    const graph = buildGraph(parseOnnx(loopGradModel(3, 4096)).graph, registry);
    graph.addOp(new L1Op({ scale: 1, reduction: 'sum' }, { name: 'loss' }), ['y'], ['loss']);
    autodiff(graph, 'loss');
    expect(graph.ops.some((o) => o.opid.type === 'LoopRelayout'), 'the scan gradient laid out like the scan, once').toBe(true);
    const codelets = await loadCodeletRegistry([]);
    const { program } = lowerGraph({ graph, schedule: graph.schedule(), registry, codelets, device: tiny(), anchors: ['loss'], codeletModules: [] });
    const restores = program.exchanges.filter((e) => e.op?.includes('/restore('));
    expect(restores.length).toBeGreaterThan(0);
    // Only the int32 pass number travels (4 bytes a copy); no slot of a stash or scan gradient does.
    for (const e of restores) for (const c of copyList(e.copies)) if (c.srcTile !== c.dstTile) expect(c.bytes, e.name).toBe(4);
  });

  it('training through a counted Loop (sgd, L1 loss): the loss goes down', async () => {
    const dir = writeTemp({ 'loop.onnx': loopGradModel(3) });
    writeFileSync(path.join(dir, 'cfg.yaml'), 'device: tiny\nmodel:\n  onnx: loop.onnx\ntrain:\n  loss: {type: l1, input: y}\n  optimizer: {type: sgd, lr: 0.02}\n');
    const r = await run(await compile(loadConfig(path.join(dir, 'cfg.yaml'))), { workers: 1, numerics: true, steps: 4 });
    const losses = r.steps.map((s) => s.loss!);
    for (let i = 1; i < losses.length; i++) expect(losses[i], `step ${i} of ${losses.join(', ')}`).toBeLessThan(losses[i - 1]);
  });

  it('a loop whose passes depend on data is refused for training, naming the op and why', async () => {
    const body: onnxProto.onnx.IGraphProto = {
      name: 'body',
      input: [valueInfo('i', DT.INT64, []), boolInfo('cond_in', []), f32('acc', [3])],
      node: [node('Mul', ['acc', 'w'], ['acc_out']), node('ReduceSum', ['acc_out'], ['s'], [attr.i('keepdims', 0)]), node('Less', ['s', 'ten'], ['cond_out'])],
      output: [boolInfo('cond_out', []), f32('acc_out', [3])],
    };
    const bytes = modelBytes({
      nodes: [node('Loop', ['M', '', 'acc0'], ['y'], [graphAttr('body', body)], { name: 'grow' })],
      inputs: [],
      outputs: [f32('y', [3])],
      initializers: [int64Tensor('M', [], [5]), floatTensor('w', [3], [2, 2, 2]), floatTensor('acc0', [3], [1, 1, 1]), floatTensor('ten', [], [10])],
    });
    const graph = buildGraph(parseOnnx(bytes).graph, registry);
    await expect(gradcheck(graph, 'y', ['w'], { registry, device: tiny() })).rejects.toThrow(/op 'grow' \(Loop\): training through a Loop whose passes depend on data/);
  });
});
