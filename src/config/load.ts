/**
 * loadConfig(): a config YAML file → a validated RunConfig. Every problem is a
 * UserError naming file:line:col, the key path, what was found and what was
 * expected. Paths in the config are resolved against the config file's folder.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { closest, UserError } from '../errors.js';
import { resolveDevice } from './devices.js';
import { configSchema, formatKeyPath, parseWith, parseYamlText, readYamlFile, type ConfigFile, type KeyPath, type YamlSource } from './schema.js';
import type {
  AnchorMode,
  GraphDecl,
  GraphTensorDecl,
  InitializerDecl,
  InitSpec,
  InputSpec,
  NodeDecl,
  RunConfig,
  SourceLocation,
  TrainSpec,
} from './types.js';

/** Command-line values that replace the config's. */
export interface ConfigOverrides {
  /** Training steps (train.steps), or inference steps. */
  steps?: number;
  workers?: number | 'auto';
  numerics?: boolean;
}

/** Load and validate a config file. Throws UserError when the file or the config is wrong. */
export function loadConfig(file: string, overrides: ConfigOverrides = {}): RunConfig {
  const abs = path.resolve(file);
  return buildRunConfig(readYamlFile(abs, 'config file'), overrides);
}

/**
 * Load a config from YAML text, as if it were the file `file` (which names it
 * in messages and anchors its relative paths). For `sim sweep` and tests.
 */
export function loadConfigText(text: string, file: string, overrides: ConfigOverrides = {}): RunConfig {
  return buildRunConfig(parseYamlText(text, path.resolve(file)), overrides);
}

/**
 * The seed of a random tensor that gives none: derived from run.seed and the
 * tensor's name, so two unseeded tensors differ and a run is reproducible.
 */
