/**
 * Building the IR Graph from a graph declaration (model.graph in YAML; ONNX
 * import will produce the same declaration): inputs become streamed
 * tensors, initializers variables or constants, nodes ops found in the
 * registry at the opset in force.
 *
 * In an inference build (`inference: true`) nothing trains the weights, so
 * ops may read any initializer at compile time (Graph.frozenWeights): a Pow
 * exponent or a Clip bound stored as a float initializer works as one from a
 * Constant node. Float initializers stay variables on the device, so an
 * InferenceSession's writeWeights still reaches them; folding reads only
 * constants, so it never bakes a weight that can be rewritten. An op whose inputs are
 * all constants is folded (src/model/fold.ts): evaluated once here and
 * replaced by constants, and the constants folding leaves unread are dropped.
 */
import type { GraphDecl, NodeDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import { Graph } from '../ir/graph.js';
import type { Tensor } from '../ir/tensor.js';
import { normDomain, ONNX_DOMAIN } from '../ir/opid.js';
import { checkAttributes, type OpRegistry } from '../ir/registry.js';
import { initializerData } from './data.js';
import { evaluateConstantElementwise, evaluateConstantOp } from './fold.js';
import { addControlFlowNode } from './control-flow.js';

export interface BuildOptions {
  /** Nothing trains the weights (an inference run): ops may read any initializer at compile time (Graph.frozenWeights). */
  inference?: boolean;
  /** Fold ops whose inputs are all constants (default true). */
  fold?: boolean;
}

/** `t.data` made by `make` the first time it is read (then kept); assigning it replaces it. */
function madeOnRead(t: Tensor, make: () => Float32Array | Int32Array): void {
  let data: Float32Array | Int32Array | undefined;
  Object.defineProperty(t, 'data', {
    enumerable: true,
    configurable: true,
    get: () => (data ??= make()),
    set: (v: Float32Array | Int32Array | undefined) => {
      Object.defineProperty(t, 'data', { value: v, writable: true, enumerable: true, configurable: true });
    },
  });
}

export function buildGraph(decl: GraphDecl, registry: OpRegistry, opts: BuildOptions = {}): Graph {
  const g = new Graph();
  g.frozenWeights = opts.inference === true;
  for (const i of decl.inputs) g.addTensor(i.name, { dtype: i.dtype, shape: i.shape }, 'stream');
  for (const w of decl.initializers) {
    const make = () => initializerData(w.init, w.shape, w.dtype, `initializer '${w.name}'`, w.loc);
    // Generated values (random or constant fills) are made when first read: a timing-only run of a
    // whole model never reads them (BERT-base's 110M random weights took most of its compile).
    // Data given in the config or a file is read now, so its mistakes are reported at once.
    const generated = w.init.kind === 'normal' || w.init.kind === 'uniform' || w.init.kind === 'constant';
    const t = g.addTensor(w.name, { dtype: w.dtype, shape: w.shape }, w.trainable ? 'variable' : 'constant', { data: generated ? undefined : make(), trainable: w.trainable });
    if (generated) madeOnRead(t, make);
  }
  /** Constants made while building (composites, folding): dropped at the end when nothing reads them. */
  const made = new Set<string>();
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
    if (n.subgraphs) {
      // If and Loop: their subgraphs' nodes join this graph as a region (src/model/control-flow.ts).
      if (depth > 64) throw new UserError(`node '${n.name}' (${n.op}): control flow nested too deep`, n.loc);
      addControlFlowNode(n, def, { graph: g, addNode: (sub) => addNode(sub, depth + 1), fresh });
      return;
    }
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
      // In an inference build every initializer is a constant to the composite too (a Resize's scales).
      const inputData = n.inputs.map((id) => (id === '' ? undefined : g.compileTimeData(id)));
      const ex = def.expand({ node: n, attributes, inputInfos, inputData, fresh });
      if (ex) {
        for (const c of ex.constants ?? []) {
          g.addTensor(c.name, { dtype: c.dtype, shape: c.shape }, 'constant', { data: c.data });
          made.add(c.name);
        }
        for (const sub of ex.nodes) addNode({ ...sub, loc: sub.loc ?? n.loc, ...(n.ipu !== undefined ? { ipu: sub.ipu ?? n.ipu } : {}), ...(n.pipelineStage !== undefined ? { pipelineStage: sub.pipelineStage ?? n.pipelineStage } : {}) }, depth + 1);
        return;
      }
    }
    if (!def.create) throw new UserError(`node '${n.name}': ${n.op} is a grad op; it cannot be written in a graph`, n.loc);
    const folded = opts.fold === false ? undefined : evaluateConstantElementwise(g, n, attributes);
    if (folded) {
      g.addTensor(n.outputs[0], folded.info, 'constant', { data: folded.data });
      made.add(n.outputs[0]);
      return;
    }
    const op = def.create({ attributes, settings: { name: n.name, loc: n.loc, ...(n.ipu !== undefined ? { ipu: n.ipu } : {}), ...(n.pipelineStage !== undefined ? { pipelineStage: n.pipelineStage } : {}), ...(n.onnxForm ? { onnxForm: n.onnxForm } : {}) } });
    g.addOp(op, n.inputs, n.outputs);
    const values = opts.fold === false ? undefined : evaluateConstantOp(op, attributes);
    if (values) {
      const infos = n.outputs.map((_, i) => op.outInfo(i));
      g.removeOp(op);
      n.outputs.forEach((id, i) => {
        g.addTensor(id, infos[i], 'constant', { data: values[i] });
        made.add(id);
      });
    }
  };
  for (const n of decl.nodes) addNode(n, 0);
  // Drop what folding made and nothing reads (a Shape feeding only a folded Concat), in reverse order of making.
  const outputs = new Set(decl.outputs);
  for (const id of [...made].reverse()) if (g.hasTensor(id) && g.tensor(id).consumers.length === 0 && !outputs.has(id)) g.removeTensor(id);
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
