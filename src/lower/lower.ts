/**
 * The lowering pass, top to bottom: streamed inputs, variables and constants
 * get device tensors mapped linearly and their host streams; each op, in
 * schedule order, is grown by its definition's lowering; anchors are streamed
 * back to the host after each batch. Control programs:
 *   weightsFromHost  variables and constants to the device (once)
 *   batch            inputs in, the ops, anchors out (once per batch); with gradient
 *                    accumulation the inputs, ops and anchors repeat once per micro-batch
 *                    (the accumulation loop), then the outer fragment's ops (the optimizer
 *                    update, the accumulator reset) run once
 *   weightsToHost    variables back to the host
 * Pipelined (src/shard/pipeline.ts), the accumulation loop is a pipeline
 * step instead (src/lower/pipeline.ts): each op's steps go to its stage.
 */
import type { PlanOverrides } from './plan-overrides.js';
import type { CodeletRegistry } from '../../sim/codelet.js';
import type { DeviceSpec } from '../../sim/device.js';
import type { DeviceDType, DeviceProgram, ProgramStep } from '../../sim/program.js';
import { RunError, UserError } from '../errors.js';
import type { Graph } from '../ir/graph.js';
import { isGradOp, type Op } from '../ir/op.js';
import { fmtOpid } from '../ir/opid.js';
import type { OpRegistry } from '../ir/registry.js';
import { LowerContext } from './context.js';
import { DeviceGraph, type BuildTensor, type TileRange } from './devicegraph.js';
import { checkHostHeap } from '../util/host-heap.js';
import { isIpuCopy } from '../shard/ipu-copy.js';
import { IpuCopies } from './ipu-copies.js';
import { isRestore, type PipelinePlan } from '../shard/pipeline.js';
import { pipelineStep } from './pipeline.js';
import { findRepeats, type OutlineGroup } from './outline.js';
import { callFunction, functionSchedule, groupSlots, instanceInputs, lowerFunction, type LoweredFunction } from './functions.js';

export interface LowerRequest {
  graph: Graph;
  schedule: Op[];
  registry: OpRegistry;
  codelets: CodeletRegistry;
  device: DeviceSpec;
  /** IR tensors streamed to the host after every batch. */
  anchors: string[];
  codeletModules: string[];
  /** Progress: called as each pass of DeviceGraph.finalize starts. */
  onPass?: (pass: string) => void;
  /** Progress: called after each op is lowered. */
  onOp?: (done: number, total: number) => void;
  /** Splits forced on the planners (tests); the planners choose where these say nothing. */
  plans?: PlanOverrides;
  /**
   * Sharded (src/shard/place.ts): every op has an ipu and runs on that IPU's
   * tiles alone, its tensors too; IpuCopy ops move tensors between IPUs.
   * Otherwise one program spans every tile of the device.
   */
  sharded?: boolean;
  /** Micro-batches per batch (train.accumulationFactor): > 1 wraps all but the outer fragment in a repeat. */
  accumulationFactor?: number;
  /** Pipelined: each op's stage and the stashes; the micro-batches run as a pipeline step. */
  pipeline?: PipelinePlan;
  /** Outlining (compile.outlining): repeated sequences of at least minOps ops lowered once and called (src/lower/functions.ts). Not when sharded. */
  outlining?: { minOps: number };
}

export interface Lowered {
  program: DeviceProgram;
  /** IR tensor -> device tensor id. */
  tensorOf: Map<string, number>;
  /** Stream id -> IR tensor, for the host side of every stream. */
  streamTensor: Map<number, string>;
}

