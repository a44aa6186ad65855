/**
 * The config file's schema (SPEC.md, "Config file (YAML)") and the device-file
 * schema, written in zod, plus the machinery that validates a parsed YAML
 * document against them and turns every problem into a UserError naming
 * file:line:col, the key path, what was found and what was expected.
 *
 * The schemas only check what one value can tell; cross-references (node
 * inputs, input data, duplicate names) are checked by loadConfig().
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node } from 'yaml';
import { closest, formatLocation, UserError } from '../errors.js';
import type { SourceLocation } from './types.js';

// ---------------------------------------------------------------------------
// Building blocks

/** Marks the message of an unrecognized_keys issue so the formatter can offer "did you mean". */
const ALLOWED_KEYS_TAG = 'allowed keys: ';

/** A strict object (unknown keys are errors) whose error names the keys it allows. */
function strict<T extends z.core.$ZodLooseShape>(shape: T) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => (iss.code === 'unrecognized_keys' ? ALLOWED_KEYS_TAG + allowed.join(', ') : undefined),
  });
}

/**
 * A map with exactly one of the given keys, e.g. `{normal: {...}}` or `{npy: path}`.
 * (A strict object rather than a union, so a misspelt key gets a did-you-mean.)
 */
function exactlyOne<T extends z.core.$ZodLooseShape>(shape: T, what: string) {
  const keys = Object.keys(shape);
  const list = keys.join(', ');
  return strict(shape)
    .superRefine((v, ctx) => {
      const given = keys.filter((k) => (v as Record<string, unknown>)[k] !== undefined);
      if (given.length === 0)
        ctx.addIssue({ code: 'custom', message: `${what} needs one of: ${list}; found an empty map`, params: { missing: true } });
      else if (given.length > 1)
        ctx.addIssue({ code: 'custom', message: `${what} takes exactly one of: ${list}; found ${given.join(' and ')}` });
    })
    .meta({ description: `${what}: exactly one of ${list}`, minProperties: 1, maxProperties: 1 });
}

// Messages that start with "expected" are used as they are (see issueProblems).
const posInt = z.int({ error: 'expected an integer >= 1' }).min(1, { error: 'expected an integer >= 1' });
const nonNegInt = z.int({ error: 'expected an integer >= 0' }).min(0, { error: 'expected an integer >= 0' });
const posNumber = z.number({ error: 'expected a number > 0' }).gt(0, { error: 'expected a number > 0' });
const nonNegNumber = z.number({ error: 'expected a number >= 0' }).min(0, { error: 'expected a number >= 0' });
const seedSchema = nonNegInt.describe('random seed (default: derived from run.seed and the tensor name)');
const tensorName = z.string().min(1);

export const dtypeSchema = z.enum(['float32', 'float16', 'int32']);
export const shapeSchema = z.array(posInt).describe('dimensions, each a positive integer; [] for a scalar');

export type NestedNumbers = number | NestedNumbers[];
export const nestedNumbersSchema: z.ZodType<NestedNumbers> = z.lazy(() =>
  z.union([z.number(), z.array(nestedNumbersSchema)], { error: 'expected a number or a nested list of numbers' }),
).describe('a number or a nested list of numbers (C order)');

// ---------------------------------------------------------------------------
// Device: a preset name, a device YAML path, or an object (a whole device, or
// `preset:` plus the fields to override)

const deviceFieldShape = {
  ipus: posInt.describe('IPUs in the system'),
  tilesPerIpu: posInt.describe('tiles per IPU'),
  clockHz: posNumber.describe('tile clock in Hz'),
  bytesPerTile: posInt.describe('SRAM per tile in bytes'),
  workersPerTile: posInt.describe('worker contexts per tile'),
  vectorWidthBits: posInt.describe('width of one worker vector instruction in bits'),
  exchangeBytesPerCycle: posInt.describe('bytes a tile sends (and receives) per cycle during exchange'),
  tilesPerSharedBus: posInt.describe('tiles sharing one exchange bus'),
  syncCycles: nonNegInt.describe('cycles of one on-chip sync'),
  hostLinkBytesPerSecond: posNumber.describe('host link bandwidth, bytes per second'),
  hostCopyLatencyCycles: nonNegInt.describe('fixed cycles of each host stream copy'),
  ampMacsPerCycle: strict({ float16: posInt, float32: posInt }).describe('AMP MACs per cycle per tile'),
  loadBytesPerCycle: posInt.describe('bytes loaded per tile per cycle'),
  storeBytesPerCycle: posInt.describe('bytes stored per tile per cycle'),
  supervisorOverheadCycles: nonNegInt.describe('supervisor cycles to launch a compute set'),
  allocationAlignment: posInt.describe('byte alignment of every tile allocation'),
  minBytesPerTile: posInt.describe('minimum bytes per tile in a linear mapping'),
  availableMemoryProportion: z
    .number({ error: 'expected a number in (0, 1]' })
    .gt(0, { error: 'expected a number in (0, 1]' })
    .max(1, { error: 'expected a number in (0, 1]' })
    .describe("fraction of a tile's memory a matmul plan may use for temporaries (PopLibs default 0.6)"),
  codeBytesPerCodelet: nonNegInt.describe('tile memory taken by the code of each distinct codelet on a tile'),
};

