/**
 * One oracle harness for every op test (the op_tester of PopART, in spirit):
 *
 *   await checkForward({ op: 'Relu', inputs: { x: f32([2, 3], seed) } })
 *     builds the node through the same importer a config uses (attributes
 *     checked against the op definition), runs it forward through the
 *     simulator, runs the same node in onnxruntime-node, and compares every
 *     output with |ours - ref| <= atol + rtol |ref|.
 *
 *   await checkGrad({ op: 'Relu', inputs: { x: f32([2, 3], seed, 0.05) } })
 *     makes every float input that is not `constant` a trainable variable and
 *     checks the op's grad ops against central finite differences
 *     (src/autodiff/gradcheck.ts; tolerance reasoning in
 *     test/autodiff/gradcheck.test.ts).
 *
 * Optional inputs and outputs left out in the middle, as ONNX writes them:
 * an input given as OMITTED, and an output named '', reach both sides as ''.
 */
import ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { expect } from 'vitest';
import { gradcheck } from '../../src/autodiff/gradcheck.js';
import type { GraphDecl, NodeDecl } from '../../src/config/types.js';
import type { AttributeValue } from '../../src/ir/op.js';
import { normDomain, ONNX_DOMAIN } from '../../src/ir/opid.js';
import type { AttributeType, OpRegistry } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import type { PlanOverrides } from '../../src/lower/plan-overrides.js';
import { runGraph } from '../../src/session.js';
import type { DeviceSpec } from '../../sim/device.js';
import { randomData, tiny } from '../helpers.js';
import { decodeHalf, encodeHalf } from '../../sim/half.js';

const { onnx } = onnxProto;

export interface TensorSpec {
  shape: number[];
  data: Float32Array | Int32Array;
  /** A constant input (ONNX initializer; int32 data is given to onnxruntime as int64). */
  constant?: boolean;
  /** Store as float16 (data holds the values; both sides round them to float16), or as ONNX bool (Int32Array data of 0/1: int32 in tilesim's IR, bool for onnxruntime). */
  dtype?: 'float16' | 'bool';
  /** An omitted optional input: the node gets '' in its place (shape and data unused). */
  omitted?: boolean;
}

/** An omitted optional input (the key only names it for the test). */
export const OMITTED: TensorSpec = { shape: [], data: new Float32Array(0), omitted: true };

/** The case's inputs that are given (not omitted). */
function given(c: OpCase): [string, TensorSpec][] {
  return Object.entries(c.inputs).filter(([, t]) => !t.omitted);
}

/** The node's input names, '' for an omitted one. */
function nodeInputs(c: OpCase): string[] {
  return Object.entries(c.inputs).map(([n, t]) => (t.omitted ? '' : n));
}

export interface OpCase {
  op: string;
  domain?: string;
  opset?: number;
  attributes?: Record<string, AttributeValue>;
  inputs: Record<string, TensorSpec>;
  /** Output names (default ['y']; '' leaves an optional output out). */
  outputs?: string[];
  /** Per-element tolerance: |ours - ref| <= atol + rtol * |ref| (defaults 1e-6, 1e-5). */
  atol?: number;
  rtol?: number;
  device?: DeviceSpec;
  customOps?: string[];
  /** Element type of the outputs, when not float32 (bool: onnxruntime's bool against our int32 0/1). */
  outputDtype?: 'float16' | 'int32' | 'int64' | 'bool';
  /** Per-output element types, where outputs differ (TopK's values and indices); others take outputDtype. */
  outputDtypes?: Record<string, 'float16' | 'int32' | 'int64' | 'bool'>;
  /** Splits forced on the planners, where a test checks the lowering of one the planner would not pick. */
  plans?: PlanOverrides;
}

/** Random float32 input; `gap` keeps values at least that far from 0. */
export function f32(shape: number[], seed: number, gap = 0, low = -1, high = 1): TensorSpec {
  return { shape, data: randomData(shape.reduce((a, b) => a * b, 1), seed, low, high, gap) };
}

export function i32(shape: number[], values: number[], constant = false): TensorSpec {
  return { shape, data: Int32Array.from(values), constant };
}

function dtypeOf(t: TensorSpec): 'int32' | 'float16' | 'float32' {
  return t.data instanceof Int32Array ? 'int32' : t.dtype === 'float16' ? 'float16' : 'float32';
}

