import path from 'node:path';
import { ROOT } from '../helpers.js';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig, loadConfigText } from '../../src/config/load.js';
import { loadDevicePreset } from '../../src/config/devices.js';
import { at, BASE, userError, writeConfig, writeFiles } from './helpers.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/configs');
const TRAIN = `train:
  loss: y
  optimizer: {type: sgd, lr: 0.1}
`;

describe('loadConfig: a valid config', () => {
  const file = path.join(fixtures, 'valid.yaml');
  const cfg = loadConfig(file);

  it('keeps the given values and resolves paths against the config folder', () => {
    expect(cfg.file).toBe(file);
    expect(cfg.name).toBe('valid');
    expect(cfg.device.name).toBe('mk2(tilesPerIpu=64)');
    expect(cfg.device.tilesPerIpu).toBe(64);
    expect(cfg.device.clockHz).toBe(1.33e9);
    expect(cfg.model.customOps).toEqual([path.join(fixtures, 'ops/placeholder-op.ts')]);
    const [w, b, s] = cfg.model.graph.initializers;
    expect(w).toMatchObject({ name: 'w', shape: [16, 4], dtype: 'float32', trainable: true });
    expect(w.init).toEqual({ kind: 'normal', mean: 0, std: 0.1, seed: 1 });
    expect(b.init).toEqual({ kind: 'npy', path: path.join(fixtures, 'data/b.npy') });
    expect(b.trainable).toBe(false);
    expect(s.shape).toEqual([]);
    expect(s.init).toEqual({ kind: 'constant', value: 2 });
    expect(cfg.model.graph.inputs).toEqual([
      { name: 'x', shape: [8, 16], dtype: 'float32', loc: { file: expect.stringContaining('valid.yaml'), line: 5, col: 15 } },
    ]);
    expect(cfg.inputs.x).toMatchObject({ kind: 'random', distribution: 'uniform', low: -1, high: 1, seed: 7 });
    expect(cfg.inputs.x.loc.line).toBe(17);
  });

  it('fills node defaults and records where each node is', () => {
    const nodes = cfg.model.graph.nodes;
    expect(nodes.map((n) => n.name)).toEqual(['MatMul_0', 'bias', 'LeakyRelu_2']);
    expect(nodes[0]).toMatchObject({ op: 'MatMul', domain: '', inputs: ['x', 'w'], outputs: ['h'], attributes: {} });
    expect(nodes[0].version).toBeUndefined();
    expect(nodes[2]).toMatchObject({ domain: 'custom.ops', version: 1, attributes: { alpha: 0.02 } });
    expect(nodes.map((n) => [n.loc.line, n.loc.col])).toEqual([
      [11, 9],
      [12, 9],
      [13, 9],
    ]);
    expect(cfg.model.graph.outputs).toEqual(['y']);
    expect(cfg.model.graph.opset).toBe(18);
  });

  it('fills training, anchor, run and report defaults', () => {
    expect(cfg.train?.loss).toMatchObject({ type: 'l1', input: 'y', scale: 0.1, reduction: 'mean' });
    expect(cfg.train?.loss.loc.line).toBe(19);
    expect(cfg.train?.optimizer).toMatchObject({ type: 'sgd', lr: 0.05, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false });
    expect(cfg.train?.optimizer.loc.line).toBe(20);
    expect(cfg.train?.steps).toBe(20);
    expect(cfg.train?.batchesPerStep).toBe(1);
    expect(cfg.steps).toBe(20);
    expect(cfg.defaultAnchors).toBe(false);
    expect(cfg.anchors.y.mode).toEqual({ kind: 'final' });
    expect(cfg.anchors.Gradient___w.mode).toEqual({ kind: 'everyN', n: 5 });
    expect(cfg.anchors.y.loc.line).toBe(22);
    expect(cfg.run).toEqual({ workers: 2, numerics: true, seed: 0, checkFinite: true, checkMemory: false, vertexTimeoutSeconds: 60 });
    expect(cfg.report).toEqual({ trace: true, traceTiles: 16, html: true });
  });

  it('applies command-line overrides', () => {
    const o = loadConfig(file, { steps: 3, workers: 'auto', numerics: false });
    expect(o.train?.steps).toBe(3);
    expect(o.steps).toBe(3);
    expect(o.run.workers).toBe('auto');
    expect(o.run.numerics).toBe(false);
    expect(userError(() => loadConfig(file, { steps: 0 })).message).toContain('--steps');
  });
});