export const DEVICE_FIELDS = Object.keys(deviceFieldShape) as (keyof typeof deviceFieldShape)[];

/** IPU-Link fields (sim/links.ts): optional everywhere, §7's defaults where absent. */
const linkFieldShape = {
  topology: z.enum(['ladder', 'torus']).describe("how the IPUs are linked: 'ladder' (pairs and two rails, PopLibs' model) or 'torus' (rails closed, a POD64)"),
  ipuLinkBytesPerSecond: posNumber.describe('bytes per second of one IPU-Link, one direction'),
  ipuLinkEfficiency: z
    .number({ error: 'expected a number in (0, 1]' })
    .gt(0, { error: 'expected a number in (0, 1]' })
    .max(1, { error: 'expected a number in (0, 1]' })
    .describe("fraction of a link's bandwidth data gets"),
  ipuLinksPerPair: posInt.describe('IPU-Links between the two IPUs of a pair, each way'),
  ipuLinksPerRail: posInt.describe('IPU-Links up (and, separately, down) the rail from each IPU'),
  interIpuSyncNsPerHop: posNumber.describe('nanoseconds per hop of the inter-IPU sync'),
  linkDomainIpus: posInt.describe('IPUs per IPU-Link domain, e.g. 64 (a POD64); domains are joined by GW-Links (absent: the whole system is one domain)'),
  ipusPerGateway: posInt.describe('IPUs per machine, behind one IPU-Gateway with two GW-Links (east and west)'),
  gwLinkBytesPerSecond: posNumber.describe('bytes per second of one GW-Link, one direction'),
  gwLinkEfficiency: z
    .number({ error: 'expected a number in (0, 1]' })
    .gt(0, { error: 'expected a number in (0, 1]' })
    .max(1, { error: 'expected a number in (0, 1]' })
    .describe("fraction of a GW-Link's bandwidth data gets"),
  gwLinkLatencyNs: z.number({ error: 'expected a number >= 0' }).min(0, { error: 'expected a number >= 0' }).describe('nanoseconds a GW-Link crossing adds to an exchange (there and back to a sync)'),
};

export const LINK_FIELDS = Object.keys(linkFieldShape) as (keyof typeof linkFieldShape)[];

/** Streaming Memory fields (sim/streaming-memory.ts): optional everywhere, its defaults where absent. */
const streamingMemoryFieldShape = {
  streamingMemoryBytesPerSecond: posNumber.describe('bytes per second each IPU moves to or from Streaming Memory (remote buffers)'),
  streamingMemoryLatencyNs: nonNegNumber.describe('nanoseconds of latency of each remote buffer copy'),
};

export const STREAMING_MEMORY_FIELDS = Object.keys(streamingMemoryFieldShape) as (keyof typeof streamingMemoryFieldShape)[];

/**
 * A device object: either every DeviceSpec field (a device file), or `preset:`
 * (a preset name or a device YAML path) plus any fields to override. `tiles`
 * is an alias of tilesPerIpu.
 */
const optionalDeviceFields = Object.fromEntries(
  Object.entries(deviceFieldShape).map(([k, s]) => [k, s.optional()]),
) as { [K in keyof typeof deviceFieldShape]: z.ZodOptional<(typeof deviceFieldShape)[K]> };

export const deviceObjectSchema = strict({
  preset: z.string().min(1).optional().describe('base device: a preset name or a path to a device YAML'),
  name: z.string().min(1).optional(),
  tiles: posInt.optional().describe('alias of tilesPerIpu'),
  ...optionalDeviceFields,
  ...Object.fromEntries(Object.entries(linkFieldShape).map(([k, v]) => [k, v.optional()])) as { [K in keyof typeof linkFieldShape]: z.ZodOptional<(typeof linkFieldShape)[K]> },
  ...Object.fromEntries(Object.entries(streamingMemoryFieldShape).map(([k, v]) => [k, v.optional()])) as {
    [K in keyof typeof streamingMemoryFieldShape]: z.ZodOptional<(typeof streamingMemoryFieldShape)[K]>;
  },
  ampMacsPerCycle: strict({ float16: posInt.optional(), float32: posInt.optional() })
    .optional()
    .describe('AMP MACs per cycle per tile'),
}).superRefine((v, ctx) => {
  if (v.tiles !== undefined && v.tilesPerIpu !== undefined)
    ctx.addIssue({ code: 'custom', path: ['tiles'], message: 'give tiles or tilesPerIpu, not both (tiles is an alias of tilesPerIpu)' });
  if (v.preset !== undefined) return;
  // No base device: every field must be given.
  const missing = DEVICE_FIELDS.filter((k) => v[k] === undefined && !(k === 'tilesPerIpu' && v.tiles !== undefined));
  if (missing.length)
    ctx.addIssue({
      code: 'custom',
      message: `missing ${missing.map((k) => `'${k}'`).join(', ')}: a device without 'preset:' must give every field (or start from one with preset: mk2)`,
      params: { missing: true },
    });
  const amp = v.ampMacsPerCycle;
  if (amp)
    for (const k of ['float16', 'float32'] as const)
      if (amp[k] === undefined)
        ctx.addIssue({ code: 'custom', path: ['ampMacsPerCycle', k], message: `missing required key '${k}'`, params: { missing: true } });
});