function decl(c: OpCase): GraphDecl {
  const outputs = c.outputs ?? ['y'];
  const node: NodeDecl = {
    op: c.op,
    domain: c.domain ?? '',
    name: `${c.op}_0`,
    inputs: nodeInputs(c),
    outputs,
    attributes: c.attributes ?? {},
    loc: { file: `<${c.op} test>`, line: 1, col: 1 },
  };
  const loc = node.loc;
  return {
    inputs: given(c)
      .filter(([, t]) => !t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtypeOf(t), loc })),
    initializers: given(c)
      .filter(([, t]) => t.constant)
      .map(([name, t]) => ({ name, shape: t.shape, dtype: dtypeOf(t), loc, init: { kind: 'data', data: t.data }, trainable: false })),
    nodes: [node],
    outputs: outputs.filter((o) => o !== ''),
    opset: c.opset ?? 18,
  } as GraphDecl;
}

async function registryFor(c: OpCase): Promise<OpRegistry> {
  return createRegistry(c.customOps ?? []);
}

/** Run the case's node in the simulator; returns every output. */
export async function runOurs(c: OpCase, registry?: OpRegistry): Promise<Map<string, Float32Array | Int32Array>> {
  const reg = registry ?? (await registryFor(c));
  const graph = buildGraph(decl(c), reg);
  const inputs: Record<string, Float32Array | Int32Array> = {};
  for (const [name, t] of given(c)) if (!t.constant) inputs[name] = t.data;
  const r = await runGraph({ graph, registry: reg, device: c.device ?? tiny(), inputs, outputs: (c.outputs ?? ['y']).filter((o) => o !== ''), plans: c.plans });
  return r.outputs;
}

function attributeProto(name: string, value: AttributeValue, type: AttributeType | undefined) {
  const T = onnx.AttributeProto.AttributeType;
  const t = type ?? (typeof value === 'string' ? 'string' : Array.isArray(value) ? (typeof value[0] === 'string' ? 'strings' : 'ints') : Number.isInteger(value) ? 'int' : 'float');
  switch (t) {
    case 'float':
      return { name, type: T.FLOAT, f: value as number };
    case 'int':
      return { name, type: T.INT, i: value as number };
    case 'string':
      return { name, type: T.STRING, s: new TextEncoder().encode(value as string) };
    case 'floats':
      return { name, type: T.FLOATS, floats: value as number[] };
    case 'ints':
      return { name, type: T.INTS, ints: value as number[] };
    case 'strings':
      return { name, type: T.STRINGS, strings: (value as string[]).map((s) => new TextEncoder().encode(s)) };
  }
}

