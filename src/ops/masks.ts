/**
 * Ops that keep or make a triangle or a diagonal, as composites over a
 * constant mask (shapes are fixed at compile time, so the mask is too):
 *
 *   Trilu    Where(mask, X, 0) with mask[i, j] = j - i >= k (upper) or <= k (lower) over
 *            the last two axes, broadcast over the rest; its gradient is Where's
 *   EyeLike  a constant: 1 where j - i = k, else 0, of the input's shape and `dtype`
 */
import type { DType } from '../ir/dtype.js';
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { CAST_TARGETS } from './cast.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

function diagonalMask(rows: number, cols: number, keep: (d: number) => boolean): Int32Array {
  const m = new Int32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) m[i * cols + j] = keep(j - i) ? 1 : 0;
  return m;
}

function expandTrilu(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const x = b.info(0);
  if (x.shape.length < 2) b.fail(`input must have at least 2 dims, got ${fmtInfo(x)}`);
  let k = 0;
  if (args.node.inputs[1]) {
    const v = b.constant(1, 'k');
    if (v.length !== 1) b.fail(`k (input 1 '${args.node.inputs[1]}') must be a scalar, got ${v.length} values`);
    k = v[0];
  }
  const upper = args.attributes.int('upper') !== 0;
  const [rows, cols] = x.shape.slice(-2);
  const mask = b.tensor('mask', 'int32', [rows, cols], diagonalMask(rows, cols, (d) => (upper ? d >= k : d <= k)));
  const zero = b.tensor('zero', x.dtype, [], x.dtype === 'int32' ? Int32Array.of(0) : Float32Array.of(0));
  b.add('Where', 16, [mask, args.node.inputs[0], zero], {}, args.node.outputs[0]);
  return b.done();
}

function expandEyeLike(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const x = b.info(0);
  if (x.shape.length !== 2) b.fail(`input must be 2-D, got ${fmtInfo(x)}`);
  let dtype: DType = x.dtype;
  const code = args.attributes.int('dtype');
  if (code !== 0) {
    const t = CAST_TARGETS[code];
    if (!t) b.fail(`dtype ${code} is not one tilesim has (FLOAT 1, FLOAT16 10, INT32 6, INT64 7 as int32)`);
    dtype = t!;
  }
  const k = args.attributes.int('k');
  const [rows, cols] = x.shape;
  const ones = diagonalMask(rows, cols, (d) => d === k);
  const eye = b.tensor('eye', dtype, [rows, cols], dtype === 'int32' ? ones : Float32Array.from(ones));
  b.add('Identity', 16, [eye], {}, args.node.outputs[0]);
  return b.done();
}

export const maskDefinitions: OpDefinition[] = [
  ...versions('Trilu', [14], () => ({
    description: 'The upper or lower triangle of the last two axes (diagonal offset k, a constant), the rest 0: Where over a constant mask',
    inputs: [{ name: 'input' }, { name: 'k', optional: true }],
    outputs: [{ name: 'output' }],
    attributes: { upper: { type: 'int', default: 1, description: '1: keep j - i >= k; 0: keep j - i <= k' } },
    grad: true,
    expand: expandTrilu,
  })),
  ...versions('EyeLike', [9], () => ({
    description: "Ones on the diagonal offset by k, zeros elsewhere, of the input's shape (a constant); no gradient",
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { dtype: { type: 'int', default: 0, description: "TensorProto type of the output; 0 (UNDEFINED, the default): the input's" }, k: { type: 'int', default: 0, description: 'diagonal offset' } },
    grad: false,
    expand: expandEyeLike,
  })),
];