export type DeviceObject = z.output<typeof deviceObjectSchema>;

export const deviceValueSchema = z
  .union([z.string().min(1), deviceObjectSchema], {
    error: 'expected a preset name, a path to a device YAML, or a map such as {preset: mk2, tiles: 64}',
  })
  .describe('a preset (a chip: tiny, mk1, mk2, bow; a system: m2000, pod16, pod64, bow2000, bowpod16), a path to a device YAML, or {preset: mk2, tiles: 64, ...any device field}');

// ---------------------------------------------------------------------------
// Model

const tensorDeclSchema = strict({
  shape: shapeSchema,
  dtype: dtypeSchema.default('float32'),
});

const initSchema = exactlyOne(
  {
    normal: strict({ mean: z.number().default(0), std: nonNegNumber, seed: seedSchema.optional() }).optional(),
    uniform: strict({ low: z.number(), high: z.number(), seed: seedSchema.optional() })
      .refine((u) => u.low <= u.high, { message: 'low must not exceed high', path: ['high'] })
      .optional(),
    constant: z.number().optional(),
    value: nestedNumbersSchema.optional(),
    npy: z.string().min(1).optional().describe('path to a .npy file, relative to the config file'),
  },
  'init',
);

const initializerSchema = strict({
  shape: shapeSchema,
  dtype: dtypeSchema.default('float32'),
  init: initSchema,
  trainable: z.boolean().default(true).describe('false makes it a constant'),
});

export const attributeValueSchema = z.union([z.number(), z.string(), z.array(z.number()), z.array(z.string())], {
  error: 'expected a number, a string, or a list of numbers or of strings',
});

const nodeSchema = strict({
  op: z.string().min(1).describe('op type, e.g. MatMul'),
  domain: z.string().default('').describe("op domain; '' (the default) is ai.onnx"),
  version: posInt.optional().describe('op version (default: from the opset)'),
  name: z.string().min(1).optional().describe('default: `${op}_${index}`'),
  inputs: z.array(z.string()).default([]).describe("tensor names; '' for an omitted optional input"),
  outputs: z.array(tensorName).min(1),
  attributes: z.record(z.string().min(1), attributeValueSchema).default({}),
  ipu: z.int({ error: 'expected an integer' }).min(0).optional().describe("the IPU (virtual graph) the op runs on (PopART's __ipu_number)"),
  pipelineStage: z.int({ error: 'expected an integer' }).min(0).optional().describe("with model.pipelining: the forward pipeline stage of the op (PopART's __pipeline_stage); default its IPU"),
});

const graphSchema = strict({
  inputs: z.record(tensorName, tensorDeclSchema).default({}),
  initializers: z.record(tensorName, initializerSchema).default({}),
  nodes: z.array(nodeSchema).default([]),
  outputs: z.array(tensorName).min(1),
  opset: posInt.default(18).describe('ONNX opset of the default domain'),
});

const modelSchema = strict({
  onnx: z.string().min(1).optional().describe('an ONNX model file, relative to the config file (instead of graph)'),
  graph: graphSchema.optional(),
  customOps: z.array(z.string().min(1)).default([]).describe('modules that register custom ops, relative to the config file'),
  virtualGraphMode: z.enum(['off', 'manual', 'auto']).optional().describe("PopART's virtualGraphMode: off, manual (ipu per node) or auto (split by weight bytes); default manual when a node names an IPU, else off"),
  pipelining: z.boolean().optional().describe("PopART's enablePipelining: run the IPUs' stages as a pipeline over the micro-batches (needs sharding and train.accumulationFactor)"),
  enablePipelining: z.boolean().optional().describe('PopART\'s name for model.pipelining'),
}).superRefine((m, ctx) => {
  if (m.pipelining !== undefined && m.enablePipelining !== undefined && m.pipelining !== m.enablePipelining)
    ctx.addIssue({ code: 'custom', path: ['enablePipelining'], message: 'model.pipelining and model.enablePipelining disagree; give one' });
  if (m.onnx === undefined && m.graph === undefined)
    ctx.addIssue({ code: 'custom', message: 'model needs a graph (model.graph) or an ONNX file (model.onnx)' });
  else if (m.onnx !== undefined && m.graph !== undefined)
    ctx.addIssue({ code: 'custom', path: ['graph'], message: 'give model.onnx or model.graph, not both' });
});

// ---------------------------------------------------------------------------
// Input data