/** Run the case's node in onnxruntime-node. */
export async function runOrt(c: OpCase, registry?: OpRegistry): Promise<Record<string, Float32Array | Int32Array | BigInt64Array>> {
  const reg = registry ?? (await registryFor(c));
  const domain = normDomain(c.domain ?? '');
  const def = reg.resolve(domain, c.op, domain === ONNX_DOMAIN ? (c.opset ?? 18) : Number.MAX_SAFE_INTEGER);
  const outputs = c.outputs ?? ['y'];
  const DT = onnx.TensorProto.DataType;
  const elem = (t: TensorSpec) => (t.dtype === 'bool' ? DT.BOOL : t.data instanceof Int32Array ? (t.constant ? DT.INT64 : DT.INT32) : t.dtype === 'float16' ? DT.FLOAT16 : DT.FLOAT);
  const outElem = (name: string) => {
    const t = c.outputDtypes?.[name] ?? c.outputDtype;
    return t === 'float16' ? DT.FLOAT16 : t === 'int32' ? DT.INT32 : t === 'int64' ? DT.INT64 : t === 'bool' ? DT.BOOL : DT.FLOAT;
  };
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: c.opset ?? 18 }],
    graph: {
      name: 'oracle',
      node: [
        {
          opType: c.op,
          domain: c.domain ?? '',
          input: nodeInputs(c),
          output: outputs,
          attribute: Object.entries(c.attributes ?? {}).map(([n, v]) => attributeProto(n, v, def.attributes?.[n]?.type)),
        },
      ],
      initializer: given(c)
        .filter(([, t]) => t.constant)
        .map(([name, t]) =>
          t.dtype === 'bool'
            ? { name, dims: t.shape, dataType: DT.BOOL, int32Data: Array.from(t.data) }
            : t.data instanceof Int32Array
            ? { name, dims: t.shape, dataType: DT.INT64, int64Data: Array.from(t.data) }
            : t.dtype === 'float16'
              ? { name, dims: t.shape, dataType: DT.FLOAT16, int32Data: Array.from(encodeHalf(t.data)) }
              : { name, dims: t.shape, dataType: DT.FLOAT, floatData: Array.from(t.data) },
        ),
      input: given(c)
        .filter(([, t]) => !t.constant)
        .map(([name, t]) => ({ name, type: { tensorType: { elemType: elem(t), shape: { dim: t.shape.map((d) => ({ dimValue: d })) } } } })),
      output: outputs.filter((o) => o !== '').map((name) => ({ name, type: { tensorType: { elemType: outElem(name) } } })),
    },
  });
  const session = await ort.InferenceSession.create(onnx.ModelProto.encode(model).finish());
  const feeds: Record<string, ort.Tensor> = {};
  for (const [n, t] of given(c)) {
    if (t.constant) continue;
    feeds[n] =
      t.dtype === 'bool'
        ? new ort.Tensor('bool', Uint8Array.from(t.data), t.shape)
        : t.data instanceof Int32Array
        ? new ort.Tensor('int32', t.data, t.shape)
        : t.dtype === 'float16'
          ? new ort.Tensor('float16', encodeHalf(t.data), t.shape)
          : new ort.Tensor('float32', t.data, t.shape);
  }
  const result = await session.run(feeds);
  await session.release();
  const out: Record<string, Float32Array | Int32Array | BigInt64Array> = {};
  for (const n of outputs.filter((o) => o !== '')) {
    const d = result[n].data;
    out[n] = d instanceof Uint16Array ? decodeHalf(d) : d instanceof Uint8Array ? Int32Array.from(d) : (d as Float32Array);
  }
  return out;
}

/** Forward through the simulator vs onnxruntime-node, every output element within tolerance. */
export async function checkForward(c: OpCase): Promise<void> {
  const registry = await registryFor(c);
  const [ours, ref] = await Promise.all([runOurs(c, registry), runOrt(c, registry)]);
  const atol = c.atol ?? 1e-6;
  const rtol = c.rtol ?? 1e-5;
  for (const name of (c.outputs ?? ['y']).filter((o) => o !== '')) {
    const a = ours.get(name)!;
    const b = ref[name];
    expect(a.length, `${c.op} output ${name}: element count`).toBe(b.length);
    for (let i = 0; i < a.length; i++) {
      const want = Number(b[i]);
      const err = Math.abs(a[i] - want);
      // Equal values (infinities included) and NaN against NaN match.
      const same = a[i] === want || (Number.isNaN(a[i]) && Number.isNaN(want));
      if (!same && !(err <= atol + rtol * Math.abs(want))) {
        expect.fail(`${c.op} output ${name}[${i}]: ours ${a[i]}, onnxruntime ${want} (|diff| ${err} > ${atol} + ${rtol} x |ref|)`);
      }
    }
  }
}

/** Grad ops vs central finite differences for every non-constant float input. */
export async function checkGrad(c: OpCase & { tol?: number; h?: number }): Promise<void> {
  const registry = await registryFor(c);
  const d = decl(c);
  const wrt = d.inputs.filter((i) => i.dtype === 'float32').map((i) => i.name);
  // Trainable variables instead of streamed inputs: gradcheck perturbs variables.
  d.initializers.push(
    ...d.inputs
      .filter((i) => wrt.includes(i.name))
      .map((i) => ({ ...i, init: { kind: 'data' as const, data: c.inputs[i.name].data }, trainable: true })),
  );
  d.inputs = d.inputs.filter((i) => !wrt.includes(i.name));
  const graph = buildGraph(d, registry);
  const out = (c.outputs ?? ['y']).filter((o) => o !== '')[0];
  const results = await gradcheck(graph, out, wrt, { registry, device: c.device ?? tiny(), h: c.h, plans: c.plans });
  const tol = c.tol ?? 2e-3;
  for (const r of results) {
    expect(r.maxAbsError, `${c.op} d/d${r.tensor}: worst element ${r.worst.index}: analytic ${r.worst.analytic}, numeric ${r.worst.numeric}`).toBeLessThan(tol);
  }
}
