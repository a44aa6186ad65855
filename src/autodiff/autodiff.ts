/**
 * The autodiff transform, with PopART's semantics. Starting from the loss's
 * gradient (a constant 1), an op's grad ops are grown once every output of
 * it that lies on the path to the loss has its full gradient; a tensor with
 * several consumers gets the Sum of its edge gradients; gradient tensors are
 * named Gradient___<tensor> so they can be anchored.
 *
 * An If's gradient is an IfGrad over the grad ops of its two branches, with
 * the same condition (src/autodiff/if-grad.ts); a counted Loop's a LoopGrad
 * over its body's, last pass first (src/autodiff/loop-grad.ts).
 *
 * Beyond PopART, it checks every grad op's index maps and output infos, and
 * reports a trainable variable on the loss path that gets no gradient,
 * naming the op that dropped it.
 */
import { UserError } from '../errors.js';
import type { SourceLocation } from '../config/types.js';
import type { Graph } from '../ir/graph.js';
import { GradOpInType, type GradOp, type Op } from '../ir/op.js';
import { fmtOpid } from '../ir/opid.js';
import { gradName } from '../ir/tensor.js';
import { isFloat } from '../ir/dtype.js';
import { fmtInfo, sameInfo } from '../ir/tensorinfo.js';
import { IfOp, LoopOp } from '../ops/control-flow.js';
import { SumOp } from '../ops/sum.js';
import { growIfGrad } from './if-grad.js';
import { growLoopGrad } from './loop-grad.js';

export interface AutodiffResult {
  /** Forward tensor -> its gradient tensor. */
  gradOf: Map<string, string>;
  /** The grad ops added, in the order they were grown. */
  gradOps: Op[];
}

/**
 * Add the backward pass for `loss` to `graph`: gradients of every trainable
 * variable and of every tensor in `extra` (e.g. anchored Gradient___x).
 */
export function autodiff(graph: Graph, loss: string, extra: readonly string[] = [], lossLoc?: SourceLocation): AutodiffResult {
  const lossT = graph.tensor(loss);
  if (lossT.info.shape.length !== 0 && lossT.info.shape.reduce((a, b) => a * b, 1) !== 1) {
    throw new UserError(`the loss '${loss}' must be a scalar, but it is ${fmtInfo(lossT.info)}`, lossLoc);
  }
  const wanted = new Set<string>([...graph.allTensors().filter((t) => t.kind === 'variable' && t.trainable).map((t) => t.id), ...extra]);
  const onPath = tensorsOnPath(graph, loss, wanted);
  // Why a tensor on the path got no gradient: the op that produced no edge for it.
  const dropped = new Map<string, Op>();
  const ad: Autodiff = { graph, onPath, dropped, grown: new Set() };
  // The main graph's ops; those of an If's branches or a Loop's body are grown inside its gradient (if-grad.ts, loop-grad.ts).
  const main = newScope(ad, (op) => !graph.regions.has(op));

  const seed = gradName(loss);
  graph.addTensor(seed, lossT.info, 'constant', { data: new Float32Array([1]), isGradient: true });
  main.gradOf.set(loss, seed);
  main.ready.push(loss);
  grow(ad, main);
  const gradOf = main.gradOf;
  const gradOps = main.gradOps;

  prune(graph, gradOps, new Set(gradOf.values()));

  for (const id of wanted) {
    if (!onPath.has(id) || gradOf.has(id)) continue;
    const culprit = findCulprit(graph, id, onPath, gradOf, dropped);
    const what = graph.tensor(id).kind === 'variable' ? 'trainable variable' : 'tensor';
    throw new UserError(
      `${what} '${id}' is on the path to the loss '${loss}' but gets no gradient: ${culprit}. ` +
        `Give that op grad ops (getGradOps), or mark '${id}' trainable: false.`,
    );
  }
  return { gradOf, gradOps };
}

/** What every scope of one autodiff shares. */
export interface Autodiff {
  graph: Graph;
  /** Float tensors that lead to the loss and depend on something whose gradient is wanted. */
  onPath: Set<string>;
  dropped: Map<string, Op>;
  grown: Set<Op>;
}

/**
 * One backward pass over a set of forward ops: the main graph's, one
 * branch's of an If (whose grad ops become a branch of its IfGrad), or a
 * Loop's body (whose grad ops become the LoopGrad's body).
 */
export interface Scope {
  /** Whether a forward op is this scope's (a nested If's branches are that If's, a nested Loop's body that Loop's). */
  has(op: Op): boolean;
  /** The tensors whose gradients this scope computes: the main graph's path, or within a branch or body those that reach its seeded outputs. */
  onPath: Set<string>;
  /** Forward tensor -> its full gradient, within this scope. */
  gradOf: Map<string, string>;
  /** Edge gradients of a tensor so far, and how many it will get (one per reader on the path, in this scope). */
  edges: Map<string, string[]>;
  expected: Map<string, number>;
  /** Grad ops added, in the order they were grown. */
  gradOps: Op[];
  /** Tensors whose gradient just completed: their producers may grow. */
  ready: string[];
  /**
   * A branch's or body's scope: its name, which its gradient tensors carry, so that
   * Gradient___<tensor> stays the full gradient of the main graph.
   */
  branch?: string;
}