export function lowerGraph(req: LowerRequest): Lowered {
  // IpuCopies are lowered in the main program: one feeding or fed by a branch or loop body would run outside it.
  const cf = req.sharded ? [...req.graph.regions.values()][0]?.owner : undefined;
  if (cf) throw new UserError(`op '${cf.name}' (${fmtOpid(cf.opid)}): sharding a model with If or Loop over several IPUs is not supported; place the whole model on one IPU`, cf.settings.loc);
  const dg = new DeviceGraph(req.device);
  const tensors = new Map<string, BuildTensor>();
  const streamTensor = new Map<number, string>();
  const batchProgram = dg.program('batch');
  // The accumulation loop's body (everything, without accumulation) and the outer fragment after it.
  const batch: ProgramStep[] = [];
  const outer: ProgramStep[] = [];
  const fromHost = dg.program('weightsFromHost');
  const toHost = dg.program('weightsToHost');
  // Pipelined: each stage's steps (the streams it reads, its ops, its anchors).
  const plan = req.pipeline;
  const stageSteps: ProgramStep[][] = plan ? Array.from({ length: plan.stages }, () => []) : [];
  const stageOfTensor = (id: string): number => {
    const t = req.graph.tensor(id);
    const s = t.producer && !isIpuCopy(t.producer) ? plan!.stageOf.get(t.producer) : undefined;
    if (s !== undefined) return s;
    let first = Infinity;
    for (const c of t.consumers) if (!isIpuCopy(c.op)) first = Math.min(first, plan!.stageOf.get(c.op) ?? Infinity);
    return first === Infinity ? plan!.forwardIpus.length - 1 : first;
  };
  const stepsOf = (op: Op): ProgramStep[] => (op.settings.executionContext === 'outerFragment' ? outer : plan ? stageSteps[plan.stageOf.get(op)!] : batch);

  const consumers = consumersInSchedule(req.schedule);
  const groups = req.outlining && !req.sharded ? findRepeats(req.schedule, req.graph, req.outlining) : [];
  if (req.outlining && req.sharded) dg.notes.push({ op: req.schedule[0]?.name ?? 'graph', kind: 'outlining', text: 'outlining is skipped: the model is sharded over IPUs (not supported yet)' });
  // A later instance's input that nothing produces (its layer's weight) is mapped like the first
  // instance's: its call then copies it into the function on tile. Mapped after the first's.
  const followers = new Map<string, string>();
  for (const g of groups) {
    const first = instanceInputs(req.schedule, g.starts[0], g.length);
    for (const s of g.starts.slice(1)) instanceInputs(req.schedule, s, g.length).forEach((id, e) => id !== first[e] && followers.set(id, first[e]));
  }
  const sources = req.graph.allTensors().filter((t) => !t.producer);
  for (const t of [...sources.filter((t) => !followers.has(t.id)), ...sources.filter((t) => followers.has(t.id))]) {
    const category = t.kind === 'stream' ? 'stream' : t.kind === 'variable' ? 'variable' : 'constant';
    const readers = consumers.get(t.id) ?? [];
    // A gradient accumulator lies where its weight does: the update reads both on the same tiles.
    const leader = followers.has(t.id) ? tensors.get(followers.get(t.id)!) : undefined;
    const accumulated = t.accumulatorOf !== undefined ? tensors.get(t.accumulatorOf) : undefined;
    // A sharded accumulator lies with its weight's shard, if that is sharded too (the update reads both there).
    const like = accumulated ? (t.shards ? accumulated.gatheredFrom : accumulated) : leader && leader.size === t.info.shape.reduce((a, b) => a * b, 1) && leader.dtype === t.info.dtype ? leader : undefined;
    const add = (): BuildTensor => {
      const elements = t.info.shape.reduce((a, b) => a * b, 1);
      // Replicated tensor sharding: an accumulator is its shard; a weight lives as its shard, and its
      // whole tensor (what its readers see) is all-gathered from it before each use (withRemote).
      const shard = t.shards ? dg.addTensor(t.accumulatorOf !== undefined ? t.id : `${t.id}/shard`, t.info.dtype as DeviceDType, [Math.ceil(elements / t.shards)], category) : undefined;
      if (shard) {
        shard.shardOf = { name: t.id, shape: [...t.info.shape] };
        if (like) dg.mapLike(shard, like);
        else dg.mapLinearly(shard);
        // OffChip too: the shard is what lives in Streaming Memory, each replica's its own.
        if (t.offChip) shard.remote = true;
        if (t.accumulatorOf !== undefined) return shard;
      }
      const d = dg.addTensor(t.id, t.info.dtype as DeviceDType, t.info.shape, category);
      // OffChip (a weight or accumulator in Streaming Memory): its streams fill and read the remote buffer.
      if (t.offChip && !shard) d.remote = true;
      if (shard) d.gatheredFrom = shard;
      if (like && !shard) dg.mapLike(d, like);
      else mapSource(dg, d, readers.filter((r) => !isIpuCopy(r.op)), req);
      return d;
    };
    // Sharded: on the IPU of its readers (its copies' source IPU), made there so onIpu moves it.
    const d = req.sharded && readers.length > 0 ? dg.onIpu(readIpu(readers[0].op), [like], add) : add();
    tensors.set(t.id, d);
    // A sharded weight's streams move its shard: the host gives each replica its fragment (src/session.ts).
    const streamed = d.gatheredFrom ?? d;
    if (t.kind === 'stream') {
      const s = dg.addStream(`${t.id}<-host`, d, 'toDevice');
      streamTensor.set(s, t.id);
      (plan ? stageSteps[stageOfTensor(t.id)] : batch).push({ kind: 'streamCopy', stream: s, op: 'host' });
    } else {
      const s = dg.addStream(`${t.id}<-host`, streamed, 'toDevice');
      streamTensor.set(s, t.id);
      fromHost.push({ kind: 'streamCopy', stream: s, op: 'host' });
      if (t.kind === 'variable') {
        const back = dg.addStream(`${t.id}->host`, streamed, 'fromDevice');
        streamTensor.set(back, t.id);
        toHost.push({ kind: 'streamCopy', stream: back, op: 'host' });
      }
    }
  }

  const category = (id: string) => (req.graph.tensor(id).isGradient ? 'gradient' : 'activation') as 'gradient' | 'activation';
  // For in-place decisions: where each IR tensor is last read, and what the host reads after the batch.
  const lastRead = new Map<string, number>();
  req.schedule.forEach((op, k) => op.inputs.forEach((id) => lastRead.set(id, k)));
  const anchors = new Set(req.anchors);
  const regionSteps = new Map<Op, ProgramStep[][]>();
  const ipuCopies = new IpuCopies(dg);
  // Outlining: where each instance starts, and the functions lowered so far.
  const instanceAt = new Map<number, { group: OutlineGroup; g: number; k: number }>();
  groups.forEach((group, g) => group.starts.forEach((start, k) => instanceAt.set(start, { group, g, k })));
  const functions: LoweredFunction[] = [];
  for (let position = 0; position < req.schedule.length; position++) {
    const op = req.schedule[position];
    const instance = instanceAt.get(position);
    if (instance) {
      const { group, g, k } = instance;
      if (k === 0) {
        const slots = groupSlots(req.schedule, group, lastRead, anchors);
        const fs = functionSchedule(req.schedule, group, lastRead, anchors);
        functions[g] = lowerFunction(dg, `fn${g}`, req.schedule, group, slots, tensors, (fop, at, fnTensors) => {
          const ctx = new LowerContext(dg, fop, fnTensors, category, { position: at, lastRead: fs.lastRead, anchors: fs.anchors }, req.plans);
          lowerWith(fop, ctx);
          return ctx.finish();
        });
        dg.notes.push({ op: op.name, kind: 'outlining', text: `${group.length} ops from here lowered once as fn${g}, called ${group.starts.length} times` });
      }
      (op.settings.executionContext === 'outerFragment' ? outer : batch).push(callFunction(dg, functions[g], k, req.schedule, req.graph, tensors, category));
      position += group.length - 1;
      req.onOp?.(position + 1, req.schedule.length);
      continue;
    }
    if (isIpuCopy(op)) {
      // A weight copied to another IPU from Streaming Memory or its shard: loaded, and gathered, before the copies'
      // exchange. (Pipelined, the copies end the pipeline cycle: sharded weights are refused there, offChip ones not yet handled.)
      const src = tensors.get(op.inId(0));
      const home = src?.gatheredFrom ?? src;
      if (!plan && home?.remote) batch.push({ kind: 'remoteLoad', tensor: home.id, op: op.name });
      if (!plan && src?.gatheredFrom) batch.push({ kind: 'allGather', tensor: src.id, shard: src.gatheredFrom.id, op: op.name });
      ipuCopies.add(op, tensors, category(op.outId(0)));
      req.onOp?.(position + 1, req.schedule.length);
      continue;
    }
    // A stashed tensor's backward copy: laid out as it is, filled by the restore exchange (src/lower/pipeline.ts).
    if (isRestore(op)) {
      const src = tensors.get(op.inId(0))!;
      const d = dg.addTensor(op.outId(0), src.dtype, op.outInfo(0).shape, 'activation', op.name);
      dg.mapLike(d, src);
      tensors.set(op.outId(0), d);
      continue;
    }
    // Pipelined, every copy goes in the one exchange that ends a pipeline cycle.
    if (!plan) batch.push(...ipuCopies.close());
    const ctx = new LowerContext(dg, op, tensors, category, { position, lastRead, anchors }, req.plans);
    ctx.regionSteps = regionSteps.get(op) ?? [];
    const lowerOp = (): void => {
      lowerWith(op, ctx);
      // An op in a branch or loop body: its steps go to its owner (If, Loop), which wraps them (src/ops/control-flow.ts).
      const region = req.graph.regions.get(op);
      if (region) {
        const lists = regionSteps.get(region.owner) ?? [];
        regionSteps.set(region.owner, lists);
        (lists[region.branch] ??= []).push(...withRemote(op, ctx, tensors));
      } else stepsOf(op).push(...withRemote(op, ctx, tensors));
    };
    if (req.sharded) dg.onIpu(op.settings.ipu ?? 0, opTensors(op, tensors), lowerOp);
    else lowerOp();
    req.onOp?.(position + 1, req.schedule.length);
  }
  const copies = ipuCopies.close();
  if (!plan) batch.push(...copies);

  /** Lower `op` by its definition into `ctx`, its mistakes as UserErrors naming it. */
  function lowerWith(op: Op, ctx: LowerContext): void {
    const def = req.registry.exact(op.opid);
    if (!def?.lower) throw new UserError(`op '${op.name}' (${fmtOpid(op.opid)}) has no lowering: register an OpDefinition with this identifier and a lower()`, op.settings.loc);
    checkHostHeap(`lowering op '${op.name}'`);
    try {
      def.lower(op, ctx);
    } catch (e) {
      if (e instanceof UserError || e instanceof RunError) throw e;
      throw new UserError(`lowering op '${op.name}' (${fmtOpid(op.opid)}) failed: ${(e as Error).message}`, op.settings.loc);
    }
    for (let i = 0; i < op.outputs.length; i++) {
      if (!ctx.outputTensor(i)) throw new UserError(`the lowering of op '${op.name}' (${fmtOpid(op.opid)}) never created its output '${op.outputs[i]}' (call ctx.output())`);
    }
  }

  for (const a of req.anchors) {
    const d = tensors.get(a);
    if (!d) throw new Error(`internal: anchor '${a}' has no device tensor`);
    const s = dg.addStream(`${a}->host`, d, 'fromDevice');
    streamTensor.set(s, a);
    const steps = plan ? stageSteps[stageOfTensor(a)] : batch;
    // An anchored sharded weight: its value now is its shard's (the whole tensor holds the last gather, before any update).
    const home = d.gatheredFrom;
    if (home) steps.push(...(home.remote ? [{ kind: 'remoteLoad' as const, tensor: home.id, op: 'host' }] : []), { kind: 'allGather', tensor: d.id, shard: home.id, op: 'host' });
    steps.push({ kind: 'streamCopy', stream: s, op: 'host' });
  }
  const n = req.accumulationFactor ?? 1;
  if (plan) batchProgram.push(pipelineStep(dg, req.schedule, plan, tensors, stageSteps, copies, n), ...outer);
  else batchProgram.push(...(n > 1 ? [{ kind: 'repeat' as const, count: n, body: batch }] : batch), ...outer);

  const program = dg.finalize(req.codelets, req.codeletModules, req.onPass);
  const tensorOf = new Map([...tensors].map(([k, v]) => [k, v.id]));
  // An outlined op's outputs are read (run.checkFinite) where its function writes them, at every call.
  for (const fn of functions) {
    for (let j = 0; j < fn.group.length; j++) for (const id of req.schedule[fn.group.starts[0] + j].outputs) if (fn.tensors.has(id)) tensorOf.set(id, fn.tensors.get(id)!.id);
  }
  return { program, tensorOf, streamTensor };
}

