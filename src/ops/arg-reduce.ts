/**
 * ArgMax and ArgMin (ONNX 11, 12, 13): the index along `axis` of the largest
 * (smallest) element, int32 here (ONNX int64), keepdims and, from version 12,
 * select_last_index (ties go to the last index instead of the first). No
 * gradient (an index is not differentiable).
 *
 * Lowering: the output is mapped linearly; each tile's output range reads
 * the window of the input its columns cover (from its first output's first
 * element to its last output's last), brought to the tile by the exchange,
 * and one ArgMax/ArgMin vertex scans it (sim/codelets/arg-reduce.ts).
 */
import { Op, type AttributeValue, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import type { LowerContext } from '../lower/context.js';
import { versions } from './binary.js';
import { ARG_REDUCE_CODELETS } from '../../sim/codelets/arg-reduce.js';

class ArgReduceOp extends Op {
  constructor(
    opid: OperatorIdentifier,
    settings: OpSettings,
    readonly axis: number,
    readonly keepdims: boolean,
    readonly last: boolean,
  ) {
    super(opid, settings);
  }

  /** The axis in [0, rank), and the sizes before, along and after it. */
  geometry(): { axis: number; outer: number; A: number; inner: number } {
    const s = this.inInfo(0).shape;
    const r = s.length;
    if (r === 0) this.fail('needs an input of rank >= 1');
    if (this.axis < -r || this.axis >= r) this.fail(`axis ${this.axis} is out of range for rank ${r}; it must be in [${-r}, ${r - 1}]`);
    const axis = this.axis < 0 ? this.axis + r : this.axis;
    const prod = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
    return { axis, outer: prod(s.slice(0, axis)), A: s[axis], inner: prod(s.slice(axis + 1)) };
  }

  setup(): void {
    const info = this.inInfo(0);
    if (info.dtype === 'int32' || info.dtype === 'float32' || info.dtype === 'float16') {
      const { axis, A } = this.geometry();
      if (A === 0) this.fail(`the reduced axis ${axis} has size 0: there is no index to return`);
      const shape = this.keepdims ? info.shape.map((d, i) => (i === axis ? 1 : d)) : info.shape.filter((_, i) => i !== axis);
      this.setOutInfo(0, { dtype: 'int32', shape });
      return;
    }
    this.fail(`supports float32, float16 and int32 inputs, got ${info.dtype}`);
  }

  override attributes(): Record<string, AttributeValue> {
    return { axis: this.axis, keepdims: this.keepdims ? 1 : 0, select_last_index: this.last ? 1 : 0 };
  }

  override flops(): number {
    const { outer, A, inner } = this.geometry();
    return outer * A * inner;
  }
}

function lowerArg(codelet: keyof typeof ARG_REDUCE_CODELETS) {
  return (a: ArgReduceOp, ctx: LowerContext): void => {
    const { A, inner } = a.geometry();
    const x = ctx.input(0);
    const out = ctx.output(0);
    ctx.computeSet(codelet);
    for (const r of ctx.ranges(out)) {
      // Output o reads first(o) + k inner for k < A; first() grows with o, so outputs [begin, end)
      // read from first(begin) to the last element of end - 1.
      const first = (o: number) => Math.floor(o / inner) * A * inner + (o % inner);
      const lo = first(r.begin);
      const hi = first(r.end - 1) + (A - 1) * inner + 1;
      ctx.vertex(ARG_REDUCE_CODELETS[codelet], r.tile, { in: ctx.onTile(x, lo, hi, r.tile), out: ctx.slice(out, r.begin, r.end) }, { A, inner, begin: r.begin, base: lo, last: a.last ? 1 : 0 });
    }
  };
}

export const argReduceDefinitions: OpDefinition[] = (['ArgMax', 'ArgMin'] as const).flatMap((type) =>
  versions(type, [11, 12, 13], (id) => defineOp({
    op: ArgReduceOp,
    id,
    description: `the index of the ${type === 'ArgMax' ? 'largest' : 'smallest'} element along axis (int32; ONNX int64); keepdims${id.version >= 12 ? ', select_last_index' : ''}; no gradient`,
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'reduced' }],
    attributes: {
      axis: { type: 'int', default: 0, description: 'axis to reduce, in [-r, r-1]' },
      keepdims: { type: 'int', default: 1, description: '1 keeps the reduced axis as size 1' },
      ...(id.version >= 12 ? { select_last_index: { type: 'int' as const, default: 0, description: '1: ties give the last index' } } : {}),
    },
    grad: false,
    create: ({ attributes, settings }) =>
      new ArgReduceOp(id, settings, attributes.int('axis'), attributes.int('keepdims') !== 0, id.version >= 12 && attributes.int('select_last_index') !== 0),
    lower: lowerArg(type),
  })),
);