const randomSchema = z.discriminatedUnion('distribution', [
  strict({ distribution: z.literal('uniform'), low: z.number(), high: z.number(), seed: seedSchema.optional() }),
  strict({ distribution: z.literal('normal'), mean: z.number().default(0), std: nonNegNumber.default(1), seed: seedSchema.optional() }),
  strict({
    distribution: z.literal('integers'),
    low: z.int({ error: 'expected an integer' }),
    high: z.int({ error: 'expected an integer' }),
    seed: seedSchema.optional(),
  }),
]);

const inputDataSchema = exactlyOne(
  {
    random: randomSchema.optional(),
    npy: z.string().min(1).optional().describe('path to a .npy file, relative to the config file'),
    value: nestedNumbersSchema.optional(),
  },
  'input data',
);

// ---------------------------------------------------------------------------
// Training

const lossObjectSchema = strict({
  type: z.enum(['l1', 'nll', 'softmaxCrossEntropy', 'mse']),
  input: tensorName.describe('the loss input: l1 any tensor; nll probabilities [..., C]; softmaxCrossEntropy scores [N, C, ...]; mse a prediction'),
  labels: tensorName.optional().describe('int32 class labels (nll, softmaxCrossEntropy)'),
  target: tensorName.optional().describe('the tensor the input is compared with (mse)'),
  weights: tensorName.optional().describe('class weights [C] (nll, softmaxCrossEntropy)'),
  scale: z.number().default(1),
  reduction: z.enum(['mean', 'sum']).default('mean'),
  ignoreIndex: z.int({ error: 'expected an integer' }).optional().describe('label whose samples are ignored (nll, softmaxCrossEntropy)'),
  inputIsLogProbability: z.boolean().optional().describe('nll: the input holds log-probabilities (default false: probabilities)'),
});

const lossSchema = z
  .union([tensorName, lossObjectSchema], { error: 'expected a loss such as {type: l1, input: y} or the name of a scalar tensor' })
  .describe('{type: l1 | nll | softmaxCrossEntropy | mse, input, labels, target, scale, reduction, ...} or the name of a scalar tensor in the graph');

const sgdSchema = strict({
  type: z.literal('sgd'),
  lr: nonNegNumber,
  momentum: nonNegNumber.default(0),
  dampening: nonNegNumber.default(0),
  weightDecay: nonNegNumber.default(0),
  nesterov: z.boolean().default(false),
});

const betaNumber = z
  .number({ error: 'expected a number in [0, 1)' })
  .min(0, { error: 'expected a number in [0, 1)' })
  .lt(1, { error: 'expected a number in [0, 1)' });

const adamFields = {
  lr: nonNegNumber,
  beta1: betaNumber.default(0.9),
  beta2: betaNumber.default(0.999),
  eps: posNumber.default(1e-8),
};

const adamSchema = strict({ type: z.literal('adam'), ...adamFields, weightDecay: nonNegNumber.default(0) }).describe('torch.optim.Adam');
const adamwSchema = strict({ type: z.literal('adamw'), ...adamFields, weightDecay: nonNegNumber.default(0.01) }).describe('torch.optim.AdamW');

const optimizerSchema = z.discriminatedUnion('type', [sgdSchema, adamSchema, adamwSchema]).describe('sgd, adam or adamw, with PyTorch semantics');

/** The keys each optimizer type takes (`sim sweep` drops the others when it switches the type). */
export const OPTIMIZER_KEYS: Record<string, string[]> = Object.fromEntries(
  [sgdSchema, adamSchema, adamwSchema].map((o) => [o.shape.type.value, Object.keys(o.shape)]),
);

/** PopART's TensorLocationSettings: where a kind of tensor lives, and from what size the settings apply. */
const tensorLocationSettingsSchema = strict({
  location: strict({
    storage: z.enum(['onChip', 'offChip']).default('onChip').describe("PopART's TensorStorage: onChip (tile memory) or offChip (a remote buffer in Streaming Memory, loaded before each use and stored after)"),
    replicatedTensorSharding: z.boolean().default(false).describe("PopART's ReplicatedTensorSharding: each of the replicas holds 1/replicas of the tensor"),
  }).prefault({}),
  minElementsForOffChip: nonNegInt.default(2).describe('tensors with fewer elements stay on chip (PopART default 2)'),
  minElementsForReplicatedTensorSharding: nonNegInt.default(8192).describe('tensors with fewer elements are not sharded (PopART default 8192)'),
});

