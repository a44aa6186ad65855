/**
 * DeviceProgram: the seam between the host side (src/) and the device side
 * (sim/). Plain data (records, lists and typed-array columns, which
 * sim/copies.ts's programJsonReplacer writes as JSON lists): what lives where in tile memory, the
 * compute sets of vertices, the exchanges, the host streams and the control
 * programs. Workers load it once.
 */
import type { CopyTable } from './copies.js';
import type { TensorIntervals } from './intervals.js';
import type { Replication } from './collectives.js';
import type { DeviceSpec } from './device.js';
import type { VertexTable } from './vertex-table.js';

export type { CopyTable, ExchangeCopy } from './copies.js';
export type { VertexTable } from './vertex-table.js';
export type { TensorIntervals } from './intervals.js';

export type DeviceDType = 'float32' | 'float16' | 'int32' | 'uint8';

export const DTYPE_BYTES: Record<DeviceDType, number> = { float32: 4, float16: 2, int32: 4, uint8: 1 };

/** Why a tensor exists; memory reports group bytes by this. */
export type TensorCategory = 'variable' | 'constant' | 'stream' | 'activation' | 'gradient' | 'temporary' | 'exchange';

/** A contiguous run of a tensor's elements [begin, end) held on one tile at a byte offset (one row of TensorIntervals, as a record). */
export interface TileInterval {
  tile: number;
  begin: number;
  end: number;
  /** Byte offset of element `begin` in the tile's memory. */
  offset: number;
}

export interface DeviceTensor {
  id: number;
  name: string;
  dtype: DeviceDType;
  shape: number[];
  category: TensorCategory;
  /** Name of the IR op that made it, for memory reports. */
  op?: string;
  /**
   * Its tile intervals as columns (sim/intervals.ts): in a compiled program,
   * views of rows of the one IntervalTable allocation wrote, no object per
   * interval. tensorIntervals() makes them from records, intervalList() gives records.
   */
  intervals: TensorIntervals;
  /**
   * Steps of the flattened 'batch' program during which the tensor holds data
   * (src/lower/liveness.ts); absent: always live. Tensors whose lifetimes do
   * not overlap may share tile memory.
   */
  live?: { from: number; to: number };
  /**
   * Its home is a remote buffer in Streaming Memory (PopART's OffChip
   * storage): tile memory holds it only from a remoteLoad to its last use
   * before the next; the host reads and writes the remote buffer.
   */
  remote?: boolean;
  /**
   * Replicated tensor sharding: each replica holds ceil(N/R) elements of the
   * whole tensor named here (replica r its fragment [floor(rN/R),
   * floor((r+1)N/R)), zero-padded). The host's streams and checkpoints move
   * the whole tensor: each replica its fragment in, the fragments gathered out.
   */
  shardOf?: { name: string; shape: number[] };
  /**
   * A sharded weight's whole tensor, all-gathered from its shard (tensor id
   * here, which has shardOf) before each use: on tiles only from the gather to
   * its last use, and never the weight's value between steps (the shard is).
   */
  gatheredFrom?: number;
  /** One value per vertex of its op, every one the same (an update's step counter): a checkpoint of another layout broadcasts it. */
  perVertex?: boolean;
}

/** Whether a tensor's home is elsewhere (a remote buffer, or its shard): then it is on tiles only around its uses, whatever its category. */
export function homeOffTiles(t: { remote?: boolean; gatheredFrom?: unknown }): boolean {
  return t.remote === true || t.gatheredFrom !== undefined;
}

/** A field of a vertex: a contiguous region of one tile's memory. */
export interface Region {
  offset: number;
  count: number;
  dtype: DeviceDType;
}

export type FieldValue = Region | Region[];

export interface Vertex {
  codelet: string;
  tile: number;
  fields: Record<string, FieldValue>;
  /** Scalar parameters (Poplar's vertex state that is not a tensor). */
  params: Record<string, number>;
  /** Vector parameters (shapes, strides, index tables), when a codelet needs them. */
  arrays?: Record<string, number[]>;
}

export interface ComputeSet {
  id: number;
  name: string;
  /** IR op this compute set belongs to (profile attribution). */
  op: string;
  /** Columnar (sim/vertex-table.ts), sorted by tile (finalize() guarantees it; the pool's tile sharding relies on it). */
  vertices: VertexTable;
}

export interface Exchange {
  id: number;
  name: string;
  op: string;
  /** Tile-to-tile copies, columnar (sim/copies.ts). */
  copies: CopyTable;
  /**
   * An outlined call's copies into or out of its function: its on-tile
   * copies are charged as Copy vertices would take (Poplar runs them as
   * on-tile copies), not free as the rearranging copies of other exchanges.
   */
  onTileCost?: boolean;
}

