/**
 * ONNX TensorProto <-> host arrays. tilesim computes in float32 and int32, so:
 *
 *   FLOAT                 float32
 *   FLOAT16               float16 (values decoded to float32, the IR's host form)
 *   INT32                 int32
 *   INT64                 int32, each value range-checked (the sentinels
 *                         INT64_MAX and INT64_MIN(+1), which PyTorch writes as
 *                         "to the end" in Slice, become INT32_MAX / INT32_MIN)
 *   BOOL                  int32 (0 or 1)
 *
 * Anything else (double, 8- and 16-bit integers, strings, ...) is a UserError
 * naming the tensor. Both storage forms are read: raw_data (little endian) and
 * the typed fields (float_data, int32_data, int64_data); external data is read
 * from the file the tensor names, relative to the model's folder.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import type onnxProto from 'onnx-proto';
import { codeName, DataLocation, DataType } from './proto.js';
import type { DTypeName } from '../config/types.js';

export type TensorProto = onnxProto.onnx.ITensorProto;
export { DataType };

/** A protobufjs 64-bit integer: a number, or a Long (low and high 32-bit halves). */
export type Int64Like = number | { low: number; high: number; unsigned?: boolean };

/** The ONNX element types tilesim reads, and what they become. */
export const SUPPORTED_ELEM_TYPES: Readonly<Record<number, DTypeName>> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.INT32]: 'int32',
  [DataType.INT64]: 'int32',
  [DataType.BOOL]: 'int32',
};

export const SUPPORTED_ELEM_TYPES_TEXT = 'float32, float16, int32, int64 (read as int32), bool (read as int32)';

/** 'FLOAT', 'INT64', ... for a TensorProto.DataType code. */
export function elemTypeName(code: number | null | undefined): string {
  const name = codeName(DataType, code ?? 0);
  return name ?? `data type ${code}`;
}

export class TensorDecodeError extends Error {}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/** A Long or number as a JS number (exact up to 2^53). */
export function int64ToNumber(v: Int64Like | null | undefined): number {
  if (v === null || v === undefined) return 0;
  if (typeof v === 'number') return v;
  const low = v.low >>> 0;
  const high = v.unsigned ? v.high >>> 0 : v.high | 0;
  return high * 4294967296 + low;
}

/**
 * An int64 value (given as its two halves) as int32: exact when it fits, the
 * INT64 sentinels clamped, anything else an error.
 */
function int64Halves(low: number, high: number, what: string, index: number): number {
  const lo = low >>> 0;
  const hi = high | 0;
  if ((hi === 0 && lo <= INT32_MAX) || (hi === -1 && lo >= 0x80000000)) return lo | 0;
  if (hi === 0x7fffffff && lo === 0xffffffff) return INT32_MAX; // INT64_MAX
  if (hi === -0x80000000 && (lo === 0 || lo === 1)) return INT32_MIN; // INT64_MIN, INT64_MIN + 1
  const value = BigInt.asIntN(64, (BigInt(hi) << 32n) | BigInt(lo));
  throw new TensorDecodeError(
    `${what}: int64 value ${value} (element ${index}) does not fit in int32, which tilesim uses for integers ` +
      `(range ${INT32_MIN} to ${INT32_MAX}; only the sentinels INT64_MAX and INT64_MIN are clamped)`,
  );
}

/** Convert JS numbers (int64 attribute values, say) to int32 with the same rules. */
export function toInt32(values: readonly number[], what: string): Int32Array {
  const out = new Int32Array(values.length);
  values.forEach((v, i) => {
    if (Number.isInteger(v) && v >= INT32_MIN && v <= INT32_MAX) out[i] = v;
    else if (v >= 2 ** 63) out[i] = INT32_MAX; // INT64_MAX as a double
    else if (v <= -(2 ** 63)) out[i] = INT32_MIN; // INT64_MIN (+1) as a double
    else throw new TensorDecodeError(`${what}: value ${v} (element ${i}) does not fit in int32, which tilesim uses for integers`);
  });
  return out;
}

export interface HostTensor {
  dtype: DTypeName;
  shape: number[];
  data: Float32Array | Int32Array;
  /** The ONNX element type it was read from. */
  elemType: number;
}

