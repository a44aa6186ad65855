/**
 * ONNX export: the IR's forward graph, with the weights it has now, as a
 * ModelProto: the ops the graph outputs depend on, grad ops and optimizer
 * updates left out (so the loss a training config adds is left out too; a
 * loss node written in the graph stays when it is a graph output).
 *
 * - Nodes: each forward op in schedule order, named as in the IR, with the
 *   attributes its attributes() reports (typed from the op's definition).
 *   Composite ops appear as the simpler ops they expanded into, unless a
 *   part stands for the whole (Op.onnxForm with inputs and outputs: a
 *   training-mode BatchNormalization as one inference-form node). A sharded
 *   graph's ops carry their IPU as PopART's `__ipu_number` (a pipelined one its stage as `__pipeline_stage`); its IpuCopy ops
 *   are left out, their readers reading the copied tensor itself.
 * - Initializers: the variables (current values) and constants the nodes read.
 *   int32 tensors are written as INT64, which is what ONNX wants for shapes,
 *   axes and indices; float16 as FLOAT16.
 * - Opsets: the default domain at the newest version of any exported ai.onnx
 *   op (each op's schema at that opset must agree with the version tilesim
 *   implements); other domains at the newest version used.
 * - If and Loop are not exported (an error naming the op).
 */
import type onnxProto from 'onnx-proto';
import { AttributeType as ATTRIBUTE_TYPE, onnxSchema } from './proto.js';
import type { DTypeName } from '../config/types.js';
import { RunError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import { isGradOp, type AttributeValue, type Op } from '../ir/op.js';
import { fmtOpid, normDomain, ONNX_DOMAIN } from '../ir/opid.js';
import type { AttributeType, OpRegistry } from '../ir/registry.js';
import type { HostArray } from '../model/data.js';
import type { RunResult } from '../session.js';
import { IPU_ATTRIBUTE, PIPELINE_STAGE_ATTRIBUTE } from '../shard/ipu-attribute.js';
import { isIpuCopy } from '../shard/ipu-copy.js';
import { encodeTensor, exportElemType } from './tensor.js';
import { downgradeProblem, schemaVersion } from './versions.js';

const ATTR = ATTRIBUTE_TYPE;

export interface ExportOptions {
  /** Where the ops' attribute types come from. */
  registry: OpRegistry;
  /** The graph outputs. */
  outputs: string[];
  /** Which ops to write (default: forwardOp). */
  include?: (op: Op) => boolean;
  /** Current values of variables; a variable not in the map is written with its initial value. */
  weights?: Map<string, HostArray>;
  graphName?: string;
  docString?: string;
}

/**
 * An op of the forward pass: not a grad op, not an in-place update (unless it
 * says how ONNX writes it: BatchNormalization's running statistics), not one
 * that only makes gradients.
 */
export function forwardOp(op: Op): boolean {
  if (isGradOp(op) || op.outputs.length === 0 || (op.modifiedInputs().length > 0 && !op.onnxForm())) return false;
  return !op.outputs.every((o) => op.graph.tensor(o).isGradient);
}

/** IR version for a default-domain opset (the ONNX release that introduced it). */
function irVersionFor(opset: number): number {
  return opset <= 18 ? 8 : opset <= 20 ? 9 : opset <= 22 ? 10 : 11;
}

function attributeProto(op: { name: string }, name: string, value: AttributeValue, type: AttributeType | undefined): onnxProto.onnx.IAttributeProto {
  const t =
    type ??
    (typeof value === 'string'
      ? 'string'
      : Array.isArray(value)
        ? typeof value[0] === 'string'
          ? 'strings'
          : (value as number[]).every(Number.isInteger)
            ? 'ints'
            : 'floats'
        : Number.isInteger(value)
          ? 'int'
          : 'float');
  const enc = (s: string) => new TextEncoder().encode(s);
  switch (t) {
    case 'float':
      return { name, type: ATTR.FLOAT, f: value as number };
    case 'int':
      return { name, type: ATTR.INT, i: value as number };
    case 'string':
      return { name, type: ATTR.STRING, s: enc(value as string) };
    case 'floats':
      return { name, type: ATTR.FLOATS, floats: value as number[] };
    case 'ints':
      return { name, type: ATTR.INTS, ints: value as number[] };
    case 'strings':
      return { name, type: ATTR.STRINGS, strings: (value as string[]).map(enc) };
  }
  throw new RunError(`cannot export op '${op.name}': attribute '${name}' has an unknown type`);
}

function valueInfo(name: string, dtype: DTypeName, shape: readonly number[]): onnxProto.onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: exportElemType(dtype), shape: { dim: shape.map((d) => ({ dimValue: d })) } } } };
}

