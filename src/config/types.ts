/**
 * The validated config, as the rest of tilesim sees it. Produced by
 * loadConfig() (src/config/load.ts) from a YAML file; paths are already
 * resolved against the config file's folder. Every node keeps where it came
 * from so later errors (shape mismatches, unknown ops) can name file:line:col.
 */
import type { DeviceSpec } from '../../sim/device.js';
import type { OnnxForm } from '../ir/op.js';

export interface SourceLocation {
  file: string;
  line: number;
  col: number;
}

export type DTypeName = 'float32' | 'float16' | 'int32';

export type InitSpec =
  | { kind: 'normal'; mean: number; std: number; seed: number }
  | { kind: 'uniform'; low: number; high: number; seed: number }
  | { kind: 'constant'; value: number }
  | { kind: 'value'; value: unknown } // nested arrays of numbers
  | { kind: 'npy'; path: string }
  /** Host data already in memory (ONNX initializers), row-major. */
  | { kind: 'data'; data: Float32Array | Int32Array };

export interface GraphTensorDecl {
  name: string;
  shape: number[];
  dtype: DTypeName;
  loc: SourceLocation;
}

export interface InitializerDecl extends GraphTensorDecl {
  init: InitSpec;
  /** Initializers are trainable variables unless `trainable: false` (then constants). */
  trainable: boolean;
}

export type AttributeValue = number | string | number[] | string[];

export interface NodeDecl {
  op: string;
  domain: string; // "" = ai.onnx
  version?: number;
  name: string; // given or `${op}_${index}`
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
  loc: SourceLocation;
  /** The IPU (virtual graph) the op runs on: `ipu:` in the config, or PopART's ONNX attribute `__ipu_number`. */
  ipu?: number;
  /** With model.pipelining: the op's forward pipeline stage (`pipelineStage:` in the config, or PopART's ONNX attribute `__pipeline_stage`); default its IPU. */
  pipelineStage?: number;
  /** Set by the ONNX importer (src/onnx): the node's schema version and why it could not be upgraded, if so. */
  onnx?: OnnxNodeOrigin;
  /** Set by a composite on one of its parts: how ONNX export writes that part (Op.onnxForm), e.g. as the whole composite. */
  onnxForm?: OnnxForm;
  /** Graph attributes (If's then_branch and else_branch, Loop's body), from an ONNX model. */
  subgraphs?: Record<string, SubgraphDecl>;
}

/** A graph attribute: its inputs (names only: their infos come from the op), nodes and outputs. Outer tensors are read by name. */
export interface SubgraphDecl {
  inputs: string[];
  nodes: NodeDecl[];
  outputs: string[];
}

/** Where an imported ONNX node came from. */
export interface OnnxNodeOrigin {
  /** The model file, as messages name it. */
  file: string;
  /** The model's opset for the node's domain. */
  opset: number;
  /** The version of the op's ONNX schema the node follows (after any upgrade), when tilesim knows the op's history. */
  schemaVersion?: number;
  /** Why the node could not be upgraded to its opset-18 form. */
  upgradeRefused?: string;
}

export interface GraphDecl {
  inputs: GraphTensorDecl[];
  initializers: InitializerDecl[];
  nodes: NodeDecl[];
  outputs: string[];
  /** ONNX opset for the default domain (default 18). */
  opset: number;
}

export type InputSpec =
  | { kind: 'random'; distribution: 'uniform'; low: number; high: number; seed: number; loc: SourceLocation }
  | { kind: 'random'; distribution: 'normal'; mean: number; std: number; seed: number; loc: SourceLocation }
  | { kind: 'random'; distribution: 'integers'; low: number; high: number; seed: number; loc: SourceLocation }
  | { kind: 'npy'; path: string; loc: SourceLocation }
  | { kind: 'value'; value: unknown; loc: SourceLocation };

export interface LossSpec {
  type: 'l1' | 'nll' | 'softmaxCrossEntropy' | 'mse';
  input: string;
  /** Class labels (int32): nll and softmaxCrossEntropy. */
  labels?: string;
  /** The tensor the input is compared with: mse. */
  target?: string;
  /** Class weights [C]: nll and softmaxCrossEntropy. */
  weights?: string;
  scale: number;
  reduction: 'mean' | 'sum';
  /** Label whose samples are ignored: nll and softmaxCrossEntropy. */
  ignoreIndex?: number;
  /** nll: the input holds log-probabilities (PopART's inputIsLogProbability). */
  inputIsLogProbability?: boolean;
  loc: SourceLocation;
}

/** torch.optim.SGD. */
export interface SgdSpec {
  type: 'sgd';
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  loc: SourceLocation;
}

