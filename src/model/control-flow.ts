/**
 * Building If and Loop nodes (ONNX control flow with subgraph attributes)
 * into the IR graph, for src/model/build.ts. The ops of a branch or body are
 * added to the graph itself, reading outer tensors by name, and marked with
 * their region (Graph.regions); src/ops/control-flow.ts says how they run.
 *
 * - If with a condition known at compile time (a constant, after constant
 *   folding): only the branch it selects is added, its outputs renamed to the
 *   If's outputs through Identity (folded when constant). No switch, and no
 *   cost but the branch's.
 * - If otherwise: both branches are added, then an If op that owns them.
 * - Loop: a trip count M known at compile time (after constant folding).
 *   With the condition input absent or constant and a body whose condition
 *   output stays true (the body's condition input passed through, or a
 *   nonzero constant), a counted repeat; otherwise a repeat while the
 *   condition holds, at most M passes (Poplar's RepeatWhileTrue), which may
 *   have no scan outputs (their length would depend on data). No M, or
 *   scan outputs of a data-dependent loop, is a UserError naming the node.
 *
 * - Scan (9 and later) is a counted Loop over the scan inputs' length: the
 *   body gathers each scan input's slice at the iteration number (or its
 *   mirror, for a reverse direction) before the Scan's own body, and each
 *   scan output, stacked by the Loop along axis 0 in pass order, is reversed
 *   and moved to its axis after it. Its gradient is then the LoopGrad's.
 *
 * Ops of a region that reach none of its outputs are dropped (dead code: the
 * schedule could otherwise put them after their owner).
 */