/** The forward graph as ModelProto bytes. Throws RunError when an op cannot be written faithfully. */
export function exportOnnx(graph: Graph, opts: ExportOptions): Uint8Array {
  const include = opts.include ?? forwardOp;
  // Each op as ONNX writes it: itself, or the standard op it stands for (Op.onnxForm), which may
  // stand for a whole composite, reading and writing the composite's tensors.
  const forms = new Map<Op, { name: string; opid: Op['opid']; attributes: () => Record<string, AttributeValue>; inputs: string[]; outputs: string[] }>();
  const writer = new Map<string, Op>();
  for (const op of graph.schedule()) {
    if (!include(op)) continue;
    const f = op.onnxForm();
    const form = { name: f?.name ?? op.name, opid: f?.opid ?? op.opid, attributes: () => f?.attributes ?? op.attributes(), inputs: f?.inputs ?? op.inputs, outputs: f?.outputs ?? op.outputs };
    forms.set(op, form);
    for (const o of form.outputs) writer.set(o, op);
  }
  // The included ops the outputs depend on (a loss the session added, say, computes no graph output).
  const needed = new Set<Op>();
  // An IpuCopy's output is its input, in ONNX.
  const uncopied = (id: string): string => {
    let at = id;
    for (let p = graph.hasTensor(at) ? graph.tensor(at).producer : undefined; p && isIpuCopy(p); p = graph.tensor(at).producer) at = p.inId(0);
    return at;
  };
  const stack = opts.outputs.map(uncopied);
  while (stack.length > 0) {
    const p = writer.get(stack.pop()!);
    if (!p || needed.has(p)) continue;
    needed.add(p);
    stack.push(...forms.get(p)!.inputs.filter((i) => i !== '').map(uncopied));
  }
  // If and Loop hold their subgraphs as regions of this graph (src/model/control-flow.ts), which export does not rebuild.
  const owners = new Set([...graph.regions.values()].map((r) => r.owner));
  const owner = [...needed].find((op) => graph.regions.has(op) || owners.has(op));
  if (owner) {
    const cf = graph.regions.get(owner)?.owner ?? owner;
    throw new RunError(`cannot export the model: op '${cf.name}' (${fmtOpid(cf.opid)}) is control flow, and exporting If and Loop (their subgraphs) is not supported`);
  }
  const ops = [...forms]
    .filter(([op]) => needed.has(op))
    .map(([op, f]) => {
      const ipu: Record<string, AttributeValue> = {
        ...(op.settings.ipu === undefined ? {} : { [IPU_ATTRIBUTE]: op.settings.ipu }),
        ...(op.settings.pipelineStage === undefined ? {} : { [PIPELINE_STAGE_ATTRIBUTE]: op.settings.pipelineStage }),
      };
      return { ...f, inputs: f.inputs.map((i) => (i === '' ? i : uncopied(i))), attributes: () => ({ ...f.attributes(), ...ipu }) };
    });

  // Opsets.
  const versions = new Map<string, number>();
  for (const op of ops) {
    const d = normDomain(op.opid.domain);
    versions.set(d, Math.max(versions.get(d) ?? 0, op.opid.version));
  }
  const opset = versions.get(ONNX_DOMAIN) ?? 18;
  for (const op of ops) {
    if (normDomain(op.opid.domain) !== ONNX_DOMAIN) continue;
    const s = schemaVersion(op.opid.type, opset);
    const problem = s !== undefined && s > op.opid.version ? downgradeProblem(op.opid.type, op.opid.version, s) : undefined;
    if (problem)
      throw new RunError(
        `cannot export op '${op.name}' (${fmtOpid(op.opid)}) at opset ${opset} (needed by other ops): at that opset it is ${op.opid.type}-${s}, and ${problem}`,
      );
  }

  const nodes: onnxProto.onnx.INodeProto[] = ops.map((op) => {
    const def = opts.registry.exact(op.opid);
    const attrs = op.attributes();
    for (const [name, ad] of Object.entries(def?.attributes ?? {})) {
      if (attrs[name] === undefined && ad.default === undefined)
        throw new RunError(`cannot export op '${op.name}' (${fmtOpid(op.opid)}): it does not report its required attribute '${name}' (Op.attributes())`);
    }
    return {
      name: op.name,
      opType: op.opid.type,
      domain: normDomain(op.opid.domain) === ONNX_DOMAIN ? '' : op.opid.domain,
      input: [...op.inputs],
      output: [...op.outputs],
      attribute: Object.entries(attrs)
        .filter(([, v]) => v !== undefined)
        .map(([name, v]) => attributeProto(op, name, v, def?.attributes?.[name]?.type)),
    };
  });

  // Tensors the nodes read, and the outputs.
  const read = new Set<string>();
  for (const op of ops) for (const i of op.inputs) if (i !== '') read.add(i);
  for (const o of opts.outputs) read.add(o);
  const inputs: onnxProto.onnx.IValueInfoProto[] = [];
  const initializers: onnxProto.onnx.ITensorProto[] = [];
  for (const t of graph.allTensors()) {
    if (!read.has(t.id) || t.producer) continue;
    if (t.kind === 'stream') inputs.push(valueInfo(t.id, t.info.dtype, t.info.shape));
    else if (t.kind === 'variable' || t.kind === 'constant') {
      const data = (t.kind === 'variable' ? opts.weights?.get(t.id) : undefined) ?? t.data;
      if (!data) throw new RunError(`cannot export tensor '${t.id}': it has no value`);
      initializers.push(encodeTensor(t.id, t.info.dtype, t.info.shape, data));
    }
  }
  const outputs = opts.outputs.map((o) => {
    if (!graph.hasTensor(o)) throw new RunError(`cannot export: no tensor '${o}' in the graph`);
    const t = graph.tensor(o);
    return valueInfo(o, t.info.dtype, t.info.shape);
  });

  const onnx = onnxSchema();
  const model = onnx.ModelProto.create({
    irVersion: irVersionFor(opset),
    producerName: 'tilesim',
    opsetImport: [...versions.entries()]
      .sort(([a], [b]) => (a === ONNX_DOMAIN ? -1 : b === ONNX_DOMAIN ? 1 : a.localeCompare(b)))
      .map(([d, v]) => ({ domain: d === ONNX_DOMAIN ? '' : d, version: d === ONNX_DOMAIN ? opset : v })),
    graph: { name: opts.graphName ?? 'tilesim', node: nodes, initializer: initializers, input: inputs, output: outputs },
    ...(opts.docString ? { docString: opts.docString } : {}),
  });
  if (!versions.has(ONNX_DOMAIN)) model.opsetImport.unshift(onnx.OperatorSetIdProto.create({ domain: '', version: opset }));
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The trained model of a run: the forward graph computing the model's outputs
 * (not the loss the training config added) with the final weights, as
 * model.onnx bytes.
 */
export function exportRunModel(r: RunResult): Uint8Array {
  const c = r.compiled;
  return exportOnnx(c.graph, {
    registry: c.registry,
    outputs: c.config.model.graph.outputs,
    weights: r.weights,
    graphName: c.config.name,
    docString: `Trained by tilesim: ${r.steps.length} step${r.steps.length === 1 ? '' : 's'} of ${c.config.name}`,
  });
}
