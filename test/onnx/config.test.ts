/** `model.onnx` in a config: loading, input data checks, and errors that point at the config. */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { UserError } from '../../src/errors.js';
import { compile } from '../../src/session.js';
import { f32, floatTensor, modelBytes, node, userErrorOf, writeTemp } from './helpers.js';

const MODEL = modelBytes({
  inputs: [f32('x', [2, 3]), f32('t', [2, 4])],
  initializers: [floatTensor('w', [3, 4], new Array(12).fill(0.1))],
  nodes: [node('MatMul', ['x', 'w'], ['y'], [], { name: 'fc' }), node('Add', ['y', 't'], ['z'])],
  outputs: [f32('z', [2, 4])],
});
const INPUTS = 'inputs:\n  x: {random: {distribution: uniform, low: -1, high: 1}}\n  t: {value: [[1, 2, 3, 4], [5, 6, 7, 8]]}\n';

function setup(yaml: string, files: Record<string, Uint8Array> = { 'models/net.onnx': MODEL }): string {
  const dir = writeTemp({});
  for (const [name, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), bytes);
  }
  writeFileSync(path.join(dir, 'cfg.yaml'), yaml);
  return path.join(dir, 'cfg.yaml');
}

describe('model.onnx', () => {
  it('imports the file named relative to the config; the graph is the ONNX graph', () => {
    const file = setup(`model:\n  onnx: models/net.onnx\n${INPUTS}`);
    const cfg = loadConfig(file);
    expect(cfg.model.onnx).toBe(path.join(path.dirname(file), 'models/net.onnx'));
    expect(cfg.model.graph.inputs.map((i) => i.name)).toEqual(['x', 't']);
    expect(cfg.model.graph.nodes.map((n) => n.name)).toEqual(['fc', 'Add_1']);
    expect(cfg.model.graph.nodes[0].loc).toMatchObject({ file: expect.stringContaining('cfg.yaml'), line: 2 });
    expect(Object.keys(cfg.anchors)).toEqual(['z']);
  });

  it('needs data for every ONNX graph input, and only for those', () => {
    const m = userErrorOf(() => loadConfig(setup(`model:\n  onnx: models/net.onnx\ninputs:\n  x: {random: {distribution: uniform, low: -1, high: 1}}\n`)));
    expect(m).toContain("model.onnx: no data for graph input 't' (float32[2, 4]) of the ONNX model; add inputs.t:");
    const m2 = userErrorOf(() => loadConfig(setup(`model:\n  onnx: models/net.onnx\n${INPUTS}  w: {value: 1}\n`)));
    expect(m2).toContain("inputs.w: 'w' is an initializer of the ONNX model, not a graph input; its values come from the model");
    const m3 = userErrorOf(() => loadConfig(setup(`model:\n  onnx: models/net.onnx\n${INPUTS}  xx: {value: 1}\n`)));
    expect(m3).toContain("'xx' is not a graph input; did you mean 'x'?");
  });

  it('checks loss and anchor names against the ONNX graph', () => {
    const m = userErrorOf(() => loadConfig(setup(`model:\n  onnx: models/net.onnx\n${INPUTS}train:\n  loss: {type: l1, input: zz}\n  optimizer: {type: sgd, lr: 0.1}\n`)));
    expect(m).toContain("loss input 'zz' is not a tensor of the graph; did you mean 'z'?");
  });

  it('points at the config for a missing or broken ONNX file', () => {
    const missing = setup(`model:\n  onnx: models/none.onnx\n${INPUTS}`);
    expect(userErrorOf(() => loadConfig(missing))).toMatch(/cfg\.yaml:2:9: model\.onnx: ONNX model not found: .*none\.onnx/);
    const broken = setup(`model:\n  onnx: models/net.onnx\n${INPUTS}`, { 'models/net.onnx': new TextEncoder().encode('not protobuf at all, just text\n') });
    expect(userErrorOf(() => loadConfig(broken))).toMatch(/cfg\.yaml:2:9: .*net\.onnx: not a valid ONNX model/);
  });

  it('names an unsupported op at compile time, at the config line', async () => {
    const bytes = modelBytes({ inputs: [f32('x', [2])], nodes: [node('FancyNorm', ['x'], ['y'], [], { name: 'n1' })], outputs: [f32('y')] });
    const file = setup(`model:\n  onnx: models/net.onnx\ninputs:\n  x: {value: [1, 2]}\n`, { 'models/net.onnx': bytes });
    const cfg = loadConfig(file);
    const err = await compile(cfg).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/cfg\.yaml:2:9: .*net\.onnx: node 'n1' \(op type FancyNorm, domain ai\.onnx\) is not supported/);
    expect((err as Error).message).toContain('supported ops: ai.onnx:');
  });

  it('refuses train.saveModel without numerics', () => {
    const yaml = `model:\n  onnx: models/net.onnx\n${INPUTS}train:\n  loss: {type: l1, input: z}\n  optimizer: {type: sgd, lr: 0.1}\n  saveModel: true\n`;
    expect(userErrorOf(() => loadConfig(setup(yaml), { numerics: false }))).toContain('train.saveModel: saving the trained model needs numerics');
    expect(loadConfig(setup(yaml)).train?.saveModel).toBe(true);
  });
});
