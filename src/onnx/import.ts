/**
 * ONNX import: ModelProto bytes -> GraphDecl, the structure a YAML
 * `model.graph` also produces, so both are built by src/model/build.ts.
 *
 * Two steps, because the config loader is synchronous and the op registry
 * (custom-op modules) is not:
 *
 * - parseOnnx(bytes): structure, no registry. Float initializers become
 *   trainable variables, integer ones constants; an initializer also listed as
 *   a graph input is an initializer; the other graph inputs are streamed
 *   inputs and need concrete shapes. Constant nodes, and ConstantOfShape nodes
 *   whose shape is a constant, are folded into constant initializers. Nodes of
 *   older opsets are upgraded to their opset-18 form where tilesim knows how
 *   (src/onnx/versions.ts).
 * - checkOnnxGraph(decl, registry): every node's op must resolve in the
 *   registry at its version with the node's attributes; the first problem is
 *   a UserError naming the node, its op type and domain, and listing what is
 *   supported.
 *
 * importOnnx() does both.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type onnxProto from 'onnx-proto';
import { AttributeType, codeName, onnxSchema } from './proto.js';
import { displayPath } from '../config/schema.js';
import type { AttributeValue, DTypeName, GraphDecl, GraphTensorDecl, InitializerDecl, NodeDecl, SourceLocation, SubgraphDecl } from '../config/types.js';
import { UserError } from '../errors.js';
import { normDomain, ONNX_DOMAIN, opidKey } from '../ir/opid.js';
import { checkAttributes, type OpDefinition, type OpRegistry } from '../ir/registry.js';
import {
  DataType,
  decodeTensor,
  elemTypeName,
  int64ToNumber,
  SUPPORTED_ELEM_TYPES,
  SUPPORTED_ELEM_TYPES_TEXT,
  TensorDecodeError,
  toInt32,
  type HostTensor,
} from './tensor.js';
import { takeIpuAttribute } from '../shard/ipu-attribute.js';
import { downgradeProblem, MAX_KNOWN_OPSET, schemaVersion, upgradeNode, type UpgradeContext } from './versions.js';


export interface OnnxParseOptions {
  /** The model file: names it in messages, and anchors external tensor data. */
  file?: string;
  /** Where the model was named (the config's model.onnx), for error locations. */
  loc?: SourceLocation;
}

export interface OnnxModelInfo {
  irVersion: number;
  producer: string;
  graphName: string;
  /** Opset per domain ('ai.onnx' for the default domain). */
  opsets: Record<string, number>;
  /** ONNX element type of each graph input and output, as the model declares it (0 when it does not). */
  inputTypes: Record<string, number>;
  outputTypes: Record<string, number>;
  /** Nodes folded into constants (Constant, ConstantOfShape). */
  folded: number;
}

export interface OnnxImport {
  graph: GraphDecl;
  info: OnnxModelInfo;
}

/** A name for the model in messages. */
function labelOf(opts: OnnxParseOptions): string {
  return opts.file ? displayPath(opts.file) : '<ONNX model>';
}

function nodeWhat(name: string, op: string, domain: string): string {
  return `node '${name}' (op type ${op}, domain ${normDomain(domain)})`;
}

/** Read and parse an ONNX file; a missing or unreadable file, or one that is not ONNX, is a UserError. */
export function readOnnxFile(file: string, opts: Omit<OnnxParseOptions, 'file'> = {}): OnnxImport {
  const abs = path.resolve(file);
  const label = displayPath(abs);
  let bytes: Buffer;
  try {
    if (statSync(abs).isDirectory()) throw new UserError(`ONNX model ${label} is a directory, not a file`, opts.loc);
    bytes = readFileSync(abs);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(code === 'ENOENT' ? `ONNX model not found: ${label}` : `cannot read ONNX model ${label}: ${code ?? (e as Error).message}`, opts.loc);
  }
  return parseOnnx(bytes, { ...opts, file: abs });
}

/** parseOnnx + checkOnnxGraph. */
export function importOnnx(bytes: Uint8Array, opts: OnnxParseOptions & { registry: OpRegistry }): OnnxImport {
  const r = parseOnnx(bytes, opts);
  checkOnnxGraph(r.graph, opts.registry);
  return r;
}