/**
 * An op's steps with its tensors in Streaming Memory around them (PopART's
 * RemoteLoad before the use, RemoteStore after a write): each remote input
 * loaded before, each remote input it modifies stored after, and the remote
 * tensors it made itself (offChip optimizer state) loaded and stored. A
 * sharded weight it reads is all-gathered from its shard before (its shard
 * loaded first when offChip), unless the op reads the shard itself (the
 * update, Op.shardedInputs): then the shard is its input here.
 */
function withRemote(op: Op, ctx: LowerContext, tensors: Map<string, BuildTensor>): ProgramStep[] {
  const steps = ctx.finish();
  const load = new Set<BuildTensor>();
  const gather = new Set<BuildTensor>();
  const store = new Set<BuildTensor>();
  const modified = new Set(op.modifiedInputs());
  const onShard = new Set(op.shardedInputs());
  const read = (d: BuildTensor, i: number): void => {
    const home = d.gatheredFrom;
    if (home && !onShard.has(i)) {
      gather.add(d);
      if (home.remote) load.add(home);
      return;
    }
    const t = home ?? d;
    if (!t.remote) return;
    load.add(t);
    if (modified.has(i)) store.add(t);
  };
  op.inputs.forEach((id, i) => {
    const d = id ? tensors.get(id) : undefined;
    if (d) read(d, i);
  });
  // A grad op may read its forward op's inputs too (ctx.gradientOf): a weight it reads so is loaded as well.
  // Not gathered: gradientOf gives its layout, which the whole tensor has without its data.
  if (isGradOp(op)) for (const id of op.fwdOp.inputs) {
    const d = id ? tensors.get(id) : undefined;
    if (d?.remote) load.add(d);
  }
  for (const d of ctx.remoteTensors) {
    load.add(d);
    store.add(d);
  }
  if (load.size === 0 && gather.size === 0) return steps;
  return [
    ...[...load].map((d): ProgramStep => ({ kind: 'remoteLoad', tensor: d.id, op: op.name })),
    ...[...gather].map((d): ProgramStep => ({ kind: 'allGather', tensor: d.id, shard: d.gatheredFrom!.id, op: op.name })),
    ...steps,
    ...[...store].map((d): ProgramStep => ({ kind: 'remoteStore', tensor: d.id, op: op.name })),
  ];
}