describe('loadConfig: defaults of a minimal inference config', () => {
  const cfg = loadConfig(path.join(fixtures, 'minimal.yaml'));
  it('uses tiny, no training, default anchors', () => {
    expect(cfg.name).toBe('minimal-inference');
    expect(cfg.device).toEqual(loadDevicePreset('tiny'));
    expect(cfg.train).toBeUndefined();
    expect(cfg.steps).toBe(1);
    expect(cfg.model.graph.inputs[0].dtype).toBe('float32');
    expect(cfg.model.graph.initializers).toEqual([]);
    expect(cfg.model.customOps).toEqual([]);
    expect(cfg.inputs.x).toMatchObject({ kind: 'value', value: [-1, 0, 1, 2] });
    expect(cfg.defaultAnchors).toBe(true);
    expect(Object.keys(cfg.anchors)).toEqual(['y']);
    expect(cfg.run).toEqual({ workers: 'auto', numerics: true, seed: 0, checkFinite: false, checkMemory: false, vertexTimeoutSeconds: 60 });
    expect(cfg.report).toEqual({ trace: true, traceTiles: 'auto', html: true });
  });

  it('names a config after its file by default and derives distinct seeds', () => {
    const file = writeConfig(
      BASE.replace('    nodes:', '    initializers: {w: {shape: [4], init: {normal: {std: 1}}}, v: {shape: [4], init: {uniform: {low: 0, high: 1}}}}\n    nodes:'),
      'my-model.yaml',
    );
    const c = loadConfig(file);
    expect(c.name).toBe('my-model');
    const [w, v] = c.model.graph.initializers;
    expect(w.init.kind === 'normal' && v.init.kind === 'uniform').toBe(true);
    const seeds = c.model.graph.initializers.map((i) => ('seed' in i.init ? i.init.seed : -1));
    expect(seeds[0]).not.toBe(seeds[1]);
    expect(seeds.every((s) => Number.isInteger(s) && s >= 0)).toBe(true);
    expect(loadConfig(file).model.graph.initializers.map((i) => ('seed' in i.init ? i.init.seed : -1))).toEqual(seeds);
  });
});

describe('loadConfig: unknown keys', () => {
  it('a misspelt section gets a did-you-mean at its line', () => {
    const file = writeConfig(BASE + `train:\n  loss: y\n  optimiser: {type: sgd, lr: 0.1}\n`);
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 11, 3) + 'train.optimiser');
    expect(e.message).toContain("did you mean 'optimizer'?");
    expect(e.loc).toMatchObject({ line: 11, col: 3 });
  });

  it('a misspelt field gets a did-you-mean rather than "missing lr"', () => {
    const file = writeConfig(BASE + `train:\n  loss: y\n  optimizer:\n    type: sgd\n    lrr: 0.1\n`);
    const e = userError(() => loadConfig(file));
    expect(e.message.startsWith(at(file, 13, 5) + 'train.optimizer.lrr')).toBe(true);
    expect(e.message).toContain("did you mean 'lr'?");
    expect(e.message).not.toContain('missing');
  });

  it('an unknown key at the top level', () => {
    const file = writeConfig(BASE + 'anchor: {y: all}\n');
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 9, 1));
    expect(e.message).toContain("did you mean 'anchors'?");
  });
});

