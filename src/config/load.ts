/**
 * loadConfig(): a config YAML file → a validated RunConfig. Every problem is a
 * UserError naming file:line:col, the key path, what was found and what was
 * expected. Paths in the config are resolved against the config file's folder.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { closest, UserError } from '../errors.js';
import { resolveDevice } from './devices.js';
import { fmtInfo } from '../ir/tensorinfo.js';
import { readOnnxFile } from '../onnx/import.js';
import { takeIpuAttribute } from '../shard/ipu-attribute.js';
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

  // model.onnx: the imported graph stands in for model.graph, with the same checks below.
  const onnxFile = cfg.model.onnx !== undefined ? existingFile(['model', 'onnx'], cfg.model.onnx, 'ONNX model') : undefined;
  const onnxGraph = onnxFile !== undefined ? readOnnxFile(onnxFile, { loc: at(['model', 'onnx']) }).graph : undefined;
  if (cfg.model.graph === undefined && !onnxGraph) return fail(['model'], 'model needs a graph (model.graph)');
  const seed = cfg.run.seed;

  // Device
  const device = resolveDevice(cfg.device, file, at(['device']));

  // Graph
  const G: KeyPath = ['model', 'graph'];
  const g = cfg.model.graph ?? { inputs: {}, initializers: {}, nodes: [], outputs: [], opset: 18 };
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
    if (n.ipu !== undefined) node.ipu = n.ipu;
    if (n.pipelineStage !== undefined) node.pipelineStage = n.pipelineStage;
    takeIpuAttribute(node);
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

  const graph: GraphDecl = onnxGraph ?? { inputs: graphInputs, initializers, nodes, outputs: g.outputs, opset: g.opset };
  if (onnxGraph) {
    const onnxLoc = at(['model', 'onnx']);
    for (const d of onnxGraph.inputs) define(d.name, 'a graph input', ['model', 'onnx'], onnxLoc);
    for (const d of onnxGraph.initializers) define(d.name, 'an initializer', ['model', 'onnx'], onnxLoc);
    for (const n of onnxGraph.nodes) n.outputs.forEach((o) => define(o, `an output of node '${n.name}'`, ['model', 'onnx'], onnxLoc));
  }

  // Custom ops
  const customOps = cfg.model.customOps.map((m, i) => existingFile(['model', 'customOps', i], m, 'custom-op module'));
  customOps.forEach((m, i) => {
    const first = customOps.indexOf(m);
    // Loading a module twice would register its ops twice: say where, not which op collided.
    if (first < i) fail(['model', 'customOps', i], `custom-op module '${cfg.model.customOps[i]}' is already listed at model.customOps[${first}]; list each module once`);
  });

  // Input data: one entry per graph input, and nothing else.
  const graphInputNames = new Set(graph.inputs.map((d) => d.name));
  const inputs: Record<string, InputSpec> = {};
  for (const [name, d] of Object.entries(cfg.inputs)) {
    const p: KeyPath = ['inputs', name];
    const loc = keyAt(p);
    if (!graphInputNames.has(name)) {
      if (graph.initializers.some((i) => i.name === name))
        fail(
          p,
          onnxGraph
            ? `'${name}' is an initializer of the ONNX model, not a graph input; its values come from the model`
            : `'${name}' is an initializer, not a graph input; give its values under model.graph.initializers.${name}.init`,
          loc,
        );
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
  for (const d of graph.inputs)
    if (!inputs[d.name])
      throw new UserError(
        `${onnxGraph ? `model.onnx` : formatKeyPath([...G, 'inputs', d.name])}: no data for graph input '${d.name}'${onnxGraph ? ` (${fmtInfo(d)}) of the ONNX model` : ''}; add inputs.${d.name}: {random: {distribution: uniform, low: -1, high: 1}} (or {npy: file.npy}, or {value: [...]})`,
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
      const l = t.loss;
      // Which keys each loss type takes beyond input, scale and reduction.
      const takes: Record<typeof l.type, string[]> = {
        l1: [],
        mse: ['target'],
        nll: ['labels', 'weights', 'ignoreIndex', 'inputIsLogProbability'],
        softmaxCrossEntropy: ['labels', 'weights', 'ignoreIndex'],
      };
      const allowed = takes[l.type];
      for (const key of ['labels', 'target', 'weights', 'ignoreIndex', 'inputIsLogProbability'] as const) {
        if (l[key] === undefined || allowed.includes(key)) continue;
        const swap = key === 'labels' && allowed.includes('target') ? 'target' : key === 'target' && allowed.includes('labels') ? 'labels' : undefined;
        fail(
          ['train', 'loss', key],
          `a ${l.type} loss takes no '${key}'${swap ? `; did you mean '${swap}'?` : ''} (it takes: input, scale, reduction${allowed.length ? ', ' + allowed.join(', ') : ''})`,
          keyAt(['train', 'loss', key]),
        );
      }
      const required = l.type === 'mse' ? 'target' : l.type === 'l1' ? undefined : 'labels';
      if (required && l[required] === undefined) {
        fail(
          ['train', 'loss'],
          required === 'labels'
            ? `a ${l.type} loss needs labels: the int32 class labels (a graph input or tensor name), e.g. {type: ${l.type}, input: ${l.input}, labels: label}`
            : `an mse loss needs a target: the tensor to compare the input with, e.g. {type: mse, input: ${l.input}, target: y}`,
        );
      }
      for (const key of ['input', 'labels', 'target', 'weights'] as const) {
        const name = l[key];
        if (name !== undefined && !defined.has(name))
          fail(['train', 'loss', key], `loss ${key} '${name}' is not a tensor of the graph${didYouMean(name, defined.keys())}`);
      }
      loss = { type: l.type, input: l.input, scale: l.scale, reduction: l.reduction, loc: lossLoc };
      if (l.labels !== undefined) loss.labels = l.labels;
      if (l.target !== undefined) loss.target = l.target;
      if (l.weights !== undefined) loss.weights = l.weights;
      if (l.ignoreIndex !== undefined) loss.ignoreIndex = l.ignoreIndex;
      if (l.inputIsLogProbability !== undefined) loss.inputIsLogProbability = l.inputIsLogProbability;
    }
    const o = t.optimizer;
    const optLoc = keyAt(['train', 'optimizer']);
    if (o.type === 'sgd' && o.nesterov && (o.momentum <= 0 || o.dampening !== 0))
      fail(['train', 'optimizer', 'nesterov'], `Nesterov momentum needs momentum > 0 and dampening 0 (as torch.optim.SGD); found momentum ${o.momentum}, dampening ${o.dampening}`);
    const optimizer: TrainSpec['optimizer'] =
      o.type === 'sgd'
        ? { type: 'sgd', lr: o.lr, momentum: o.momentum, dampening: o.dampening, weightDecay: o.weightDecay, nesterov: o.nesterov, loc: optLoc }
        : { type: o.type, lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, loc: optLoc };
    train = {
      loss,
      optimizer,
      lossScaling: t.lossScaling,
      steps: overrides.steps ?? t.steps,
      batchesPerStep: t.batchesPerStep,
      accumulationFactor: t.accumulationFactor,
      gradientReduction: t.gradientReduction,
      ...(t.recompute !== 'none' ? { recompute: t.recompute } : {}),
      saveModel: t.saveModel,
      ...(t.checkpointEvery !== undefined ? { checkpointEvery: t.checkpointEvery } : {}),
    };
    // Tensor locations (PopART's TensorLocationSettings): sharding needs replicas.
    const kinds = [
      ['optimizerStateTensorLocationSettings', 'optimizerStateLocation'],
      ['accumulatorTensorLocationSettings', 'accumulatorLocation'],
      ['weightTensorLocationSettings', 'weightLocation'],
    ] as const;
    for (const [key, field] of kinds) {
      const l = t[key];
      if (!l) continue;
      const rtsPath = ['train', key, 'location', 'replicatedTensorSharding'];
      const what = key === 'weightTensorLocationSettings' ? 'weights' : key === 'accumulatorTensorLocationSettings' ? 'accumulators' : 'optimizer state';
      if (l.location.replicatedTensorSharding && cfg.replicas <= 1)
        fail(rtsPath, `replicated tensor sharding splits the tensor across the replicas, and there is ${cfg.replicas} replica; set replicas: 2 or more (with a device of that many IPUs), or replicatedTensorSharding: false`);
      // A pipeline's stages would all-gather and reduce-scatter inside its cycles, which the pipeline's schedule does not order across replicas.
      if (l.location.replicatedTensorSharding && key !== 'optimizerStateTensorLocationSettings' && (cfg.model.pipelining ?? cfg.model.enablePipelining))
        fail(rtsPath, `replicated tensor sharding of ${what} with pipelining is not supported; set replicatedTensorSharding: false here, or shard only the optimizer state (train.optimizerStateTensorLocationSettings)`);
      if (l.location.replicatedTensorSharding && key === 'accumulatorTensorLocationSettings' && t.accumulationFactor <= 1)
        fail(rtsPath, 'there are no accumulators to shard without gradient accumulation; set train.accumulationFactor above 1, or replicatedTensorSharding: false');
      // An outlined call copies its weights in from tile memory, where a sharded weight is only between its all-gathers.
      if (l.location.replicatedTensorSharding && key === 'weightTensorLocationSettings' && cfg.compile.outlining)
        fail(['compile', 'outlining'], 'outlining with sharded weights is not supported yet (a call would copy in a weight never all-gathered); set compile.outlining: false, or train.weightTensorLocationSettings.location.replicatedTensorSharding: false');
      // An outlined call copies its weights in from tile memory, where an offChip weight is only between its loads.
      if (key === 'weightTensorLocationSettings' && l.location.storage === 'offChip' && cfg.compile.outlining)
        fail(['compile', 'outlining'], 'outlining with offChip weights is not supported yet (a call would copy in a weight not loaded from Streaming Memory); set compile.outlining: false, or keep the weights on chip');
      if (key === 'accumulatorTensorLocationSettings' && l.location.storage === 'offChip' && t.accumulationFactor <= 1)
        fail(['train', key, 'location', 'storage'], 'there are no accumulators without gradient accumulation; set train.accumulationFactor above 1, or leave the accumulators on chip');
      train[field] = {
        storage: l.location.storage,
        replicatedTensorSharding: l.location.replicatedTensorSharding,
        minElementsForOffChip: l.minElementsForOffChip,
        minElementsForReplicatedTensorSharding: l.minElementsForReplicatedTensorSharding,
        loc: keyAt(['train', key]),
      };
    }
    if (t.checkpointEvery !== undefined && !(overrides.numerics ?? cfg.run.numerics))
      fail(['train', 'checkpointEvery'], 'checkpoints need numerics (run.numerics: true, no --no-numerics): without them there are no weights to keep');
    if (t.recompute === 'pipeline' && !(cfg.model.pipelining ?? cfg.model.enablePipelining))
      fail(['train', 'recompute'], 'recompute: pipeline recomputes the stages of a pipeline: set model.pipelining: true, or give train.recompute: none');
    if (t.saveModel && !(overrides.numerics ?? cfg.run.numerics))
      fail(['train', 'saveModel'], 'saving the trained model needs numerics (run.numerics: true, no --no-numerics): without them there are no trained weights');
  }

  // Replication (PopART's checks): IPUs = replicas x IPUs per replica.
  const replicas = cfg.replicas;
  if (replicas > 1) {
    if (device.ipus % replicas !== 0)
      fail(['replicas'], `replicas: ${replicas} does not divide the device's ${device.ipus} IPUs: each replica needs device.ipus / replicas IPUs; give a device with a multiple of ${replicas} IPUs (e.g. device: {preset: pod16, ipus: ${replicas}}) or fewer replicas`);
    const perReplica = device.ipus / replicas;
    const highest = Math.max(-1, ...graph.nodes.map((n) => n.ipu ?? -1));
    if (highest >= perReplica)
      fail(['replicas'], `replicas: ${replicas} x ${highest + 1} IPUs per replica (a node names ipu ${highest}) need ${replicas * (highest + 1)} IPUs, the device has ${device.ipus}; give device.ipus: ${replicas * (highest + 1)} or fewer replicas`);
  }

  // Anchors (their names may include tensors made later, e.g. Gradient___w: not checked here)
  const anchors: RunConfig['anchors'] = {};
  const defaultAnchors = cfg.anchors === undefined;
  if (cfg.anchors) {
    for (const [name, mode] of Object.entries(cfg.anchors)) anchors[name] = { mode: parseAnchorMode(mode), loc: keyAt(['anchors', name]) };
  } else {
    graph.outputs.forEach((t, j) => (anchors[t] = { mode: { kind: 'final' }, loc: onnxGraph ? at(['model', 'onnx']) : at([...G, 'outputs', j]) }));
    if (train?.loss.type === 'tensor') anchors[train.loss.name] = { mode: { kind: 'final' }, loc: train.loss.loc };
  }

  return {
    file,
    name: cfg.name ?? path.basename(file).replace(/\.[^.]*$/, ''),
    device,
    model: { graph, ...(onnxFile ? { onnx: onnxFile } : {}), customOps, ...(cfg.model.virtualGraphMode ? { virtualGraphMode: cfg.model.virtualGraphMode } : {}), ...((cfg.model.pipelining ?? cfg.model.enablePipelining) ? { pipelining: true } : {}) },
    inputs,
    ...(train ? { train } : {}),
    ...(replicas > 1 ? { replicas, collectiveMethod: cfg.collectiveMethod } : {}),
    steps: train ? train.steps : (overrides.steps ?? 1),
    anchors,
    defaultAnchors,
    run: {
      workers: overrides.workers ?? cfg.run.workers,
      numerics: overrides.numerics ?? cfg.run.numerics,
      seed,
      checkFinite: cfg.run.checkFinite ?? train !== undefined,
      checkMemory: cfg.run.checkMemory,
      vertexTimeoutSeconds: cfg.run.vertexTimeoutSeconds,
    },
    report: { trace: cfg.report.trace, traceTiles: cfg.report.traceTiles, html: cfg.report.html },
    compile: { outlining: cfg.compile.outlining, outlineMinOps: cfg.compile.outlineMinOps },
  };
}