import type { NodeDecl, SubgraphDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import type { OpDefinition } from '../ir/registry.js';
import { IfOp, LOOP_VERSIONS, LoopOp, LoopStartOp } from '../ops/control-flow.js';

export interface RegionBuilder {
  graph: Graph;
  /** Add a node (build.ts's own, folding included). */
  addNode(n: NodeDecl): void;
  /** A fresh tensor name derived from `base`. */
  fresh(base: string): string;
}

const what = (n: NodeDecl) => `node '${n.name}' (${n.op})`;

function subgraph(n: NodeDecl, name: string): SubgraphDecl {
  const g = n.subgraphs?.[name];
  if (!g) throw new UserError(`${what(n)} needs the graph attribute '${name}'`, n.loc);
  return g;
}

/** Add the If or Loop node `n` (resolved to `def`) with its subgraphs. */
export function addControlFlowNode(n: NodeDecl, def: OpDefinition, b: RegionBuilder): void {
  if (n.op === 'If') addIf(n, def, b);
  else if (n.op === 'Loop') addLoop(n, def, b);
  else if (n.op === 'Scan') addScan(n, def, b);
  else throw new UserError(`${what(n)} has graph attributes (${Object.keys(n.subgraphs ?? {}).join(', ')}), which only If, Loop and Scan take in tilesim`, n.loc);
}

/** Add `sub`'s nodes; the ops they made (and kept), in order. */
function addRegion(sub: SubgraphDecl, b: RegionBuilder): Op[] {
  const before = b.graph.ops.length;
  for (const node of sub.nodes) b.addNode(node);
  return b.graph.ops.slice(before);
}

/** Drop the ops of `ops` whose outputs reach none of `needed` (in reverse, so chains of dead ops go); the kept ones. */
function pruneDead(ops: Op[], needed: Iterable<string>, g: Graph, keep: ReadonlySet<Op> = new Set()): Op[] {
  const want = new Set(needed);
  const kept: Op[] = [];
  for (const op of [...ops].reverse()) {
    if (keep.has(op) || op.outputs.some((o) => want.has(o) || g.tensor(o).consumers.length > 0)) {
      for (const i of op.inputs) if (i !== '') want.add(i);
      kept.push(op);
    } else g.removeOp(op);
  }
  return kept.reverse();
}

/** Tensors the region's ops read that none of them produces. */
function outerReads(ops: Op[]): string[] {
  const made = new Set(ops.flatMap((o) => o.outputs));
  const out = new Set<string>();
  for (const op of ops) for (const i of op.inputs) if (i !== '' && !made.has(i)) out.add(i);
  return [...out];
}

function claim(g: Graph, ops: Op[], owner: Op, branch: number): void {
  for (const op of ops) if (!g.regions.has(op)) g.regions.set(op, { owner, branch });
}

function addIf(n: NodeDecl, def: OpDefinition, b: RegionBuilder): void {
  const g = b.graph;
  const then = subgraph(n, 'then_branch');
  const els = subgraph(n, 'else_branch');
  if (n.inputs.length !== 1 || n.inputs[0] === '') throw new UserError(`${what(n)} takes one input (cond), got ${n.inputs.length}`, n.loc);
  for (const [name, sub] of [['then_branch', then], ['else_branch', els]] as const) {
    if (sub.inputs.length > 0) throw new UserError(`${what(n)}: its ${name} declares inputs (${sub.inputs.join(', ')}); If branches take none (they read outer tensors by name)`, n.loc);
    if (sub.outputs.length !== n.outputs.length) throw new UserError(`${what(n)}: its ${name} gives ${sub.outputs.length} outputs, the node has ${n.outputs.length}`, n.loc);
  }
  const cond = n.inputs[0];
  const known = g.compileTimeData(cond);
  if (known) {
    if (known.length !== 1) throw new UserError(`${what(n)}: its condition '${cond}' must hold one element, it holds ${known.length}`, n.loc);
    const taken = known[0] !== 0 ? then : els;
    for (const node of taken.nodes) b.addNode(node);
    taken.outputs.forEach((o, k) => b.addNode({ op: 'Identity', domain: '', name: `${n.name}/output${k}`, inputs: [o], outputs: [n.outputs[k]], attributes: {}, loc: n.loc }));
    return;
  }
  const thenOps = pruneDead(addRegion(then, b), then.outputs, g);
  const elseOps = pruneDead(addRegion(els, b), els.outputs, g);
  const op = new IfOp(def.id, { name: n.name, loc: n.loc }, n.outputs.length);
  g.addOp(op, [cond, ...then.outputs, ...els.outputs, ...outerReads([...thenOps, ...elseOps])], n.outputs);
  claim(g, thenOps, op, 0);
  claim(g, elseOps, op, 1);
}

/** Whether the body's condition output is its condition input passed through (Identity) or a nonzero constant. */
function conditionStaysTrue(g: Graph, out: string, condIn: string): boolean {
  for (let id = out; ; ) {
    if (id === condIn) return true;
    const data = g.hasTensor(id) ? g.compileTimeData(id) : undefined;
    if (data) return data.length === 1 && data[0] !== 0;
    const p = g.hasTensor(id) ? g.tensor(id).producer : undefined;
    if (!p || p.opid.type !== 'Identity') return false;
    id = p.inId(0);
  }
}

function addLoop(n: NodeDecl, def: OpDefinition, b: RegionBuilder): void {
  const g = b.graph;
  const body = subgraph(n, 'body');
  const [m = '', condId = '', ...initial] = n.inputs;
  const carried = initial.length;
  const scans = n.outputs.length - carried;
  if (scans < 0) throw new UserError(`${what(n)} has ${carried} loop-carried inputs but only ${n.outputs.length} outputs (each carried value has a final output)`, n.loc);
  if (body.inputs.length !== 2 + carried) throw new UserError(`${what(n)}: its body takes ${body.inputs.length} inputs; it must take 2 + ${carried} (iteration number, condition, the carried values)`, n.loc);
  if (body.outputs.length !== 1 + n.outputs.length) throw new UserError(`${what(n)}: its body gives ${body.outputs.length} outputs; it must give 1 + ${n.outputs.length} (condition, carried values, scan outputs)`, n.loc);
  const mData = m === '' ? undefined : g.compileTimeData(m);
  if (!mData)
    throw new UserError(
      `${what(n)}: ${m === '' ? 'it has no trip count M' : `its trip count M ('${m}') is computed at run time`}; tilesim needs M known at compile time (after constant folding), ` +
        'as the most passes of the repeat (the condition may be computed at run time)',
      n.loc,
    );
  let trip = Math.max(0, mData[0]);
  /** The condition is data: a RepeatWhileTrue of at most `trip` passes. */
  let dynamic = false;
  if (condId !== '') {
    const c = g.compileTimeData(condId);
    if (!c) dynamic = true;
    else if (c[0] === 0) trip = 0;
  }

  const start = new LoopStartOp({ name: `${n.name}/start`, loc: n.loc });
  const names = body.inputs.map((id, k) => id || b.fresh(`${n.name}/body_input${k}`));
  g.addOp(start, initial, names);
  const bodyOps = [start, ...addRegion(body, b)];
  if (!conditionStaysTrue(g, body.outputs[0], names[1])) dynamic = true;
  if (dynamic && scans > 0)
    throw new UserError(
      `${what(n)}: its condition is computed at run time (${condId !== '' && !g.compileTimeData(condId) ? `input '${condId}'` : `body output '${body.outputs[0]}'`}), so its ${scans} scan output(s) would have a data-dependent length; ` +
        'tilesim needs static shapes: scan outputs only with a counted loop (the condition constant true)',
      n.loc,
    );
  const kept = pruneDead(bodyOps, dynamic ? body.outputs : body.outputs.slice(1), g, new Set([start]));
  const constant = (base: string, v: number) => {
    const id = b.fresh(`${n.name}/${base}`);
    g.addTensor(id, { dtype: 'int32', shape: [] }, 'constant', { data: Int32Array.of(v) });
    return id;
  };
  const outer = outerReads(kept);
  const op = new LoopOp(def.id, { name: n.name, loc: n.loc }, { trip, carried, scans, outer: outer.length, dynamic });
  const one = constant('one', 1);
  const condition = dynamic ? [body.outputs[0], condId || one] : [];
  const inputs = [names[0], names[1], ...names.slice(2), ...body.outputs.slice(1), ...initial, constant('zero', 0), one, ...condition, ...outer];
  g.addOp(op, inputs, n.outputs);
  claim(g, kept, op, 0);
}

const ints = (n: NodeDecl, name: string, fallback: number[]): number[] => {
  const v = n.attributes[name];
  return Array.isArray(v) ? (v as number[]) : fallback;
};

/** Scan (9+) as a counted Loop (see the top of the file). */
function addScan(n: NodeDecl, def: OpDefinition, b: RegionBuilder): void {
  const g = b.graph;
  const body = subgraph(n, 'body');
  const M = n.attributes.num_scan_inputs;
  if (typeof M !== 'number' || !Number.isInteger(M) || M < 1 || M > n.inputs.length) throw new UserError(`${what(n)}: num_scan_inputs must be 1 to ${n.inputs.length} (its inputs), got ${String(M)}`, n.loc);
  const N = n.inputs.length - M;
  const K = n.outputs.length - N;
  if (K < 0) throw new UserError(`${what(n)} has ${N} state inputs but ${n.outputs.length} outputs (each state has a final output)`, n.loc);
  if (body.inputs.length !== N + M || body.outputs.length !== N + K) {
    throw new UserError(`${what(n)}: its body takes ${body.inputs.length} inputs and gives ${body.outputs.length} outputs; it must take ${N + M} (states, scan elements) and give ${N + K} (states, scan output elements)`, n.loc);
  }
  const axisOf = (a: number, rank: number, whose: string) => {
    if (!Number.isInteger(a) || a < -rank || a >= rank) throw new UserError(`${what(n)}: ${whose} axis ${a} is out of range for rank ${rank}`, n.loc);
    return a < 0 ? a + rank : a;
  };
  const inAxes = ints(n, 'scan_input_axes', new Array<number>(M).fill(0));
  const inDirs = ints(n, 'scan_input_directions', new Array<number>(M).fill(0));
  const outAxes = ints(n, 'scan_output_axes', new Array<number>(K).fill(0));
  const outDirs = ints(n, 'scan_output_directions', new Array<number>(K).fill(0));
  const scanIns = n.inputs.slice(N);
  const lengths = scanIns.map((id, j) => {
    const shape = g.tensor(id).info.shape;
    return shape[axisOf(inAxes[j] ?? 0, shape.length, `scan input ${j}'s`)];
  });
  const T = lengths[0];
  if (lengths.some((l) => l !== T)) throw new UserError(`${what(n)}: its scan inputs have lengths ${lengths.join(', ')} along their scan axes; they must be equal`, n.loc);

  const fresh = (base: string) => b.fresh(`${n.name}/${base}`);
  const constant = (base: string, shape: number[], values: number[]) => {
    const id = fresh(base);
    g.addTensor(id, { dtype: 'int32', shape }, 'constant', { data: Int32Array.from(values) });
    return id;
  };
  const iter = fresh('iter');
  const cond = fresh('cond');
  const last = constant('last', [], [T - 1]);
  const mirrors: NodeDecl[] = [];
  const slicing: NodeDecl[] = scanIns.map((id, j) => {
    const shape = g.tensor(id).info.shape;
    const axis = axisOf(inAxes[j] ?? 0, shape.length, `scan input ${j}'s`);
    let index = iter;
    if ((inDirs[j] ?? 0) === 1) {
      index = fresh(`rev${j}`);
      mirrors.push({ op: 'Sub', domain: '', version: 14, name: `${n.name}/rev${j}`, inputs: [last, iter], outputs: [index], attributes: {}, loc: n.loc });
    }
    return { op: 'Gather', domain: '', version: 13, name: `${n.name}/scan_in${j}`, inputs: [id, index], outputs: [body.inputs[N + j]], attributes: { axis }, loc: n.loc };
  });
  // A forward scan output along axis 0 is the Loop's own; the others are reversed or moved after it.
  const plain = (k: number) => (outDirs[k] ?? 0) === 0 && (outAxes[k] ?? 0) === 0;
  const stacked = Array.from({ length: K }, (_, k) => (plain(k) ? n.outputs[N + k] : fresh(`scan_out${k}`)));
  const version = LOOP_VERSIONS[LOOP_VERSIONS.length - 1];
  const loop: NodeDecl = {
    op: 'Loop',
    domain: '',
    version,
    name: n.name,
    inputs: [constant('trip', [], [T]), '', ...n.inputs.slice(0, N)],
    outputs: [...n.outputs.slice(0, N), ...stacked],
    attributes: {},
    loc: n.loc,
    subgraphs: { body: { inputs: [iter, cond, ...body.inputs.slice(0, N)], nodes: [...mirrors, ...slicing, ...body.nodes], outputs: [cond, ...body.outputs] } },
  };
  addLoop(loop, { ...def, id: { domain: def.id.domain, type: 'Loop', version } }, b);
  // Each other stacked scan output [T, ...]: reversed when its direction is 1, then its axis 0 moved to scan_output_axes[k].
  stacked.forEach((id, k) => {
    if (plain(k)) return;
    const rank = g.tensor(id).info.shape.length;
    const axis = axisOf(outAxes[k] ?? 0, rank, `scan output ${k}'s`);
    const reverse = (outDirs[k] ?? 0) === 1;
    const moved = axis !== 0;
    let cur = id;
    if (reverse) {
      const order = constant(`order${k}`, [T], Array.from({ length: T }, (_, t) => T - 1 - t));
      const out = moved ? fresh(`reversed${k}`) : n.outputs[N + k];
      b.addNode({ op: 'Gather', domain: '', version: 13, name: `${n.name}/scan_out${k}_reverse`, inputs: [cur, order], outputs: [out], attributes: { axis: 0 }, loc: n.loc });
      cur = out;
    }
    if (moved) {
      const perm = Array.from({ length: rank }, (_, d) => d).filter((d) => d !== 0);
      perm.splice(axis, 0, 0);
      b.addNode({ op: 'Transpose', domain: '', version: 13, name: `${n.name}/scan_out${k}_axis`, inputs: [cur], outputs: [n.outputs[N + k]], attributes: { perm }, loc: n.loc });
    }
  });
}