const trainSchema = strict({
  loss: lossSchema,
  optimizer: optimizerSchema,
  steps: posInt.default(1),
  batchesPerStep: posInt.default(1),
  accumulationFactor: posInt.default(1).describe("PopART's accumulationFactor: micro-batches whose gradients are summed before one optimizer update (1: no accumulation)"),
  gradientReduction: z
    .enum(['mean', 'sum'])
    .default('mean')
    .describe("PopART's accumulationAndReplicationReductionType: mean divides the accumulated (and all-reduced) gradient by the micro-batches (x replicas) it sums, sum does not"),
  recompute: z.enum(['none', 'pipeline']).default('none').describe("PopART's recomputationType with pipelining: none stashes every forward activation the backward reads; pipeline stashes only each stage's inputs and recomputes the forward in the backward stage"),
  lossScaling: posNumber.default(1).describe('loss scaling: the loss gradient is multiplied by it, the optimizers divide gradients by it'),
  saveModel: z.boolean().default(false).describe('write the trained model (forward graph, final weights) as model.onnx in the run folder'),
  checkpointEvery: posInt.optional().describe('write a checkpoint (weights, optimizer state) every N steps into the run folder; sim run --resume continues from it'),
  optimizerStateTensorLocationSettings: tensorLocationSettingsSchema.optional().describe("PopART's optimizerStateTensorLocationSettings: where the optimizer state (momentum, Adam's moments) lives; sharded over the replicas with replicatedTensorSharding"),
  accumulatorTensorLocationSettings: tensorLocationSettingsSchema.optional().describe("PopART's accumulatorTensorLocationSettings: where the gradient accumulators live; sharded over the replicas with replicatedTensorSharding (each micro-batch's gradient reduce-scattered into the replica's shard)"),
  weightTensorLocationSettings: tensorLocationSettingsSchema.optional().describe("PopART's weightTensorLocationSettings: where the trainable weights live; sharded over the replicas with replicatedTensorSharding (each replica keeps its shard, all-gathered before each use)"),
});

// ---------------------------------------------------------------------------
// Anchors, run, report

export const ANCHOR_PATTERN = /^(all|final|sum|everyN:[1-9][0-9]*)$/;
const anchorModeSchema = z
  .string()
  .regex(ANCHOR_PATTERN, { error: 'expected all, final, sum or everyN:<n> (n >= 1)' })
  .meta({ examples: ['all', 'final', 'sum', 'everyN:5'] });

const runSchema = strict({
  workers: z.union([z.literal('auto'), posInt], { error: "expected 'auto' or an integer >= 1" }).default('auto'),
  numerics: z.boolean().default(true).describe('false: cycles only, no arithmetic'),
  vertexTimeoutSeconds: z.number().positive().default(60).describe('the watchdog: a compute set still running after this many seconds of host time ends the run'),
  checkMemory: z.boolean().default(false).describe('after each compute set, check that no vertex wrote outside its output regions (slower; for writing codelets)'),
  checkFinite: z.boolean().optional().describe('stop at the first op whose output holds NaN or ±Infinity (default: true when training, false otherwise)'),
  seed: nonNegInt.default(0),
});

const compileSchema = strict({
  outlining: z
    .boolean()
    .default(false)
    .describe("PopART's enableOutlining: repeated sequences of ops (a model's layers) are lowered once and called, trading copies in and out of each call for compile time and code and vertex memory"),
  outlineMinOps: posInt.default(8).describe('the fewest ops a repeated sequence must have to be outlined'),
});

const reportSchema = strict({
  trace: z.boolean().default(true),
  traceTiles: z
    .union([z.literal('all'), z.literal('auto'), posInt], { error: "expected 'all', 'auto' or an integer >= 1" })
    .default('auto')
    .describe('auto: every tile up to 64 tiles, else 64 evenly spread (a full mk2 traced tile by tile is too big for Perfetto)'),
  html: z.boolean().default(true),
});

// ---------------------------------------------------------------------------
// The config file

export const configSchema = strict({
  name: z.string().min(1).optional().describe('default: the file name'),
  device: deviceValueSchema.default('tiny'),
  model: modelSchema,
  inputs: z.record(tensorName, inputDataSchema).default({}).describe('data for every graph input'),
  train: trainSchema.optional().describe('omit for inference'),
  replicas: posInt
    .default(1)
    .describe("PopART's replicatedGraphCount: copies of the program, each on device.ipus / replicas IPUs with its own data; training all-reduces the gradients across them"),
  collectiveMethod: z
    .enum(['auto', 'clockwise', 'anticlockwise', 'bidirectional', 'meetInMiddle'])
    .default('auto')
    .describe("the all-reduce's ring method (PopLibs' collectives): auto chooses as PopLibs does"),
  anchors: z.record(tensorName, anchorModeSchema).optional().describe('default: graph outputs and the loss, final'),
  run: runSchema.prefault({}),
  compile: compileSchema.prefault({}),
  report: reportSchema.prefault({}),
}).meta({ title: 'tilesim config file' });

export type ConfigFile = z.output<typeof configSchema>;

/** JSON Schema (draft 2020-12) of the config file, for `sim schema` and editors. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

/** JSON Schema of a device YAML file. */
export function deviceJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(deviceObjectSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

// ---------------------------------------------------------------------------
// YAML sources: parse with positions, find the node at a key path

export type KeyPath = (string | number)[];

/** How a file is named in messages: relative to the working directory when inside it. */
export function displayPath(absFile: string): string {
  const rel = path.relative(process.cwd(), absFile);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : absFile;
}

/** `train.optimizer.lr`, `model.graph.nodes[2].inputs[0]`, `anchors["a b"]`. */
export function formatKeyPath(p: KeyPath): string {
  let s = '';
  for (const seg of p) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_\-/:]*$/.test(seg)) s += (s ? '.' : '') + seg;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s || '(top level)';
}

