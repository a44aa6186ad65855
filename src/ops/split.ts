/**
 * Split (ONNX 11: `split` attribute; 13: `split` input, a constant; 18: and
 * `num_outputs`): a composite of one Slice per output along `axis`, so its
 * lowering (copies of runs) and gradients (each output's gradient placed in
 * its slice of dX, summed) are Slice's.
 *
 * Sizes: the `split` list when given (it must sum to the axis); with
 * num_outputs (18) parts of ceil(axis / num_outputs), the last one smaller;
 * else equal parts, one per output, which must divide the axis (as 13; a
 * node upgraded from 13 to 18 has neither `split` nor `num_outputs`).
 * A part of size 0 is a zero-size tensor.
 */
import { UserError } from '../errors.js';
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import type { NodeDecl } from '../config/types.js';
import { versions } from './shape-util.js';

/** The sizes of the parts along the axis. */
function partSizes(args: ExpandArgs, dim: number, version: number): number[] {
  const { node, attributes } = args;
  const fail = (m: string): never => {
    throw new UserError(`node '${node.name}' (Split): ${m}`, node.loc);
  };
  const n = node.outputs.length;
  let sizes: number[] | undefined;
  if (version < 13) sizes = attributes.ints('split').length > 0 ? attributes.ints('split') : undefined;
  else if (node.inputs[1]) {
    const d = args.inputData[1];
    if (!d) fail(`split (input 1 '${node.inputs[1]}') must be a constant, because tilesim fixes shapes at compile time; it is computed from streamed or trainable data`);
    if (args.inputInfos[1]!.dtype !== 'int32') fail(`split (input 1 '${node.inputs[1]}') must be an integer tensor, got ${fmtInfo(args.inputInfos[1]!)}`);
    sizes = Array.from(d!);
  }
  const numOutputs = version >= 18 ? attributes.int('num_outputs') : 0;
  if (numOutputs > 0 && sizes) fail("takes either 'split' or 'num_outputs', not both");
  if (sizes) {
    if (sizes.length !== n) fail(`split [${sizes.join(', ')}] has ${sizes.length} parts for ${n} outputs`);
    if (sizes.reduce((a, b) => a + b, 0) !== dim || sizes.some((s) => s < 0)) fail(`split [${sizes.join(', ')}] must be non-negative and sum to the axis size ${dim}`);
  } else if (numOutputs > 0) {
    const k = numOutputs;
    if (k !== n) fail(`num_outputs ${k} does not match the node's ${n} outputs`);
    const chunk = Math.ceil(dim / k);
    sizes = Array.from({ length: k }, (_, j) => Math.max(0, Math.min(chunk, dim - j * chunk)));
  } else {
    // Split-18 asks for one of them, but nodes upgraded from 13 have neither: equal parts, as 13.
    if (dim % n !== 0) fail(`the axis size ${dim} does not split into ${n} equal parts; give 'split'`);
    sizes = new Array<number>(n).fill(dim / n);
  }
  return sizes!;
}

function expandSplit(version: number) {
  return (args: ExpandArgs): Expansion => {
    const { node, attributes, inputInfos, fresh } = args;
    const x = inputInfos[0]!;
    const r = x.shape.length;
    const a0 = attributes.int('axis');
    if (r === 0 || a0 < -r || a0 >= r) throw new UserError(`node '${node.name}' (Split): axis ${a0} is out of range for ${fmtInfo(x)}`, node.loc);
    const axis = a0 < 0 ? a0 + r : a0;
    const sizes = partSizes(args, x.shape[axis], version);
    const constants: NonNullable<Expansion['constants']> = [];
    const int = (base: string, v: number) => {
      const name = fresh(`${node.name}/${base}`);
      constants.push({ name, dtype: 'int32', shape: [1], data: Int32Array.of(v) });
      return name;
    };
    const axes = int('axis', axis);
    let start = 0;
    const nodes: NodeDecl[] = sizes.map((s, j) => {
      const n: NodeDecl = {
        op: 'Slice',
        domain: '',
        version: 13,
        name: `${node.name}/part${j}`,
        inputs: [node.inputs[0], int(`start${j}`, start), int(`end${j}`, start + s), axes],
        outputs: [node.outputs[j]],
        attributes: {},
        loc: node.loc,
      };
      start += s;
      return n;
    });
    return { nodes, constants };
  };
}

export const splitDefinitions: OpDefinition[] = versions('Split', [11, 13, 18], (id) => ({
  description: 'Parts of the input along axis (split sizes, equal parts, or num_outputs): a composite of Slices',
  inputs: id.version >= 13 ? [{ name: 'input' }, { name: 'split', optional: true }] : [{ name: 'input' }],
  outputs: [{ name: 'outputs', variadic: true }],
  attributes: {
    axis: { type: 'int', default: 0, description: 'the axis split, in [-r, r-1]' },
    ...(id.version < 13 ? { split: { type: 'ints' as const, default: [], description: 'part sizes (default: equal parts)' } } : {}),
    ...(id.version >= 18 ? { num_outputs: { type: 'int' as const, default: 0, description: 'number of parts of ceil(axis / num_outputs), the last smaller (0: not given)' } } : {}),
  },
  grad: true,
  expand: expandSplit(id.version),
}));
