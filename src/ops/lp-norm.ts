/**
 * Normalisations and p-norm pooling written as composites of ops tilesim
 * lowers already (their gradients are those of the parts):
 *
 *   LpNormalization            X / ||X||_p along `axis` (p 1: ReduceL1, 2: ReduceL2, kept)
 *   MeanVarianceNormalization  (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over `axes`,
 *                              ONNX's own function body, term for term
 *   GlobalLpPool               (sum over the spatial axes of |X|^p)^(1/p), kept as size 1
 *   LpPool                     the same over each window: AveragePool of |X|^p counting the
 *                              pads (0 there, as in a sum), times the window size, then ^(1/p)
 */
import type { AttributeValue } from '../ir/op.js';
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

/** |x|^p: exact for p 1 (Abs) and 2 (x x); Pow otherwise. */
function absPow(b: Builder, x: string, p: number): string {
  if (p === 1) return b.add('Abs', 13, [x]);
  if (p === 2) return b.add('Mul', 14, [x, x]);
  return b.add('Pow', 15, [b.add('Abs', 13, [x]), scalar(b, 'p', p)]);
}

/**
 * Pads under which floor-mode windows are exactly ceil_mode's (src/ops/spatial.ts's rule: a last window
 * starting in the end padding is dropped): each end pad becomes what the last window needs.
 */
function ceilModePads(dims: readonly number[], k: readonly number[], strides: readonly number[], dilations: readonly number[], pads: readonly number[]): number[] {
  const r = dims.length;
  const begin = dims.map((_, i) => pads[i] ?? 0);
  const end = dims.map((D, i) => {
    const s = strides[i] ?? 1;
    const span = (k[i] - 1) * (dilations[i] ?? 1) + 1;
    const pe = pads[r + i] ?? 0;
    let o = Math.ceil((D + begin[i] + pe - span) / s) + 1;
    if ((o - 1) * s >= D + begin[i]) o--;
    return Math.max(0, (o - 1) * s + span - D - begin[i]);
  });
  return [...begin, ...end];
}

function expandLpPool(version: number) {
  return (args: ExpandArgs): Expansion => {
    const b = new Builder(args);
    floatInput(b, 'X');
    const p = args.attributes.int('p');
    if (p < 1) b.fail(`p must be 1 or more, got ${p}`);
    const kernel = args.attributes.ints('kernel_shape');
    const window = kernel.reduce((a, k) => a * k, 1);
    const autoPad = args.attributes.string('auto_pad');
    const dilations = version >= 18 ? args.attributes.ints('dilations') : [];
    let pads = args.attributes.ints('pads');
    let explicit = false;
    // ceil_mode's last windows overhang the input, and an average divides them by what is inside: as floor
    // windows over end pads just long enough (zeros, counted), every window's divisor is its size.
    if (version >= 18 && args.attributes.int('ceil_mode') === 1) {
      if (autoPad !== 'NOTSET' && autoPad !== 'VALID') b.fail(`ceil_mode 1 with auto_pad ${autoPad} is not supported; give pads explicitly`);
      pads = ceilModePads(b.info(0).shape.slice(2), kernel, args.attributes.ints('strides'), dilations, autoPad === 'VALID' ? [] : pads);
      explicit = true;
    }
    const pool: Record<string, AttributeValue> = {
      auto_pad: explicit ? 'NOTSET' : autoPad,
      kernel_shape: kernel,
      pads,
      strides: args.attributes.ints('strides'),
      count_include_pad: 1,
      ...(version >= 18 ? { dilations } : {}),
    };
    const mean = b.add('AveragePool', version >= 18 ? 19 : 11, [absPow(b, args.node.inputs[0], p)], pool);
    const sum = b.add('Mul', 14, [mean, scalar(b, 'window', window)]);
    const out = args.node.outputs[0];
    if (p === 1) b.add('Identity', 16, [sum], {}, out);
    else if (p === 2) b.add('Sqrt', 13, [sum], {}, out);
    else b.add('Pow', 15, [sum, scalar(b, 'inv_p', 1 / p)], {}, out);
    return b.done();
  };
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
  ...versions('LpPool', [11, 18], (id, version) => ({
    description: "The p-norm over each window: AveragePool of |X|^p counting the pads, times the window size, then the p-th root",
    inputs: [{ name: 'X' }],
    outputs: [{ name: 'Y' }],
    attributes: {
      auto_pad: { type: 'string', default: 'NOTSET', description: 'NOTSET, VALID, SAME_UPPER or SAME_LOWER' },
      kernel_shape: { type: 'ints', description: 'window size per spatial dim' },
      p: { type: 'int', default: 2, description: 'the norm' },
      pads: { type: 'ints', default: [], description: 'begin pads then end pads (default 0)' },
      strides: { type: 'ints', default: [], description: 'per spatial dim (default 1)' },
      ...(version >= 18
        ? { ceil_mode: { type: 'int' as const, default: 0, description: 'round the output size up' }, dilations: { type: 'ints' as const, default: [], description: 'per spatial dim (default 1)' } }
        : {}),
    },
    grad: true,
    expand: expandLpPool(version),
  })),
];
