/**
 * Outlined functions (PopART's subgraphs called by CallOps, Poplar's
 * functions): a repeated sequence of ops (src/lower/outline.ts) is lowered
 * once, from its first instance, into device tensors of its own; each
 * occurrence is a call step that copies the caller's tensors into the
 * function's inputs, runs the function's steps and copies out every output
 * read outside the sequence (by a later op, a backward pass, an anchor).
 *
 * Layouts: a function input is mapped like the first instance's tensor, and
 * each call's outputs like the function's, so the copies are on tile
 * wherever the callers' tensors were laid out alike (the lowering maps the
 * other instances' weights like the first's).
 *
 * The function is lowered as its first instance would be without outlining
 * (same op names, schedule positions and in-place choices), except that an
 * output read outside any instance, or anchored in any, is kept as such:
 * so its vertices, and the numbers, are those of that lowering.
 *
 * Sharded, a function is lowered on its IPU (DeviceGraph.onIpu). The same
 * layers on another IPU (a group alike, src/lower/outline.ts findOutline)
 * whose inputs are laid out the same on their IPU's tiles get a clone of it
 * (cloneFunction): its tensors, vertices and copies with the tiles shifted by
 * whole IPUs, what lowering them there would make, at the cost of a copy.
 */
import type { DeviceDType, ProgramStep, TensorCategory } from '../../sim/program.js';
import type { Graph } from '../ir/graph.js';
import { isGradOp, type Op } from '../ir/op.js';
import type { DeviceGraph, BuildTensor } from './devicegraph.js';
import type { OutlineGroup } from './outline.js';

/** Where a tensor an instance reads or writes sits in it: an input from outside, by first use, or op j's output o. */
export interface InstanceSlots {
  /** Tensors read from outside the instance, in order of first use. */
  inputs: string[];
  /** Outputs [op index in the instance, output index] that are read outside some instance or anchored. */
  escaping: [number, number][];
}

export interface LoweredFunction {
  name: string;
  group: OutlineGroup;
  /** The function's input tensors, one per InstanceSlots.inputs. */
  params: BuildTensor[];
  /** The function's tensors of the escaping outputs, in InstanceSlots.escaping order. */
  outputs: BuildTensor[];
  steps: ProgramStep[];
  slots: InstanceSlots;
  /** The function's tensors by the first instance's IR names. */
  tensors: ReadonlyMap<string, BuildTensor>;
  /** The op names its compute sets and exchanges carry (a call renames them to its own): its template's first instance's. */
  opNames: string[];
  /** What its lowering made: tensors, compute sets, exchanges and streams [from, to) of the DeviceGraph (a clone's source); none for a clone. */
  made?: DeviceRange;
}

export interface DeviceRange {
  tensors: [number, number];
  computeSets: [number, number];
  exchanges: [number, number];
  streams: [number, number];
}

/** The tensors instance `start` reads from outside it, in order of first use (as outline.ts's dataflow numbers them). */
export function instanceInputs(schedule: readonly Op[], start: number, length: number): string[] {
  const made = new Set<string>();
  const inputs = new Set<string>();
  for (let j = start; j < start + length; j++) {
    for (const t of schedule[j].inputs) if (t !== '' && !made.has(t)) inputs.add(t);
    for (const t of schedule[j].outputs) made.add(t);
  }
  return [...inputs];
}

/** The slots of a group: its inputs (of the first instance) and the outputs escaping in any instance. */
export function groupSlots(schedule: readonly Op[], group: OutlineGroup, lastRead: ReadonlyMap<string, number>, anchors: ReadonlySet<string>): InstanceSlots {
  const { starts, length } = group;
  const escaping: [number, number][] = [];
  for (let j = 0; j < length; j++) {
    schedule[starts[0] + j].outputs.forEach((_, o) => {
      const escapes = starts.some((s) => {
        const id = schedule[s + j].outputs[o];
        return anchors.has(id) || (lastRead.get(id) ?? -1) >= s + length;
      });
      if (escapes) escaping.push([j, o]);
    });
  }
  return { inputs: instanceInputs(schedule, starts[0], length), escaping };
}

/**
 * For the function's lowering: the last read and anchors of its first
 * instance's tensors, as the most demanding instance has them (relative to
 * its start), so no in-place choice overwrites what some call must copy out.
 */
