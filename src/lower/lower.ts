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
import { createHash } from 'node:crypto';
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
import type { TileMapping } from './tile-mapping.js';
import { checkHostHeap, collectGarbage } from '../util/host-heap.js';
import { isIpuCopy } from '../shard/ipu-copy.js';
import { IpuCopies } from './ipu-copies.js';
import { isRestore, type PipelinePlan } from '../shard/pipeline.js';
import { pipelineStep } from './pipeline.js';
import { findOutline, structureKey, type OutlineGroup } from './outline.js';
import { callFunction, cloneFunction, functionSchedule, groupSlots, instanceInputs, lowerFunction, type LoweredFunction } from './functions.js';

/** The name onOp gives the work before the first op (outlining, the graph's sources laid out). */
export const BEFORE_FIRST_OP = '(before the first op: outlining, inputs, weights and constants laid out)';

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
  /**
   * Progress: called after each op (an outlined call: once, named by its first op) is lowered, with ops done
   * of total and the op's name; first, with none done, as the work before the first op ends.
   */
  onOp?: (done: number, total: number, op: string) => void;
  /** Splits forced on the planners (tests); the planners choose where these say nothing. */
  plans?: PlanOverrides;
  /** Lower an op like one lowered before (same structure, inputs laid out alike) as a clone of it (default true): the same program, less time. */
  cloneLikeOps?: boolean;
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
  /** Outlining (compile.outlining): repeated sequences of at least minOps ops lowered once per IPU and called (src/lower/functions.ts); a call never spans two IPUs or pipeline stages. */
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
  // Where an op runs: a call stays within one IPU, pipeline stage and fragment (an IpuCopy or Restore is never outlined).
  const segment = (op: Op): string | undefined => {
    if (isIpuCopy(op) || isRestore(op)) return undefined;
    if (op.settings.executionContext === 'outerFragment') return `outer/${req.sharded ? (op.settings.ipu ?? 0) : ''}`;
    return req.sharded ? `${op.settings.ipu ?? 0}/${plan?.stageOf.get(op) ?? ''}` : 'main';
  };
  const { groups, alike } = req.outlining ? findOutline(req.schedule, req.graph, { ...req.outlining, segment }) : { groups: [], alike: [] };
  // A later instance's input that nothing produces (its layer's weight) is mapped like the first
  // instance's: its call then copies it into the function on tile. Mapped after the first's.
  const followers = new Map<string, string>();
  for (const g of groups) {
    const first = instanceInputs(req.schedule, g.starts[0], g.length);
    for (const s of g.starts.slice(1)) instanceInputs(req.schedule, s, g.length).forEach((id, e) => id !== first[e] && followers.set(id, first[e]));
  }
  const sources = req.graph.allTensors().filter((t) => !t.producer);
  // Leaders, then followers, then the followers' accumulators (each mapped like its weight, which must exist by then).
  const tier = (t: (typeof sources)[number]): number => (followers.has(t.id) ? 1 : t.accumulatorOf !== undefined && followers.has(t.accumulatorOf) ? 2 : 0);
  for (const t of [0, 1, 2].flatMap((k) => sources.filter((t) => tier(t) === k))) {
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
  const alikeOf = new Map<number, number[]>();
  for (const list of alike) for (const g of list) alikeOf.set(g, list);
  const perIpu = req.device.tilesPerIpu;
  const ipuOf = (g: number): number => (req.sharded ? (req.schedule[groups[g].starts[0]].settings.ipu ?? 0) : 0);
  const callsOf = new Map<string, number>();
  /** Group g's function: a clone of an alike group's whose inputs lie alike (moved to g's IPU), else lowered. */
  const functionFor = (g: number): LoweredFunction => {
    const group = groups[g];
    const ipu = ipuOf(g);
    const same = alikeOf.get(g) ?? [g];
    for (const h of same) {
      const fn = functions[h];
      if (h === g || !fn?.made) continue;
      const shift = (ipu - ipuOf(h)) * perIpu;
      if (demands(fn.group) !== demands(group) || !alikeInputs(fn.group, group, shift)) continue;
      const name = `fn${g}`;
      const clone = cloneFunction(dg, fn, name, group, req.schedule, shift);
      if (clone) {
        dg.notes.push({ op: req.schedule[group.starts[0]].name, kind: 'outlining', text: `${group.length} ops from here are ${name}, a clone of ${fn.name} ${shift === 0 ? `on IPU ${ipu}` : `moved from IPU ${ipuOf(h)} to IPU ${ipu}`} (not lowered again), called ${group.starts.length} times` });
        return clone;
      }
    }
    const slots = groupSlots(req.schedule, group, lastRead, anchors);
    const fs = functionSchedule(req.schedule, group, lastRead, anchors);
    const lower = () =>
      lowerFunction(
        dg,
        `fn${g}`,
        req.schedule,
        group,
        slots,
        tensors,
        (fop, at, fnTensors) => {
          const ctx = new LowerContext(dg, fop, fnTensors, category, { position: at, lastRead: fs.lastRead, anchors: fs.anchors }, req.plans);
          lowerWith(fop, ctx);
          return ctx.finish();
        },
        (t) => !req.sharded || onIpu(t, ipu),
      );
    const fn = req.sharded ? dg.onIpu(ipu, [...slots.inputs, ...hints(group)].map((id) => tensors.get(id)), lower) : lower();
    dg.notes.push({ op: req.schedule[group.starts[0]].name, kind: 'outlining', text: `${group.length} ops from here lowered once as fn${g}${req.sharded ? ` on IPU ${ipu}` : ''}, called ${group.starts.length} times` });
    return fn;
  };
  const onIpu = (t: BuildTensor, ipu: number): boolean => !t.mapping || t.mapping.within(ipu * perIpu, (ipu + 1) * perIpu);
  /** The forward inputs a grad op of the instance may take as a layout hint (ctx.gradientOf), made outside it. */
  const hints = (group: OutlineGroup): string[] => {
    const made = new Set<string>();
    const out: string[] = [];
    for (let j = 0; j < group.length; j++) {
      const op = req.schedule[group.starts[0] + j];
      if (isGradOp(op)) for (const id of op.fwdOp.inputs) out.push(id !== '' && !made.has(id) && tensors.has(id) && (!req.sharded || onIpu(tensors.get(id)!, op.settings.ipu ?? 0)) ? id : '');
      for (const id of op.outputs) made.add(id);
    }
    return out;
  };
  /**
   * What a group's instances ask of the function's in-place choices and
   * outputs (src/lower/context.ts): for each tensor of its first instance,
   * whether and where in the instance it is last read (an anchor is read
   * after it); which outputs escape. Only groups asking the same share a function.
   */
  const demandsOf = new Map<OutlineGroup, string>();
  const demands = (group: OutlineGroup): string => {
    let d = demandsOf.get(group);
    if (d !== undefined) return d;
    const s0 = group.starts[0];
    const fs = functionSchedule(req.schedule, group, lastRead, anchors);
    const names = [...instanceInputs(req.schedule, s0, group.length)];
    for (let j = 0; j < group.length; j++) names.push(...req.schedule[s0 + j].outputs);
    // Anchored is read after the instance: within the function, neither may be overwritten.
    const read = names.map((id) => (fs.anchors.has(id) ? group.length : Math.min((fs.lastRead.get(id) ?? -1) - s0, group.length)));
    d = `${read.join(',')}|${JSON.stringify(groupSlots(req.schedule, group, lastRead, anchors).escaping)}`;
    demandsOf.set(group, d);
    return d;
  };
  const positionOf = new Map(req.schedule.map((op, i) => [op.name, i]));
  /**
   * Whether group b's first instance reads its inputs (and layout hints) laid
   * out as a's does, `shift` tiles on, each created by the same op of its
   * instance if any: then lowering b would make a's function moved by shift.
   */
  const alikeInputs = (a: OutlineGroup, b: OutlineGroup, shift: number): boolean => {
    const sa = a.starts[0];
    const sb = b.starts[0];
    const ida = [...instanceInputs(req.schedule, sa, a.length), ...hints(a)];
    const idb = [...instanceInputs(req.schedule, sb, b.length), ...hints(b)];
    if (ida.length !== idb.length) return false;
    const by = (t: BuildTensor, start: number): string => {
      const at = t.layoutBy ? positionOf.get(t.layoutBy.op) : undefined;
      return at !== undefined && at >= start && at < start + a.length ? `${at - start}.${t.layoutBy!.index}` : '-';
    };
    return ida.every((id, e) => {
      const ta = id ? tensors.get(id) : undefined;
      const tb = idb[e] ? tensors.get(idb[e]) : undefined;
      if (!ta || !tb) return !ta && !tb;
      const ma = ta.mapping;
      const mb = tb.mapping;
      return by(ta, sa) === by(tb, sb) && (ma === undefined || mb === undefined ? ma === mb : ma.equalsShifted(mb, shift));
    });
  };
  /**
   * Ops lowered once and cloned for their likes (with or without outlining):
   * an op whose structure, inputs' layouts on its IPU (category, dtype, tiles,
   * created for it or not), in-place freedom (ctx.canWriteInPlace) and
   * outputs' categories are those of an op lowered before gets a copy of that
   * lowering, moved to its IPU and reading its own inputs: what lowering it
   * would make, with the same cycles and memory. A transformer layer's Q, K
   * and V projections, their bias gradients and their weight updates are
   * lowered once each; the notes (plans, layouts) are the template's, renamed.
   */
  const owners = new Set([...req.graph.regions.values()].map((r) => r.owner));
  const lowered = new Map<string, { op: Op; ipu: number; inputs: number[]; outputs: number[]; steps: ProgramStep[]; notes: [number, number]; made: { tensors: [number, number]; computeSets: [number, number]; exchanges: [number, number] } }>();
  const structures = new Map<Op, string | undefined>();
  let cloned = 0;
  // A mapping in a key as its length and a hash of its ranges (from its IPU's first tile): a weight's has
  // thousands of ranges, and spelling them out made a string of tens of kilobytes per input per op. A clone
  // checks the ranges themselves (cloneOp), so two mappings that hash alike are never taken for each other.
  /** The hash key of `mapping` read from tile `base` on; undefined when sharded and a range lies off that IPU. */
  const mappingKey = (mapping: TileMapping, base: number): string | undefined => {
    let h = 0x811c9dc5;
    for (let i = 0; i < mapping.length; i++) {
      const tile = mapping.tile(i);
      if (req.sharded && (tile < base || tile >= base + perIpu)) return undefined;
      h = Math.imul(h ^ (tile - base), 0x01000193);
      h = Math.imul(h ^ mapping.begin(i), 0x01000193);
      h = Math.imul(h ^ mapping.end(i), 0x01000193);
    }
    return `${mapping.length}#${h >>> 0}`;
  };
  /** Whether `b` is `a` with its tiles moved on by `shift`, range for range. */
  const sameMapping = (a: TileMapping | undefined, b: TileMapping | undefined, shift: number): boolean => a !== undefined && b !== undefined && a.equalsShifted(b, shift);
  // A lowering may read the values of an input known at compile time (Gather's constant indices become static
  // copies; Resize is such Gathers): ops alike but for those values are not alike. Their digest, once per tensor.
  const constantKeys = new Map<string, string>();
  const constantKey = (id: string): string => {
    let k = constantKeys.get(id);
    if (k === undefined) {
      const data = req.graph.compileTimeData(id);
      k = data ? `|v${createHash('sha1').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('base64')}` : '';
      constantKeys.set(id, k);
    }
    return k;
  };
  const opLike = (op: Op, ctx: LowerContext): { key: string; inputs: number[]; ipu: number } | undefined => {
    if (isIpuCopy(op) || isRestore(op)) return undefined;
    let structure = structures.get(op);
    if (!structures.has(op)) structures.set(op, (structure = structureKey(op, req.graph)));
    if (structure === undefined) return undefined;
    const ipu = req.sharded ? (op.settings.ipu ?? 0) : 0;
    const base = ipu * perIpu;
    const ids = [...op.inputs];
    if (isGradOp(op)) ids.push(...op.fwdOp.inputs.map((id) => (id !== '' && tensors.has(id) ? id : '')));
    const inputs: number[] = [];
    const parts: string[] = [structure];
    for (const id of ids) {
      const t = id ? tensors.get(id) : undefined;
      if (!t) {
        parts.push('-');
        continue;
      }
      // A remote or sharded input brings steps of its own (a load, an all-gather: withRemote) that a clone,
      // copying compute sets and exchanges only, would leave out.
      if (t.remote || t.gatheredFrom || !t.mapping) return undefined;
      const seen = inputs.indexOf(t.id);
      inputs.push(t.id);
      if (seen >= 0) {
        parts.push(`=${seen}`);
        continue;
      }
      const layout = mappingKey(t.mapping, base);
      if (layout === undefined) return undefined;
      // Laid out by this op (which plans from shapes alone then), by another (its reads are tallied in the
      // op's layout note), or by no consumer.
      const by = t.layoutBy ? (t.layoutBy.op === op.name ? `s${t.layoutBy.index}` : 'o') : '-';
      parts.push(`${t.category}|${t.dtype}|${t.size}|${by}|${layout}${constantKey(id)}`);
    }
    for (let i = 0; i < op.inputs.length; i++) for (let o = 0; o < op.outputs.length; o++) if (op.inputs[i] && op.outputs[o]) parts.push(ctx.canWriteInPlace(i, o) ? 'w' : 'r');
    parts.push(op.outputs.map((id) => (id ? category(id) : '-')).join(','));
    return { key: parts.join('\n'), inputs, ipu };
  };
  /** Op `op` as a clone of the op lowered with its key (false, nothing made, when that lowering cannot be moved). */
  const cloneOp = (like: { key: string; inputs: number[]; ipu: number }, op: Op): boolean => {
    const m = lowered.get(like.key);
    if (!m || m.inputs.length !== like.inputs.length) return false;
    if (!m.steps.every((s) => s.kind === 'execute' || s.kind === 'exchange')) return false;
    const shift = (like.ipu - m.ipu) * perIpu;
    if (!m.inputs.every((id, k) => sameMapping(dg.tensors[id].mapping, dg.tensors[like.inputs[k]].mapping, shift))) return false;
    const outside = new Map(m.inputs.map((id, k) => [id, like.inputs[k]]));
    const [t0, t1] = m.made.tensors;
    if (!m.outputs.every((id) => (id >= t0 && id < t1) || outside.has(id))) return false;
    const names = new Map(m.op.outputs.map((id, o) => [id, op.outputs[o]]));
    const prefix = `${m.op.name}/`;
    // Tensors named for an input (its exchange buffer, `x@exchange`) are named for the clone's input.
    const inputNames = m.inputs.map((id, k) => [dg.tensors[id].name, dg.tensors[like.inputs[k]].name] as const);
    const byInput = (n: string): string | undefined => {
      for (const [from, to] of inputNames) if (n.startsWith(`${from}@`)) return `${to}${n.slice(from.length)}`;
      return undefined;
    };
    const rename = (n: string) => names.get(n) ?? (n.startsWith(prefix) ? `${op.name}/${n.slice(prefix.length)}` : (byInput(n) ?? `${n} (${op.name})`));
    const maps = dg.cloneShifted(m.made, shift, rename, outside, (o) => (o === m.op.name ? op.name : o));
    if (!maps) return false;
    // The template's notes (its plan, what layouts saved it) hold for the clone, with its tensors' names.
    const quoted = new Map<string, string>([...inputNames, ...names, [m.op.name, op.name]].filter(([a, b]) => a !== b).map(([a, b]) => [`'${a}'`, `'${b}'`]));
    const requote = (text: string) => (quoted.size === 0 ? text : text.replace(/'[^']*'/g, (q) => quoted.get(q) ?? q));
    for (let i = m.notes[0]; i < m.notes[1]; i++) {
      const n = dg.notes[i];
      if (n.op === m.op.name) dg.notes.push({ op: op.name, kind: n.kind, text: requote(n.text) });
    }
    dg.notes.push({ op: op.name, kind: 'clone', text: `lowered as a copy of '${m.op.name}' (the same structure, inputs laid out alike${shift ? `, moved ${shift} tiles` : ''}), not planned again` });
    m.outputs.forEach((id, o) => tensors.set(op.outputs[o], dg.tensors[maps.tensor(id)]));
    stepsOf(op).push(...m.steps.map((s) => (s.kind === 'execute' ? { kind: 'execute' as const, computeSet: maps.computeSet(s.computeSet) } : s.kind === 'exchange' ? { kind: 'exchange' as const, exchange: maps.exchange(s.exchange) } : s)));
    return true;
  };
  // Outlining, the graph's inputs, weights and constants laid out (their consumers' createInput): timed apart from the first op.
  req.onOp?.(0, req.schedule.length, BEFORE_FIRST_OP);
  for (let position = 0; position < req.schedule.length; position++) {
    const op = req.schedule[position];
    const instance = instanceAt.get(position);
    if (instance) {
      const { group, g, k } = instance;
      if (k === 0) functions[g] = functionFor(g);
      const fn = functions[g];
      const n = callsOf.get(fn.name) ?? 0;
      callsOf.set(fn.name, n + 1);
      if (!plan) batch.push(...ipuCopies.close());
      stepsOf(op).push(callFunction(dg, fn, n, group.starts[k], req.schedule, req.graph, tensors, category));
      position += group.length - 1;
      req.onOp?.(position + 1, req.schedule.length, `${op.name} (a call of ${fn.name}, ${group.length} ops)`);
      continue;
    }
    if (isIpuCopy(op)) {
      // A weight copied to another IPU from Streaming Memory or its shard: loaded, and gathered, before the copies'
      // exchange. (Pipelined, none arises: a variable must be read by one stage, src/shard/pipeline.ts.)
      const src = tensors.get(op.inId(0));
      const home = src?.gatheredFrom ?? src;
      if (!plan && home?.remote) batch.push({ kind: 'remoteLoad', tensor: home.id, op: op.name });
      if (!plan && src?.gatheredFrom) batch.push({ kind: 'allGather', tensor: src.id, shard: src.gatheredFrom.id, op: op.name });
      ipuCopies.add(op, tensors, category(op.outId(0)));
      req.onOp?.(position + 1, req.schedule.length, op.name);
      continue;
    }
    // A stashed tensor's backward copy: laid out as it is, filled by the restore exchange (src/lower/pipeline.ts).
    if (isRestore(op)) {
      const src = tensors.get(op.inId(0))!;
      const d = dg.addTensor(op.outId(0), src.dtype, op.outInfo(0).shape, 'activation', op.name);
      dg.mapLike(d, src);
      tensors.set(op.outId(0), d);
      req.onOp?.(position + 1, req.schedule.length, op.name);
      continue;
    }
    // Pipelined, every copy goes in the one exchange that ends a pipeline cycle.
    if (!plan) batch.push(...ipuCopies.close());
    const ctx = new LowerContext(dg, op, tensors, category, { position, lastRead, anchors }, req.plans);
    ctx.regionSteps = regionSteps.get(op) ?? [];
    // An op like one lowered before (a projection beside its likes, an optimizer update of a weight shaped and laid out alike) is a clone of it.
    const like = req.cloneLikeOps !== false && !req.graph.regions.has(op) && !owners.has(op) ? opLike(op, ctx) : undefined;
    if (like && cloneOp(like, op)) {
      cloned++;
      req.onOp?.(position + 1, req.schedule.length, op.name);
      continue;
    }
    const made = { tensors: dg.tensors.length, computeSets: dg.computeSets.length, exchanges: dg.exchanges.length, streams: dg.streams.length, notes: dg.notes.length };
    let opSteps: ProgramStep[] = [];
    const lowerOp = (): void => {
      lowerWith(op, ctx);
      opSteps = withRemote(op, ctx, tensors);
      // An op in a branch or loop body: its steps go to its owner (If, Loop), which wraps them (src/ops/control-flow.ts).
      const region = req.graph.regions.get(op);
      if (region) {
        const lists = regionSteps.get(region.owner) ?? [];
        regionSteps.set(region.owner, lists);
        (lists[region.branch] ??= []).push(...opSteps);
      } else stepsOf(op).push(...opSteps);
    };
    if (req.sharded) dg.onIpu(op.settings.ipu ?? 0, opTensors(op, tensors), lowerOp);
    else lowerOp();
    if (like && !lowered.has(like.key) && dg.streams.length === made.streams) {
      lowered.set(like.key, {
        op,
        ipu: req.sharded ? (op.settings.ipu ?? 0) : 0,
        inputs: like.inputs,
        outputs: op.outputs.map((id) => tensors.get(id)!.id),
        steps: opSteps,
        notes: [made.notes, dg.notes.length],
        made: { tensors: [made.tensors, dg.tensors.length], computeSets: [made.computeSets, dg.computeSets.length], exchanges: [made.exchanges, dg.exchanges.length] },
      });
    }
    req.onOp?.(position + 1, req.schedule.length, op.name);
  }
  const copies = ipuCopies.close();
  if (!plan) batch.push(...copies);
  if (cloned > 0) dg.notes.push({ op: req.schedule[0].name, kind: 'clones', text: `${cloned} ops${req.outlining ? ' outside the functions' : ''} are clones of a like op lowered before (the same structure, inputs laid out alike on their IPU), not lowered again` });

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

  // The lowering's own garbage (per-op contexts and tables) collected before finalize adds its arrays.
  collectGarbage();
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
