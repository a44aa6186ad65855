/**
 * GatherND (11, 12 batch_dims, 13) and ScatterND (11, 13, 16 add/mul, 18
 * max/min), with indices computed at run time: composites over the rows of
 * data viewed as [rows, inner], where a row is what one index tuple names.
 *
 *   flat      = NdIndexFlatten(indices): the row number each index tuple names
 *               (ai.graphcore, below; its own small lowering, a range of rows per tile)
 *   GatherND  = Reshape(Gather(Reshape(data, [rows, inner]), flat, axis 0), out shape):
 *               the planned Gather of runtime indices, and its gradient
 *   ScatterND = Reshape(ScatterElements(Reshape(data, [rows, inner]),
 *               Expand(flat as [M, 1], [M, inner]), Reshape(updates, [M, inner]), axis 0), data shape):
 *               ScatterElements' lowering (each tile applies the updates reaching its rows)
 *               and gradients (reduction none)
 *
 * An index tuple out of range names no row: GatherND gives zeros for it and
 * ScatterND skips it (ONNX calls both errors).
 */
import { UserError } from '../errors.js';
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type ExpandArgs, type Expansion, type OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import type { LowerContext } from '../lower/context.js';
import type { NodeDecl } from '../config/types.js';
import { GC, versions } from './shape-util.js';
import { ndIndexFlattenCodelet } from '../../sim/codelets/elements.js';

const FLATTEN = { domain: GC, type: 'NdIndexFlatten', version: 1 };

/** indices [..., k] -> the row numbers they name in data [batch..., dims..., inner...] viewed as rows. */
export class NdIndexFlattenOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly dims: number[],
    readonly batchDims: number,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const ind = this.inInfo(0);
    const k = this.dims.length;
    if (ind.dtype !== 'int32' || ind.shape.length < 1 || ind.shape[ind.shape.length - 1] !== k) this.fail(`indices must be int32 [..., ${k}], got ${fmtInfo(ind)}`);
    this.setOutInfo(0, { dtype: 'int32', shape: ind.shape.slice(0, -1) });
  }
  override attributes(): Record<string, AttributeValue> {
    return { dims: this.dims, batch_dims: this.batchDims };
  }
}

function lowerFlatten(f: NdIndexFlattenOp, ctx: LowerContext): void {
  const k = f.dims.length;
  const strides = f.dims.map((_, j) => nelms(f.dims.slice(j + 1)));
  const lead = f.inInfo(0).shape.slice(0, -1);
  const rowsPerBatch = nelms(lead.slice(f.batchDims));
  const perBatch = nelms(f.dims);
  const ind = ctx.input(0);
  const out = ctx.output(0);
  ctx.computeSet('flatten-indices');
  for (const r of ctx.ranges(out)) {
    ctx.vertex(
      ndIndexFlattenCodelet,
      r.tile,
      { indices: ctx.onTile(ind, r.begin * k, r.end * k, r.tile), out: ctx.slice(out, r.begin, r.end) },
      { k, begin: r.begin, rowsPerBatch: Math.max(1, rowsPerBatch), perBatch },
      { dims: f.dims, strides },
    );
  }
}

interface NdGeometry {
  /** Batch dims, the dims the tuples index, the rest (inner). */
  batch: number[];
  dims: number[];
  inner: number[];
  /** Index tuples: indices' shape without its last axis. */
  lead: number[];
}

function geometry(args: ExpandArgs, batchDims: number): NdGeometry {
  const { node, inputInfos } = args;
  const fail = (m: string): never => {
    throw new UserError(`node '${node.name}' (${node.op}): ${m}`, node.loc);
  };
  const data = inputInfos[0]!;
  const ind = inputInfos[1]!;
  if (ind.dtype !== 'int32') fail(`indices must be an integer tensor, got ${fmtInfo(ind)}`);
  const q = ind.shape.length;
  const k = ind.shape[q - 1];
  if (q < 1 || !(k >= 1) || batchDims + k > data.shape.length || batchDims >= q) fail(`indices ${fmtInfo(ind)} do not fit data ${fmtInfo(data)} with batch_dims ${batchDims}`);
  if (ind.shape.slice(0, batchDims).some((d, j) => d !== data.shape[j])) fail(`the batch dims of indices ${fmtInfo(ind)} and data ${fmtInfo(data)} differ`);
  return { batch: data.shape.slice(0, batchDims), dims: data.shape.slice(batchDims, batchDims + k), inner: data.shape.slice(batchDims + k), lead: ind.shape.slice(0, -1) };
}

