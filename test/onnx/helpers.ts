/** Small ONNX models for the importer and exporter tests, written with onnx-proto. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, expect } from 'vitest';
import { UserError } from '../../src/errors.js';

export const { onnx } = onnxProto;
export const DT = onnx.TensorProto.DataType;
export const AT = onnx.AttributeProto.AttributeType;

export type Dim = number | string;

export function valueInfo(name: string, elemType: number, dims?: Dim[]): onnxProto.onnx.IValueInfoProto {
  const shape = dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined;
  return { name, type: { tensorType: { elemType, ...(shape ? { shape } : {}) } } };
}

export const f32 = (name: string, dims?: Dim[]) => valueInfo(name, DT.FLOAT, dims);

export function floatTensor(name: string, dims: number[], values: number[]): onnxProto.onnx.ITensorProto {
  return { name, dims, dataType: DT.FLOAT, floatData: values };
}

export function int64Tensor(name: string, dims: number[], values: (number | bigint)[]): onnxProto.onnx.ITensorProto {
  // raw_data, little endian: exact for any int64
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { name, dims, dataType: DT.INT64, rawData: raw };
}

export interface ModelSpec {
  nodes: onnxProto.onnx.INodeProto[];
  inputs?: onnxProto.onnx.IValueInfoProto[];
  outputs: onnxProto.onnx.IValueInfoProto[];
  initializers?: onnxProto.onnx.ITensorProto[];
  valueInfo?: onnxProto.onnx.IValueInfoProto[];
  opset?: number;
  /** Extra opset imports (domain -> version). */
  domains?: Record<string, number>;
  irVersion?: number;
}

export function modelBytes(spec: ModelSpec): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: spec.irVersion ?? 8,
    producerName: 'tilesim tests',
    opsetImport: [{ domain: '', version: spec.opset ?? 18 }, ...Object.entries(spec.domains ?? {}).map(([domain, version]) => ({ domain, version }))],
    graph: {
      name: 'test',
      node: spec.nodes,
      input: spec.inputs ?? [],
      output: spec.outputs,
      initializer: spec.initializers ?? [],
      valueInfo: spec.valueInfo ?? [],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

export function node(opType: string, input: string[], output: string[], attribute: onnxProto.onnx.IAttributeProto[] = [], extra: Partial<onnxProto.onnx.INodeProto> = {}): onnxProto.onnx.INodeProto {
  return { opType, input, output, attribute, ...extra };
}

export const attr = {
  f: (name: string, f: number) => ({ name, type: AT.FLOAT, f }),
  i: (name: string, i: number) => ({ name, type: AT.INT, i }),
  s: (name: string, s: string) => ({ name, type: AT.STRING, s: new TextEncoder().encode(s) }),
  ints: (name: string, ints: number[]) => ({ name, type: AT.INTS, ints }),
  t: (name: string, t: onnxProto.onnx.ITensorProto) => ({ name, type: AT.TENSOR, t }),
};

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

export function tempDir(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'tilesim-onnx-'));
  dirs.push(d);
  return d;
}

/** Write files (name -> bytes or text) into a fresh folder; returns the folder. */
export function writeTemp(files: Record<string, Uint8Array | string>): string {
  const d = tempDir();
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(d, name), content);
  return d;
}

/** Run fn, expect a UserError, return its message. */
export function userErrorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e, 'expected a UserError').toBeInstanceOf(UserError);
    expect((e as UserError).exitCode).toBe(2);
    return (e as Error).message;
  }
  return expect.fail('expected a UserError, nothing was thrown');
}