export function defaultSeed(runSeed: number, tensor: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (let i = 0; i < tensor.length; i++) {
    h ^= tensor.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= Math.imul(runSeed | 0, 0x9e3779b1);
  return (h >>> 0) & 0x7fffffff;
}

function parseAnchorMode(s: string): AnchorMode {
  if (s === 'all' || s === 'final' || s === 'sum') return { kind: s };
  return { kind: 'everyN', n: Number(s.slice('everyN:'.length)) };
}

function checkOverrides(o: ConfigOverrides): void {
  if (o.steps !== undefined && !(Number.isInteger(o.steps) && o.steps >= 1))
    throw new UserError(`--steps: expected an integer >= 1, found ${o.steps}`);
  if (o.workers !== undefined && o.workers !== 'auto' && !(Number.isInteger(o.workers) && o.workers >= 1))
    throw new UserError(`--workers: expected 'auto' or an integer >= 1, found ${o.workers}`);
}

function didYouMean(word: string, candidates: Iterable<string>): string {
  const c = closest(word, candidates);
  return c ? `; did you mean '${c}'?` : '';
}

function buildRunConfig(src: YamlSource, overrides: ConfigOverrides): RunConfig {
  checkOverrides(overrides);
  const cfg: ConfigFile = parseWith(configSchema, src);
  const file = src.file;
  const dir = path.dirname(file);
  const at = (p: KeyPath) => src.locAt(p);
  const keyAt = (p: KeyPath) => src.keyLocAt(p);
  const fail = (p: KeyPath, message: string, loc: SourceLocation = at(p)): never => {
    throw new UserError(`${formatKeyPath(p)}: ${message}`, loc);
  };
  /** Resolve a path from the config and check that the file exists. */
  const existingFile = (p: KeyPath, rel: string, what: string): string => {
    const abs = path.resolve(dir, rel);
    if (!existsSync(abs)) fail(p, `${what} not found: ${abs}`);
    return abs;
  };

  if (cfg.model.onnx !== undefined)
    fail(['model', 'onnx'], 'ONNX import is not available yet (issue 3); write the graph under model.graph');
  if (cfg.model.graph === undefined) return fail(['model'], 'model needs a graph (model.graph)');
  const seed = cfg.run.seed;

  // Device
  const device = resolveDevice(cfg.device, file, at(['device']));

  // Graph
  const G: KeyPath = ['model', 'graph'];
  const g = cfg.model.graph;
  /** Where each tensor name is defined, for duplicate and cross-reference checks. */
  const defined = new Map<string, { what: string; loc: SourceLocation }>();
  const define = (name: string, what: string, p: KeyPath, loc: SourceLocation) => {
    const prev = defined.get(name);
    if (prev)
      fail(p, `tensor '${name}' is defined twice: as ${what} here and as ${prev.what} at ${prev.loc.file}:${prev.loc.line}:${prev.loc.col}`, loc);
    defined.set(name, { what, loc });
  };

  const graphInputs: GraphTensorDecl[] = Object.entries(g.inputs).map(([name, d]) => {
    const loc = keyAt([...G, 'inputs', name]);
    define(name, 'a graph input', [...G, 'inputs', name], loc);
    return { name, shape: d.shape, dtype: d.dtype, loc };
  });

  const initializers: InitializerDecl[] = Object.entries(g.initializers).map(([name, d]) => {
    const p: KeyPath = [...G, 'initializers', name];
    const loc = keyAt(p);
    define(name, 'an initializer', p, loc);
    const i = d.init;
    let init: InitSpec;
    if (i.normal) init = { kind: 'normal', mean: i.normal.mean, std: i.normal.std, seed: i.normal.seed ?? defaultSeed(seed, name) };
    else if (i.uniform) init = { kind: 'uniform', low: i.uniform.low, high: i.uniform.high, seed: i.uniform.seed ?? defaultSeed(seed, name) };
    else if (i.constant !== undefined) init = { kind: 'constant', value: i.constant };
    else if (i.value !== undefined) init = { kind: 'value', value: i.value };
    else init = { kind: 'npy', path: existingFile([...p, 'init', 'npy'], i.npy as string, 'initializer data file') };
    return { name, shape: d.shape, dtype: d.dtype, loc, init, trainable: d.trainable };
  });

  const nodeNames = new Map<string, SourceLocation>();
  const nodes: NodeDecl[] = g.nodes.map((n, index) => {
    const p: KeyPath = [...G, 'nodes', index];
    const loc = at(p);
    const name = n.name ?? `${n.op}_${index}`;
    const prev = nodeNames.get(name);
    if (prev) fail(n.name ? [...p, 'name'] : p, `node name '${name}' is used twice (first at ${prev.file}:${prev.line}:${prev.col})`);
    nodeNames.set(name, loc);
    n.outputs.forEach((o, j) => define(o, `an output of node '${name}'`, [...p, 'outputs', j], at([...p, 'outputs', j])));
    const node: NodeDecl = { op: n.op, domain: n.domain, name, inputs: n.inputs, outputs: n.outputs, attributes: n.attributes, loc };
    if (n.version !== undefined) node.version = n.version;
    return node;
  });

  // Every tensor a node reads exists somewhere in the graph (order is the IR's business).
  g.nodes.forEach((n, index) =>
    n.inputs.forEach((t, j) => {
      if (t !== '' && !defined.has(t))
        fail(
          [...G, 'nodes', index, 'inputs', j],
          `node '${nodes[index].name}' reads unknown tensor '${t}'${didYouMean(t, defined.keys())} ` +
            '(tensors are graph inputs, initializers and node outputs)',
        );
    }),
  );
  g.outputs.forEach((t, j) => {
    if (!defined.has(t)) fail([...G, 'outputs', j], `graph output '${t}' is not a tensor of the graph${didYouMean(t, defined.keys())}`);
  });

  const graph: GraphDecl = { inputs: graphInputs, initializers, nodes, outputs: g.outputs, opset: g.opset };

  // Custom ops
  const customOps = cfg.model.customOps.map((m, i) => existingFile(['model', 'customOps', i], m, 'custom-op module'));

  // Input data: one entry per graph input, and nothing else.
  const graphInputNames = new Set(graphInputs.map((d) => d.name));
  const inputs: Record<string, InputSpec> = {};
  for (const [name, d] of Object.entries(cfg.inputs)) {
    const p: KeyPath = ['inputs', name];
    const loc = keyAt(p);
    if (!graphInputNames.has(name)) {
      if (g.initializers[name])
        fail(p, `'${name}' is an initializer, not a graph input; give its values under model.graph.initializers.${name}.init`, loc);
      const names = [...graphInputNames];
      fail(
        p,
        `'${name}' is not a graph input${didYouMean(name, names)} (graph inputs: ${names.length ? names.join(', ') : 'none'})`,
        loc,
      );
    }
    if (d.random) {
      const r = d.random;
      const rs = r.seed ?? defaultSeed(seed, name);
      if (r.distribution === 'normal') inputs[name] = { kind: 'random', distribution: 'normal', mean: r.mean, std: r.std, seed: rs, loc };
      else {
        if (r.low > r.high) fail([...p, 'random', 'high'], `high (${r.high}) is below low (${r.low})`);
        inputs[name] = { kind: 'random', distribution: r.distribution, low: r.low, high: r.high, seed: rs, loc };
      }
    } else if (d.npy !== undefined) inputs[name] = { kind: 'npy', path: existingFile([...p, 'npy'], d.npy, 'input data file'), loc };
    else inputs[name] = { kind: 'value', value: d.value, loc };
  }
  for (const d of graphInputs)
    if (!inputs[d.name])
      throw new UserError(
        `${formatKeyPath([...G, 'inputs', d.name])}: no data for graph input '${d.name}'; add inputs.${d.name}: {random: {distribution: uniform, low: -1, high: 1}} (or {npy: file.npy}, or {value: [...]})`,
        d.loc,
      );

  // Training
  let train: TrainSpec | undefined;
  if (cfg.train) {
    const t = cfg.train;
    const lossLoc = keyAt(['train', 'loss']);
    let loss: TrainSpec['loss'];
    if (typeof t.loss === 'string') {
      if (!defined.has(t.loss)) fail(['train', 'loss'], `loss tensor '${t.loss}' is not a tensor of the graph${didYouMean(t.loss, defined.keys())}`);
      loss = { type: 'tensor', name: t.loss, loc: lossLoc };
    } else {
      if (!defined.has(t.loss.input))
        fail(['train', 'loss', 'input'], `loss input '${t.loss.input}' is not a tensor of the graph${didYouMean(t.loss.input, defined.keys())}`);
      loss = { type: t.loss.type, input: t.loss.input, scale: t.loss.scale, reduction: t.loss.reduction, loc: lossLoc };
    }
    const o = t.optimizer;
    if (o.type !== 'sgd') return fail(['train', 'optimizer', 'type'], `optimizer '${o.type}' is not supported yet; supported: sgd`);
    train = {
      loss,
      optimizer: {
        type: 'sgd',
        lr: o.lr,
        momentum: o.momentum,
        dampening: o.dampening,
        weightDecay: o.weightDecay,
        nesterov: o.nesterov,
        loc: keyAt(['train', 'optimizer']),
      },
      steps: overrides.steps ?? t.steps,
      batchesPerStep: t.batchesPerStep,
    };
  }

  // Anchors (their names may include tensors made later, e.g. Gradient___w: not checked here)
  const anchors: RunConfig['anchors'] = {};
  const defaultAnchors = cfg.anchors === undefined;
  if (cfg.anchors) {
    for (const [name, mode] of Object.entries(cfg.anchors)) anchors[name] = { mode: parseAnchorMode(mode), loc: keyAt(['anchors', name]) };
  } else {
    g.outputs.forEach((t, j) => (anchors[t] = { mode: { kind: 'final' }, loc: at([...G, 'outputs', j]) }));
    if (train?.loss.type === 'tensor') anchors[train.loss.name] = { mode: { kind: 'final' }, loc: train.loss.loc };
  }

  return {
    file,
    name: cfg.name ?? path.basename(file).replace(/\.[^.]*$/, ''),
    device,
    model: { graph, customOps },
    inputs,
    ...(train ? { train } : {}),
    steps: train ? train.steps : (overrides.steps ?? 1),
    anchors,
    defaultAnchors,
    run: {
      workers: overrides.workers ?? cfg.run.workers,
      numerics: overrides.numerics ?? cfg.run.numerics,
      seed,
    },
    report: { trace: cfg.report.trace, traceTiles: cfg.report.traceTiles, html: cfg.report.html },
  };
}
