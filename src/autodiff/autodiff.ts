/**
 * The autodiff transform, with PopART's semantics. Starting from the loss's
 * gradient (a constant 1), an op's grad ops are grown once every output of
 * it that lies on the path to the loss has its full gradient; a tensor with
 * several consumers gets the Sum of its edge gradients; gradient tensors are
 * named Gradient___<tensor> so they can be anchored.
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
import { fmtInfo, sameInfo } from '../ir/tensorinfo.js';
import { SumOp } from '../ops/sum.js';

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

  const gradOf = new Map<string, string>();
  const edges = new Map<string, string[]>();
  const expected = new Map<string, number>();
  for (const id of onPath) {
    expected.set(id, graph.tensor(id).consumers.filter((c) => c.op.outputs.some((o) => onPath.has(o))).length);
  }
  const grown = new Set<Op>();
  const gradOps: Op[] = [];
  // Why a tensor on the path got no gradient: the op that produced no edge for it.
  const dropped = new Map<string, Op>();

  const seed = gradName(loss);
  graph.addTensor(seed, lossT.info, 'constant', { data: new Float32Array([1]), isGradient: true });
  gradOf.set(loss, seed);
  const ready: string[] = [loss];

  const complete = (id: string): void => {
    const list = edges.get(id) ?? [];
    let g: string;
    if (list.length === 1) g = list[0];
    else {
      g = graph.uniqueTensorId(gradName(id));
      const sum = new SumOp({ name: `GradSum(${id})`, loc: graph.tensor(id).producer?.settings.loc });
      graph.addOp(sum, list, [g], { isGradient: true });
      gradOps.push(sum);
    }
    gradOf.set(id, g);
    ready.push(id);
  };

  while (ready.length > 0) {
    const id = ready.shift()!;
    const producer = graph.tensor(id).producer;
    if (!producer || grown.has(producer)) continue;
    if (!producer.outputs.every((o) => !onPath.has(o) || gradOf.has(o))) continue;
    grown.add(producer);
    const provided = new Set<number>();
    for (const gop of producer.getGradOps()) {
      growGradOp(graph, producer, gop, gradOf, onPath, edges, expected, provided, complete);
      gradOps.push(gop);
    }
    for (const [i, inId] of producer.inputs.entries()) {
      if (inId !== '' && onPath.has(inId) && !provided.has(i) && !dropped.has(inId)) dropped.set(inId, producer);
    }
  }

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

function growGradOp(
  graph: Graph,
  fwd: Op,
  gop: GradOp,
  gradOf: Map<string, string>,
  onPath: Set<string>,
  edges: Map<string, string[]>,
  expected: Map<string, number>,
  provided: Set<number>,
  complete: (id: string) => void,
): void {
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
    outputs.push(graph.uniqueTensorId(many || !onPath.has(target) ? `${gradName(target)}__${gop.name}` : gradName(target)));
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
    const list = edges.get(target) ?? [];
    list.push(outputs[o]);
    edges.set(target, list);
    if (list.length === expected.get(target)) complete(target);
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

/** Tensors that lead to the loss and depend on something whose gradient is wanted. */
function tensorsOnPath(graph: Graph, loss: string, wanted: Set<string>): Set<string> {
  const toLoss = new Set<string>();
  const stack = [loss];
  while (stack.length) {
    const id = stack.pop()!;
    if (toLoss.has(id)) continue;
    toLoss.add(id);
    const p = graph.tensor(id).producer;
    if (p) stack.push(...p.inputs.filter((i) => i !== ''));
  }
  const fromWanted = new Set<string>();
  const fwd = [...wanted].filter((w) => graph.hasTensor(w));
  while (fwd.length) {
    const id = fwd.pop()!;
    if (fromWanted.has(id)) continue;
    fromWanted.add(id);
    for (const c of graph.tensor(id).consumers) fwd.push(...c.op.outputs);
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
