/**
 * Helpers shared by the shape op family: constant int inputs, axis checks,
 * version registration, and the grad op of every pure view (Reshape,
 * Flatten, Squeeze, Unsqueeze): the output gradient reshaped back, an alias.
 */
import { OutputGradOnlyGradOp, type Op } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import { defineOp, type OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';

export const ONNX = 'ai.onnx';
export const GC = 'ai.graphcore';

/** One definition per ONNX version, built by `make` from its identifier. */
export function versions(type: string, vs: readonly number[], make: (id: OperatorIdentifier, version: number) => Omit<OpDefinition, 'id'>): OpDefinition[] {
  return vs.map((version) => {
    const id = { domain: ONNX, type, version };
    return { id, ...make(id, version) };
  });
}

/**
 * The values of constant int input `i` (an initializer with trainable:
 * false). Anything computed, streamed or trainable is an error naming the op
 * and the input: shapes are fixed at compile time.
 */
export function constantInts(op: Op, i: number, what: string): number[] {
  const t = op.graph.tensor(op.inId(i));
  if (t.kind !== 'constant' || !t.data) {
    const why = t.producer
      ? `it is computed by op '${t.producer.name}'`
      : t.kind === 'stream'
        ? 'it is a streamed graph input'
        : t.kind === 'variable'
          ? 'it is a trainable variable'
          : `it is a ${t.kind}`;
    op.fail(`${what} (input ${i} '${t.id}') must be a constant initializer (trainable: false), because tilesim fixes shapes at compile time; ${why}`);
  }
  if (t.info.dtype !== 'int32') op.fail(`${what} (input ${i} '${t.id}') must be an integer tensor (ONNX int64), got ${fmtInfo(t.info)}`);
  if (t.info.shape.length > 1) op.fail(`${what} (input ${i} '${t.id}') must be 1-D, got ${fmtInfo(t.info)}`);
  return Array.from(t.data);
}

/** Input 0 described for messages: `input 0 'x' float32[2, 3]`. */
export function describeInput(op: Op, i = 0): string {
  return `input ${i} '${op.inId(i)}' ${fmtInfo(op.inInfo(i))}`;
}

/**
 * Normalise axes for a tensor of `rank` (negative count from the end);
 * out-of-range and repeated axes fail naming the op, the axes and `of`
 * (the shape they apply to).
 */
export function normAxes(op: Op, axes: readonly number[], rank: number, what: string, of: string): number[] {
  const out: number[] = [];
  for (const a of axes) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      op.fail(`${what} [${axes.join(', ')}]: axis ${a} is out of range for ${of} (rank ${rank}: valid axes are ${-rank} to ${rank - 1})`);
    }
    const n = a < 0 ? a + rank : a;
    if (out.includes(n)) op.fail(`${what} [${axes.join(', ')}] names axis ${n} twice (for ${of})`);
    out.push(n);
  }
  return out;
}

const VIEW_GRAD = { domain: GC, type: 'ReshapeGrad', version: 1 };

/**
 * The grad op of a view (Reshape, Flatten, Squeeze, Unsqueeze): the output
 * gradient read with the input's shape. Row-major order is unchanged, so it
 * lowers to an alias.
 */
export class ViewGradOp extends OutputGradOnlyGradOp {
  static readonly defaultOperatorId = VIEW_GRAD;
  constructor(fwd: Op) {
    super(VIEW_GRAD, fwd);
  }
}

export const viewGradDefinition: OpDefinition = defineOp({
  op: ViewGradOp,
  description: "dX = dY read with X's shape (the gradient of Reshape, Flatten, Squeeze, Unsqueeze): an alias",
  lower: (_op, ctx) => ctx.aliasOutput(0, ctx.input(0)),
});

/** The forward op gives its data input a gradient only when it is a float tensor. */
export function floatInput(op: Op, i: number): boolean {
  const d = op.inInfo(i).dtype;
  return d === 'float32' || d === 'float16';
}
