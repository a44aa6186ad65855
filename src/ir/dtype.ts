/** Element types of IR tensors. */
export type DType = 'float32' | 'float16' | 'int32';

export const DTYPES: readonly DType[] = ['float32', 'float16', 'int32'];

export const DTYPE_SIZE: Record<DType, number> = { float32: 4, float16: 2, int32: 4 };

export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float16';
}

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = { float32: 1, float16: 10, int32: 6 };