function utf8(b: Uint8Array | null | undefined): string {
  return b ? new TextDecoder().decode(b) : '';
}

const ATTR = AttributeType;

/** The attribute's type, inferred from what is set when the model leaves `type` out (old exporters). */
function attrType(a: onnxProto.onnx.IAttributeProto): number {
  if (a.type) return a.type;
  if (a.floats?.length) return ATTR.FLOATS;
  if (a.ints?.length) return ATTR.INTS;
  if (a.strings?.length) return ATTR.STRINGS;
  if (a.t) return ATTR.TENSOR;
  if (a.g) return ATTR.GRAPH;
  if (a.s?.length) return ATTR.STRING;
  if (a.i !== undefined && a.i !== null && int64ToNumber(a.i) !== 0) return ATTR.INT;
  return ATTR.FLOAT;
}

function attrTypeName(t: number): string {
  return codeName(ATTR, t) ?? `type ${t}`;
}

/** Parse ModelProto bytes into a GraphDecl, without the op registry. Throws UserError. */
export function parseOnnx(bytes: Uint8Array, opts: OnnxParseOptions = {}): OnnxImport {
  const label = labelOf(opts);
  const loc: SourceLocation = opts.loc ?? { file: label, line: 1, col: 1 };
  const fail = (message: string): never => {
    throw new UserError(`${label}: ${message}`, opts.loc);
  };
  const baseDir = opts.file ? path.dirname(opts.file) : undefined;
  const decode = (t: onnxProto.onnx.ITensorProto, what: string): HostTensor => {
    try {
      return decodeTensor(t, what, baseDir);
    } catch (e) {
      if (e instanceof TensorDecodeError) return fail(e.message);
      throw e;
    }
  };

  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnxSchema().ModelProto.decode(bytes);
  } catch (e) {
    return fail(`not a valid ONNX model (ModelProto): ${(e as Error).message}`);
  }
  // Decoded messages are class instances: repeated fields are arrays, never null.
  const g = model.graph as onnxProto.onnx.GraphProto | null;
  if (!g || !model.irVersion) return fail('not a valid ONNX model: it has no ' + (g ? 'ir_version' : 'graph'));

  // Opsets per domain.
  const opsets: Record<string, number> = {};
  for (const o of model.opsetImport) opsets[normDomain(o.domain ?? '')] = int64ToNumber(o.version);
  const hasDefaultNodes = g.node.some((n) => normDomain(n.domain ?? '') === ONNX_DOMAIN);
  if (hasDefaultNodes && opsets[ONNX_DOMAIN] === undefined) fail('the model imports no opset for the default domain (ai.onnx)');
  const opset = opsets[ONNX_DOMAIN] ?? 18;
  if (hasDefaultNodes && opset > MAX_KNOWN_OPSET)
    fail(`the model's default-domain opset ${opset} is newer than tilesim knows (up to ${MAX_KNOWN_OPSET}); re-export it at opset ${MAX_KNOWN_OPSET} or older (opsets 11 to 18 are the best supported)`);

  const taken = new Set<string>();
  /** Every tensor: where it came from, for duplicate checks. */
  const defined = new Map<string, string>();
  const define = (name: string, what: string) => {
    if (!name) fail(`${what} has an empty name`);
    const prev = defined.get(name);
    if (prev) fail(`tensor '${name}' is defined twice: as ${what} and as ${prev}`);
    defined.set(name, what);
    taken.add(name);
  };
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
    taken.add(name);
    return name;
  };

  // Initializers (and constants folded from nodes), in order.
  /** Initializers and folded constants; `fill` (ConstantOfShape) stands for data of that one value. */
  const constants = new Map<string, HostTensor & { folded: boolean; fill?: number }>();
  if (g.sparseInitializer?.length) fail(`sparse initializers are not supported ('${g.sparseInitializer[0].values?.name ?? ''}')`);
  for (const t of g.initializer as onnxProto.onnx.TensorProto[]) {
    const name = t.name ?? '';
    define(name, `an initializer`);
    constants.set(name, { ...decode(t, `initializer '${name}'`), folded: false });
  }

  // Shapes the model states (for upgrades that depend on them).
  const shapes = new Map<string, number[]>();
  const declaredShape = (vi: onnxProto.onnx.IValueInfoProto): number[] | undefined => {
    const dims = vi.type?.tensorType?.shape?.dim;
    if (!dims) return undefined;
    const out: number[] = [];
    for (const d of dims as onnxProto.onnx.TensorShapeProto.Dimension[]) {
      if (d.value !== 'dimValue') return undefined;
      out.push(int64ToNumber(d.dimValue));
    }
    return out;
  };
  for (const vi of [...g.valueInfo, ...g.output] as onnxProto.onnx.ValueInfoProto[]) {
    const s = declaredShape(vi);
    if (s && vi.name) shapes.set(vi.name, s);
  }
  for (const [name, c] of constants) shapes.set(name, c.shape);

  // Graph inputs: streamed unless they are initializers.
  const inputTypes: Record<string, number> = {};
  const inputs: GraphTensorDecl[] = [];
  for (const vi of g.input) {
    const name = vi.name ?? '';
    const tt = vi.type?.tensorType;
    inputTypes[name] = tt?.elemType ?? 0;
    if (constants.has(name)) continue; // an initializer (listed as an input, as IR < 4 requires)
    if (!tt) fail(`graph input '${name}' is not a tensor (sequences, maps and optionals are not supported)`);
    const dtype = SUPPORTED_ELEM_TYPES[tt!.elemType ?? 0];
    if (!dtype) fail(`graph input '${name}' has element type ${elemTypeName(tt!.elemType)}, which is not supported (supported: ${SUPPORTED_ELEM_TYPES_TEXT})`);
    const dims = tt!.shape?.dim as onnxProto.onnx.TensorShapeProto.Dimension[] | undefined;
    if (!tt!.shape) fail(`graph input '${name}' has no shape; tilesim needs a concrete shape for every input (re-export the model with fixed input shapes)`);
    const shape: number[] = [];
    (dims ?? []).forEach((d, j) => {
      if (d.value === 'dimValue') {
        const v = int64ToNumber(d.dimValue);
        if (!(v >= 0)) fail(`graph input '${name}' has dimension ${j} of size ${v}; sizes must be >= 0`);
        shape.push(v);
      } else {
        const what = d.value === 'dimParam' ? `the symbolic dimension '${d.dimParam}'` : 'an unknown dimension';
        fail(
          `graph input '${name}' has ${what} at axis ${j}; tilesim needs a concrete shape for every input: ` +
            're-export the model with fixed shapes (torch.onnx.export without dynamic_axes), or fix them with ' +
            '`python -m onnxruntime.tools.make_dynamic_shape_fixed`',
        );
      }
    });
    define(name, 'a graph input');
    shapes.set(name, shape);
    inputs.push({ name, shape, dtype: dtype!, loc });
  }

  // Nodes.
  const nodes: NodeDecl[] = [];
  const nodeNames = new Set<string>();
  const consumedByFold = new Set<string>();
  let folded = 0;
  const addFolded = (name: string, t: HostTensor & { fill?: number }) => {
    constants.set(name, { ...t, folded: true });
    shapes.set(name, t.shape);
  };
  const upgradeCtx: UpgradeContext = {
    shapeOf: (name) => shapes.get(name),
    addConstant: (base, dtype, shape, values) => {
      const name = fresh(base);
      defined.set(name, 'a constant made by the importer');
      let data: Float32Array | Int32Array;
      try {
        data = dtype === 'int32' ? toInt32(values, `constant '${name}'`) : Float32Array.from(values);
      } catch (e) {
        return fail((e as Error).message);
      }
      addFolded(name, { dtype, shape, data, elemType: dtype === 'int32' ? DataType.INT64 : DataType.FLOAT });
      return name;
    },
  };

  /** Every node, subgraphs' included (for what is read). */
  const allNodes: NodeDecl[] = [];
  /** Subgraph outputs (read by their If or Loop). */
  const subgraphReads: string[] = [];
  /**
   * A graph attribute (If's branches, Loop's body): its initializers become
   * constants of the model (ONNX names are unique across subgraphs), its
   * nodes are parsed as the main graph's, reading outer tensors by name.
   */
  const parseSubgraph = (sg: onnxProto.onnx.IGraphProto, owner: string): SubgraphDecl => {
    for (const t of (sg.initializer ?? []) as onnxProto.onnx.TensorProto[]) {
      const name = t.name ?? '';
      define(name, `an initializer of a subgraph of ${owner}`);
      constants.set(name, { ...decode(t, `initializer '${name}'`), folded: true });
      shapes.set(name, constants.get(name)!.shape);
    }
    if (sg.sparseInitializer?.length) fail(`${owner}: sparse initializers are not supported`);
    const inputs = (sg.input ?? []).map((vi) => vi.name ?? '');
    for (const i of inputs) if (i) define(i, `an input of a subgraph of ${owner}`);
    const out: NodeDecl[] = [];
    ((sg.node ?? []) as onnxProto.onnx.NodeProto[]).forEach((sn, j) => parseNode(sn, j, out));
    const outputs = (sg.output ?? []).map((vi) => vi.name ?? '');
    for (const o of outputs) if (!defined.has(o)) fail(`${owner}: subgraph output '${o}' is not produced by any node, initializer or input`);
    subgraphReads.push(...outputs);
    return { inputs, nodes: out, outputs };
  };

  const parseNode = (n: onnxProto.onnx.NodeProto, index: number, into: NodeDecl[]): void => {
    const op = n.opType ?? '';
    const domain = normDomain(n.domain ?? '');
    let name = n.name || `${op}_${index}`;
    if (nodeNames.has(name)) {
      let k = 1;
      while (nodeNames.has(`${name}_${k}`)) k++;
      name = `${name}_${k}`;
    }
    nodeNames.add(name);
    const what = nodeWhat(name, op, domain);
    const isDefault = domain === ONNX_DOMAIN;

    const attributeList = n.attribute as onnxProto.onnx.AttributeProto[];
    const attrs = new Map(attributeList.map((a) => [a.name ?? '', a]));
    const outputs = [...n.output];
    while (outputs.length > 0 && outputs[outputs.length - 1] === '') outputs.pop();
    const inputsOf = [...n.input];
    while (inputsOf.length > 0 && inputsOf[inputsOf.length - 1] === '') inputsOf.pop();
    for (const t of inputsOf) if (t !== '' && !defined.has(t)) fail(`${what} reads '${t}', which is not defined before it (nodes must be in topological order)`);

    // Folding: Constant, and ConstantOfShape of a constant shape.
    if (isDefault && op === 'Constant') {
      if (outputs.length !== 1) fail(`${what} must have one output`);
      const [a, ...more] = attributeList;
      if (!a || more.length) fail(`${what} must have exactly one attribute (value, value_float, value_floats, value_int or value_ints)`);
      let t: HostTensor;
      const an = a.name ?? '';
      try {
        if (an === 'value' && a.t) t = decode(a.t, `${what}, attribute 'value'`);
        else if (an === 'value_float') t = { dtype: 'float32', shape: [], data: Float32Array.of(a.f ?? 0), elemType: DataType.FLOAT };
        else if (an === 'value_floats') t = { dtype: 'float32', shape: [a.floats.length], data: Float32Array.from(a.floats), elemType: DataType.FLOAT };
        else if (an === 'value_int') t = { dtype: 'int32', shape: [], data: toInt32([int64ToNumber(a.i)], `${what}, attribute 'value_int'`), elemType: DataType.INT64 };
        else if (an === 'value_ints')
          t = { dtype: 'int32', shape: [a.ints.length], data: toInt32(a.ints.map(int64ToNumber), `${what}, attribute 'value_ints'`), elemType: DataType.INT64 };
        else return fail(`${what}: attribute '${an}' is not supported (supported: value, value_float, value_floats, value_int, value_ints)`);
      } catch (e) {
        if (e instanceof TensorDecodeError) return fail(e.message);
        throw e;
      }
      define(outputs[0], `the output of ${what}`);
      addFolded(outputs[0], t);
      folded++;
      return;
    }
    if (isDefault && op === 'ConstantOfShape' && constants.has(inputsOf[0] ?? '')) {
      const shapeT = constants.get(inputsOf[0])!;
      if (shapeT.dtype !== 'int32' || shapeT.shape.length !== 1) fail(`${what}: its shape input '${inputsOf[0]}' must be a 1-D integer tensor`);
      const shape = shapeT.fill !== undefined ? new Array<number>(shapeT.shape.reduce((a, b) => a * b, 1)).fill(shapeT.fill) : Array.from(shapeT.data);
      if (shape.some((d) => d < 0)) fail(`${what}: negative dimension in shape [${shape.join(', ')}]`);
      const valueAttr = attrs.get('value');
      for (const an of attrs.keys()) if (an !== 'value') fail(`${what}: unknown attribute '${an}' (it takes: value)`);
      const v = valueAttr?.t ? decode(valueAttr.t, `${what}, attribute 'value'`) : undefined;
      if (v && v.data.length !== 1) fail(`${what}: attribute 'value' must hold one element, it holds ${v.data.length}`);
      const dtype: DTypeName = v?.dtype ?? 'float32';
      if (outputs.length !== 1) fail(`${what} must have one output`);
      define(outputs[0], `the output of ${what}`);
      // A fill value, not an array: weights replaced by ConstantOfShape can be large.
      addFolded(outputs[0], { dtype, shape, data: dtype === 'int32' ? new Int32Array(0) : new Float32Array(0), elemType: v?.elemType ?? DataType.FLOAT, fill: v ? v.data[0] : 0 });
      consumedByFold.add(inputsOf[0]);
      folded++;
      return;
    }

    // ConstantOfShape of a computed shape: a node, folded when the graph is built if constant folding
    // makes its shape a constant (Shape -> Slice -> ConstantOfShape); its tensor attribute becomes a number.
    let cosValue: Record<string, AttributeValue> | undefined;
    if (isDefault && op === 'ConstantOfShape') {
      for (const an of attrs.keys()) if (an !== 'value') fail(`${what}: unknown attribute '${an}' (it takes: value)`);
      const t = attrs.get('value')?.t;
      const v = t ? decode(t, `${what}, attribute 'value'`) : undefined;
      if (v && v.data.length !== 1) fail(`${what}: attribute 'value' must hold one element, it holds ${v.data.length}`);
      cosValue = { value: v ? v.data[0] : 0, value_type: v?.dtype ?? 'float32' };
    }

    // Attributes.
    const attributes: Record<string, AttributeValue> = { ...cosValue };
    const subgraphs: Record<string, SubgraphDecl> = {};
    for (const a of cosValue ? [] : attributeList) {
      const an = a.name ?? '';
      if (a.refAttrName) fail(`${what}: attribute '${an}' refers to a function attribute ('${a.refAttrName}'), which is only meaningful inside a function`);
      const t = attrType(a);
      switch (t) {
        case ATTR.FLOAT:
          attributes[an] = a.f ?? 0;
          break;
        case ATTR.INT:
          attributes[an] = int64ToNumber(a.i);
          break;
        case ATTR.STRING:
          attributes[an] = utf8(a.s);
          break;
        case ATTR.FLOATS:
          attributes[an] = [...a.floats];
          break;
        case ATTR.INTS:
          attributes[an] = a.ints.map(int64ToNumber);
          break;
        case ATTR.STRINGS:
          attributes[an] = a.strings.map(utf8);
          break;
        case ATTR.GRAPH:
          if (!a.g) fail(`${what}: graph attribute '${an}' is empty`);
          subgraphs[an] = parseSubgraph(a.g!, what);
          break;
        default:
          fail(
            `${what}: attribute '${an}' is a ${attrTypeName(t)}, which is not supported ` +
              '(attributes may be float, int, string, or lists of them; tensor values only on Constant and ConstantOfShape; graphs only on If and Loop)',
          );
      }
    }

    // Outputs: an omitted optional output in the middle gets a name nobody reads.
    const outNames = outputs.map((o, j) => (o === '' ? fresh(`${name}_unused_output_${j}`) : o));
    outNames.forEach((o) => define(o, `an output of ${what}`));

    const node: NodeDecl = { op, domain: n.domain ?? '', name, inputs: inputsOf, outputs: outNames, attributes, loc };
    takeIpuAttribute(node); // PopART's virtual graph, not an attribute of the op
    if (isDefault) {
      const up = upgradeNode(node, opset, upgradeCtx);
      if (up.schemaVersion !== undefined && !up.refused) node.version = up.schemaVersion;
      node.onnx = { file: label, opset, ...(up.schemaVersion !== undefined ? { schemaVersion: up.schemaVersion } : {}), ...(up.refused ? { upgradeRefused: up.refused } : {}) };
    } else {
      const v = opsets[domain];
      if (v === undefined) fail(`${what} is in domain '${domain}', but the model imports no opset for that domain`);
      node.version = v;
      node.onnx = { file: label, opset: v };
    }
    if (Object.keys(subgraphs).length > 0) node.subgraphs = subgraphs;
    into.push(node);
    allNodes.push(node);
  };
  (g.node as onnxProto.onnx.NodeProto[]).forEach((n, index) => parseNode(n, index, nodes));

  // Outputs.
  const outputTypes: Record<string, number> = {};
  const outputs = g.output.map((vi) => {
    const name = vi.name ?? '';
    if (!defined.has(name)) fail(`graph output '${name}' is not produced by any node, initializer or input`);
    outputTypes[name] = vi.type?.tensorType?.elemType ?? 0;
    return name;
  });
  if (outputs.length === 0) fail('the graph has no outputs');

  // Constants only folded nodes read are dropped; every other initializer is kept.
  const read = new Set<string>([...allNodes.flatMap((n) => n.inputs), ...subgraphReads, ...outputs]);
  // Statistics rather than weights: BatchNormalization's running mean and variance (inputs 3 and 4)
  // have no gradient, so they are constants unless something else reads them too. In training mode
  // they stay variables: a training run writes the running statistics into them each step.
  const statsOnly = new Set<string>();
  // Training mode: training_mode = 1 (14 on), or before 14 more than one output (ONNX-9's training form).
  const training = (n: NodeDecl) => (n.attributes.training_mode !== undefined ? n.attributes.training_mode !== 0 : n.outputs.slice(1).some((o) => o !== ''));
  for (const n of nodes) if (n.op === 'BatchNormalization' && !training(n)) for (const i of [3, 4]) if (n.inputs[i]) statsOnly.add(n.inputs[i]);
  for (const n of nodes) for (const [i, id] of n.inputs.entries()) if (statsOnly.has(id) && !(n.op === 'BatchNormalization' && !training(n) && (i === 3 || i === 4))) statsOnly.delete(id);
  const initializers: InitializerDecl[] = [];
  for (const [name, c] of constants) {
    if (!read.has(name) && (consumedByFold.has(name) || c.folded)) continue;
    const float = c.dtype !== 'int32';
    const init: InitializerDecl['init'] = c.fill !== undefined ? { kind: 'constant', value: c.fill } : { kind: 'data', data: c.data };
    initializers.push({ name, shape: c.shape, dtype: c.dtype, loc, init, trainable: float && !c.folded && !statsOnly.has(name) });
  }

  const graph: GraphDecl = { inputs, initializers, nodes, outputs, opset };
  const info: OnnxModelInfo = {
    irVersion: int64ToNumber(model.irVersion),
    producer: [model.producerName, model.producerVersion].filter(Boolean).join(' '),
    graphName: g.name ?? '',
    opsets,
    inputTypes,
    outputTypes,
    folded,
  };
  return { graph, info };
}