/** The IPU an op reads its inputs on: an IpuCopy's source IPU, else its own. */
function readIpu(op: Op): number {
  return isIpuCopy(op) ? op.sourceIpu : (op.settings.ipu ?? 0);
}

/** The device tensors an op's lowering may look at: its inputs (a sharded weight's shard too), and a grad op's forward inputs (ctx.gradientOf). */
function opTensors(op: Op, tensors: Map<string, BuildTensor>): (BuildTensor | undefined)[] {
  const ids = op.inputs.filter((id) => id !== '');
  if (isGradOp(op) && op.fwdOp.settings.ipu === op.settings.ipu) ids.push(...op.fwdOp.inputs.filter((id) => id !== ''));
  return ids.flatMap((id) => {
    const d = tensors.get(id);
    return d?.gatheredFrom ? [d, d.gatheredFrom] : [d];
  });
}

/** Each IR tensor's readers in schedule order, with the input index they read it at. */
function consumersInSchedule(schedule: Op[]): Map<string, { op: Op; index: number }[]> {
  const out = new Map<string, { op: Op; index: number }[]>();
  for (const op of schedule) {
    op.inputs.forEach((id, index) => {
      if (!id) return;
      const list = out.get(id);
      if (list) list.push({ op, index });
      else out.set(id, [{ op, index }]);
    });
  }
  return out;
}