/** Finds where a key path is, for messages. */
export interface Locator {
  locAt(p: KeyPath): SourceLocation | undefined;
  keyLocAt(p: KeyPath): SourceLocation | undefined;
  /** True when a value (possibly null) is present at the path. */
  has(p: KeyPath): boolean;
}

/** A Locator for a plain value that has no positions: every problem is reported at `loc`. */
export function fixedLocator(data: unknown, loc: SourceLocation | undefined): Locator {
  return { locAt: () => loc, keyLocAt: () => loc, has: (p) => getAt(data, p) !== undefined };
}

export class YamlSource implements Locator {
  readonly display: string;
  constructor(
    /** Absolute path. */
    readonly file: string,
    readonly doc: Document,
    readonly lineCounter: LineCounter,
  ) {
    this.display = displayPath(file);
  }

  private plain: { value: unknown } | undefined;

  /** Plain JavaScript data of the document (made once). */
  data(): unknown {
    this.plain ??= { value: this.doc.toJS({ maxAliasCount: 1000 }) ?? null };
    return this.plain.value;
  }

  locOfOffset(offset: number): SourceLocation {
    const { line, col } = this.lineCounter.linePos(offset);
    return { file: this.display, line, col };
  }

  private resolve(n: unknown): unknown {
    return isAlias(n) ? n.resolve(this.doc) : n;
  }

  /** The nodes along a path: [{node, keyNode}] from the root, as far as the path exists. */
  private walk(p: KeyPath): { node: Node | null; key: Node | null }[] {
    const out: { node: Node | null; key: Node | null }[] = [{ node: this.doc.contents as Node | null, key: null }];
    let cur: unknown = this.resolve(this.doc.contents);
    for (const seg of p) {
      if (isMap(cur)) {
        const pair = cur.items.find((it) => String(isScalar(it.key) ? it.key.value : it.key) === String(seg));
        if (!pair) break;
        out.push({ node: (pair.value as Node | null) ?? null, key: pair.key as Node });
        cur = this.resolve(pair.value);
      } else if (isSeq(cur) && typeof seg === 'number' && seg < cur.items.length) {
        out.push({ node: cur.items[seg] as Node, key: null });
        cur = this.resolve(cur.items[seg]);
      } else break;
    }
    return out;
  }

  private nodeLoc(n: Node | null | undefined): SourceLocation | null {
    return n?.range ? this.locOfOffset(n.range[0]) : null;
  }

  /**
   * Where the value at `p` is; when it does not exist (a missing key), where
   * its nearest existing parent is (the parent's key when it has one).
   */
  locAt(p: KeyPath): SourceLocation {
    const steps = this.walk(p);
    const last = steps[steps.length - 1];
    if (steps.length === p.length + 1) {
      return this.nodeLoc(last.node) ?? this.nodeLoc(last.key) ?? this.locOfOffset(0);
    }
    return this.nodeLoc(last.key) ?? this.nodeLoc(last.node) ?? this.locOfOffset(0);
  }

  /** Where the key of the map entry at `p` is (the value's location for list items). */
  keyLocAt(p: KeyPath): SourceLocation {
    const steps = this.walk(p);
    const last = steps[steps.length - 1];
    if (steps.length === p.length + 1) return this.nodeLoc(last.key) ?? this.nodeLoc(last.node) ?? this.locOfOffset(0);
    return this.locAt(p);
  }

  /** True when a value (possibly null) is present at `p`. */
  has(p: KeyPath): boolean {
    return this.walk(p).length === p.length + 1;
  }
}

