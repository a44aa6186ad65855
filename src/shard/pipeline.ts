/**
 * Pipelining (PopART's enablePipelining, ipu-architecture.md §7): the forward
 * stages of a sharded model, one per IPU, each with its backward stage on the
 * same IPU, run as a pipeline over the micro-batches of a weight update.
 *
 * - A forward op's stage is its `pipelineStage` (or `__pipeline_stage`), by
 *   default its IPU, as PopART's. Stages are numbered by rank: with F forward
 *   stages, training has P = 2F - 1 pipeline stages: forward 0 .. F-1, the
 *   last one also running the loss and its own backward (PopART merges them),
 *   then backward stages F .. 2F-2, stage 2F-2-k being forward stage k's
 *   backward on the same IPU.
 * - Ops the session adds (the loss, grad ops, gradient sums, accumulators) run
 *   in the backward stage of their IPU; the outer fragment (the update) runs
 *   once after the pipeline.
 * - An IpuCopy runs at the end of its source's stage's pipeline cycle, so the
 *   next stage reads it in the next cycle.
 * - Stash: a forward stage k's tensors (its outputs, the stage inputs copied
 *   or streamed to it) that its backward stage reads are stashed per
 *   micro-batch, PopART's depth 2(F - k) - 1: in a cycle a forward stage runs
 *   before its backward stage, so the micro-batches between them in flight
 *   are that many. The backward stage reads each from a RestoreOp's output
 *   (PopART's out-of-place RestoreOp): restoring in place would overwrite a
 *   tensor the cycle's IpuCopy has yet to send.
 * - Recompute (train.recompute: pipeline, PopART's RecomputationType::Pipeline):
 *   only the stage's inputs are stashed; the forward ops whose outputs the
 *   backward stage reads are cloned into it, reading the restored inputs, so
 *   the backward recomputes its activations instead of keeping them.
 *
 * PopART's checks, as UserErrors naming the op or option: forward stages on
 * increasing IPUs, one IPU per stage, copies only between neighbouring
 * stages, and accumulationFactor >= P (config checks in checkPipelineConfig).
 */
