/**
 * Einsum against onnxruntime-node: the matmul-like equations (batched
 * matmul, transposes, bilinear, inner and outer products, sums over a
 * label, the implicit output, the ellipsis, scalars), on 1 and 16 tiles,
 * float32 and float16; gradients of every operand against central finite
 * differences (the harness: 2e-3 with h = 1e-2; Einsum is multilinear, so
 * the central difference is exact but for rounding); and the refusals.
 *
 * Tolerances: float32 |ours - ref| <= 1e-5 + 1e-5 |ref|: sums of at most 24
 * products of values in [-1, 1) in a different order than onnxruntime's
 * (24 roundings of at most 2^-24 x 24 each: ~3e-5 worst, 1e-6 typical; the
 * largest sums here stay under 1e-5). float16: both sides round the
 * result to float16 (onnxruntime after float32 accumulation too): 2 half-
 * ulps at |ref| <= 8, so 4e-3 + 2e-3 |ref|.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import { checkForward, checkGrad, f32, runOurs, type OpCase, type TensorSpec } from './harness.js';
import { tiny } from '../helpers.js';
import { suiteDir } from '../conformance/paths.js';
import { buildGraph } from '../../src/model/build.js';
import { createRegistry } from '../../src/model/modules.js';
import { importOnnx } from '../../src/onnx/import.js';
import { runGraph } from '../../src/session.js';

const { onnx } = onnxProto;

/** A float64 TensorProto's values (raw little-endian or double_data). */
function doubles(t: onnxProto.onnx.ITensorProto): Float64Array {
  if (t.rawData && t.rawData.length) return new Float64Array(Uint8Array.from(t.rawData).buffer);
  return Float64Array.from(t.doubleData ?? []);
}

const CASES: [string, number[][]][] = [
  ['bij,bjk->bik', [[2, 3, 4], [2, 4, 5]]],
  ['ij,jk', [[3, 4], [4, 2]]],
  ['ij->ji', [[3, 5]]],
  ['bhqd,bhkd->bhqk', [[2, 2, 3, 4], [2, 2, 5, 4]]],
  ['bhqk,bhkd->bqhd', [[1, 2, 3, 5], [1, 2, 5, 4]]],
  ['bn,anm,bm->ba', [[2, 3], [4, 3, 5], [2, 5]]],
  ['i,i', [[6], [6]]],
  ['i,j->ij', [[3], [4]]],
  ['ij->i', [[3, 4]]],
  ['ijk->', [[2, 3, 4]]],
  ['ij,ij->ij', [[3, 4], [3, 4]]],
  ['abc,cd->abd', [[2, 3, 4], [4, 6]]],
  ['ij,jk,kl->il', [[2, 3], [3, 4], [4, 2]]],
  ['...ij,...jk->...ik', [[2, 3, 3, 4], [2, 3, 4, 2]]],
  ['bij,bkj->bik', [[3, 2, 8], [3, 4, 8]]],
  ['ijk,ikl->jl', [[2, 3, 4], [2, 4, 5]]],
  [',->', [[], []]],
];

const inputs = (shapes: number[][], seed: number, dtype?: 'float16'): Record<string, TensorSpec> =>
  Object.fromEntries(shapes.map((s, i) => [`x${i}`, { ...f32(s, seed + i), ...(dtype ? { dtype } : {}) }]));