// ---------------------------------------------------------------------------
// Checking against the op registry

export interface UnsupportedNode {
  node: string;
  op: string;
  domain: string;
  /** 'op': no such op; 'version': no usable version; 'attributes': the node's attributes or inputs are not accepted. */
  kind: 'op' | 'version' | 'attributes';
  reason: string;
  loc: SourceLocation;
  file?: string;
}

/** Ops a node can name (not grad ops), grouped by identifier key, versions ascending. */
function nodeDefs(registry: OpRegistry): Map<string, OpDefinition[]> {
  const m = new Map<string, OpDefinition[]>();
  for (const d of registry.list()) {
    if (!d.create && !d.expand) continue;
    const k = opidKey(d.id);
    m.set(k, [...(m.get(k) ?? []), d]);
  }
  return m;
}

/** "ai.onnx: Add (14), MatMul (13); custom.ops: LeakyRelu (1)": what a graph node may use. */
export function supportedOpsText(registry: OpRegistry): string {
  const byDomain = new Map<string, string[]>();
  for (const [, defs] of nodeDefs(registry)) {
    const d = normDomain(defs[0].id.domain);
    byDomain.set(d, [...(byDomain.get(d) ?? []), `${defs[0].id.type} (${defs.map((x) => x.id.version).join(', ')})`]);
  }
  return [...byDomain.entries()]
    .sort(([a], [b]) => (a === ONNX_DOMAIN ? -1 : b === ONNX_DOMAIN ? 1 : a.localeCompare(b)))
    .map(([d, ops]) => `${d}: ${ops.join(', ')}`)
    .join('; ');
}

