/**
 * The gradient of a counted Loop, as PopART's LoopGradOp: a Loop of as many
 * passes whose body is the backward pass of the forward body (a Scope over
 * its ops), run last pass first.
 *
 * - Carried by the LoopGrad: the gradient of each carried value (at first
 *   that of the Loop's final output, zero if none; what each pass gives for
 *   the body's carried input becomes the next pass's gradient of its carried
 *   output; at the end, the initial value's gradient), and for each outer
 *   tensor the body reads, the sum of its gradients over the passes.
 * - Each forward value a grad op reads is stashed by the forward body
 *   (LoopStash, one slot per pass) and read back by the grad body
 *   (LoopRestore, slot trip - 1 - pass); so is each scan output's gradient,
 *   laid out like the scan first (LoopRelayout, once, before the LoopGrad).
 *   The grad ops read the restored copies.
 *
 * A loop whose passes depend on data (a condition computed at run time) has
 * no gradient here: PopART's LoopGrad replays the forward's pass count, which
 * tilesim's counted repeat cannot take from the device.
 */
import { UserError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { gradName } from '../ir/tensor.js';
import { nelms } from '../ir/tensorinfo.js';
import { AddOp } from '../ops/add.js';
import { LoopGradOp, LoopRelayoutOp, LoopRestoreOp, LoopStartOp, LoopStashOp, type LoopOp } from '../ops/control-flow.js';
import { SumOp } from '../ops/sum.js';
import { addEdge, grow, newScope, type Autodiff, type Scope } from './autodiff.js';

/** The op of `loop`'s region (at any depth) that makes `id`, as seen from the loop's body: the body's own op, or the nested If holding it. */
function bodyOwner(graph: Graph, id: string, loop: Op): Op | undefined {
  for (let p = graph.tensor(id).producer; p; ) {
    const r = graph.regions.get(p);
    if (!r) return undefined;
    if (r.owner === loop) return p;
    p = r.owner;
  }
  return undefined;
}

export function growLoopGrad(ad: Autodiff, outer: Scope, fwd: LoopOp, provided: Set<number>): void {
  const { graph, onPath } = ad;
  const { trip, carried, scans, dynamic } = fwd.shape;
  // Tensors outside the body are on the enclosing scope's path; the body's own on the whole graph's.
  const outerPath = outer.onPath;
  const where = `op '${fwd.name}' (Loop)`;
  if (dynamic)
    throw new UserError(
      `${where}: training through a Loop whose passes depend on data (a condition computed at run time) is not supported: ` +
        "its LoopGrad would have to replay the forward's pass count; give it a trip count M and a condition that stays true, or keep it off the path to the loss",
      fwd.settings.loc,
    );
  if (trip === 0) throw new UserError(`${where}: training through a Loop of zero passes is not supported (its outputs are its initial values: use those)`, fwd.settings.loc);
  const name = `LoopGrad(${fwd.name})`;
  const fresh = (base: string) => graph.uniqueTensorId(`${name}/${base}`);
  const zeros = (like: string): string => {
    const info = graph.tensor(like).info;
    const id = fresh(`zero(${like})`);
    graph.addTensor(id, info, 'constant', { data: new Float32Array(nelms(info.shape)), isGradient: true });
    return id;
  };
  const int = (base: string, v: number): string => {
    const id = fresh(base);
    graph.addTensor(id, { dtype: 'int32', shape: [] }, 'constant', { data: Int32Array.of(v) });
    return id;
  };
  const iterFwd = fwd.inId(fwd.at('iter'));
  const carriedIn = Array.from({ length: carried }, (_, k) => fwd.inId(fwd.at('carriedIn', k)));
  const carriedOut = Array.from({ length: carried }, (_, k) => fwd.inId(fwd.at('carriedOut', k)));
  const initial = Array.from({ length: carried }, (_, k) => fwd.inId(fwd.at('initial', k)));
  const outerStart = fwd.at(dynamic ? 'condInit' : 'one') + 1;
  // Everything but the initial values and the outer tensors is the loop's own.
  for (let i = 0; i < fwd.inputs.length; i++) if (i < fwd.at('initial') || (i >= fwd.at('zero') && i < outerStart)) provided.add(i);

  const K = carriedIn.flatMap((t, k) => (onPath.has(t) ? [k] : []));
  const X = [...new Set(fwd.inputs.slice(outerStart))].filter((id) => outerPath.has(id) && !bodyOwner(graph, id, fwd));
  if (K.length === 0 && X.length === 0) return;

  const region: Op[] = [];
  const add = (op: Op, inputs: string[], outputs: string[]): Op => {
    graph.addOp(op, inputs, outputs, { isGradient: true });
    region.push(op);
    return op;
  };
  // The grad body's inputs: pass number, condition, the carried gradients and sums.
  const start = new LoopStartOp({ name: `${name}/start`, loc: fwd.settings.loc });
  const inits = [...K.map((k) => outer.gradOf.get(fwd.outId(k)) ?? zeros(carriedIn[k])), ...X.map(zeros)];
  const startOuts = [fresh('pass'), fresh('cond'), ...K.map((k) => fresh(`dcarried${k}`)), ...X.map((x) => fresh(`dsum(${x})`))];
  add(start, inits, startOuts);
  const [pass, , ...gIn] = startOuts;
  const restore = (stacked: string, base: string): string => {
    const out = fresh(base);
    add(new LoopRestoreOp({ name: `${name}/restore(${base})`, loc: fwd.settings.loc }), [stacked, pass], [out]);
    return out;
  };

  const seeds: [string, string][] = [];
  K.forEach((k, j) => {
    if (onPath.has(carriedOut[k])) seeds.push([carriedOut[k], gIn[j]]);
  });
  for (let s = 0; s < scans; s++) {
    const g = outer.gradOf.get(fwd.outId(carried + s));
    const v = fwd.inId(fwd.at('scan', s));
    if (g === undefined || !onPath.has(v)) continue;
    // Laid out like the scan output (each slot where its pass's value lives) once, outside the LoopGrad.
    const aligned = fresh(`dscan${s}`);
    graph.addOp(new LoopRelayoutOp({ name: `${name}/relayout(dscan${s})`, loc: fwd.settings.loc }), [g, fwd.outId(carried + s)], [aligned], { isGradient: true });
    outer.gradOps.push(graph.tensor(aligned).producer!);
    seeds.push([v, restore(aligned, `dscan${s}`)]);
  }
  const inBody = (op: Op) => graph.regions.get(op)?.owner === fwd && !(op instanceof LoopStartOp);
  const scope = newScope(ad, inBody, name, seeds.map(([t]) => t));
  for (const [t] of seeds) scope.expected.set(t, (scope.expected.get(t) ?? 0) + 1);
  for (const [t, g] of seeds) addEdge(ad, scope, t, g);
  grow(ad, scope);
  const gradOf = (t: string, what: string): string | undefined => {
    const g = scope.gradOf.get(t);
    if (g !== undefined || (scope.expected.get(t) ?? 0) === 0) return g;
    throw new UserError(`${where}: ${what} '${t}' gets no gradient through the loop body (an op of the body on its path has no grad op for it)`, fwd.settings.loc);
  };

  // The forward values the grad ops read: stashed per pass by the forward body, restored per pass here.
  const restored = new Map<string, string>();
  for (const op of scope.gradOps) {
    op.inputs.forEach((id, i) => {
      if (id === '') return;
      const owner = bodyOwner(graph, id, fwd);
      if (!owner) return;
      let r = restored.get(id);
      if (r === undefined) {
        const stash = new LoopStashOp({ name: `${fwd.name}/stash(${id})`, loc: fwd.settings.loc }, trip);
        const stacked = fresh(`stash(${id})`);
        // A value made in a nested If's branch: stashed after the If (whose branch ops the schedule puts just before it).
        graph.addOp(stash, [id, iterFwd, ...(owner.outputs.includes(id) ? [] : [owner.outId(0)])], [stacked]);
        graph.regions.set(stash, { owner: fwd, branch: 0 });
        // The Loop reads the stash too, so the schedule puts the stash in its body, before it.
        graph.appendInput(fwd, stacked);
        r = restore(stacked, id);
        restored.set(id, r);
      }
      graph.rewire(op, i, r);
    });
  }

  // Each pass: the carried gradients for the pass before, the sums grown by this pass's gradients.
  const gOut = K.map((k) => gradOf(carriedIn[k], `its carried input`) ?? zeros(carriedIn[k]));
  const sums = X.map((x, j) => {
    const g = gradOf(x, 'outer tensor');
    if (g === undefined) return gIn[K.length + j];
    const out = fresh(`sum(${x})`);
    add(new AddOp({ name: `${name}/sum(${x})`, loc: fwd.settings.loc }), [gIn[K.length + j], g], [out]);
    return out;
  });
  const inner = [...scope.gradOps, ...region];
  const made = new Set(inner.flatMap((o) => o.outputs));
  const reads = [...new Set(inner.flatMap((o) => o.inputs))].filter((id) => id !== '' && !made.has(id) && !inits.includes(id));
  const shape = { trip, carried: K.length + X.length, scans: 0, outer: reads.length, dynamic: false };
  const op = new LoopGradOp(fwd, shape);
  // One edge per distinct tensor (the Loop counts once among its readers): an initial value also read as an outer tensor gets the sum.
  const targets = [...K.map((k) => (outerPath.has(initial[k]) ? initial[k] : '')), ...X];
  const count = new Map<string, number>();
  for (const t of targets) if (t !== '') count.set(t, (count.get(t) ?? 0) + 1);
  const finalName = (t: string): string => {
    const edge = (outer.expected.get(t) ?? 0) > 1 || outer.branch !== undefined;
    return graph.uniqueTensorId(edge ? `${gradName(t)}__${op.name}` : gradName(t));
  };
  const outputs = targets.map((t, j) => (t !== '' && count.get(t) === 1 ? finalName(t) : fresh(j < K.length ? `dinitial${K[j]}` : `d(${t})`)));
  graph.addOp(op, [pass, startOuts[1], ...gIn, ...gOut, ...sums, ...inits, int('zero', 0), int('one', 1), ...reads], outputs, { isGradient: true });
  for (const o of inner) if (!graph.regions.has(o)) graph.regions.set(o, { owner: op, branch: 0 });
  outer.gradOps.push(...inner, op);

  const parts = new Map<string, string[]>();
  targets.forEach((t, j) => {
    if (t !== '') parts.set(t, [...(parts.get(t) ?? []), outputs[j]]);
  });
  for (const [t, list] of parts) {
    let g = list[0];
    if (list.length > 1) {
      g = finalName(t);
      graph.addOp(new SumOp({ name: `${name}/GradSum(${t})`, loc: fwd.settings.loc }), list, [g], { isGradient: true });
      outer.gradOps.push(graph.tensor(g).producer!);
    }
    fwd.inputs.forEach((id, i) => {
      if (id === t) provided.add(i);
    });
    addEdge(ad, outer, t, g);
  }
}