describe('Einsum', () => {
  it('matmul-like equations against onnxruntime, float32, on 1 and 16 tiles', async () => {
    for (const device of [tiny(), tiny({ tilesPerIpu: 16 })]) {
      for (const [equation, shapes] of CASES) {
        await checkForward({ op: 'Einsum', opset: 12, attributes: { equation }, inputs: inputs(shapes, 3), device, atol: 1e-5, rtol: 1e-5 });
      }
    }
  });

  it('float16', async () => {
    for (const [equation, shapes] of CASES.filter(([e]) => e !== ',->')) {
      await checkForward({ op: 'Einsum', opset: 12, attributes: { equation }, inputs: inputs(shapes, 5, 'float16'), outputDtype: 'float16', atol: 4e-3, rtol: 2e-3 });
    }
  });

  it('gradients of every operand against finite differences', async () => {
    for (const [equation, shapes] of CASES.filter(([e]) => e !== ',->')) {
      await checkGrad({ op: 'Einsum', opset: 12, attributes: { equation }, inputs: inputs(shapes, 7), device: tiny({ tilesPerIpu: 4 }) });
    }
  });

  it("the ONNX node tests' Einsum cases (float64 there), run in float32 against their shipped outputs", async () => {
    // The conformance runner skips them (tilesim has no float64); here the model's types are rewritten to float32 and
    // the data rounded to it, so the shipped float64 outputs hold to float32 rounding: 1e-5 + 1e-5 |ref|.
    const dir = suiteDir('onnx-node');
    const registry = await createRegistry([]);
    const cases = readdirSync(dir).filter((d) => d.startsWith('test_einsum_'));
    expect(cases.length).toBeGreaterThanOrEqual(6);
    for (const name of cases) {
      const model = onnx.ModelProto.decode(readFileSync(path.join(dir, name, 'model.onnx')));
      for (const v of [...model.graph!.input!, ...model.graph!.output!]) v.type!.tensorType!.elemType = onnx.TensorProto.DataType.FLOAT;
      const data = path.join(dir, name, 'test_data_set_0');
      const build = () => buildGraph(importOnnx(onnx.ModelProto.encode(model).finish(), { file: `${name}.onnx`, registry }).graph, registry, { inference: true });
      if (name === 'test_einsum_batch_diagonal') {
        expect(build, name).toThrow(/equation '\.\.\.ii ?->\.\.\.i': label 'i' appears twice in operand 0/);
        continue;
      }
      const graph = build();
      const inputs: Record<string, Float32Array> = {};
      model.graph!.input!.forEach((v, i) => (inputs[v.name!] = Float32Array.from(doubles(onnx.TensorProto.decode(readFileSync(path.join(data, `input_${i}.pb`)))))));
      const out = model.graph!.output![0].name!;
      const want = doubles(onnx.TensorProto.decode(readFileSync(path.join(data, 'output_0.pb'))));
      const { outputs } = await runGraph({ graph, registry, device: tiny(), inputs, outputs: [out] });
      const ours = outputs.get(out)!;
      expect(ours.length, name).toBe(want.length);
      want.forEach((w, i) => expect(Math.abs(ours[i] - w), `${name}[${i}]: ours ${ours[i]}, shipped ${w}`).toBeLessThanOrEqual(1e-5 + 1e-5 * Math.abs(w)));
    }
  });

  it('refuses diagonals, broadcast labels and malformed equations, naming the node and the equation', async () => {
    const run = (equation: string, shapes: number[][]) => runOurs({ op: 'Einsum', opset: 12, attributes: { equation }, inputs: inputs(shapes, 1) } as OpCase);
    await expect(run('ii->i', [[3, 3]])).rejects.toThrow(/node 'Einsum_0' \(Einsum\): equation 'ii->i': label 'i' appears twice in operand 0/);
    await expect(run('...ii->...i', [[2, 3, 3]])).rejects.toThrow(/diagonals and traces are not supported/);
    await expect(run('ij,jk->ik', [[3, 4], [1, 2]])).rejects.toThrow(/equation 'ij,jk->ik': label 'j' has size 4 in one operand and 1 in operand 1/);
    await expect(run('ij,jk->ik', [[3, 4]])).rejects.toThrow(/names 2 operand\(s\) but the node has 1 input/);
    await expect(run('ijk->i', [[3, 4]])).rejects.toThrow(/operand 0 'ijk' has 3 label\(s\) but the input has rank 2/);
    await expect(run('ij->iz', [[3, 4]])).rejects.toThrow(/output label 'z' is in no operand/);
    await expect(run('i1->i', [[3, 4]])).rejects.toThrow(/has '1'; labels are letters/);
  });
});
