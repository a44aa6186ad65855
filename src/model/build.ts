/**
 * Building the IR Graph from a graph declaration (model.graph in YAML; ONNX
 * import will produce the same declaration): inputs become streamed
 * tensors, initializers variables or constants, nodes ops found in the
 * registry at the opset in force.
 */
import type { GraphDecl, NodeDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import { Graph } from '../ir/graph.js';
import { normDomain, ONNX_DOMAIN } from '../ir/opid.js';
import { checkAttributes, type OpRegistry } from '../ir/registry.js';
import { initializerData } from './data.js';

export function buildGraph(decl: GraphDecl, registry: OpRegistry): Graph {
  const g = new Graph();
  for (const i of decl.inputs) g.addTensor(i.name, { dtype: i.dtype, shape: i.shape }, 'stream');
  for (const w of decl.initializers) {
    const data = initializerData(w.init, w.shape, w.dtype, `initializer '${w.name}'`, w.loc);
    g.addTensor(w.name, { dtype: w.dtype, shape: w.shape }, w.trainable ? 'variable' : 'constant', { data, trainable: w.trainable });
  }
  const fresh = (base: string): string => {
    let name = g.uniqueTensorId(base);
    while (usedNames.has(name)) name = g.uniqueTensorId(`${name}_`);
    usedNames.add(name);
    return name;
  };
  const usedNames = new Set<string>();
  const addNode = (n: NodeDecl, depth: number): void => {
    const domain = normDomain(n.domain);
    const version = n.version ?? (domain === ONNX_DOMAIN ? decl.opset : Number.MAX_SAFE_INTEGER);
    const def = registry.resolve(domain, n.op, version, n.loc);
    checkArity(def.inputs, n.inputs.length, 'inputs', n.name, n.op, n.loc);
    checkArity(def.outputs, n.outputs.length, 'outputs', n.name, n.op, n.loc);
    const attributes = checkAttributes(def, n.attributes, n.name, n.loc);
    for (const id of n.inputs) {
      if (id !== '' && !g.hasTensor(id)) throw new UserError(`node '${n.name}' (${n.op}): input '${id}' is not defined before this node`, n.loc);
    }
    if (def.expand) {
      // A composite: add its constants, then its simpler nodes in its place.
      if (depth > 8) throw new UserError(`node '${n.name}' (${n.op}): composite expansion does not terminate`, n.loc);
      const inputInfos = n.inputs.map((id) => (id === '' ? undefined : g.tensor(id).info));
      const ex = def.expand({ node: n, attributes, inputInfos, fresh });
      for (const c of ex.constants ?? []) g.addTensor(c.name, { dtype: c.dtype, shape: c.shape }, 'constant', { data: c.data });
      for (const sub of ex.nodes) addNode({ ...sub, loc: sub.loc ?? n.loc }, depth + 1);
      return;
    }
    if (!def.create) throw new UserError(`node '${n.name}': ${n.op} is a grad op; it cannot be written in a graph`, n.loc);
    const op = def.create({ attributes, settings: { name: n.name, loc: n.loc } });
    g.addOp(op, n.inputs, n.outputs);
  };
  for (const n of decl.nodes) addNode(n, 0);
  for (const o of decl.outputs) if (!g.hasTensor(o)) throw new UserError(`graph output '${o}' is not produced by any node`);
  return g;
}

function checkArity(
  defs: { name: string; optional?: boolean; variadic?: boolean }[] | undefined,
  count: number,
  what: string,
  node: string,
  op: string,
  loc: GraphDecl['nodes'][number]['loc'],
): void {
  if (!defs) return;
  const min = defs.filter((d) => !d.optional).length;
  const variadic = defs.some((d) => d.variadic);
  const max = variadic ? Infinity : defs.length;
  if (count < min || count > max) {
    const names = defs.map((d) => d.name + (d.optional ? '?' : '') + (d.variadic ? '...' : '')).join(', ');
    throw new UserError(`node '${node}' (${op}) takes ${min === max ? min : `${min} to ${max === Infinity ? 'any number of' : max}`} ${what} (${names}), got ${count}`, loc);
  }
}