/** torch.optim.Adam (weightDecay added to the gradient) or torch.optim.AdamW (decoupled weight decay). */
export interface AdamSpec {
  type: 'adam' | 'adamw';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  loc: SourceLocation;
}

export type OptimizerSpec = SgdSpec | AdamSpec;

/** PopART's TensorLocationSettings (docs/config.md): where a kind of tensor lives. */
export interface TensorLocationSpec {
  storage: 'onChip' | 'offChip';
  replicatedTensorSharding: boolean;
  minElementsForOffChip: number;
  minElementsForReplicatedTensorSharding: number;
  loc?: SourceLocation;
}

export interface TrainSpec {
  /** A loss built from a tensor, or the name of a scalar tensor in the graph. */
  loss: LossSpec | { type: 'tensor'; name: string; loc: SourceLocation };
  optimizer: OptimizerSpec;
  steps: number;
  batchesPerStep: number;
  /**
   * PopART's accumulationFactor: micro-batches per weight update; each one's
   * gradient is added into an accumulator, the update runs once after them
   * (src/train/accumulate.ts). Optional only so hand-built configs may leave it out (default 1).
   */
  accumulationFactor?: number;
  /** PopART's accumulationAndReplicationReductionType (default mean): docs/config.md. */
  gradientReduction?: 'mean' | 'sum';
  /** PopART's recomputationType with pipelining (default none): `pipeline` stashes only stage inputs and recomputes (src/shard/pipeline.ts). */
  recompute?: 'none' | 'pipeline';
  /**
   * Loss scaling (PopART): the loss gradient is seeded with this instead of 1,
   * and the optimizers divide the gradients by it before using them.
   * Optional only so hand-built configs may leave it out (default 1).
   */
  lossScaling?: number;
  /** Write the trained model as model.onnx in the run folder. */
  saveModel?: boolean;
  /** PopART's optimizerStateTensorLocationSettings (absent: on chip, not sharded). */
  optimizerStateLocation?: TensorLocationSpec;
  /** PopART's accumulatorTensorLocationSettings. */
  accumulatorLocation?: TensorLocationSpec;
  /** PopART's weightTensorLocationSettings. */
  weightLocation?: TensorLocationSpec;
  /** Write a checkpoint every N steps (docs/config.md, train.checkpointEvery). */
  checkpointEvery?: number;
}

export type AnchorMode = { kind: 'all' } | { kind: 'final' } | { kind: 'sum' } | { kind: 'everyN'; n: number };

/** PopART's SessionOptions.virtualGraphMode (src/shard/place.ts). */
export type VirtualGraphMode = 'off' | 'manual' | 'auto';

export interface RunConfig {
  /** Absolute path of the config file. */
  file: string;
  name: string;
  device: DeviceSpec;
  model: {
    graph: GraphDecl;
    /** Absolute path of the ONNX file the graph was imported from (model.onnx). */
    onnx?: string;
    /** Absolute paths of custom-op modules. */
    customOps: string[];
    /** PopART's virtualGraphMode: off (one program over every tile), manual (`ipu` per node) or auto (split by weight bytes). Default: manual when a node names an IPU, else off. */
    virtualGraphMode?: VirtualGraphMode;
    /** PopART's enablePipelining (model.pipelining): the stages run as a pipeline over the micro-batches (src/shard/pipeline.ts). */
    pipelining?: boolean;
  };
  inputs: Record<string, InputSpec>;
  train?: TrainSpec;
  /** PopART's replicatedGraphCount (default 1): `device` is the whole system, each replica runs on device.ipus / replicas IPUs. */
  replicas?: number;
  /** The gradient all-reduce's ring method (sim/collectives.ts; default auto). */
  collectiveMethod?: 'auto' | 'clockwise' | 'anticlockwise' | 'bidirectional' | 'meetInMiddle';
  /**
   * Steps to run: train.steps when training, else 1 (or `--steps`). Set by
   * loadConfig(); optional only so hand-built configs may leave it out.
   */
  steps?: number;
  anchors: Record<string, { mode: AnchorMode; loc: SourceLocation }>;
  /** True when the config gave no anchors: then graph outputs and the loss are anchored, final. */
  defaultAnchors: boolean;
  /** checkFinite: set by loadConfig (true when training unless the config says); left out, the session decides the same way. */
  run: { workers: number | 'auto'; numerics: boolean; seed: number; checkFinite?: boolean; checkMemory?: boolean; vertexTimeoutSeconds?: number };
  report: { trace: boolean; traceTiles: 'all' | 'auto' | number; html: boolean };
  /** Compile options; left out (hand-built configs), outlining is off. */
  compile?: { outlining: boolean; outlineMinOps: number };
}