export function newScope(ad: Autodiff, has: (op: Op) => boolean, branch?: string, seeds?: readonly string[]): Scope {
  const onPath = seeds ? pathTo(ad, has, seeds) : ad.onPath;
  const expected = new Map<string, number>();
  for (const id of onPath) {
    const readers = ad.graph.tensor(id).consumers.filter((c) => has(c.op) && c.op.outputs.some((o) => onPath.has(o)));
    // An If or a Loop gives one gradient per outer tensor, however many of its inputs name it.
    const counted = readers.filter((c) => !(c.op instanceof IfOp || c.op instanceof LoopOp) || c.op.inputs.indexOf(id) === c.index);
    expected.set(id, counted.length);
  }
  return { has, onPath, gradOf: new Map(), edges: new Map(), expected, gradOps: [], ready: [], branch };
}

/**
 * The tensors on the path that reach `seeds` through the scope's ops: in a
 * branch or a loop body, an output whose gradient nobody gives (a scan output
 * off the loss's path) takes no part.
 */
function pathTo(ad: Autodiff, has: (op: Op) => boolean, seeds: readonly string[]): Set<string> {
  const path = new Set<string>();
  const stack = [...seeds];
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (path.has(id) || !ad.onPath.has(id)) continue;
    path.add(id);
    const p = ad.graph.tensor(id).producer;
    if (p && has(p)) stack.push(...p.inputs.filter((i) => i !== ''));
  }
  return path;
}

/** Add an edge gradient of `id`; once all its edges are in, its gradient is their Sum. */
export function addEdge(ad: Autodiff, scope: Scope, id: string, g: string): void {
  const list = scope.edges.get(id) ?? [];
  list.push(g);
  scope.edges.set(id, list);
  if (list.length !== scope.expected.get(id)) return;
  let full: string;
  if (list.length === 1) full = list[0];
  else {
    full = ad.graph.uniqueTensorId(scope.branch === undefined ? gradName(id) : `${gradName(id)}__${scope.branch}`);
    const sum = new SumOp({ name: `GradSum(${id})`, loc: ad.graph.tensor(id).producer?.settings.loc });
    ad.graph.addOp(sum, list, [full], { isGradient: true });
    scope.gradOps.push(sum);
  }
  scope.gradOf.set(id, full);
  scope.ready.push(id);
}

/** Grow the grad ops of the scope's ops, from its ready tensors back, each op once all its outputs on the path have gradients. */
export function grow(ad: Autodiff, scope: Scope): void {
  const { graph } = ad;
  const { onPath } = scope;
  while (scope.ready.length > 0) {
    const id = scope.ready.shift()!;
    const producer = graph.tensor(id).producer;
    if (!producer || !scope.has(producer) || ad.grown.has(producer)) continue;
    if (!producer.outputs.every((o) => !onPath.has(o) || scope.gradOf.has(o))) continue;
    ad.grown.add(producer);
    const provided = new Set<number>();
    if (producer instanceof IfOp) growIfGrad(ad, scope, producer, provided);
    else if (producer instanceof LoopOp) growLoopGrad(ad, scope, producer, provided);
    else {
      for (const gop of producer.getGradOps()) {
        growGradOp(ad, scope, producer, gop, provided);
        scope.gradOps.push(gop);
      }
    }
    for (const [i, inId] of producer.inputs.entries()) {
      if (inId !== '' && onPath.has(inId) && !provided.has(i) && !ad.dropped.has(inId)) ad.dropped.set(inId, producer);
    }
  }
}

