/**
 * ReverseSequence (10): in each batch item b, the first sequence_lens[b]
 * elements along the time axis reversed, the rest copied. A composite: a
 * GatherElements along the time axis over a constant index tensor of the
 * input's shape (index[t] = t < len ? len - 1 - t : t), so its lowering
 * brings each tile the runs of the input it needs, and its gradient is
 * GatherElements' (a scatter-add of the same indices). sequence_lens must be
 * a constant: shapes and indices are fixed at compile time.
 */
import type { ExpandArgs, Expansion, OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { Builder } from './composites.js';
import { versions } from './shape-util.js';

function expandReverseSequence(args: ExpandArgs): Expansion {
  const b = new Builder(args);
  const x = b.info(0);
  const shape = x.shape;
  if (shape.length < 2) b.fail(`input must have at least 2 dims, got ${fmtInfo(x)}`);
  const timeAxis = args.attributes.int('time_axis');
  const batchAxis = args.attributes.int('batch_axis');
  if (!((timeAxis === 0 && batchAxis === 1) || (timeAxis === 1 && batchAxis === 0))) {
    b.fail(`time_axis ${timeAxis} and batch_axis ${batchAxis} must be 0 and 1 (either way round), as ONNX allows`);
  }
  const lens = b.constant(1, 'sequence_lens');
  const [T, B] = [shape[timeAxis], shape[batchAxis]];
  if (lens.length !== B) b.fail(`sequence_lens has ${lens.length} values, but the batch axis (${batchAxis}) has ${B} items`);
  for (const [i, l] of lens.entries()) if (!Number.isInteger(l) || l < 0 || l > T) b.fail(`sequence_lens[${i}] = ${l} is outside [0, ${T}] (the time axis)`);
  const inner = shape.slice(2).reduce((a, d) => a * d, 1);
  const index = new Int32Array(T * B * inner);
  for (let p = 0; p < shape[0]; p++) {
    for (let q = 0; q < shape[1]; q++) {
      const [t, bi] = timeAxis === 0 ? [p, q] : [q, p];
      const l = lens[bi];
      const from = t < l ? l - 1 - t : t;
      index.fill(from, (p * shape[1] + q) * inner, (p * shape[1] + q + 1) * inner);
    }
  }
  const idx = b.tensor('index', 'int32', [...shape], index);
  b.add('GatherElements', 13, [args.node.inputs[0], idx], { axis: timeAxis }, args.node.outputs[0]);
  return b.done();
}

export const reverseSequenceDefinitions: OpDefinition[] = versions('ReverseSequence', [10], () => ({
  description: 'The first sequence_lens[b] elements of each batch item reversed along the time axis (constant lengths): a GatherElements over constant indices',
  inputs: [{ name: 'input' }, { name: 'sequence_lens' }],
  outputs: [{ name: 'Y' }],
  attributes: {
    batch_axis: { type: 'int', default: 1, description: 'the batch axis (0 or 1)' },
    time_axis: { type: 'int', default: 0, description: 'the time axis (1 or 0)' },
  },
  grad: true,
  expand: expandReverseSequence,
}));
