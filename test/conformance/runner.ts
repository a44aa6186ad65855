/**
 * Running ONNX test cases (model.onnx + test_data_set_0/{input,output}_*.pb,
 * the layout of the ONNX backend tests) through tilesim.
 *
 * A case is *supported* when the importer takes it (every node's op resolves
 * in the registry at the model's opset with its attributes, every tensor's
 * element type is readable), every graph input and output is float32 (or an
 * integer, for ops that take indices), and building the IR accepts it (an op's
 * setup() may still refuse shapes it does not handle yet, with a UserError: a
 * documented limit, not a wrong answer). Supported cases run on the simulator
 * and are compared with the expected outputs as the ONNX test runner does:
 * |ours - expected| <= atol + rtol * |expected|, rtol 1e-3, atol 1e-7.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { loadDevicePreset } from '../../src/config/devices.js';
import { RunError, UserError } from '../../src/errors.js';
import type { GraphDecl } from '../../src/config/types.js';
import type { OpRegistry } from '../../src/ir/registry.js';
import { buildGraph } from '../../src/model/build.js';
import { parseOnnx, unsupportedNodes } from '../../src/onnx/import.js';
import { DataType, decodeTensor, elemTypeName, TensorDecodeError } from '../../src/onnx/tensor.js';
import { runGraph } from '../../src/session.js';
import type { DeviceSpec } from '../../sim/device.js';

const { onnx } = onnxProto;

export const RTOL = 1e-3;
export const ATOL = 1e-7;

export type CaseStatus = 'unsupported' | 'passed' | 'failed';

export interface CaseResult {
  name: string;
  status: CaseStatus;
  /** Why a case is unsupported, or how it failed. */
  reason?: string;
  /** The stage that refused an unsupported case. */
  stage?: 'import' | 'dtype' | 'registry' | 'build';
  /** Ops the registry is missing (unsupported at the registry stage). */
  missingOps?: string[];
  worst?: { output: string; index: number; ours: number; expected: number; error: number };
  /** Graph inputs fed as constants (see runCase). */
  constantInputs?: string[];
}

// Integer inputs and outputs (indices, labels) and booleans (Where's condition, Dropout's mask), which the IR holds as int32 0/1.
const INDEX_TYPES = new Set<number>([DataType.INT32, DataType.INT64, DataType.BOOL]);

function readTensor(file: string) {
  return onnx.TensorProto.decode(readFileSync(file));
}

function numbered(dir: string, prefix: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.pb'))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)))
    .map((f) => path.join(dir, f));
}

function firstLine(e: unknown): string {
  return (e as Error).message.split('\n')[0];
}

/** The tiny device first; a case that runs out of tile memory there gets mk2. */
const DEVICES: DeviceSpec[] = [loadDevicePreset('tiny'), loadDevicePreset('mk2')];

