/**
 * ONNX ops written as composites of ops tilesim lowers already (expanded when
 * the graph is built, like Gemm): their lowering and gradients are those of
 * the parts, so each moves data as exchanges of runs (Slice, Concat,
 * Transpose, Expand) and scales as they do.
 *
 *   ReduceL1         ReduceSum(Abs(x))
 *   ReduceSumSquare  ReduceSum(x * x)
 *   ReduceL2         Sqrt(ReduceSum(x * x))
 *   ReduceLogSum     Log(ReduceSum(x))
 *   ReduceLogSumExp  Log(ReduceSum(Exp(x - m))) + m', m the max kept as size-1 axes, m' with keepdims as asked
 *   GlobalMaxPool    ReduceMax over the spatial axes, kept
 *   DepthToSpace     Reshape, Transpose, Reshape (modes DCR and CRD); SpaceToDepth likewise
 *   Tile             Reshape to [1, d0, 1, d1, ...], Expand to [r0, d0, r1, d1, ...], Reshape
 *   Pad              per padded axis: a Slice for a negative pad, then a Concat with the
 *                    constant block (constant), the mirrored Slice (reflect) or the edge
 *                    Expanded (edge)
 *   OneHot           Where(indices == iota or indices == iota - depth, on, off)
 *   Hardmax          Cast(ArgMax(x, axis, keepdims) == iota): no gradient (it is 0 almost everywhere)
 *   GroupNormalization, InstanceNormalization
 *                    Reshape to [N, groups, rest], (x - mean) / sqrt(var + epsilon) by ReduceMean,
 *                    then scale and bias per channel (per group: GroupNormalization-18)
 *
 * Shape-like inputs (Pad's pads, value and axes; Tile's repeats; OneHot's
 * depth) must be constants (shapes are fixed at compile time).
 */
import { UserError } from '../errors.js';
import type { NodeDecl } from '../config/types.js';
import type { DType } from '../ir/dtype.js';
import type { AttributeValue } from '../ir/op.js';
import type { AttributeDef, ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms, type TensorInfo } from '../ir/tensorinfo.js';
import { versions } from './shape-util.js';

/** Builds an expansion: nodes and constants with fresh names. */
export class Builder {
  readonly nodes: NodeDecl[] = [];
  readonly constants: NonNullable<Expansion['constants']> = [];
  private k = 0;
  constructor(private readonly args: ExpandArgs) {}
  get node(): NodeDecl {
    return this.args.node;
  }
  fail(m: string): never {
    throw new UserError(`node '${this.node.name}' (${this.node.op}): ${m}`, this.node.loc);
  }
  /** A fresh tensor name. */
  tmp(base: string): string {
    return this.args.fresh(`${this.node.name}/${base}`);
  }
  ints(base: string, values: readonly number[], shape: number[] = [values.length]): string {
    const name = this.tmp(base);
    this.constants.push({ name, dtype: 'int32', shape, data: Int32Array.from(values) });
    return name;
  }
  tensor(base: string, dtype: DType, shape: number[], data: Float32Array | Int32Array): string {
    const name = this.tmp(base);
    this.constants.push({ name, dtype, shape, data });
    return name;
  }
  /** Add a node `op` (at `version`) writing `out` (a fresh name by default); returns its output. */
  add(op: string, version: number, inputs: string[], attributes: Record<string, AttributeValue> = {}, out?: string): string {
    const o = out ?? this.tmp(op.toLowerCase());
    this.nodes.push({ op, domain: '', version, name: `${this.node.name}/${op.toLowerCase()}${this.k++}`, inputs, outputs: [o], attributes, loc: this.node.loc });
    return o;
  }
  reshape(x: string, shape: readonly number[], out?: string): string {
    return this.add('Reshape', 13, [x, this.ints('shape', shape)], {}, out);
  }
  /** The constant values of input i (a UserError naming `what` when it is not a constant). */
  constant(i: number, what: string): number[] {
    const d = this.args.inputData[i];
    if (!d) this.fail(`${what} (input ${i} '${this.node.inputs[i]}') must be a constant, because tilesim fixes shapes at compile time; it is computed from streamed or trainable data`);
    return Array.from(d!);
  }
  info(i: number): TensorInfo {
    return this.args.inputInfos[i]!;
  }
  done(): Expansion {
    return { nodes: this.nodes, constants: this.constants };
  }
}