/** Shared: the flatten node and a Reshape helper. */
function builder(args: ExpandArgs, g: NdGeometry, batchDims: number) {
  const { node, fresh } = args;
  const nodes: NodeDecl[] = [];
  const constants: NonNullable<Expansion['constants']> = [];
  let n = 0;
  const add = (op: string, domain: string, version: number | undefined, inputs: string[], attributes: Record<string, AttributeValue> = {}, out?: string) => {
    const o = out ?? fresh(`${node.name}/${op.toLowerCase()}`);
    nodes.push({ op, domain, ...(version ? { version } : {}), name: `${node.name}/${op.toLowerCase()}${n++}`, inputs, outputs: [o], attributes, loc: node.loc });
    return o;
  };
  const ints = (values: number[]) => {
    const name = fresh(`${node.name}/shape`);
    constants.push({ name, dtype: 'int32', shape: [values.length], data: Int32Array.from(values) });
    return name;
  };
  const reshape = (x: string, shape: number[], out?: string) => add('Reshape', '', 13, [x, ints(shape)], {}, out);
  const flat = add(FLATTEN.type, FLATTEN.domain, FLATTEN.version, [node.inputs[1]], { dims: g.dims, batch_dims: batchDims });
  return { nodes, constants, add, ints, reshape, flat };
}

function expandGatherND(version: number) {
  return (args: ExpandArgs): Expansion => {
    const batchDims = version >= 12 ? args.attributes.int('batch_dims') : 0;
    const g = geometry(args, batchDims);
    const b = builder(args, g, batchDims);
    const rows = b.reshape(args.node.inputs[0], [nelms(g.batch) * nelms(g.dims), nelms(g.inner)]);
    const got = b.add('Gather', '', 13, [rows, b.flat], { axis: 0 });
    b.reshape(got, [...g.lead, ...g.inner], args.node.outputs[0]);
    return { nodes: b.nodes, constants: b.constants };
  };
}

function expandScatterND(version: number) {
  return (args: ExpandArgs): Expansion => {
    const g = geometry(args, 0);
    const u = args.inputInfos[2]!;
    const want = [...g.lead, ...g.inner];
    if (u.shape.length !== want.length || u.shape.some((d, j) => d !== want[j])) {
      throw new UserError(`node '${args.node.name}' (ScatterND): updates ${fmtInfo(u)} must be [${want.join(', ')}] (indices' leading dims, then data's after the indexed ones)`, args.node.loc);
    }
    const b = builder(args, g, 0);
    const M = nelms(g.lead);
    const inner = nelms(g.inner);
    const rows = b.reshape(args.node.inputs[0], [nelms(g.dims), inner]);
    const idx = b.add('Expand', '', 13, [b.reshape(b.flat, [M, 1]), b.ints([M, inner])]);
    const upd = b.reshape(args.node.inputs[2], [M, inner]);
    const reduction = version >= 16 ? args.attributes.string('reduction') : 'none';
    const out = b.add('ScatterElements', '', 18, [rows, idx, upd], { axis: 0, reduction });
    b.reshape(out, [...args.inputInfos[0]!.shape], args.node.outputs[0]);
    return { nodes: b.nodes, constants: b.constants };
  };
}

export const ndDefinitions: OpDefinition[] = [
  defineOp({
    op: NdIndexFlattenOp,
    id: FLATTEN,
    description: 'The row numbers index tuples [..., k] name in data viewed as rows (GatherND, ScatterND); out of range: 2^31 - 1',
    inputs: [{ name: 'indices' }],
    outputs: [{ name: 'rows' }],
    attributes: { dims: { type: 'ints', description: 'the dims the tuples index' }, batch_dims: { type: 'int', default: 0, description: 'leading batch dims' } },
    grad: false,
    create: ({ attributes, settings }) => new NdIndexFlattenOp(FLATTEN, settings, attributes.ints('dims'), attributes.int('batch_dims')),
    lower: lowerFlatten,
  }),
  ...versions('GatherND', [11, 12, 13], (id) => ({
    description: 'Slices of data named by index tuples (runtime indices): NdIndexFlatten, then a Gather of rows',
    inputs: [{ name: 'data' }, { name: 'indices' }],
    outputs: [{ name: 'output' }],
    attributes: id.version >= 12 ? { batch_dims: { type: 'int', default: 0, description: 'leading dims shared by data and indices' } } : undefined,
    grad: true,
    expand: expandGatherND(id.version),
  })),
  ...versions('ScatterND', [11, 13, 16, 18], (id) => ({
    description: `data with slices named by index tuples replaced by updates${id.version >= 16 ? ' (or combined: add, mul' + (id.version >= 18 ? ', max, min' : '') + ')' : ''}: NdIndexFlatten, then ScatterElements over rows`,
    inputs: [{ name: 'data' }, { name: 'indices' }, { name: 'updates' }],
    outputs: [{ name: 'output' }],
    attributes: id.version >= 16 ? { reduction: { type: 'string', default: 'none', description: 'none, add, mul, max (18), min (18)' } } : undefined,
    grad: true,
    expand: expandScatterND(id.version),
  })),
];