/** A host <-> device stream bound to one tensor. */
export interface HostStream {
  id: number;
  name: string;
  tensor: number;
  direction: 'toDevice' | 'fromDevice';
  /** The stream fills (or reads) the tensor's remote buffer in Streaming Memory, not tile memory. */
  remote?: boolean;
}

export type ProgramStep =
  | { kind: 'execute'; computeSet: number }
  | { kind: 'exchange'; exchange: number }
  | { kind: 'streamCopy'; stream: number; op: string }
  | { kind: 'repeat'; count: number; body: ProgramStep[] }
  | SwitchStep
  | RepeatWhileStep
  | AllReduceStep
  | PipelineStep
  | CallStep
  | ShardStep
  | RemoteStep;

/**
 * PopART's pipeline (src/shard/pipeline.ts): `microBatches` (G) micro-batches
 * through `stages` (P) in G + P - 1 pipeline cycles (fill, main, flush). In
 * cycle c, stage s runs micro-batch c - s when 0 <= c - s < G. Each IPU runs
 * its stages in stage order, the IPUs side by side: the engine charges a cycle
 * the busiest IPU's time, then `copies` (the IpuCopies between stages, one
 * exchange with the inter-IPU sync) end the cycle (docs/architecture.md).
 */
export interface PipelineStep {
  kind: 'pipeline';
  microBatches: number;
  stages: PipelineStage[];
  copies: ProgramStep[];
}

export interface PipelineStage {
  /** Pipeline stage number (its micro-batch lags the cycle by this). */
  stage: number;
  ipu: number;
  /** 'forward', 'backward', or 'forward+backward' (the last forward stage, which also runs the loss and its backward). */
  pass: string;
  /** IR ops in the stage (for reports). */
  ops: number;
  steps: ProgramStep[];
  /** Stash depth (PopART's): micro-batch m's stash and restore use slot m % depth. 0: no stash. */
  stashDepth: number;
  /** Bytes of the stash buffers on the stage's tiles (all slots). */
  stashBytes: number;
  /** Per slot, steps run before `steps` (the backward stage's restores). */
  before?: ProgramStep[][];
  /** Per slot, steps run after `steps` (the forward stage's stashes). */
  after?: ProgramStep[][];
}

/**
 * What each cycle of a pipeline runs: per IPU (lanes in increasing IPU order)
 * the step lists of its active stages in stage order (a stage's restore, its
 * steps, its stash), for G + P - 1 cycles. The engine, reports and liveness share it.
 */
export function pipelineCycles(p: PipelineStep): { lanes: { ipu: number; lists: ProgramStep[][] }[] }[] {
  const P = Math.max(0, ...p.stages.map((s) => s.stage + 1));
  const ipus = [...new Set(p.stages.map((s) => s.ipu))].sort((a, b) => a - b);
  const out: { lanes: { ipu: number; lists: ProgramStep[][] }[] }[] = [];
  for (let c = 0; c < p.microBatches + P - 1; c++) {
    const lanes = ipus.map((ipu) => {
      const lists: ProgramStep[][] = [];
      for (const st of p.stages.filter((x) => x.ipu === ipu).sort((a, b) => a.stage - b.stage)) {
        const m = c - st.stage;
        if (m < 0 || m >= p.microBatches) continue;
        if (st.before) lists.push(st.before[m % st.before.length]);
        lists.push(st.steps);
        if (st.after) lists.push(st.after[m % st.after.length]);
      }
      return { ipu, lists };
    });
    out.push({ lanes });
  }
  return out;
}

/** The step lists directly inside a step (a repeat's body, a switch's branches, a pipeline's stages, stash slots and copies). */
export function innerSteps(s: ProgramStep): ProgramStep[][] {
  switch (s.kind) {
    case 'repeat':
    case 'repeatWhile':
    case 'call':
      return [s.body];
    case 'switch':
      return [s.whenTrue, s.whenFalse];
    case 'pipeline':
      return [...s.stages.flatMap((st) => [...(st.before ?? []), st.steps, ...(st.after ?? [])]), s.copies];
    default:
      return [];
  }
}

/**
 * A call of an outlined function (PopART's CallOp, Poplar's program::Call):
 * `body` is the copies into the function's inputs, the function's steps
 * (shared by every call of it: its compute sets are built once) and the
 * copies out. The engine runs it as a sequence and attributes the function's
 * phases to this call's ops: `ops` renames the function's op names (those of
 * the instance it was built from) to this call's.
 */