const ONNX_CAST: Record<DType, number> = { float32: 1, float16: 10, int32: 6 };

function axisOf(b: Builder, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= rank) b.fail(`axis ${axis} is out of range for rank ${rank} (valid: ${-rank} to ${rank - 1})`);
  return axis < 0 ? axis + rank : axis;
}

// ---------------------------------------------------------------------------
// Reductions

type ReduceComposite = 'l1' | 'l2' | 'sumsquare' | 'logsum' | 'logsumexp';
const REDUCE_TYPE: Record<ReduceComposite, string> = { l1: 'ReduceL1', l2: 'ReduceL2', sumsquare: 'ReduceSumSquare', logsum: 'ReduceLogSum', logsumexp: 'ReduceLogSumExp' };

function expandReduce(kind: ReduceComposite, axesInput: boolean) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const { node, attributes } = args;
    const x = node.inputs[0];
    const keepdims = attributes.int('keepdims');
    // The axes as ReduceSum-13 and ReduceMax-18 take them: an input, and noop_with_empty_axes.
    const noop = axesInput ? attributes.int('noop_with_empty_axes') : 0;
    const axesAttr = axesInput ? [] : attributes.ints('axes');
    const axes = axesInput ? node.inputs[1] : axesAttr.length > 0 ? b.ints('axes', axesAttr) : undefined;
    const reduce = (op: 'ReduceSum' | 'ReduceMax', v: string, kd: number, out?: string) =>
      b.add(op, op === 'ReduceSum' ? 13 : 18, axes ? [v, axes] : [v], { keepdims: kd, noop_with_empty_axes: noop }, out);
    const y = node.outputs[0];
    switch (kind) {
      case 'l1':
        reduce('ReduceSum', b.add('Abs', 13, [x]), keepdims, y);
        break;
      case 'sumsquare':
        reduce('ReduceSum', b.add('Mul', 14, [x, x]), keepdims, y);
        break;
      case 'l2':
        b.add('Sqrt', 13, [reduce('ReduceSum', b.add('Mul', 14, [x, x]), keepdims)], {}, y);
        break;
      case 'logsum':
        b.add('Log', 13, [reduce('ReduceSum', x, keepdims)], {}, y);
        break;
      case 'logsumexp': {
        const m = reduce('ReduceMax', x, 1);
        const s = reduce('ReduceSum', b.add('Exp', 13, [b.add('Sub', 14, [x, m])]), keepdims);
        const mk = keepdims ? m : reduce('ReduceMax', x, 0);
        b.add('Add', 14, [b.add('Log', 13, [s]), mk], {}, y);
        break;
      }
    }
    return b.done();
  };
}

function reduceDefinitions(kind: ReduceComposite): OpDefinition[] {
  const what = { l1: 'Sum of |x|', l2: 'sqrt of the sum of x^2', sumsquare: 'Sum of x^2', logsum: 'log of the sum of x', logsumexp: 'log of the sum of exp(x), computed as m + log(sum(exp(x - m))) with m the max' }[kind];
  return versions(REDUCE_TYPE[kind], [11, 13, 18], (id) => ({
    description: `${what} over axes: a composite`,
    inputs: id.version >= 18 ? [{ name: 'data' }, { name: 'axes', optional: true }] : [{ name: 'data' }],
    outputs: [{ name: 'reduced' }],
    attributes: (id.version >= 18
        ? {
            keepdims: { type: 'int', default: 1, description: '1 keeps reduced axes as size 1' },
            noop_with_empty_axes: { type: 'int', default: 0, description: '1: no axes means identity, not a full reduction' },
          }
        : {
            axes: { type: 'ints', default: [], description: 'axes to reduce (negative counts from the end); empty: all' },
            keepdims: { type: 'int', default: 1, description: '1 keeps reduced axes as size 1' },
          }) as Record<string, AttributeDef>,
    grad: true,
    expand: expandReduce(kind, id.version >= 18),
  }));
}