/** Run one case folder (holding model.onnx and test_data_set_0/). */
export async function runCase(caseDir: string, registry: OpRegistry): Promise<CaseResult> {
  const name = path.basename(caseDir);
  const modelFile = path.join(caseDir, 'model.onnx');
  let parsed;
  try {
    parsed = parseOnnx(readFileSync(modelFile), { file: modelFile });
  } catch (e) {
    if (e instanceof UserError) return { name, status: 'unsupported', stage: 'import', reason: firstLine(e) };
    throw e;
  }
  const { graph: decl, info } = parsed;
  for (const [kind, types] of [
    ['input', info.inputTypes],
    ['output', info.outputTypes],
  ] as const) {
    for (const [t, code] of Object.entries(types)) {
      if (kind === 'input' && !decl.inputs.some((i) => i.name === t)) continue; // an initializer
      if (code !== DataType.FLOAT && code !== DataType.FLOAT16 && !INDEX_TYPES.has(code))
        return { name, status: 'unsupported', stage: 'dtype', reason: `${kind} '${t}' is ${elemTypeName(code)}` };
    }
  }
  const bad = unsupportedNodes(decl, registry);
  if (bad.length > 0) {
    const missingOps = [...new Set(bad.map((b) => `${b.domain === 'ai.onnx' ? '' : `${b.domain}::`}${b.op}`))];
    return { name, status: 'unsupported', stage: 'registry', reason: `${bad[0].node}: ${bad[0].reason}`, missingOps };
  }

  // Test data: input_i.pb for the graph inputs that are not initializers, in order (or by name).
  const dataDir = path.join(caseDir, 'test_data_set_0');
  const inputFiles = numbered(dataDir, 'input_');
  const outputFiles = numbered(dataDir, 'output_');
  const inputs: Record<string, Float32Array | Int32Array> = {};
  try {
    inputFiles.forEach((f, i) => {
      const t = readTensor(f);
      const target = decl.inputs.find((d) => d.name === t.name) ?? decl.inputs[i];
      if (!target) throw new Error(`${path.basename(f)} has no graph input to feed`);
      inputs[target.name] = decodeTensor(t, `${name}/${path.basename(f)}`).data;
    });
  } catch (e) {
    if (e instanceof TensorDecodeError) return { name, status: 'unsupported', stage: 'dtype', reason: e.message };
    throw e;
  }
  for (const d of decl.inputs) if (!inputs[d.name]) return { name, status: 'failed', reason: `no test data for graph input '${d.name}'` };

  // tilesim fixes shapes at compile time, so ops refuse shapes, axes (or Pow's exponent) that are streamed.
  // The ONNX tests feed those as graph inputs: when the graph is refused, feed them as constants with the
  // same values instead (integer inputs first, then every input); the op's arithmetic is tested all the same.
  let graph;
  let firstError: unknown;
  let baked: string[] = [];
  for (const bake of ['none', 'integer', 'all'] as const) {
    const chosen = decl.inputs.filter((d) => bake === 'all' || (bake === 'integer' && d.dtype === 'int32')).map((d) => d.name);
    if (bake !== 'none' && (chosen.length === 0 || chosen.length === baked.length)) continue;
    const attempt: GraphDecl = {
      ...decl,
      inputs: decl.inputs.filter((d) => !chosen.includes(d.name)),
      initializers: [
        ...decl.initializers,
        ...decl.inputs.filter((d) => chosen.includes(d.name)).map((d) => ({ ...d, init: { kind: 'data' as const, data: inputs[d.name] }, trainable: false })),
      ],
    };
    try {
      // An inference run. With every input fed as a constant, folding would evaluate the whole graph on the host and the
      // device would compute nothing: the op under test must run on the tiles, so nothing is folded then.
      graph = buildGraph(attempt, registry, { inference: true, fold: bake !== 'all' });
      baked = chosen;
      break;
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      firstError ??= e;
      baked = chosen;
    }
  }
  if (!graph) return { name, status: 'unsupported', stage: 'build', reason: firstLine(firstError) };
  for (const b of baked) delete inputs[b];

  let outputs: Map<string, Float32Array | Int32Array> | undefined;
  for (const device of DEVICES) {
    try {
      outputs = (await runGraph({ graph, registry, device, inputs, outputs: decl.outputs })).outputs;
      break;
    } catch (e) {
      if (e instanceof RunError && device !== DEVICES[DEVICES.length - 1]) continue;
      return { name, status: 'failed', reason: `${(e as Error).name}: ${firstLine(e)}` };
    }
  }

  // Compare every output.
  let worst: CaseResult['worst'];
  let failed: string | undefined;
  for (const [i, f] of outputFiles.entries()) {
    const t = readTensor(f);
    const outName = decl.outputs.find((o) => o === t.name) ?? decl.outputs[i];
    const want = decodeTensor(t, `${name}/${path.basename(f)}`);
    const ours = outputs!.get(outName);
    if (!ours) return { name, status: 'failed', reason: `output '${outName}' was not returned` };
    const shape = graph.tensor(outName).info.shape;
    if (shape.length !== want.shape.length || shape.some((d, k) => d !== want.shape[k]))
      return { name, status: 'failed', reason: `output '${outName}' has shape [${shape.join(', ')}], expected [${want.shape.join(', ')}]` };
    // The buffer, not just the declared shape: a lowering that returns too few or too many elements fails here.
    if (ours.length !== want.data.length) return { name, status: 'failed', reason: `output '${outName}' holds ${ours.length} elements, expected ${want.data.length}` };
    const exact = INDEX_TYPES.has(t.dataType ?? 0);
    for (let k = 0; k < want.data.length; k++) {
      const a = ours[k];
      const b = want.data[k];
      const err = Math.abs(a - b);
      const ok = exact ? a === b : (Number.isNaN(a) && Number.isNaN(b)) || a === b || err <= ATOL + RTOL * Math.abs(b);
      const score = Number.isNaN(err) ? Infinity : err;
      if (!worst || score > worst.error) worst = { output: outName, index: k, ours: a, expected: b, error: score };
      if (!ok && !failed) failed = `output '${outName}'[${k}]: ours ${a}, expected ${b}`;
    }
  }
  if (outputFiles.length === 0) return { name, status: 'failed', reason: 'no expected outputs' };
  const extra = baked.length ? { constantInputs: baked } : {};
  return failed ? { name, status: 'failed', reason: failed, worst, ...extra } : { name, status: 'passed', worst, ...extra };
}

/** Run every test_* case under `root`. */
export async function runSuite(root: string, registry: OpRegistry): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  for (const d of readdirSync(root).filter((n) => n.startsWith('test_')).sort()) results.push(await runCase(path.join(root, d), registry));
  return results;
}

/** The summary the conformance tests print. */
export function report(title: string, results: CaseResult[]): string {
  const count = (s: CaseStatus) => results.filter((r) => r.status === s).length;
  const supported = results.length - count('unsupported');
  const byStage = new Map<string, number>();
  for (const r of results) if (r.status === 'unsupported') byStage.set(r.stage!, (byStage.get(r.stage!) ?? 0) + 1);
  const missing = new Map<string, number>();
  for (const r of results) for (const op of r.missingOps ?? []) missing.set(op, (missing.get(op) ?? 0) + 1);
  const lines = [
    `${title}: ${results.length} cases, ${supported} supported, ${supported} run, ${count('passed')} passed, ${count('failed')} failed`,
    `  unsupported by stage: ${[...byStage].map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}`,
    `  run with graph inputs fed as constants: ${results.filter((r) => r.constantInputs).length}`,
    `  missing ops (cases): ${[...missing].sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(', ') || 'none'}`,
  ];
  for (const r of results.filter((x) => x.status === 'unsupported' && x.stage === 'build')) lines.push(`  refused at build: ${r.name}: ${r.reason}`);
  for (const r of results.filter((x) => x.status === 'failed')) {
    const w = r.worst;
    lines.push(`  FAILED ${r.name}: ${r.reason}${w ? ` (worst: ${w.output}[${w.index}] ours ${w.ours}, expected ${w.expected}, |diff| ${w.error})` : ''}`);
  }
  return lines.join('\n');
}
