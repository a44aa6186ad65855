/** Shared pieces of the nn op family: dtype and axis checks, version lists. */
import type { AttributeValue, Op } from '../ir/op.js';
import type { OperatorIdentifier } from '../ir/opid.js';
import type { DType } from '../ir/dtype.js';
import type { OpDefinition } from '../ir/registry.js';
import { fmtInfo } from '../ir/tensorinfo.js';

export const ONNX = 'ai.onnx';
export const GC = 'ai.graphcore';
export const gid = (type: string): OperatorIdentifier => ({ domain: GC, type, version: 1 });

/** Input i must be float32 or float16; returns its dtype. */
export function floatInput(op: Op, i: number): DType {
  const info = op.inInfo(i);
  if (info.dtype !== 'float32' && info.dtype !== 'float16') op.fail(`input ${i} '${op.inId(i)}' must be float32 or float16, got ${fmtInfo(info)}`);
  return info.dtype;
}

/** Inputs `indices` must share input `ref`'s dtype. */
export function sameDTypeAs(op: Op, ref: number, indices: number[]): void {
  const d = op.inInfo(ref).dtype;
  for (const i of indices) {
    if (!op.hasInput(i)) continue;
    const e = op.inInfo(i).dtype;
    if (e !== d) op.fail(`input ${i} '${op.inId(i)}' must have the dtype of '${op.inId(ref)}' (${d}), got ${e}`);
  }
}

/** An axis in [-rank, rank) made non-negative, or a failure naming the range. */
export function normAxis(op: Op, axis: number, rank: number, what = 'axis'): number {
  if (axis < -rank || axis >= rank) op.fail(`${what} ${axis} is out of range for rank ${rank} (allowed ${-rank} to ${rank - 1})`);
  return axis < 0 ? axis + rank : axis;
}

export function product(xs: readonly number[]): number {
  return xs.reduce((a, b) => a * b, 1);
}

/** Definitions of one ONNX op at several versions. */
export function versions(type: string, vs: number[], def: (version: number, id: OperatorIdentifier) => Omit<OpDefinition, 'id'>): OpDefinition[] {
  return vs.map((version) => {
    const id = { domain: ONNX, type, version };
    return { id, ...def(version, id) };
  });
}

/** Attributes for export: lists left empty (defaults) are omitted, as ONNX files omit them. */
export function withoutEmpty(attrs: Record<string, AttributeValue>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(attrs).filter(([, v]) => !(Array.isArray(v) && v.length === 0)));
}