import type { RunConfig } from '../config/types.js';
import { UserError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import { Op, type OpSettings } from '../ir/op.js';
import { fmtOpid, GRAPHCORE_DOMAIN } from '../ir/opid.js';
import { isIpuCopy } from './ipu-copy.js';
import { virtualGraphMode } from './place.js';
import { checkAttributes, type OpRegistry } from '../ir/registry.js';

export interface PipelinePlan {
  /** The IPU of each forward stage, in stage order. */
  forwardIpus: number[];
  /** Pipeline stages: 2F - 1 for F forward stages. */
  stages: number;
  /** Each op's pipeline stage (an IpuCopy: its source's stage); outer-fragment ops have none. */
  stageOf: Map<Op, number>;
  /** Per forward stage (the last has none): each stashed IR tensor and the restored tensor its backward stage reads. */
  stashed: { tensor: string; restored: string }[][];
}

/**
 * PopART's RestoreOp: the backward stage's copy of a stashed tensor, filled
 * from the stash slot of the micro-batch before the stage runs (the lowering
 * makes its output and the restore exchange; the op itself computes nothing).
 */
export class RestoreOp extends Op {
  constructor(settings: OpSettings) {
    super({ domain: GRAPHCORE_DOMAIN, type: 'Restore', version: 1 }, settings);
  }
  setup(): void {
    this.setOutInfo(0, this.inInfo(0));
  }
}

export function isRestore(op: Op): boolean {
  return op instanceof RestoreOp;
}

export function isPipelined(config: RunConfig): boolean {
  return config.model.pipelining === true;
}

/** The backward stage on the IPU of forward stage s (the last forward stage is its own). */
export function backwardStage(s: number, forwardStages: number): number {
  return 2 * forwardStages - 2 - s;
}

/** PopART's stash depth of forward stage s of F (the last stage stashes nothing). */
export function stashDepth(s: number, forwardStages: number): number {
  return 2 * (forwardStages - s) - 1;
}

/** The config checks PopART makes before it builds a pipeline. */
export function checkPipelineConfig(config: RunConfig): void {
  if (!isPipelined(config)) return;
  if (!config.train) throw new UserError('model.pipelining: pipelining an inference is not supported yet; pipeline a training run (give train:) or drop model.pipelining');
  if (virtualGraphMode(config) === 'off') {
    throw new UserError('model.pipelining needs the model sharded over IPUs: give each node an ipu (or the ONNX attribute __ipu_number), or set model.virtualGraphMode: auto');
  }
}

function where(op: Op): string {
  return `op '${op.name}' (${fmtOpid(op.opid)})`;
}

/** Before the loss and autodiff: every forward op gets its stage (default: its IPU), marking it forward. */
export function markForwardStages(graph: Graph): void {
  for (const op of graph.ops) op.settings.pipelineStage ??= op.settings.ipu ?? 0;
}

/** After the IpuCopies are in: each op's stage, PopART's checks, and what each forward stage stashes. */
/** Ops whose values depend on a draw: recomputed, they would draw again. */
const RANDOM_OPS = new Set(['Dropout', 'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli', 'Multinomial']);

export function planPipeline(graph: Graph, accumulationFactor: number, recompute?: { registry: OpRegistry }): PipelinePlan {
  const schedule = graph.schedule();
  // Forward stages: one IPU each, on increasing IPUs.
  const stageIpu = new Map<number, { ipu: number; op: Op }>();
  for (const op of schedule) {
    const s = op.settings.pipelineStage;
    if (s === undefined || isIpuCopy(op)) continue;
    const ipu = op.settings.ipu ?? 0;
    const seen = stageIpu.get(s);
    if (!seen) stageIpu.set(s, { ipu, op });
    else if (seen.ipu !== ipu) {
      throw new UserError(
        `${where(op)} is in pipeline stage ${s} on IPU ${ipu}, but ${where(seen.op)} of the same stage is on IPU ${seen.ipu}: a pipeline stage runs on one IPU; give both the same ipu, or different pipelineStage`,
        op.settings.loc,
      );
    }
  }
  const order = [...stageIpu.keys()].sort((a, b) => a - b);
  for (let i = 1; i < order.length; i++) {
    const a = stageIpu.get(order[i - 1])!;
    const b = stageIpu.get(order[i])!;
    if (b.ipu <= a.ipu) {
      throw new UserError(
        `${where(b.op)}: forward pipeline stages must run on increasing IPUs, but stage ${order[i]} is on IPU ${b.ipu} after stage ${order[i - 1]} on IPU ${a.ipu} (${where(a.op)}); renumber the stages or move the ops`,
        b.op.settings.loc,
      );
    }
  }
  const F = order.length;
  const P = 2 * F - 1;
  const rank = new Map(order.map((s, r) => [s, r]));
  const forwardIpus = order.map((s) => stageIpu.get(s)!.ipu);
  const ipuStage = new Map(forwardIpus.map((ipu, r) => [ipu, r]));
  if (F < 2) throw new UserError(`model.pipelining: the model has ${F} pipeline stage; a pipeline needs at least 2 (place the ops on two or more IPUs, or give pipelineStage)`);
  if (accumulationFactor < P) {
    throw new UserError(
      `train.accumulationFactor: ${accumulationFactor} is less than the ${P} pipeline stages (${F} forward, ${F - 1} backward): PopART's pipeline needs at least one micro-batch per stage; give train.accumulationFactor: ${P} or more`,
    );
  }

  const stageOf = new Map<Op, number>();
  for (const op of schedule) {
    if (isIpuCopy(op) || op.settings.executionContext === 'outerFragment') continue;
    if (op.settings.pipelineStage !== undefined) {
      stageOf.set(op, rank.get(op.settings.pipelineStage)!);
      continue;
    }
    const ipu = op.settings.ipu ?? 0;
    const r = ipuStage.get(ipu);
    if (r === undefined) throw new UserError(`${where(op)} runs on IPU ${ipu}, which has no forward pipeline stage; place it on one of IPUs ${forwardIpus.join(', ')}`, op.settings.loc);
    stageOf.set(op, backwardStage(r, F));
  }
  // A tensor's stage: its producer's; a source tensor's: its first reader's.
  const tensorStage = (id: string): number | undefined => {
    const t = graph.tensor(id);
    if (t.producer) return stageOf.get(t.producer);
    let s: number | undefined;
    for (const c of t.consumers) {
      const cs = stageOf.get(c.op);
      if (cs !== undefined && (s === undefined || cs < s)) s = cs;
    }
    return s;
  };
  // The stages that may read what stage s makes on the next IPU: the next stage, and that IPU's backward stage (stashed).
  const readersOfNext = (s: number): number[] => (s + 1 < F - 1 ? [s + 1, backwardStage(s + 1, F)] : [s + 1]);
  for (const op of schedule) {
    if (!isIpuCopy(op)) continue;
    const src = graph.tensor(op.inId(0));
    if (!src.producer && src.kind !== 'stream') {
      throw new UserError(
        `${where(op)}: ${src.kind} '${src.id}' is read on IPUs ${op.sourceIpu} and ${op.settings.ipu}: with pipelining a ${src.kind} is read by one stage; give its readers one IPU`,
        op.settings.loc,
      );
    }
    const s = tensorStage(src.id);
    if (s === undefined) continue;
    stageOf.set(op, s);
    for (const c of graph.tensor(op.outId(0)).consumers) {
      const cs = stageOf.get(c.op);
      if (cs === undefined || readersOfNext(s).includes(cs)) continue;
      throw new UserError(
        `${where(c.op)} in pipeline stage ${cs} (IPU ${c.op.settings.ipu}) reads '${src.id}' from stage ${s} (IPU ${op.sourceIpu}): with pipelining, IpuCopies go only between neighbouring stages; place the op in stage ${s + 1}, or pass the tensor through the stages between`,
        c.op.settings.loc,
      );
    }
  }

  if (recompute) recomputeForward(graph, schedule, stageOf, F, recompute.registry);

  // Stash: what forward stage k makes or receives that its backward stage reads, which then reads it restored.
  const stashed: PipelinePlan['stashed'] = Array.from({ length: F }, () => []);
  for (const t of [...graph.allTensors()]) {
    if (t.kind === 'variable' || t.kind === 'constant' || t.isGradient) continue;
    const made = t.producer ? (isIpuCopy(t.producer) ? (stageOf.get(t.producer) ?? -1) + 1 : stageOf.get(t.producer)) : t.kind === 'stream' ? tensorStage(t.id) : undefined;
    if (made === undefined || made >= F - 1) continue;
    const back = backwardStage(made, F);
    const readers = t.consumers.filter((c) => stageOf.get(c.op) === back);
    if (readers.length === 0) continue;
    const restored = graph.uniqueTensorId(`${t.id}__restored`);
    const restore = new RestoreOp({ name: `Restore(${t.id})`, ipu: forwardIpus[made], loc: readers[0].op.settings.loc });
    graph.addOp(restore, [t.id], [restored]);
    stageOf.set(restore, back);
    for (const c of readers) graph.rewire(c.op, c.index, restored);
    stashed[made].push({ tensor: t.id, restored });
  }
  return { forwardIpus, stages: P, stageOf, stashed };
}

/**
 * Recompute: for each forward stage k but the last, clone into its backward
 * stage the stage-k forward ops the backward reads outputs of (and the ones
 * they need), in schedule order, and rewire the backward's reads to the
 * clones' outputs. The stage's inputs (copied or streamed) are then all the
 * backward reads of stage k, and the stash takes only them.
 */
function recomputeForward(graph: Graph, schedule: readonly Op[], stageOf: Map<Op, number>, F: number, registry: OpRegistry): void {
  for (let k = 0; k < F - 1; k++) {
    const back = backwardStage(k, F);
    const inStage = (op: Op | undefined): op is Op => op !== undefined && !isIpuCopy(op) && op.settings.pipelineStage !== undefined && stageOf.get(op) === k;
    // The stage-k ops to clone: producers of what the backward reads, and their stage-k ancestors.
    const need = new Set<Op>();
    const visit = (op: Op): void => {
      if (need.has(op)) return;
      need.add(op);
      for (const id of op.inputs) {
        const p = id === '' ? undefined : graph.tensor(id).producer;
        if (inStage(p)) visit(p);
      }
    };
    for (const op of schedule) {
      if (stageOf.get(op) !== back) continue;
      for (const id of op.inputs) {
        const p = id === '' ? undefined : graph.tensor(id).producer;
        if (inStage(p)) visit(p);
      }
    }
    const cloned = new Map<string, string>();
    for (const op of schedule) {
      if (!need.has(op)) continue;
      if (RANDOM_OPS.has(op.opid.type)) {
        throw new UserError(
          `${where(op)}: train.recompute: pipeline would run this random op again in the backward stage, drawing other values; give train.recompute: none`,
          op.settings.loc,
        );
      }
      const def = registry.exact(op.opid);
      if (!def?.create) throw new UserError(`${where(op)}: train.recompute: pipeline cannot recompute this op (it has no definition to clone); give train.recompute: none`, op.settings.loc);
      const { pipelineStage: _stage, ...settings } = op.settings;
      void _stage;
      const clone = def.create({ attributes: checkAttributes(def, op.attributes(), op.name, op.settings.loc), settings: { ...settings, name: `${op.name}/recompute` } });
      const outs = op.outputs.map((id) => {
        const c = graph.uniqueTensorId(`${id}__recomputed`);
        cloned.set(id, c);
        return c;
      });
      graph.addOp(clone, op.inputs.map((id) => cloned.get(id) ?? id), outs);
      stageOf.set(clone, back);
    }
    for (const op of schedule) {
      if (stageOf.get(op) !== back) continue;
      op.inputs.forEach((id, index) => {
        const c = cloned.get(id);
        if (c !== undefined) graph.rewire(op, index, c);
      });
    }
  }
}