/**
 * Map a tensor nothing produces: as its first consumer with a createInput
 * wants it (a planned matmul, conv or lookup then finds its operand in
 * place), else linearly. The layout is recorded on the tensor (layoutBy) and
 * noted for `sim compile`.
 *
 * Each consumer is told whether every reader is a planned consumer
 * (InputUse): the matmul and conv then lay out a strided block however many
 * intervals it leaves a tile (no reader works per interval), so a constant
 * weight of an inference (VGG-19's fc6, read transposed) is read where it
 * lies, not gathered into a second copy of each block beside it.
 */
function mapSource(dg: DeviceGraph, d: BuildTensor, readers: { op: Op; index: number }[], req: LowerRequest): void {
  const allReadersPlanned = readers.every(({ op }) => req.registry.exact(op.opid)?.createInput !== undefined);
  for (const { op, index } of readers) {
    const def = req.registry.exact(op.opid);
    if (!def?.createInput) continue;
    let mapping: TileRange[] | undefined;
    try {
      mapping = def.createInput(op, index, dg.device, req.plans ?? {}, { allReadersPlanned });
    } catch (e) {
      if (e instanceof UserError || e instanceof RunError) throw e;
      throw new UserError(`the layout op '${op.name}' (${fmtOpid(op.opid)}) asks for its input ${index} ('${d.name}') failed: ${(e as Error).message}`, op.settings.loc);
    }
    if (!mapping) continue;
    dg.setTileMapping(d, mapping, op.name);
    d.layoutBy = { op: op.name, index };
    const tiles = new Set(mapping.map((m) => m.tile)).size;
    dg.notes.push({ op: op.name, kind: 'layout', text: `input ${index} '${d.name}' is created where this op reads it (${tiles} tiles), not mapped linearly` });
    return;
  }
  dg.mapLinearly(d);
}