// ---------------------------------------------------------------------------
// GlobalMaxPool, DepthToSpace, SpaceToDepth, Tile

function expandGlobalMaxPool(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const r = b.info(0).shape.length;
  if (r < 3) b.fail(`X must be [N, C, spatial...], got ${fmtInfo(b.info(0))}`);
  b.add('ReduceMax', 13, [args.node.inputs[0]], { axes: Array.from({ length: r - 2 }, (_, k) => k + 2), keepdims: 1 }, args.node.outputs[0]);
  return b.done();
}

function expandDepthToSpace(toSpace: boolean) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const x = b.info(0);
    const bs = args.attributes.int('blocksize');
    if (x.shape.length !== 4) b.fail(`input must be [N, C, H, W], got ${fmtInfo(x)}`);
    if (!(bs >= 1)) b.fail(`blocksize must be >= 1, got ${bs}`);
    const [N, C, H, W] = x.shape;
    const inp = args.node.inputs[0];
    const out = args.node.outputs[0];
    if (toSpace) {
      if (C % (bs * bs) !== 0) b.fail(`channels ${C} are not a multiple of blocksize^2 = ${bs * bs}`);
      const c = C / (bs * bs);
      const crd = args.attributes.string('mode') === 'CRD';
      if (!crd && args.attributes.string('mode') !== 'DCR') b.fail(`mode '${args.attributes.string('mode')}' is not DCR or CRD`);
      const t = b.add('Transpose', 13, [b.reshape(inp, crd ? [N, c, bs, bs, H, W] : [N, bs, bs, c, H, W])], { perm: crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2] });
      b.reshape(t, [N, c, H * bs, W * bs], out);
    } else {
      if (H % bs !== 0 || W % bs !== 0) b.fail(`H ${H} and W ${W} must be multiples of blocksize ${bs}`);
      const t = b.add('Transpose', 13, [b.reshape(inp, [N, C, H / bs, bs, W / bs, bs])], { perm: [0, 3, 5, 1, 2, 4] });
      b.reshape(t, [N, C * bs * bs, H / bs, W / bs], out);
    }
    return b.done();
  };
}

function expandTile(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const x = b.info(0);
  const reps = b.constant(1, 'repeats');
  if (reps.length !== x.shape.length) b.fail(`repeats [${reps.join(', ')}] must have one entry per axis of ${fmtInfo(x)}`);
  if (reps.some((r) => !(r >= 1))) b.fail(`repeats [${reps.join(', ')}] must be >= 1 (a 0 would make a zero-size tensor)`);
  const inp = args.node.inputs[0];
  const out = args.node.outputs[0];
  if (reps.every((r) => r === 1)) {
    b.add('Identity', 13, [inp], {}, out);
    return b.done();
  }
  const split = x.shape.flatMap((d) => [1, d]);
  const wide = x.shape.flatMap((d, k) => [reps[k], d]);
  const e = b.add('Expand', 13, [b.reshape(inp, split), b.ints('wide', wide)]);
  b.reshape(e, x.shape.map((d, k) => d * reps[k]), out);
  return b.done();
}

// ---------------------------------------------------------------------------
// Pad

