/**
 * Normalisations and p-norm pooling written as composites of ops tilesim
 * lowers already (their gradients are those of the parts):
 *
 *   LpNormalization            X / ||X||_p along `axis` (p 1: ReduceL1, 2: ReduceL2, kept)
 *   MeanVarianceNormalization  (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over `axes`,
 *                              ONNX's own function body, term for term
 *   GlobalLpPool               (sum over the spatial axes of |X|^p)^(1/p), kept as size 1
 */
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

function floatInput(b: Builder, what: string): void {
  const x = b.info(0);
  if (x.dtype !== 'float32' && x.dtype !== 'float16') b.fail(`${what} must be float32 or float16, got ${fmtInfo(x)}`);
}

function scalar(b: Builder, base: string, v: number): string {
  return b.tensor(base, b.info(0).dtype, [], Float32Array.of(v));
}

function expandLpNormalization(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  floatInput(b, 'input');
  const rank = b.info(0).shape.length;
  const axis = args.attributes.int('axis');
  const p = args.attributes.int('p');
  if (axis < -rank || axis >= rank) b.fail(`axis ${axis} is out of range for rank ${rank} (valid: ${-rank} to ${rank - 1})`);
  if (p !== 1 && p !== 2) b.fail(`p must be 1 or 2, got ${p}`);
  const x = args.node.inputs[0];
  const norm = b.add(p === 1 ? 'ReduceL1' : 'ReduceL2', 18, [x, b.ints('axes', [axis])], { keepdims: 1 });
  b.add('Div', 14, [x, norm], {}, args.node.outputs[0]);
  return b.done();
}

function expandMeanVarianceNormalization(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  floatInput(b, 'X');
  const rank = b.info(0).shape.length;
  const axes = args.attributes.ints('axes');
  for (const a of axes) if (a < -rank || a >= rank) b.fail(`axis ${a} in axes [${axes.join(', ')}] is out of range for rank ${rank}`);
  const x = args.node.inputs[0];
  const ax = b.ints('axes', axes);
  const two = scalar(b, 'two', 2);
  const mean = b.add('ReduceMean', 18, [x, ax], { keepdims: 1 });
  const meanSq = b.add('ReduceMean', 18, [b.add('Pow', 15, [x, two]), ax], { keepdims: 1 });
  const std = b.add('Sqrt', 13, [b.add('Sub', 14, [meanSq, b.add('Pow', 15, [mean, two])])]);
  b.add('Div', 14, [b.add('Sub', 14, [x, mean]), b.add('Add', 14, [std, scalar(b, 'epsilon', 1e-9)])], {}, args.node.outputs[0]);
  return b.done();
}

function expandGlobalLpPool(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  floatInput(b, 'X');
  const rank = b.info(0).shape.length;
  if (rank < 3) b.fail(`X must be [N, C, spatial...], got ${fmtInfo(b.info(0))}`);
  const p = args.attributes.int('p');
  if (p < 1) b.fail(`p must be 1 or more, got ${p}`);
  const x = args.node.inputs[0];
  const axes = b.ints('axes', Array.from({ length: rank - 2 }, (_, k) => k + 2));
  const out = args.node.outputs[0];
  if (p <= 2) b.add(p === 1 ? 'ReduceL1' : 'ReduceL2', 18, [x, axes], { keepdims: 1 }, out);
  else {
    const sum = b.add('ReduceSum', 13, [b.add('Pow', 15, [b.add('Abs', 13, [x]), scalar(b, 'p', p)]), axes], { keepdims: 1 });
    b.add('Pow', 15, [sum, scalar(b, 'inv_p', 1 / p)], {}, out);
  }
  return b.done();
}

export const lpNormDefinitions: OpDefinition[] = [
  ...versions('LpNormalization', [1], () => ({
    description: 'X / ||X||_p along axis (p 1 or 2): a composite of ReduceL1 or ReduceL2 and Div',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: -1, description: 'the axis normalised' }, p: { type: 'int', default: 2, description: 'the norm: 1 or 2' } },
    grad: true,
    expand: expandLpNormalization,
  })),
  ...versions('MeanVarianceNormalization', [9, 13], () => ({
    description: "(X - mean) / (std + 1e-9) over axes, std = sqrt(E[X^2] - E[X]^2): ONNX's function body as a composite",
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: { axes: { type: 'ints', default: [0, 2, 3], description: 'the axes the statistics are taken over' } },
    grad: true,
    expand: expandMeanVarianceNormalization,
  })),
  ...versions('GlobalLpPool', [2], () => ({
    description: 'The p-norm over the spatial axes, kept as size 1: ReduceL1, ReduceL2, or Pow(ReduceSum(Pow(Abs(X), p)), 1/p)',
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: { p: { type: 'int', default: 2, description: 'the norm' } },
    grad: true,
    expand: expandGlobalLpPool,
  })),
];
