/**
 * The gradient of an If, as PopART's IfGradOp: an If on the same condition
 * whose then-branch holds the grad ops of the forward's then-branch and whose
 * else-branch those of its else-branch. Each branch is a backward pass of its
 * own (a Scope over the branch's ops) seeded with the gradients of the If's
 * outputs at the branch's outputs; it ends with the gradient of each outer
 * tensor the If reads (zero when the branch does not read it), which the
 * IfGrad copies into its outputs. Only the branch taken runs, so a gradient
 * never reads the stale tensors of the branch that did not run.
 */
import type { Graph } from '../ir/graph.js';
import type { Op } from '../ir/op.js';
import { gradName } from '../ir/tensor.js';
import { nelms } from '../ir/tensorinfo.js';
import { IfGradOp, type IfOp } from '../ops/control-flow.js';
import { addEdge, grow, newScope, type Autodiff, type Scope } from './autodiff.js';

/** Whether tensor `id` is made inside `owner`'s branches (nested regions included). */
function madeInside(graph: Graph, id: string, owner: Op): boolean {
  for (let p = graph.tensor(id).producer; p; ) {
    const r = graph.regions.get(p);
    if (!r) return false;
    if (r.owner === owner) return true;
    p = r.owner;
  }
  return false;
}

/** Grow the IfGrad of `fwd` in scope `outer` (every output of `fwd` on the path has its gradient there). */
export function growIfGrad(ad: Autodiff, outer: Scope, fwd: IfOp, provided: Set<number>): void {
  const { graph } = ad;
  const onPath = outer.onPath;
  const n = fwd.numOutputs;
  // The branch outputs are the branches' own: their gradients stay inside.
  for (let i = 1; i <= 2 * n; i++) provided.add(i);
  const targets = [...new Set(fwd.inputs.slice(1))].filter((id) => id !== '' && onPath.has(id) && !madeInside(graph, id, fwd));
  if (targets.length === 0) return;

  const found: string[][] = [];
  const ops: Op[][] = [];
  const complete = targets.map(() => true);
  for (const branch of [0, 1]) {
    // Output k of the branch takes the gradient of the If's output k (an output named twice takes both).
    const seeds: [string, string][] = [];
    for (let k = 0; k < n; k++) {
      const g = outer.gradOf.get(fwd.outId(k));
      const o = fwd.inId(1 + branch * n + k);
      if (g !== undefined && ad.onPath.has(o)) seeds.push([o, g]);
    }
    const scope = newScope(
      ad,
      (op) => {
        const r = graph.regions.get(op);
        return r?.owner === fwd && r.branch === branch;
      },
      `${fwd.name}/${branch === 0 ? 'then' : 'else'}`,
      seeds.map(([o]) => o),
    );
    for (const [o] of seeds) scope.expected.set(o, (scope.expected.get(o) ?? 0) + 1);
    for (const [o, g] of seeds) addEdge(ad, scope, o, g);
    grow(ad, scope);
    found.push(
      targets.map((x, i) => {
        const g = scope.gradOf.get(x);
        if (g !== undefined) return g;
        // A branch that does not read x differentiably gives it zero; one whose readers dropped it gives none.
        if ((scope.expected.get(x) ?? 0) > 0) complete[i] = false;
        return '';
      }),
    );
    ops.push(scope.gradOps);
  }
  const kept = targets.flatMap((x, i) => (complete[i] ? [i] : []));
  if (kept.length === 0) return;

  const op = new IfGradOp(fwd, kept.length);
  const zero = (x: string): string => {
    const info = graph.tensor(x).info;
    const id = graph.uniqueTensorId(`${op.name}/zero(${x})`);
    graph.addTensor(id, info, 'constant', { data: new Float32Array(nelms(info.shape)), isGradient: true });
    return id;
  };
  const branchGrads = found.map((list) => kept.map((i) => list[i] || zero(targets[i])));
  // Every outer tensor the grad branches read is an input, so nothing overwrites it before the switch runs.
  const inner = ops.flat();
  const made = new Set(inner.flatMap((o) => o.outputs));
  const reads = [...new Set(inner.flatMap((o) => o.inputs))].filter((id) => id !== '' && !made.has(id));
  const outputs = kept.map((i) => {
    const x = targets[i];
    const edge = (outer.expected.get(x) ?? 0) > 1 || outer.branch !== undefined;
    return graph.uniqueTensorId(edge ? `${gradName(x)}__${op.name}` : gradName(x));
  });
  graph.addOp(op, [fwd.inId(0), ...branchGrads[0], ...branchGrads[1], ...reads], outputs, { isGradient: true });
  ops.forEach((list, branch) => {
    for (const o of list) if (!graph.regions.has(o)) graph.regions.set(o, { owner: op, branch });
  });
  outer.gradOps.push(...inner, op);
  kept.forEach((i, j) => {
    const x = targets[i];
    fwd.inputs.forEach((id, k) => {
      if (id === x) provided.add(k);
    });
    addEdge(ad, outer, x, outputs[j]);
  });
}
