/**
 * The pure views of row-major data: Reshape, Flatten, Squeeze, Unsqueeze.
 * None moves an element: each output is an alias of its input's device
 * tensor (no copy, no cycles), and each gradient is the output gradient read
 * with the input's shape (ViewGradOp, also an alias).
 *
 * Versions registered (opsets 11..18 resolve to one of them):
 *   Reshape 5 (shape input), 13 (more types), 14 (allowzero attribute);
 *   Flatten 11, 13;
 *   Squeeze, Unsqueeze 11 (axes attribute), 13 (axes input; optional for Squeeze).
 */
import { Op, type AttributeValue, type GradOp, type OpSettings } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type AttributeDef, type OpDefinition } from '../ir/registry.js';
import { nelms } from '../ir/tensorinfo.js';
import { ViewGradOp, constantInts, describeInput, floatInput, normAxes, versions } from './shape-util.js';

/** An op whose output is its input 0 with another shape. */
abstract class ViewOp extends Op {
  override getGradOps(): GradOp[] {
    return floatInput(this, 0) ? [new ViewGradOp(this)] : [];
  }
}

const aliasLowering: OpDefinition['lower'] = (_op, ctx) => ctx.aliasOutput(0, ctx.input(0));

// ---------------------------------------------------------------------------
// Reshape

export class ReshapeOp extends ViewOp {
  constructor(
    readonly allowzero: boolean,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const req = constantInts(this, 1, 'the shape');
    const n = nelms(x.shape);
    const bad = (why: string): never =>
      this.fail(`cannot reshape ${describeInput(this)} (${n} elements) to shape [${req.join(', ')}] (input 1 '${this.inId(1)}'): ${why}`);
    const out: number[] = [];
    let infer = -1;
    for (const [k, d] of req.entries()) {
      if (d === -1) {
        if (infer >= 0) bad(`-1 appears twice (at ${infer} and ${k}); at most one dimension is inferred`);
        infer = k;
        out.push(1);
      } else if (d === 0 && !this.allowzero) {
        if (k >= x.shape.length) bad(`0 at position ${k} copies dimension ${k} of the input, which has only ${x.shape.length}`);
        out.push(x.shape[k]);
      } else if (d < 0) {
        bad(`dimension ${d} at position ${k} is negative (only -1, inferred, is allowed)`);
      } else out.push(d);
    }
    if (this.allowzero && infer >= 0 && req.includes(0)) bad('with allowzero = 1 a shape may not hold both 0 and -1');
    const known = nelms(out);
    if (infer >= 0) {
      if (known === 0 || n % known !== 0) bad(`the other dimensions hold ${known} elements, which does not divide ${n}`);
      out[infer] = n / known;
    } else if (known !== n) bad(`that shape holds ${known} elements`);
    this.setOutInfo(0, { dtype: x.dtype, shape: out });
  }
  override attributes(): Record<string, AttributeValue> {
    return this.opid.version >= 14 ? { allowzero: this.allowzero ? 1 : 0 } : {};
  }
}

// ---------------------------------------------------------------------------
// Flatten

export class FlattenOp extends ViewOp {
  constructor(
    readonly axis: number,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const r = x.shape.length;
    if (!Number.isInteger(this.axis) || this.axis < -r || this.axis > r) {
      this.fail(`axis ${this.axis} is out of range for ${describeInput(this)} (rank ${r}: valid axes are ${-r} to ${r})`);
    }
    const a = this.axis < 0 ? this.axis + r : this.axis;
    this.setOutInfo(0, { dtype: x.dtype, shape: [nelms(x.shape.slice(0, a)), nelms(x.shape.slice(a))] });
  }
  override attributes(): Record<string, AttributeValue> {
    return { axis: this.axis };
  }
}

// ---------------------------------------------------------------------------
// Squeeze and Unsqueeze

/** Where the axes come from: the attribute (version 11) or input 1 (version 13). */
type AxesSource = { attribute: number[] } | { input: true };

function axesOf(op: Op, src: AxesSource): number[] | undefined {
  if ('attribute' in src) return src.attribute;
  return op.hasInput(1) ? constantInts(op, 1, 'the axes') : undefined;
}

export class SqueezeOp extends ViewOp {
  constructor(
    readonly axesSource: AxesSource,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const given = axesOf(this, this.axesSource);
    let axes: number[];
    if (given === undefined || given.length === 0) axes = x.shape.flatMap((d, k) => (d === 1 ? [k] : []));
    else {
      axes = normAxes(this, given, x.shape.length, 'axes', describeInput(this));
      for (const a of axes) {
        if (x.shape[a] !== 1) this.fail(`cannot squeeze axis ${a} of ${describeInput(this)}: its size is ${x.shape[a]}, not 1 (axes [${given.join(', ')}])`);
      }
    }
    this.setOutInfo(0, { dtype: x.dtype, shape: x.shape.filter((_, k) => !axes.includes(k)) });
  }
  override attributes(): Record<string, AttributeValue> {
    return 'attribute' in this.axesSource && this.axesSource.attribute.length > 0 ? { axes: this.axesSource.attribute } : {};
  }
}