describe('loadConfig: wrong values', () => {
  it('a wrong type names the key, what was found and what was expected', () => {
    const file = writeConfig(BASE + TRAIN + '  steps: ten\n');
    const e = userError(() => loadConfig(file));
    expect(e.message).toBe(`${at(file, 12, 10)}train.steps: expected an integer >= 1, found 'ten' (a string)`);
  });

  it('a missing key points at its map', () => {
    const file = writeConfig(BASE + `train:\n  loss: y\n  optimizer: {type: sgd}\n`);
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 11, 3) + "train.optimizer.lr: missing required key 'lr'");
  });

  it('out-of-range numbers, bad enums and bad shapes', () => {
    const cases: [string, number, number, string][] = [
      [BASE + 'run: {workers: 0}\n', 9, 16, 'run.workers: expected an integer >= 1, found 0'],
      [BASE + 'run: {workers: many}\n', 9, 16, "run.workers: expected 'auto' or an integer >= 1, found 'many'"],
      [BASE + TRAIN.replace('{type: sgd', '{type: sdg') , 11, 21, "did you mean 'sgd'?"],
      [BASE + 'anchors: {y: every5}\n', 9, 14, 'anchors.y: expected all, final, sum or everyN:<n>'],
      [BASE.replace('[4]}}', '[4, 0]}}'), 3, 29, 'model.graph.inputs.x.shape[1]: expected an integer >= 1, found 0'],
      [BASE.replace('[1, 2, 3, 4]', '[[1, 2], [3, a]]'), 8, 27, 'inputs.x.value[1][1]: expected a number or a nested list of numbers'],
      [BASE.replace('[4]}}', '[4], dtype: half}}'), 3, 37, "model.graph.inputs.x.dtype: expected one of 'float32', 'float16', 'int32'"],
    ];
    for (const [text, line, col, msg] of cases) {
      const file = writeConfig(text);
      const e = userError(() => loadConfig(file));
      expect(e.message).toContain(at(file, line, col));
      expect(e.message).toContain(msg);
    }
  });

  it('an ONNX model that does not exist is named at its line', () => {
    const file = writeConfig('model:\n  onnx: model.onnx\n'); // ONNX import: test/onnx/config.test.ts
    expect(userError(() => loadConfig(file)).message).toContain(`${at(file, 2, 9)}model.onnx: ONNX model not found: `);
  });

  it('an unknown optimizer type lists the supported ones', () => {
    const file = writeConfig(BASE + TRAIN.replace('type: sgd', 'type: adagrad'));
    expect(userError(() => loadConfig(file)).message).toMatch(/train\.optimizer/);
  });
});

describe('loadConfig: YAML and files', () => {
  it('a YAML syntax error gives its line', () => {
    const file = writeConfig(BASE + 'run:\n  workers: 2\n   seed: 3\n');
    const e = userError(() => loadConfig(file));
    expect(e.message.startsWith(at(file, 10, 12) + 'invalid YAML')).toBe(true);
  });

  it('a duplicate YAML key is an error at the duplicate', () => {
    const file = writeConfig(BASE + 'run:\n  workers: 2\n  workers: 3\n');
    expect(userError(() => loadConfig(file)).message).toMatch(/:11:3: invalid YAML: Map keys must be unique/);
  });

  it('an alias with no anchor before it is an error at the alias (found by fuzzing)', () => {
    const file = writeConfig(BASE + 'run:\n  seed: *s\n');
    expect(userError(() => loadConfig(file)).message).toMatch(/:10:9: invalid YAML: alias \*s refers to no anchor &s defined before it/);
  });

  it('a list or map used as a key is an error at the key, not a Node warning (found by fuzzing)', () => {
    const file = writeConfig(BASE + '[a, b]: 3\n');
    expect(userError(() => loadConfig(file)).message).toMatch(/:9:1: invalid YAML: a key must be a name, found a list/);
  });

  it('aliases that expand beyond 1000 nodes (a YAML bomb) are refused, not expanded', () => {
    const bomb = ['a: &a [1, 2]', ...['b', 'c', 'd', 'e'].map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcd'[i]}`).join(', ')}]`)].join('\n');
    expect(userError(() => loadConfig(writeConfig(bomb + '\n'))).message).toMatch(/:1:1: invalid YAML: Excessive alias count/);
  });

  it('a missing config file is named', () => {
    const e = userError(() => loadConfig('/no/such/dir/config.yaml'));
    expect(e.message).toContain('/no/such/dir/config.yaml');
  });

  it('a missing custom-op module or npy file is an error at its line', () => {
    const file = writeConfig(BASE.replace('inputs:\n  x: {value: [1, 2, 3, 4]}', 'inputs:\n  x: {npy: data/x.npy}'));
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 8, 12) + 'inputs.x.npy: input data file not found');
    expect(e.message).toContain(path.join(path.dirname(file), 'data/x.npy'));
    const file2 = writeConfig(BASE.replace('    outputs: [y]\n', '    outputs: [y]\n  customOps: [ops/nope.ts]\n'));
    expect(userError(() => loadConfig(file2)).message).toContain(at(file2, 7, 15) + 'model.customOps[0]: custom-op module not found');
  });

  it('a custom-op module listed twice is an error at the second entry (found by fuzzing)', () => {
    const mod = path.join(ROOT, 'examples/custom-ops/leaky-relu.ts');
    const file = writeConfig(BASE.replace('    outputs: [y]\n', `    outputs: [y]\n  customOps: [${mod}, ${mod}]\n`));
    expect(userError(() => loadConfig(file)).message).toMatch(/model\.customOps\[1\]: custom-op module '.*leaky-relu\.ts' is already listed at model\.customOps\[0\]; list each module once/);
  });
});

