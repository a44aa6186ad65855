/**
 * Ops that are constants once shapes are fixed, folded when the graph is
 * built (composites with no nodes, like Shape in logic.ts):
 *
 *   Size             the number of elements of its input, an int32 scalar (ONNX int64).
 *   ConstantOfShape  a tensor of the shape its (constant) input holds, filled with `value`
 *                    (the importer folds it already when the shape is an initializer or a
 *                    Constant; this definition takes shapes that constant folding computes,
 *                    as Shape -> Slice -> ConstantOfShape in ONNX's expanded LayerNormalization).
 *   Range            start, start + delta, ... below limit (above it for a negative delta),
 *                    from constant scalar inputs.
 *
 * The ONNX attribute `value` of ConstantOfShape is a one-element tensor; the
 * importer passes it as the number `value` and its type as `value_type`
 * (float32, float16 or int32).
 */
import { UserError } from '../errors.js';
import type { DType } from '../ir/dtype.js';
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo, nelms } from '../ir/tensorinfo.js';
import { versions } from './shape-util.js';

const DTYPES: readonly DType[] = ['float32', 'float16', 'int32'];

function constantInput(args: ExpandArgs, i: number, what: string): Float32Array | Int32Array {
  const d = args.inputData[i];
  if (!d) {
    throw new UserError(
      `node '${args.node.name}' (${args.node.op}): ${what} (input ${i} '${args.node.inputs[i]}') must be a constant, because tilesim fixes shapes at compile time; ` +
        'it is computed from streamed or trainable data',
      args.node.loc,
    );
  }
  return d;
}

function expandSize({ node, inputInfos }: ExpandArgs): Expansion {
  return { nodes: [], constants: [{ name: node.outputs[0], dtype: 'int32', shape: [], data: Int32Array.of(nelms(inputInfos[0]!.shape)) }] };
}

function expandConstantOfShape(args: ExpandArgs): Expansion {
  const { node, attributes, inputInfos } = args;
  const info = inputInfos[0]!;
  const fail = (m: string): never => {
    throw new UserError(`node '${node.name}' (ConstantOfShape): ${m}`, node.loc);
  };
  if (info.dtype !== 'int32' || info.shape.length !== 1) fail(`its shape input '${node.inputs[0]}' must be a 1-D integer tensor, got ${fmtInfo(info)}`);
  const shape = Array.from(constantInput(args, 0, 'the shape'));
  if (shape.some((d) => d < 0)) fail(`negative dimension in shape [${shape.join(', ')}]`);
  const dtype = attributes.string('value_type') as DType;
  if (!DTYPES.includes(dtype)) fail(`value_type '${dtype}' is not one of ${DTYPES.join(', ')}`);
  const n = nelms(shape);
  const value = attributes.float('value');
  const data = dtype === 'int32' ? new Int32Array(n).fill(value) : new Float32Array(n).fill(value);
  return { nodes: [], constants: [{ name: node.outputs[0], dtype, shape, data }] };
}

function expandRange(args: ExpandArgs): Expansion {
  const { node, inputInfos } = args;
  const fail = (m: string): never => {
    throw new UserError(`node '${node.name}' (Range): ${m}`, node.loc);
  };
  const dtype = inputInfos[0]!.dtype;
  const [start, limit, delta] = ['start', 'limit', 'delta'].map((w, i) => {
    const info = inputInfos[i]!;
    if (info.dtype !== dtype || nelms(info.shape) !== 1) fail(`${w} (input ${i} '${node.inputs[i]}') must be a scalar of the type of start (${dtype}), got ${fmtInfo(info)}`);
    return constantInput(args, i, w)[0];
  });
  if (delta === 0) fail('delta is 0');
  // ONNX Range: number_of_elements = max(ceil((limit - start) / delta), 0).
  const n = Math.max(Math.ceil((limit - start) / delta), 0);
  const values = Array.from({ length: n }, (_, k) => start + k * delta);
  const data = dtype === 'int32' ? Int32Array.from(values) : Float32Array.from(values);
  return { nodes: [], constants: [{ name: node.outputs[0], dtype, shape: [n], data }] };
}

export const constantDefinitions: OpDefinition[] = [
  ...versions('Size', [1, 13], () => ({
    description: 'The number of elements of the input, an int32 scalar (ONNX int64): folded into a constant when the graph is built',
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'size' }],
    grad: false,
    expand: expandSize,
  })),
  ...versions('ConstantOfShape', [9], () => ({
    description: 'A tensor of the shape its constant input holds, every element `value`: folded into a constant when the graph is built',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: {
      value: { type: 'float', default: 0, description: 'the fill value (ONNX: a one-element tensor)' },
      value_type: { type: 'string', default: 'float32', description: "the output's element type: float32, float16 or int32 (ONNX: the type of the value tensor)" },
    },
    grad: false,
    expand: expandConstantOfShape,
  })),
  ...versions('Range', [11], () => ({
    description: 'start, start + delta, ... up to limit (excluded), from constant scalars: folded into a constant when the graph is built',
    inputs: [{ name: 'start' }, { name: 'limit' }, { name: 'delta' }],
    outputs: [{ name: 'output' }],
    grad: false,
    expand: expandRange,
  })),
];