function growGradOp(ad: Autodiff, scope: Scope, fwd: Op, gop: GradOp, provided: Set<number>): void {
  const { graph } = ad;
  const { gradOf, expected, onPath } = scope;
  const who = `grad op '${gop.name}' (${fmtOpid(gop.opid)}) of '${fwd.name}'`;
  const inMap = gop.gradInputInfo();
  const inputs: string[] = [];
  for (const m of inMap) {
    if (inputs[m.gradOpInIndex] !== undefined) throw new UserError(`${who}: gradInputInfo() maps input ${m.gradOpInIndex} twice`);
    const count = m.type === GradOpInType.In ? fwd.inputs.length : fwd.outputs.length;
    if (!Number.isInteger(m.fwdIndex) || m.fwdIndex < 0 || m.fwdIndex >= count) {
      throw new UserError(
        `${who}: gradInputInfo() maps input ${m.gradOpInIndex} to forward ${m.type} index ${m.fwdIndex}, ` +
          `but the forward op has ${count} ${m.type === GradOpInType.In ? 'inputs' : 'outputs'}`,
      );
    }
    let id: string;
    if (m.type === GradOpInType.In) id = fwd.inputs[m.fwdIndex];
    else if (m.type === GradOpInType.Out) id = fwd.outputs[m.fwdIndex];
    else {
      const g = gradOf.get(fwd.outputs[m.fwdIndex]);
      if (!g) throw new UserError(`${who}: asks for the gradient of output ${m.fwdIndex} ('${fwd.outputs[m.fwdIndex]}'), which is not on the path to the loss`);
      id = g;
    }
    inputs[m.gradOpInIndex] = id;
  }
  for (let i = 0; i < inputs.length; i++) if (inputs[i] === undefined) throw new UserError(`${who}: gradInputInfo() leaves input ${i} unmapped`);

  const outMap = gop.gradOutToNonGradIn();
  const nOut = outMap.size;
  const outputs: string[] = [];
  for (let o = 0; o < nOut; o++) {
    const fwdIn = outMap.get(o);
    if (fwdIn === undefined) throw new UserError(`${who}: gradOutToNonGradIn() has ${nOut} outputs but no entry for output ${o}`);
    if (fwdIn < 0 || fwdIn >= fwd.inputs.length) {
      throw new UserError(`${who}: gradOutToNonGradIn() maps output ${o} to forward input ${fwdIn}, but the forward op has ${fwd.inputs.length} inputs`);
    }
    const target = fwd.inputs[fwdIn];
    const many = (expected.get(target) ?? 0) > 1;
    outputs.push(graph.uniqueTensorId(many || !onPath.has(target) || scope.branch !== undefined ? `${gradName(target)}__${gop.name}` : gradName(target)));
  }
  graph.addOp(gop, inputs, outputs, { isGradient: true });
  for (let o = 0; o < nOut; o++) {
    const fwdIn = outMap.get(o)!;
    const target = fwd.inputs[fwdIn];
    const want = fwd.inInfo(fwdIn);
    const got = gop.outInfo(o);
    if (!sameInfo(want, got)) {
      throw new UserError(`${who}: output ${o} is ${fmtInfo(got)} but it is the gradient of forward input ${fwdIn} '${target}', which is ${fmtInfo(want)}`);
    }
    if (!onPath.has(target)) continue;
    provided.add(fwdIn);
    addEdge(ad, scope, target, outputs[o]);
  }
}

/**
 * Remove grad ops whose every output is unread and not a gradient anyone
 * asked for (e.g. the gradient of a streamed input that is not anchored),
 * repeating until nothing more goes.
 */
function prune(graph: Graph, gradOps: Op[], keep: Set<string>): void {
  for (let changed = true; changed; ) {
    changed = false;
    for (let i = gradOps.length - 1; i >= 0; i--) {
      const op = gradOps[i];
      if (op.outputs.every((o) => !keep.has(o) && graph.tensor(o).consumers.length === 0)) {
        graph.removeOp(op);
        gradOps.splice(i, 1);
        changed = true;
      }
    }
  }
}

/**
 * Float tensors that lead to the loss and depend on something whose gradient
 * is wanted. An int32 tensor (an index, a bool such as an If's or a Where's
 * condition) has no gradient: the path does not pass through it.
 */
function tensorsOnPath(graph: Graph, loss: string, wanted: Set<string>): Set<string> {
  const float = (id: string) => isFloat(graph.tensor(id).info.dtype);
  const toLoss = new Set<string>();
  const stack = [loss];
  while (stack.length) {
    const id = stack.pop()!;
    if (toLoss.has(id) || !float(id)) continue;
    toLoss.add(id);
    const p = graph.tensor(id).producer;
    if (p) stack.push(...p.inputs.filter((i) => i !== ''));
  }
  const fromWanted = new Set<string>();
  const fwd = [...wanted].filter((w) => graph.hasTensor(w));
  while (fwd.length) {
    const id = fwd.pop()!;
    if (fromWanted.has(id) || !float(id)) continue;
    fromWanted.add(id);
    for (const c of graph.tensor(id).consumers) {
      fwd.push(...c.op.outputs);
      // A Loop's carried output is its carried input on the next pass.
      if (c.op instanceof LoopOp) {
        const k = c.index - c.op.at('carriedOut');
        if (k >= 0 && k < c.op.shape.carried) fwd.push(c.op.inId(c.op.at('carriedIn', k)));
      }
    }
  }
  return new Set([...toLoss].filter((t) => fromWanted.has(t)));
}

/** Walk from a tensor without gradient towards the loss to the op that broke the chain. */
function findCulprit(graph: Graph, id: string, onPath: Set<string>, gradOf: Map<string, string>, dropped: Map<string, Op>): string {
  const seen = new Set<string>();
  const stack = [id];
  while (stack.length) {
    const t = stack.pop()!;
    if (seen.has(t)) continue;
    seen.add(t);
    const d = dropped.get(t);
    if (d) {
      const idx = d.inputs.indexOf(t);
      const none = d.getGradOps().length === 0;
      return none
        ? `op '${d.name}' (${fmtOpid(d.opid)}) has no grad ops`
        : `op '${d.name}' (${fmtOpid(d.opid)}) gives no gradient for its input ${idx} '${t}' (gradOutToNonGradIn() never maps to ${idx})`;
    }
    for (const c of graph.tensor(t).consumers) for (const o of c.op.outputs) if (onPath.has(o) && !gradOf.has(o)) stack.push(o);
  }
  return 'no op on its path produced one';
}