export class UnsqueezeOp extends ViewOp {
  constructor(
    readonly axesSource: AxesSource,
    settings: OpSettings,
    opid: OperatorIdentifier,
  ) {
    super(opid, settings);
  }
  setup(): void {
    const x = this.inInfo(0);
    const given = axesOf(this, this.axesSource) ?? [];
    if (given.length === 0) this.fail('needs at least one axis to insert');
    const rank = x.shape.length + given.length;
    const axes = normAxes(this, given, rank, 'axes', `the output of rank ${rank} (${describeInput(this)} plus ${given.length} new axes)`);
    const out: number[] = [];
    let from = 0;
    for (let k = 0; k < rank; k++) out.push(axes.includes(k) ? 1 : x.shape[from++]);
    this.setOutInfo(0, { dtype: x.dtype, shape: out });
  }
  override attributes(): Record<string, AttributeValue> {
    return 'attribute' in this.axesSource ? { axes: this.axesSource.attribute } : {};
  }
}

// ---------------------------------------------------------------------------
// Definitions

const ALLOWZERO: Record<string, AttributeDef> = { allowzero: { type: 'int', default: 0, description: '1: a 0 in shape is a zero dimension, not a copy' } };

export const viewDefinitions: OpDefinition[] = [
  ...versions('Reshape', [5, 13, 14], (id, v) => defineOp({
    op: ReshapeOp,
    id,
    description: 'Reshape to a constant shape input (0 copies the input dimension unless allowzero, -1 is inferred): an alias, no data moved',
    inputs: [{ name: 'data' }, { name: 'shape' }],
    outputs: [{ name: 'reshaped' }],
    attributes: v >= 14 ? ALLOWZERO : {},
    grad: true,
    create: ({ attributes, settings }) => new ReshapeOp(v >= 14 && attributes.int('allowzero') !== 0, settings, id),
    lower: aliasLowering,
  })),
  ...versions('Flatten', [11, 13], (id) => defineOp({
    op: FlattenOp,
    id,
    description: 'Flatten to 2-D [prod(dims before axis), prod(dims from axis)]: an alias',
    inputs: [{ name: 'input' }],
    outputs: [{ name: 'output' }],
    attributes: { axis: { type: 'int', default: 1, description: 'first axis of the second dimension, in [-r, r]' } },
    grad: true,
    create: ({ attributes, settings }) => new FlattenOp(attributes.int('axis'), settings, id),
    lower: aliasLowering,
  })),
  ...versions('Squeeze', [11], (id) => defineOp({
    op: SqueezeOp,
    id,
    description: 'Remove size-1 axes (the axes attribute, or all size-1 axes when absent): an alias',
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'squeezed' }],
    attributes: { axes: { type: 'ints', default: [], description: 'axes to remove; empty: every size-1 axis' } },
    grad: true,
    create: ({ attributes, settings }) => new SqueezeOp({ attribute: attributes.ints('axes') }, settings, id),
    lower: aliasLowering,
  })),
  ...versions('Squeeze', [13], (id) => defineOp({
    op: SqueezeOp,
    id,
    description: 'Remove size-1 axes (a constant axes input, or all size-1 axes when absent): an alias',
    inputs: [{ name: 'data' }, { name: 'axes', optional: true }],
    outputs: [{ name: 'squeezed' }],
    grad: true,
    create: ({ settings }) => new SqueezeOp({ input: true }, settings, id),
    lower: aliasLowering,
  })),
  ...versions('Unsqueeze', [11], (id) => defineOp({
    op: UnsqueezeOp,
    id,
    description: 'Insert size-1 axes at the output positions of the axes attribute: an alias',
    inputs: [{ name: 'data' }],
    outputs: [{ name: 'expanded' }],
    attributes: { axes: { type: 'ints', description: 'positions of the new axes in the output' } },
    grad: true,
    create: ({ attributes, settings }) => new UnsqueezeOp({ attribute: attributes.ints('axes') }, settings, id),
    lower: aliasLowering,
  })),
  ...versions('Unsqueeze', [13], (id) => defineOp({
    op: UnsqueezeOp,
    id,
    description: 'Insert size-1 axes at the output positions of a constant axes input: an alias',
    inputs: [{ name: 'data' }, { name: 'axes' }],
    outputs: [{ name: 'expanded' }],
    grad: true,
    create: ({ settings }) => new UnsqueezeOp({ input: true }, settings, id),
    lower: aliasLowering,
  })),
];