export interface CallStep {
  kind: 'call';
  /** The function called (e.g. "fn0"). */
  fn: string;
  /** The call, for profile attribution of its copies (e.g. "fn0/call3"). */
  op: string;
  ops: Record<string, string>;
  body: ProgramStep[];
}

/**
 * Replicated tensor sharding (sim/collectives.ts): `shard` holds ceil(N / R)
 * elements of the N-element `tensor`, replica r's fragment
 * [floor(rN/R), floor((r+1)N/R)) first (the all-reduce's ring fragments).
 *   reduceScatter  tensor summed across the replicas, each replica's fragment into its shard
 *   allGather      every replica's shard fragment into tensor, on every replica
 *   replicaShard   the replica's own fragment of tensor copied into its shard (no exchange)
 * With numerics the host moves the data (EngineOptions.collective).
 */
export type ShardStep = ShardStepFields & ({ kind: 'reduceScatter' } | { kind: 'allGather' } | { kind: 'replicaShard' });

interface ShardStepFields {
  tensor: number;
  shard: number;
  /** IR op for profile attribution. */
  op: string;
}

/** A tensor between tile memory and its remote buffer in Streaming Memory (PopART's RemoteLoad, RemoteStore). */
export type RemoteStep = RemoteStepFields & ({ kind: 'remoteLoad' } | { kind: 'remoteStore' });

interface RemoteStepFields {
  tensor: number;
  /** IR op for profile attribution. */
  op: string;
}

/**
 * A cross-replica all-reduce of a tensor, in place (PopART's
 * ReplicatedAllReduceInplace): the engine charges its ring steps
 * (sim/collectives.ts) and, with numerics, has the host sum the replicas'
 * copies (EngineOptions.allReduce).
 */
export interface AllReduceStep {
  kind: 'allReduce';
  tensor: number;
  /** IR op for profile attribution. */
  op: string;
}

/**
 * Poplar's RepeatWhileTrue: before each pass of `body`, element 0 of the
 * int32 tensor `condition` is read (one sync); the loop ends when it is zero
 * or after `maxCount` passes. Without numerics the condition cannot be read:
 * the engine charges `maxCount` passes (docs/architecture.md).
 */
export interface RepeatWhileStep {
  kind: 'repeatWhile';
  condition: number;
  maxCount: number;
  /** IR op (the Loop) for profile attribution. */
  op: string;
  body: ProgramStep[];
}

/**
 * Poplar's If (a Switch over two programs): `whenTrue` runs when element 0 of
 * the int32 tensor `condition` is nonzero, else `whenFalse`. Entering it costs
 * one sync (every tile must agree on the branch). Without numerics the
 * condition cannot be read: the engine charges the longer branch
 * (docs/architecture.md).
 */
export interface SwitchStep {
  kind: 'switch';
  condition: number;
  /** IR op (the If) for profile attribution. */
  op: string;
  whenTrue: ProgramStep[];
  whenFalse: ProgramStep[];
}

export interface DeviceProgram {
  schemaVersion: 1;
  device: DeviceSpec;
  tensors: DeviceTensor[];
  computeSets: ComputeSet[];
  exchanges: Exchange[];
  streams: HostStream[];
  /** Named control programs, e.g. "weightsFromHost", "step", "weightsToHost". */
  programs: Record<string, ProgramStep[]>;
  /** Bytes allocated on each tile (index = tile). */
  tileBytes: number[];
  /** Replicated (PopART's replicatedGraphCount > 1): `device` is one replica's IPUs, and how the replicas sit in the system. */
  replication?: Replication;
  /** Modules (absolute paths or URLs) whose codelets the vertices use beyond the built-ins. */
  codeletModules: string[];
  /** Lowering notes (chosen plans and why), for reports. */
  notes?: { op: string; kind: string; text: string }[];
  /** Each tile's memory by category (index = tile); tileBytes[t] = memory[t].total. */
  memory?: TileMemoryUse[];
}

/** What one tile's memory holds (src/lower/memory.ts). */
export interface TileMemoryUse {
  /** Bytes of always-live tensors (variables, constants, streams), alignment included. */
  alwaysLive: number;
  /** Peak bytes of the tensors that share memory by liveness (activations, gradients, temporaries, exchange buffers). */
  temporaries: number;
  /** Bytes of code: the distinct codelets on the tile. */
  code: number;
  /** Bytes of vertex state: field pointers and counts, params. */
  vertexState: number;
  total: number;
}
