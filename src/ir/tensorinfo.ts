import { DTYPE_SIZE, type DType } from './dtype.js';

/** Shape and element type of a tensor: what setup() infers. */
export interface TensorInfo {
  dtype: DType;
  shape: readonly number[];
}

export function nelms(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function nbytes(info: TensorInfo): number {
  return nelms(info.shape) * DTYPE_SIZE[info.dtype];
}

export function sameInfo(a: TensorInfo, b: TensorInfo): boolean {
  return a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
}

export function fmtInfo(i: TensorInfo): string {
  return `${i.dtype}[${i.shape.join(', ')}]`;
}
