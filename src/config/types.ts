/**
 * The validated config, as the rest of tilesim sees it. Produced by
 * loadConfig() (src/config/load.ts) from a YAML file; paths are already
 * resolved against the config file's folder. Every node keeps where it came
 * from so later errors (shape mismatches, unknown ops) can name file:line:col.
 */
import type { DeviceSpec } from '../../sim/device.js';

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
  type: 'l1';
  input: string;
  scale: number;
  reduction: 'mean' | 'sum';
  loc: SourceLocation;
}

export interface OptimizerSpec {
  type: 'sgd';
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  loc: SourceLocation;
}

export interface TrainSpec {
  /** A loss built from a tensor, or the name of a scalar tensor in the graph. */
  loss: LossSpec | { type: 'tensor'; name: string; loc: SourceLocation };
  optimizer: OptimizerSpec;
  steps: number;
  batchesPerStep: number;
}

export type AnchorMode = { kind: 'all' } | { kind: 'final' } | { kind: 'sum' } | { kind: 'everyN'; n: number };

export interface RunConfig {
  /** Absolute path of the config file. */
  file: string;
  name: string;
  device: DeviceSpec;
  model: {
    graph: GraphDecl;
    /** Absolute paths of custom-op modules. */
    customOps: string[];
  };
  inputs: Record<string, InputSpec>;
  train?: TrainSpec;
  /**
   * Steps to run: train.steps when training, else 1 (or `--steps`). Set by
   * loadConfig(); optional only so hand-built configs may leave it out.
   */
  steps?: number;
  anchors: Record<string, { mode: AnchorMode; loc: SourceLocation }>;
  /** True when the config gave no anchors: then graph outputs and the loss are anchored, final. */
  defaultAnchors: boolean;
  run: { workers: number | 'auto'; numerics: boolean; seed: number };
  report: { trace: boolean; traceTiles: 'all' | number; html: boolean };
}