describe('loadConfig: cross-references', () => {
  it('a node reading an unknown tensor names the node and the tensor', () => {
    const file = writeConfig(BASE.replace('inputs: [x]', 'inputs: [xx]'));
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 5, 29) + 'model.graph.nodes[0].inputs[0]');
    expect(e.message).toContain("node 'Relu_0' reads unknown tensor 'xx'; did you mean 'x'?");
  });

  it('a graph input without data', () => {
    const file = writeConfig(BASE.replace('inputs:\n  x: {value: [1, 2, 3, 4]}\n', ''));
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 3, 14));
    expect(e.message).toContain("no data for graph input 'x'; add inputs.x: {random: ");
  });

  it('data for something that is not a graph input', () => {
    const file = writeConfig(BASE + '  z: {value: [1]}\n');
    const e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 9, 3) + "inputs.z: 'z' is not a graph input");
  });

  it('a tensor defined twice, an unknown graph output, an unknown loss tensor', () => {
    let file = writeConfig(BASE.replace('outputs: [y]}', 'outputs: [x]}'));
    expect(userError(() => loadConfig(file)).message).toContain("tensor 'x' is defined twice");
    file = writeConfig(BASE.replace('outputs: [y]\n', 'outputs: [z]\n'));
    expect(userError(() => loadConfig(file)).message).toContain(at(file, 6, 15) + "model.graph.outputs[0]: graph output 'z'");
    file = writeConfig(BASE + TRAIN.replace('loss: y', 'loss: {type: l1, input: yy}'));
    expect(userError(() => loadConfig(file)).message).toContain("train.loss.input: loss input 'yy' is not a tensor of the graph; did you mean 'y'?");
  });
});

describe('loadConfig: devices', () => {
  it('accepts an override of a preset', () => {
    const file = writeConfig(BASE + 'device: {preset: mk2, tiles: 64}\n');
    const d = loadConfig(file).device;
    expect(d).toEqual({ ...loadDevicePreset('mk2'), name: 'mk2(tilesPerIpu=64)', tilesPerIpu: 64 });
  });

  it('accepts a path to a device file relative to the config', () => {
    const dir = writeFiles({
      'config.yaml': BASE + 'device: devices/small.yaml\n',
      'devices/small.yaml': 'preset: bow\ntiles: 8\n',
    });
    const d = loadConfig(path.join(dir, 'config.yaml')).device;
    expect(d).toMatchObject({ name: 'small', tilesPerIpu: 8, clockHz: 1.85e9 });
  });

  it('an unknown preset or device key is an error at the device key', () => {
    let file = writeConfig(BASE + 'device: mk3\n');
    let e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 9, 9) + "device: unknown device preset 'mk3'");
    file = writeConfig(BASE + 'device: {preset: mk2, tilez: 4}\n');
    e = userError(() => loadConfig(file));
    expect(e.message).toContain(at(file, 9, 23) + "device.tilez: unknown key 'tilez'; did you mean 'tiles'?");
  });

  it('loadConfigText reads YAML text as if it were the given file', () => {
    const file = path.join(fixtures, 'inline.yaml');
    const c = loadConfigText(BASE, file);
    expect(c.name).toBe('inline');
    expect(c.file).toBe(file);
  });
});