function expandPad(version: number) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const x = b.info(0);
    const r = x.shape.length;
    const mode = args.attributes.string('mode');
    if (!['constant', 'reflect', 'edge'].includes(mode)) b.fail(`mode '${mode}' is not supported (supported: constant, reflect, edge)`);
    const pads = b.constant(1, 'pads');
    const axes = version >= 18 && args.node.inputs[3] ? b.constant(3, 'axes').map((a) => axisOf(b, a, r)) : x.shape.map((_, k) => k);
    if (new Set(axes).size !== axes.length) b.fail(`axes [${axes.join(', ')}] repeat an axis`);
    if (pads.length !== 2 * axes.length) b.fail(`pads [${pads.join(', ')}] must hold 2 x ${axes.length} values (begins, then ends, per axis)`);
    const value = args.node.inputs[2] ? b.constant(2, 'constant_value') : [0];
    if (value.length !== 1) b.fail(`constant_value must be one value, got ${value.length}`);
    let cur = args.node.inputs[0];
    const shape = [...x.shape];
    const last = axes.map((a, j) => [a, pads[j], pads[j + axes.length]] as const).filter(([, p0, p1]) => p0 !== 0 || p1 !== 0);
    if (last.length === 0) {
      b.add('Identity', 13, [cur], {}, args.node.outputs[0]);
      return b.done();
    }
    last.forEach(([a, p0, p1], j) => {
      const out = j === last.length - 1 ? args.node.outputs[0] : undefined;
      const slice = (start: number, end: number, step = 1) => b.add('Slice', 13, [cur, b.ints('starts', [start]), b.ints('ends', [end]), b.ints('axes', [a]), b.ints('steps', [step])]);
      // Negative pads crop.
      if (p0 < 0 || p1 < 0) {
        const s = Math.max(0, -p0);
        const e = shape[a] - Math.max(0, -p1);
        if (e <= s) b.fail(`pads [${pads.join(', ')}] crop axis ${a} of size ${shape[a]} to nothing`);
        cur = slice(s, e);
        shape[a] = e - s;
        if (p0 <= 0 && p1 <= 0) {
          if (out) b.add('Identity', 13, [cur], {}, out);
          return;
        }
      }
      const d = shape[a];
      const before = Math.max(0, p0);
      const after = Math.max(0, p1);
      const block = (n: number, end: 'begin' | 'end'): string => {
        const s = shape.map((v, k) => (k === a ? n : v));
        if (mode === 'constant') {
          const size = nelms(s);
          return b.tensor('fill', x.dtype, s, x.dtype === 'int32' ? new Int32Array(size).fill(value[0]) : new Float32Array(size).fill(value[0]));
        }
        if (mode === 'edge') return b.add('Expand', 13, [end === 'begin' ? slice(0, 1) : slice(d - 1, d), b.ints('shape', s)]);
        if (n > d - 1) b.fail(`reflect pads of ${n} need axis ${a} longer than ${n} (it is ${d})`);
        // Mirrored without the edge: elements n, ..., 1 before; d - 2, ..., d - 1 - n after (end -d - 1: through element 0).
        return end === 'begin' ? slice(n, 0, -1) : slice(d - 2, d - 2 - n >= 0 ? d - 2 - n : -d - 1, -1);
      };
      const parts = [...(before ? [block(before, 'begin')] : []), cur, ...(after ? [block(after, 'end')] : [])];
      cur = b.add('Concat', 13, parts, { axis: a }, out);
      shape[a] = d + before + after;
    });
    return b.done();
  };
}

// ---------------------------------------------------------------------------
// OneHot, Hardmax

/** An int32 constant counting 0..n-1 along `axis` of a tensor of rank `rank` (size 1 elsewhere), minus `minus`. */
function iota(b: Builder, n: number, axis: number, rank: number, minus = 0): string {
  return b.ints(
    'iota',
    Array.from({ length: n }, (_, k) => k - minus),
    Array.from({ length: rank }, (_, k) => (k === axis ? n : 1)),
  );
}

function expandOneHot(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const ind = b.info(0);
  const vals = b.info(2);
  const depthV = b.constant(1, 'depth');
  if (depthV.length !== 1) b.fail(`depth must be one value, got ${depthV.length}`);
  const depth = Math.trunc(depthV[0]);
  if (!(depth >= 1)) b.fail(`depth must be >= 1, got ${depthV[0]}`);
  if (nelms(vals.shape) !== 2 || vals.shape.length !== 1) b.fail(`values must be [off, on] (2 elements), got ${fmtInfo(vals)}`);
  const rank = ind.shape.length + 1;
  const axis = axisOf(b, args.attributes.int('axis'), rank);
  let idx = args.node.inputs[0];
  if (ind.dtype !== 'int32') idx = b.add('Cast', 13, [idx], { to: ONNX_CAST.int32 });
  const u = b.add('Unsqueeze', 13, [idx, b.ints('axes', [axis])]);
  // Negative indices count from depth: idx == k or idx == k - depth.
  const hit = b.add('Or', 7, [b.add('Equal', 13, [u, iota(b, depth, axis, rank)]), b.add('Equal', 13, [u, iota(b, depth, axis, rank, depth)])]);
  const slice = (k: number) => b.add('Slice', 13, [args.node.inputs[2], b.ints('starts', [k]), b.ints('ends', [k + 1])]);
  b.add('Where', 16, [hit, slice(1), slice(0)], {}, args.node.outputs[0]);
  return b.done();
}

