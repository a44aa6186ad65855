/**
 * The ONNX protobuf schema (onnx-proto, over protobufjs), loaded when a
 * model is first read or written: a YAML-graph run, a sweep or a report
 * never needs it, and loading it at start-up cost every command about
 * 20 MB of memory. The enum codes the importer and exporter compare
 * against are fixed by the ONNX spec and kept here (test/onnx/proto.test.ts
 * checks them against onnx-proto's).
 */
import { createRequire } from 'node:module';
import type onnxProto from 'onnx-proto';

export type OnnxSchema = typeof onnxProto.onnx;

let schema: OnnxSchema | undefined;

/** onnx-proto's `onnx` namespace (ModelProto and the rest), loaded on first use. */
export function onnxSchema(): OnnxSchema {
  return (schema ??= (createRequire(import.meta.url)('onnx-proto') as typeof onnxProto).onnx);
}

/** TensorProto.DataType. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
} as const;

/** AttributeProto.AttributeType. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

/** TensorProto.DataLocation. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

/** The name of `code` in one of these enums ('FLOAT', 'INT64', ...), or undefined. */
export function codeName(codes: Readonly<Record<string, number>>, code: number): string | undefined {
  for (const name in codes) if (codes[name] === code) return name;
  return undefined;
}