/** Read and parse a YAML file; a missing file or a syntax error is a UserError with its location. */
export function readYamlFile(absFile: string, what: string): YamlSource {
  const shown = displayPath(absFile);
  if (!existsSync(absFile)) throw new UserError(`${what} not found: ${shown}`);
  if (statSync(absFile).isDirectory()) throw new UserError(`${what} is a directory, not a YAML file: ${shown}`);
  let text: string;
  try {
    text = readFileSync(absFile, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} ${shown}: ${(e as Error).message}`);
  }
  return parseYamlText(text, absFile);
}

/** Parse YAML text that came from `absFile` (used for messages). */
export function parseYamlText(text: string, absFile: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const src = new YamlSource(absFile, doc, lineCounter);
  const err = doc.errors[0];
  if (err) {
    const loc = src.locOfOffset(err.pos[0]);
    const [first, ...rest] = err.message.split('\n');
    const what = first.replace(/ at line \d+, column \d+:?\s*$/, '');
    const snippet = rest.join('\n').replace(/^\n+|\s+$/g, '');
    throw new UserError(`invalid YAML: ${what}${snippet ? '\n\n' + snippet : ''}`, loc);
  }
  // The parser accepts an alias whose anchor comes later or nowhere; turning it into data would throw a bare ReferenceError.
  visit(doc, {
    // yaml would stringify a list or map used as a key, with a Node warning on stderr.
    Pair(_key, pair) {
      const k = pair.key;
      if (k === null || isScalar(k) || isAlias(k)) return;
      const loc = (k as Node).range ? src.locOfOffset((k as Node).range![0]) : undefined;
      throw new UserError(`invalid YAML: a key must be a name, found ${isSeq(k) ? 'a list' : 'a map'} (a '{' or '[' typed where a key goes?)`, loc);
    },
    Alias(_key, node) {
      if (node.resolve(doc) !== undefined) return;
      const loc = node.range ? src.locOfOffset(node.range[0]) : undefined;
      throw new UserError(`invalid YAML: alias *${node.source} refers to no anchor &${node.source} defined before it`, loc);
    },
  });
  try {
    src.data();
  } catch (e) {
    // Only alias expansion can fail here (yaml's guard against alias bombs).
    throw new UserError(`invalid YAML: ${(e as Error).message} (aliases expand to more than 1000 nodes)`, { file: src.display, line: 1, col: 1 });
  }
  return src;
}

// ---------------------------------------------------------------------------
// zod issues -> UserError

/** A value as a message shows it: strings quoted, collections by kind. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (typeof v === 'string') return `'${v.length > 60 ? v.slice(0, 57) + '...' : v}' (a string)`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `a list of ${v.length} item${v.length === 1 ? '' : 's'}`;
  if (typeof v === 'object') return 'a map';
  return typeof v;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a map',
  record: 'a map',
  array: 'a list',
  nan: 'NaN',
};

function getAt(data: unknown, p: KeyPath): unknown {
  let cur = data;
  for (const seg of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

function bound(n: number | bigint, inclusive: boolean | undefined, dir: 'min' | 'max'): string {
  return `${dir === 'min' ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<'} ${n}`;
}

function quote(v: unknown): string {
  return typeof v === 'string' ? `'${v}'` : String(v);
}

function didYouMean(v: unknown, options: unknown[]): string {
  if (typeof v !== 'string') return '';
  const c = closest(v, options.filter((o): o is string => typeof o === 'string'));
  return c ? `; did you mean '${c}'?` : '';
}

interface Problem {
  message: string;
  loc: SourceLocation | undefined;
  /** For a missing key: the path of its map (dropped when that map has an unknown key, likely its misspelling). */
  missingIn?: string;
  unknownIn?: string;
}

type Issue = z.core.$ZodIssue;

/** True when a union branch failed on the value's type itself (not deeper). */
function rootMismatch(issue: Issue): boolean {
  if (issue.path.length !== 0) return false;
  if (issue.code === 'invalid_type' || issue.code === 'invalid_value') return true;
  if (issue.code === 'invalid_union') return issue.errors.length > 0 && issue.errors.every((b) => b.some(rootMismatch));
  return false;
}

function issueProblems(issue: Issue, base: KeyPath, src: Locator, data: unknown, out: Problem[]): void {
  const p: KeyPath = [...base, ...(issue.path as KeyPath)];
  const where = formatKeyPath(p);
  const value = getAt(data, p);
  const present = value !== undefined || src.has(p);
  const push = (message: string, extra: Partial<Problem> = {}) => void out.push({ message, loc: src.locAt(p), ...extra });
  /** A message written in this file ("expected ..."), as opposed to zod's default. */
  const custom = issue.message.startsWith('expected ') ? issue.message.slice('expected '.length) : undefined;

  switch (issue.code) {
    case 'invalid_type': {
      const expected = custom ?? EXPECTED[issue.expected] ?? `a ${issue.expected}`;
      if (!present && p.length > 0) {
        const parent = p.slice(0, -1);
        push(`${where}: missing required key '${p[p.length - 1]}' (expected ${expected})`, { missingIn: formatKeyPath(parent) });
      } else push(`${where}: expected ${expected}, found ${describeValue(value)}`);
      return;
    }
    case 'unrecognized_keys': {
      const allowed = issue.message.startsWith(ALLOWED_KEYS_TAG)
        ? issue.message.slice(ALLOWED_KEYS_TAG.length).split(', ')
        : [];
      for (const key of issue.keys) {
        const hint = closest(key, allowed);
        const msg =
          `${formatKeyPath([...p, key])}: unknown key '${key}'` +
          (hint ? `; did you mean '${hint}'?` : '') +
          (allowed.length ? ` (allowed ${p.length ? `in ${where}` : 'at the top level'}: ${allowed.join(', ')})` : '');
        out.push({ message: msg, loc: src.keyLocAt([...p, key]), unknownIn: where });
      }
      return;
    }
    case 'too_small':
    case 'too_big': {
      if (custom) return push(`${where}: expected ${custom}, found ${describeValue(value)}`);
      const dir = issue.code === 'too_small' ? 'min' : 'max';
      const limit = issue.code === 'too_small' ? issue.minimum : issue.maximum;
      if (issue.origin === 'array' || issue.origin === 'set') {
        const n = Array.isArray(value) ? value.length : 0;
        push(`${where}: expected ${dir === 'min' ? 'at least' : 'at most'} ${limit} item${Number(limit) === 1 ? '' : 's'}, found ${n}`);
      } else if (issue.origin === 'string') {
        push(`${where}: expected ${Number(limit) === 1 && dir === 'min' ? 'a non-empty string' : `a string of ${bound(limit, issue.inclusive, dir)} characters`}, found ${describeValue(value)}`);
      } else {
        const kind = Number.isInteger(value) ? 'an integer' : 'a number';
        push(`${where}: expected ${kind} ${bound(limit, issue.inclusive, dir)}, found ${describeValue(value)}`);
      }
      return;
    }
    case 'invalid_value': {
      const opts = issue.values.map(quote).join(', ');
      push(`${where}: expected ${issue.values.length === 1 ? opts : `one of ${opts}`}, found ${describeValue(value)}${didYouMean(value, issue.values)}`);
      return;
    }
    case 'invalid_union': {
      const disc = (issue as { discriminator?: string; options?: unknown[] }).discriminator;
      if (disc !== undefined) {
        const options = (issue as { options?: unknown[] }).options ?? [];
        const opts = options.map(quote).join(', ');
        if (!present) {
          push(`${where}: missing required key '${disc}' (expected one of ${opts})`, { missingIn: formatKeyPath(p.slice(0, -1)) });
        } else push(`${where}: expected one of ${opts}, found ${describeValue(value)}${didYouMean(value, options)}`);
        return;
      }
      const candidates = issue.errors.filter((b) => !b.some(rootMismatch));
      if (candidates.length > 0) {
        const best = candidates.reduce((a, b) => (b.length < a.length ? b : a));
        for (const i of best) issueProblems(i, p, src, data, out);
        return;
      }
      if (issue.message && issue.message !== 'Invalid input') {
        push(`${where}: ${issue.message}, found ${describeValue(value)}`);
        return;
      }
      const expected = new Set<string>();
      for (const b of issue.errors)
        for (const i of b)
          if (i.path.length === 0 && i.code === 'invalid_type') expected.add(EXPECTED[i.expected] ?? `a ${i.expected}`);
          else if (i.path.length === 0 && i.code === 'invalid_value') i.values.forEach((v) => expected.add(quote(v)));
      push(`${where}: expected ${[...expected].join(' or ') || 'something else'}, found ${describeValue(value)}`);
      return;
    }
    case 'invalid_format':
      push(`${where}: ${issue.message.startsWith('Invalid') ? `expected a string in ${issue.format} format` : issue.message}, found ${describeValue(value)}`);
      return;
    case 'invalid_key':
      push(`${where}: invalid key${issue.issues[0] ? ` (${issue.issues[0].message})` : ''}`);
      return;
    case 'invalid_element':
      push(`${where}: invalid entry`);
      return;
    case 'not_multiple_of':
      push(`${where}: expected a multiple of ${issue.divisor}, found ${describeValue(value)}`);
      return;
    case 'custom':
    default:
      if ((issue as { params?: { missing?: boolean } }).params?.missing) {
        // Dropped when the same map has an unknown key (the missing one misspelt, most likely).
        const map = issue.message.startsWith('missing required key') ? p.slice(0, -1) : p;
        push(`${where}: ${issue.message}`, { missingIn: formatKeyPath(map) });
      } else push(`${where}: ${issue.message}`);
  }
}

/** Most problems listed in one error after the first. */
const MAX_EXTRA_PROBLEMS = 4;

/** The UserError for a failed parse: the first problem in the file, then a few more. */
export function issuesToUserError(issues: readonly Issue[], src: Locator, data: unknown, base: KeyPath = []): UserError {
  let problems: Problem[] = [];
  for (const issue of issues) issueProblems(issue, base, src, data, problems);
  const withUnknown = new Set(problems.map((pr) => pr.unknownIn).filter((x) => x !== undefined));
  problems = problems.filter((pr) => pr.missingIn === undefined || !withUnknown.has(pr.missingIn));
  problems.sort((a, b) => (a.loc?.line ?? 0) - (b.loc?.line ?? 0) || (a.loc?.col ?? 0) - (b.loc?.col ?? 0));
  const seen = new Set<string>();
  problems = problems.filter((pr) => !seen.has(pr.message) && seen.add(pr.message));
  const [first, ...rest] = problems;
  if (!first) return new UserError('invalid value');
  let msg = first.message;
  const more = rest.slice(0, MAX_EXTRA_PROBLEMS);
  for (const pr of more) msg += `\n  also ${formatLocation(pr.loc)}${pr.message}`;
  if (rest.length > more.length) msg += `\n  and ${rest.length - more.length} more`;
  return new UserError(msg, first.loc);
}

/** Validate a YAML source (or the value at `base` in it) against a schema; throws UserError. */
export function parseWith<S extends z.ZodType>(schema: S, src: YamlSource, base: KeyPath = []): z.output<S> {
  const data = src.data();
  const value = base.length ? getAt(data, base) : data;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw issuesToUserError(r.error.issues, src, data, base);
}