export function functionSchedule(schedule: readonly Op[], group: OutlineGroup, lastRead: ReadonlyMap<string, number>, anchors: ReadonlySet<string>): { lastRead: Map<string, number>; anchors: Set<string> } {
  const { starts, length } = group;
  const s0 = starts[0];
  const read = new Map(lastRead);
  const anchored = new Set(anchors);
  const inputsOf = starts.map((s) => instanceInputs(schedule, s, length));
  const merge = (name0: string, names: string[]) => {
    let rel = -1;
    for (const [k, id] of names.entries()) {
      if (anchors.has(id)) anchored.add(name0);
      const r = lastRead.get(id);
      if (r !== undefined) rel = Math.max(rel, r - starts[k]);
    }
    if (rel >= 0) read.set(name0, s0 + rel);
  };
  inputsOf[0].forEach((name0, e) => merge(name0, inputsOf.map((ins) => ins[e])));
  for (let j = 0; j < length; j++) schedule[s0 + j].outputs.forEach((name0, o) => merge(name0, starts.map((s) => schedule[s + j].outputs[o])));
  return { lastRead: read, anchors: anchored };
}

/**
 * Lower the group's first instance as a function: its inputs become tensors
 * of its own, mapped like the caller's; `lowerOp` lowers one op against the
 * function's tensor map (returning its steps).
 */
export function lowerFunction(
  dg: DeviceGraph,
  name: string,
  schedule: readonly Op[],
  group: OutlineGroup,
  slots: InstanceSlots,
  tensors: ReadonlyMap<string, BuildTensor>,
  lowerOp: (op: Op, position: number, fnTensors: Map<string, BuildTensor>) => ProgramStep[],
  /** Whether a caller's tensor may be a layout hint (sharded: it lies on the function's IPU). */
  hint: (t: BuildTensor) => boolean = () => true,
): LoweredFunction {
  const fnTensors = new Map<string, BuildTensor>();
  const first = dg.tensors.length;
  const cs0 = dg.computeSets.length;
  const ex0 = dg.exchanges.length;
  const st0 = dg.streams.length;
  const params = slots.inputs.map((id, e) => {
    const caller = tensors.get(id);
    if (!caller) throw new Error(`internal: input '${id}' of outlined ${name} was not lowered before it`);
    // A weight's copy is always live, as the function holds it for every call, but as a constant, not a
    // variable: it is no weight of its own (each call refreshes it), so checkpoints and weight reads leave
    // it out and a checkpoint fits the program with or without outlining. Else an activation.
    const category: TensorCategory = caller.category === 'gradient' ? 'gradient' : caller.category === 'variable' ? 'constant' : caller.category === 'constant' || caller.category === 'stream' ? caller.category : 'activation';
    const p = dg.addTensor(`${name}/in${e}/${id}`, caller.dtype, caller.shape, category, schedule[group.starts[0]].name);
    dg.mapLike(p, caller);
    p.paramOf = caller;
    if (caller.layoutBy) p.layoutBy = caller.layoutBy;
    fnTensors.set(id, p);
    return p;
  });
  const steps: ProgramStep[] = [];
  for (let j = 0; j < group.length; j++) {
    const position = group.starts[0] + j;
    const op = schedule[position];
    // A grad op's lowering may map an output like its forward op's input (ctx.gradientOf): a layout hint only.
    if (isGradOp(op)) for (const id of op.fwdOp.inputs) if (id !== '' && !fnTensors.has(id) && tensors.has(id) && hint(tensors.get(id)!)) fnTensors.set(id, tensors.get(id)!);
    steps.push(...lowerOp(op, position, fnTensors));
  }
  const outputs = slots.escaping.map(([j, o]) => {
    const id = schedule[group.starts[0] + j].outputs[o];
    const t = fnTensors.get(id);
    if (!t) throw new Error(`internal: outlined ${name} made no tensor for '${id}'`);
    return t;
  });
  // Everything made here is the function's frame: placed once for every call (src/lower/memory.ts).
  dg.frames.push({ fn: name, tensors: Array.from({ length: dg.tensors.length - first }, (_, i) => first + i) });
  const opNames = Array.from({ length: group.length }, (_, j) => schedule[group.starts[0] + j].name);
  const made: DeviceRange = { tensors: [first, dg.tensors.length], computeSets: [cs0, dg.computeSets.length], exchanges: [ex0, dg.exchanges.length], streams: [st0, dg.streams.length] };
  return { name, group, params, outputs, steps, slots, tensors: fnTensors, opNames, made };
}

/** The function's tensors by the IR names of `group`'s first instance (the same ops, position for position, as fn's). */
function renamed(fn: LoweredFunction, group: OutlineGroup, schedule: readonly Op[], map: (t: BuildTensor) => BuildTensor | undefined): Map<string, BuildTensor> {
  const out = new Map<string, BuildTensor>();
  const inputs = instanceInputs(schedule, group.starts[0], group.length);
  fn.slots.inputs.forEach((id, e) => {
    const t = fn.tensors.get(id);
    const m = t && map(t);
    if (m) out.set(inputs[e], m);
  });
  for (let j = 0; j < group.length; j++) {
    schedule[fn.group.starts[0] + j].outputs.forEach((id, o) => {
      const t = fn.tensors.get(id);
      const m = t && map(t);
      if (m) out.set(schedule[group.starts[0] + j].outputs[o], m);
    });
  }
  return out;
}