function bytesOf(t: TensorProto, baseDir: string | undefined, what: string): Uint8Array | undefined {
  if (t.dataLocation === DataLocation.EXTERNAL) {
    const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) throw new TensorDecodeError(`${what}: external data without a 'location'`);
    if (baseDir === undefined) throw new TensorDecodeError(`${what}: its data is in an external file (${location}), but the model was not read from a file`);
    const file = path.resolve(baseDir, location);
    let buf: Buffer;
    try {
      buf = readFileSync(file);
    } catch (e) {
      throw new TensorDecodeError(`${what}: cannot read its external data file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : buf.length - offset;
    if (!(offset >= 0 && length >= 0 && offset + length <= buf.length))
      throw new TensorDecodeError(`${what}: external data offset ${offset} + length ${length} is outside ${file} (${buf.length} bytes)`);
    return buf.subarray(offset, offset + length);
  }
  return t.rawData && t.rawData.length > 0 ? t.rawData : undefined;
}

/** Decode a TensorProto into a host array. Throws TensorDecodeError (callers add context). */
export function decodeTensor(t: TensorProto, what: string, baseDir?: string): HostTensor {
  const elemType = t.dataType ?? 0;
  const dtype = SUPPORTED_ELEM_TYPES[elemType];
  if (!dtype) throw new TensorDecodeError(`${what}: element type ${elemTypeName(elemType)} is not supported (supported: ${SUPPORTED_ELEM_TYPES_TEXT})`);
  if (t.segment) throw new TensorDecodeError(`${what}: segmented tensors are not supported`);
  const shape = (t.dims ?? []).map((d) => int64ToNumber(d));
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new TensorDecodeError(`${what}: bad dimensions [${shape.join(', ')}]`);
  const n = shape.reduce((a, b) => a * b, 1);
  const raw = bytesOf(t, baseDir, what);
  const count = (k: number) => {
    if (k !== n) throw new TensorDecodeError(`${what}: holds ${k} values, but its shape [${shape.join(', ')}] needs ${n}`);
  };
  const view = raw ? new DataView(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  switch (elemType) {
    case DataType.FLOAT: {
      const out = new Float32Array(n);
      if (view) {
        count(raw!.byteLength / 4);
        for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
      } else {
        count(t.floatData?.length ?? 0);
        out.set(t.floatData ?? []);
      }
      return { dtype, shape, data: out, elemType };
    }
    case DataType.FLOAT16: {
      const out = new Float32Array(n);
      if (view) {
        count(raw!.byteLength / 2);
        for (let i = 0; i < n; i++) out[i] = getFloat16(view, i * 2, true);
      } else {
        // int32_data holds the 16-bit patterns.
        const bits = t.int32Data ?? [];
        count(bits.length);
        const tmp = new DataView(new ArrayBuffer(2));
        for (let i = 0; i < n; i++) {
          tmp.setUint16(0, bits[i] & 0xffff, true);
          out[i] = getFloat16(tmp, 0, true);
        }
      }
      return { dtype, shape, data: out, elemType };
    }
    case DataType.INT32:
    case DataType.BOOL: {
      const out = new Int32Array(n);
      if (view) {
        const size = elemType === DataType.BOOL ? 1 : 4;
        count(raw!.byteLength / size);
        for (let i = 0; i < n; i++) out[i] = size === 1 ? (view.getUint8(i) !== 0 ? 1 : 0) : view.getInt32(i * 4, true);
      } else {
        count(t.int32Data?.length ?? 0);
        const src = t.int32Data ?? [];
        for (let i = 0; i < n; i++) out[i] = elemType === DataType.BOOL ? (src[i] !== 0 ? 1 : 0) : src[i];
      }
      return { dtype, shape, data: out, elemType };
    }
    case DataType.INT64: {
      const out = new Int32Array(n);
      if (view) {
        count(raw!.byteLength / 8);
        for (let i = 0; i < n; i++) out[i] = int64Halves(view.getUint32(i * 8, true), view.getInt32(i * 8 + 4, true), what, i);
      } else {
        const src = t.int64Data ?? [];
        count(src.length);
        for (let i = 0; i < n; i++) {
          const v = src[i];
          if (typeof v === 'number') out[i] = toInt32([v], what)[0];
          else out[i] = int64Halves(v.low, v.high, what, i);
        }
      }
      return { dtype, shape, data: out, elemType };
    }
  }
  throw new TensorDecodeError(`${what}: element type ${elemTypeName(elemType)} is not supported`);
}

/** The ONNX element type a tilesim dtype is written as (int32 as INT64: ONNX wants int64 shapes, axes and indices). */
export function exportElemType(dtype: DTypeName): number {
  return dtype === 'float32' ? DataType.FLOAT : dtype === 'float16' ? DataType.FLOAT16 : DataType.INT64;
}

/** A TensorProto holding `data` (raw_data, little endian) as `exportElemType(dtype)`. */
export function encodeTensor(name: string, dtype: DTypeName, shape: readonly number[], data: ArrayLike<number>): TensorProto {
  const n = shape.reduce((a, b) => a * b, 1);
  if (data.length !== n) throw new Error(`internal: tensor '${name}' has ${data.length} values for shape [${shape.join(', ')}]`);
  const elemType = exportElemType(dtype);
  const size = elemType === DataType.FLOAT ? 4 : elemType === DataType.FLOAT16 ? 2 : 8;
  const raw = new Uint8Array(n * size);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < n; i++) {
    if (elemType === DataType.FLOAT) view.setFloat32(i * 4, data[i], true);
    else if (elemType === DataType.FLOAT16) setFloat16(view, i * 2, data[i], true);
    else view.setBigInt64(i * 8, BigInt(Math.trunc(data[i])), true);
  }
  return { name, dims: [...shape], dataType: elemType, rawData: raw };
}