function expandHardmax(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const x = b.info(0);
  const r = x.shape.length;
  if (r === 0) b.fail(`needs an input of rank >= 1, got ${fmtInfo(x)}`);
  const axis = axisOf(b, args.attributes.int('axis'), r);
  if (x.dtype !== 'float32' && x.dtype !== 'float16') b.fail(`supports float32 and float16 inputs, got ${fmtInfo(x)}`);
  const arg = b.add('ArgMax', 13, [args.node.inputs[0]], { axis, keepdims: 1, select_last_index: 0 });
  const eq = b.add('Equal', 13, [arg, iota(b, x.shape[axis], axis, r)]);
  b.add('Cast', 13, [eq], { to: ONNX_CAST[x.dtype] }, args.node.outputs[0]);
  return b.done();
}

// ---------------------------------------------------------------------------
// GroupNormalization, InstanceNormalization

/**
 * x [N, C, ...] normalised over each group of C / groups channels and the
 * spatial axes: Reshape to [N, G, K], mean and variance by ReduceMean, (x -
 * mean) / sqrt(var + epsilon), then scale and bias per channel (or per group:
 * GroupNormalization-18).
 */
function expandGroupNorm(kind: 'group18' | 'group21' | 'instance') {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    const x = b.info(0);
    const [xIn, scale, bias] = args.node.inputs;
    if (x.shape.length < 2) b.fail(`X must be [N, C, ...], got ${fmtInfo(x)}`);
    if (x.dtype !== 'float32' && x.dtype !== 'float16') b.fail(`supports float32 and float16, got ${fmtInfo(x)}`);
    const [N, C] = x.shape;
    const G = kind === 'instance' ? C : args.attributes.int('num_groups');
    if (!(G >= 1) || C % G !== 0) b.fail(`num_groups ${G} must divide the ${C} channels`);
    const perGroup = kind === 'group18';
    for (const i of [1, 2]) {
      const want = perGroup ? G : C;
      if (nelms(b.info(i).shape) !== want || b.info(i).shape.length !== 1) b.fail(`${i === 1 ? 'scale' : 'bias'} must be [${want}] (one per ${perGroup ? 'group' : 'channel'}), got ${fmtInfo(b.info(i))}`);
    }
    const K = nelms(x.shape) / (N * G);
    const xr = b.reshape(xIn, [N, G, K]);
    const axes = b.ints('axes', [2]);
    const mean = b.add('ReduceMean', 18, [xr, axes], { keepdims: 1 });
    const d = b.add('Sub', 14, [xr, mean]);
    const v = b.add('ReduceMean', 18, [b.add('Mul', 14, [d, d]), axes], { keepdims: 1 });
    const eps = b.tensor('epsilon', x.dtype, [], Float32Array.of(args.attributes.float('epsilon')));
    const n = b.add('Div', 14, [d, b.add('Sqrt', 13, [b.add('Add', 14, [v, eps])])]);
    const out = args.node.outputs[0];
    if (perGroup) {
      const scaled = b.add('Add', 14, [b.add('Mul', 14, [n, b.reshape(scale, [G, 1])]), b.reshape(bias, [G, 1])]);
      b.reshape(scaled, [...x.shape], out);
    } else {
      const chan = [C, ...x.shape.slice(2).map(() => 1)];
      b.add('Add', 14, [b.add('Mul', 14, [b.reshape(n, [...x.shape]), b.reshape(scale, chan)]), b.reshape(bias, chan)], {}, out);
    }
    return b.done();
  };
}