/**
 * A clone of `fn` for `group` (alike, on another IPU): everything fn's
 * lowering made, its tiles shifted by `tileShift`. Undefined when that is
 * not all of it: a vertex or copy reads a tensor made outside the function,
 * or its steps are more than compute sets and exchanges.
 */
export function cloneFunction(dg: DeviceGraph, fn: LoweredFunction, name: string, group: OutlineGroup, schedule: readonly Op[], tileShift: number): LoweredFunction | undefined {
  if (!fn.made || fn.made.streams[0] !== fn.made.streams[1]) return undefined;
  const steps: ProgramStep[] = [];
  const clonable = (list: readonly ProgramStep[]): boolean => list.every((s) => s.kind === 'execute' || s.kind === 'exchange' || (s.kind === 'repeat' && clonable(s.body)));
  if (!clonable(fn.steps)) return undefined;
  const maps = dg.cloneShifted(fn.made, tileShift, (n) => (n.startsWith(`${fn.name}/`) ? `${name}/${n.slice(fn.name.length + 1)}` : `${n} (${name})`));
  if (!maps) return undefined;
  const remap = (s: ProgramStep): ProgramStep =>
    s.kind === 'execute' ? { kind: 'execute', computeSet: maps.computeSet(s.computeSet) } : s.kind === 'exchange' ? { kind: 'exchange', exchange: maps.exchange(s.exchange) } : s.kind === 'repeat' ? { ...s, body: s.body.map(remap) } : s;
  steps.push(...fn.steps.map(remap));
  const tensor = (t: BuildTensor) => dg.tensors[maps.tensor(t.id)];
  const [t0, t1] = fn.made.tensors;
  dg.frames.push({ fn: name, tensors: Array.from({ length: t1 - t0 }, (_, i) => maps.tensor(t0 + i)) });
  const inRange = (t: BuildTensor) => (t.id >= t0 && t.id < t1 ? tensor(t) : undefined);
  return {
    name,
    group,
    params: fn.params.map(tensor),
    outputs: fn.outputs.map(tensor),
    steps,
    slots: { inputs: instanceInputs(schedule, group.starts[0], group.length), escaping: fn.slots.escaping },
    tensors: renamed(fn, group, schedule, inRange),
    opNames: fn.opNames,
  };
}

/**
 * Call k of `fn` for the instance at `start`: its copies in and out, and the
 * callers' tensors of its outputs (mapped like the function's), set in `tensors`.
 */
export function callFunction(dg: DeviceGraph, fn: LoweredFunction, k: number, start: number, schedule: readonly Op[], graph: Graph, tensors: Map<string, BuildTensor>, category: (id: string) => TensorCategory): ProgramStep {
  const { length } = fn.group;
  const label = `${fn.name}/call${k}`;
  const body: ProgramStep[] = [];
  const inputs = instanceInputs(schedule, start, length);
  const copyIn = dg.addExchange(`${label}/copy in`, label, { call: true });
  inputs.forEach((id, e) => {
    const src = tensors.get(id);
    if (!src) throw new Error(`internal: input '${id}' of ${label} was not lowered before it`);
    dg.addCopy(copyIn, { tensor: src.id, begin: 0, end: src.size }, { tensor: fn.params[e].id, begin: 0, end: src.size });
  });
  body.push({ kind: 'exchange', exchange: copyIn }, ...fn.steps);
  if (fn.outputs.length > 0) {
    const copyOut = dg.addExchange(`${label}/copy out`, label, { call: true });
    fn.slots.escaping.forEach(([j, o], e) => {
      const op = schedule[start + j];
      const id = op.outputs[o];
      const from = fn.outputs[e];
      const info = graph.tensor(id).info;
      const out = dg.addTensor(id, info.dtype as DeviceDType, info.shape, category(id), op.name);
      dg.mapLike(out, from);
      tensors.set(id, out);
      dg.addCopy(copyOut, { tensor: from.id, begin: 0, end: from.size }, { tensor: out.id, begin: 0, end: out.size });
    });
    body.push({ kind: 'exchange', exchange: copyOut });
  }
  const ops: Record<string, string> = {};
  for (let j = 0; j < length; j++) ops[fn.opNames[j]] = schedule[start + j].name;
  return { kind: 'call', fn: fn.name, op: label, ops, body };
}