/** Every node the registry cannot take, with the reason (empty when the graph is fine). */
export function unsupportedNodes(decl: GraphDecl, registry: OpRegistry): UnsupportedNode[] {
  const defs = nodeDefs(registry);
  const out: UnsupportedNode[] = [];
  const all: NodeDecl[] = [];
  const collect = (list: NodeDecl[]) => {
    for (const n of list) {
      all.push(n);
      for (const sg of Object.values(n.subgraphs ?? {})) collect(sg.nodes);
    }
  };
  collect(decl.nodes);
  for (const n of all) {
    const domain = normDomain(n.domain);
    const base = { node: n.name, op: n.op, domain, loc: n.loc, file: n.onnx?.file };
    const list = defs.get(opidKey({ domain, type: n.op }));
    if (!list) {
      out.push({ ...base, kind: 'op', reason: `tilesim has no op ${opidKey({ domain, type: n.op })}` });
      continue;
    }
    const version = n.version ?? (domain === ONNX_DOMAIN ? decl.opset : Number.MAX_SAFE_INTEGER);
    const def = [...list].reverse().find((d) => d.id.version <= version);
    const have = list.map((d) => `${n.op}-${d.id.version}`).join(', ');
    const schema = n.onnx?.schemaVersion ?? (domain === ONNX_DOMAIN ? schemaVersion(n.op, n.onnx?.opset ?? decl.opset) : undefined);
    if (!def) {
      const at = n.onnx ? `at opset ${n.onnx.opset} ` : '';
      const is = schema !== undefined ? `is ${n.op}-${schema}` : `asks for version ${version} or older`;
      const why = n.onnx?.upgradeRefused ? `; it cannot be upgraded: ${n.onnx.upgradeRefused}` : '';
      out.push({ ...base, kind: 'version', reason: `${n.op} ${at}${is}, and tilesim implements only ${have}${why}` });
      continue;
    }
    if (domain === ONNX_DOMAIN && schema !== undefined && def.id.version < schema) {
      const problem = downgradeProblem(n.op, def.id.version, schema);
      if (problem) {
        out.push({ ...base, kind: 'version', reason: `the node is ${n.op}-${schema}, and tilesim's ${n.op}-${def.id.version} differs: ${problem}` });
        continue;
      }
    }
    try {
      checkAttributes(def, n.attributes, n.name);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      out.push({ ...base, kind: 'attributes', reason: e.message.replace(/^node '[^']*' \([^)]*\): /, '') });
    }
  }
  return out;
}

/** Throw a UserError for the first node the registry cannot take (and count the others). */
export function checkOnnxGraph(decl: GraphDecl, registry: OpRegistry): void {
  const bad = unsupportedNodes(decl, registry);
  if (bad.length === 0) return;
  const first = bad[0];
  // Name the model unless the location already does (no config: the location is the model file).
  const named = first.file && first.file !== first.loc.file;
  let msg = `${named ? `${first.file}: ` : ''}${nodeWhat(first.node, first.op, first.domain)} is not supported: ${first.reason}`;
  if (bad.length > 1) {
    const others = [...new Set(bad.slice(1).map((b) => `${b.domain === ONNX_DOMAIN ? '' : `${b.domain}::`}${b.op}`))];
    msg += `\n  ${bad.length - 1} more node${bad.length > 2 ? 's' : ''} not supported (${others.join(', ')})`;
  }
  if (bad.some((b) => b.kind !== 'attributes')) msg += `\n  supported ops: ${supportedOpsText(registry)} (see \`sim ops\`)`;
  throw new UserError(msg, first.loc);
}