export const compositeDefinitions: OpDefinition[] = [
  ...versions('GroupNormalization', [18, 21], (id) => ({
    description: `Normalisation over groups of channels, then scale and bias per ${id.version >= 21 ? 'channel' : 'group'}: Reshape, ReduceMean, Sub, Mul, Div, Sqrt`,
    inputs: [{ name: 'X' }, { name: 'scale' }, { name: 'bias' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      epsilon: { type: 'float', default: 1e-5, description: 'added to the variance' },
      num_groups: { type: 'int', description: 'groups the channels are split into' },
      ...(id.version >= 21 ? { stash_type: { type: 'int' as const, default: 1, description: 'precision of the statistics (computed in the input type here)' } } : {}),
    },
    grad: true,
    expand: expandGroupNorm(id.version >= 21 ? 'group21' : 'group18'),
  })),
  ...versions('InstanceNormalization', [6], () => ({
    description: 'Normalisation of each channel of each item over the spatial axes, then scale and bias per channel: a composite as GroupNormalization',
    inputs: [{ name: 'input' }, { name: 'scale' }, { name: 'B' }],
    outputs: [{ name: 'output' }],
    attributes: { epsilon: { type: 'float', default: 1e-5, description: 'added to the variance' } },
    grad: true,
    expand: expandGroupNorm('instance'),
  })),
  ...reduceDefinitions('l1'),
  ...reduceDefinitions('l2'),
  ...reduceDefinitions('sumsquare'),
  ...reduceDefinitions('logsum'),
  ...reduceDefinitions('logsumexp'),
  ...versions('GlobalMaxPool', [1], () => ({
    description: 'Max over the spatial axes, kept as size 1: a composite of ReduceMax',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    grad: true,
    expand: expandGlobalMaxPool,
  })),
  ...versions('DepthToSpace', [11, 13], () => ({
    description: 'Channel blocks moved to space (modes DCR, CRD): Reshape, Transpose, Reshape',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { blocksize: { type: 'int', description: 'block size' }, mode: { type: 'string', default: 'DCR', description: 'DCR (depth, column, row) or CRD' } },
    grad: true,
    expand: expandDepthToSpace(true),
  })),
  ...versions('SpaceToDepth', [1, 13], () => ({
    description: 'Spatial blocks moved to channels: Reshape, Transpose, Reshape',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { blocksize: { type: 'int', description: 'block size' } },
    grad: true,
    expand: expandDepthToSpace(false),
  })),
  ...versions('Tile', [6, 13], () => ({
    description: 'The input repeated along each axis (constant repeats): Reshape, Expand, Reshape',
    inputs: [{ name: 'input' }, { name: 'repeats' }],
    outputs: [{ name: 'output' }],
    grad: true,
    expand: expandTile,
  })),
  ...versions('Pad', [11, 13, 18], (id) => ({
    description: 'Padding (constant, reflect, edge; negative pads crop) from constant pads: Slices and Concats',
    inputs: [{ name: 'data' }, { name: 'pads' }, { name: 'constant_value', optional: true }, ...(id.version >= 18 ? [{ name: 'axes', optional: true }] : [])],
    outputs: [{ name: 'output' }],
    attributes: { mode: { type: 'string', default: 'constant', description: 'constant, reflect or edge' } },
    grad: true,
    expand: expandPad(id.version),
  })),
  ...versions('OneHot', [9, 11], () => ({
    description: 'values[1] where the index is k along axis, values[0] elsewhere (constant depth; negative indices from 11): Equal, Or, Where',
    inputs: [{ name: 'indices' }, { name: 'depth' }, { name: 'values' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: -1, description: 'where the one-hot axis is inserted' } },
    grad: false,
    expand: expandOneHot,
  })),
  ...versions('Hardmax', [13], () => ({
    description: '1 at the first maximum along axis, 0 elsewhere: Cast(ArgMax == iota); no gradient',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: -1, description: 'the axis, in [-r, r-1]' } },
    grad: false,
    expand: expandHardmax,
  })),
];
