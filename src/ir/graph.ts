/**
 * Graph: tensors by name and the ops that connect them, with a deterministic
 * schedule (topological, ties broken by the order ops were added, and every
 * reader of a tensor before an op that modifies it in place).
 */
import { UserError } from '../errors.js';
import type { Op } from './op.js';
import type { Tensor, TensorKind } from './tensor.js';
import type { TensorInfo } from './tensorinfo.js';

export class Graph {
  private readonly tensors = new Map<string, Tensor>();
  readonly ops: Op[] = [];
  private nextOpId = 0;
  /** A training graph (set by the session before lowering): ops like Dropout behave as in training. */
  training = false;
  /** run.seed, from which ops with randomness (Dropout) derive the seeds their nodes do not give. */
  randomSeed = 0;
  /**
   * Nothing trains the weights (an inference build): ops may read a variable's
   * initial value at compile time as they read a constant's (a Pow exponent or
   * a Clip bound stored as an initializer). The variable stays a variable
   * (writeWeights still reaches what the device reads).
   */
  frozenWeights = false;
  /**
   * Ops inside a control-flow region: a branch of an If or the body of a Loop
   * (src/ops/control-flow.ts), by owner and branch. The schedule puts them just
   * before their owner; the lowering gives their steps to it.
   */
  readonly regions = new Map<Op, { owner: Op; branch: number }>();

  hasTensor(id: string): boolean {
    return this.tensors.has(id);
  }

  tensor(id: string): Tensor {
    const t = this.tensors.get(id);
    if (!t) throw new Error(`internal: no tensor '${id}' in the graph`);
    return t;
  }

  allTensors(): Tensor[] {
    return [...this.tensors.values()];
  }

  addTensor(
    id: string,
    info: TensorInfo,
    kind: TensorKind,
    opts: { data?: Float32Array | Int32Array; trainable?: boolean; isGradient?: boolean } = {},
  ): Tensor {
    if (this.tensors.has(id)) throw new UserError(`tensor '${id}' is defined twice`);
    const t: Tensor = {
      id,
      info: { dtype: info.dtype, shape: [...info.shape] },
      kind,
      data: opts.data,
      trainable: opts.trainable ?? false,
      consumers: [],
      isGradient: opts.isGradient ?? false,
    };
    this.tensors.set(id, t);
    return t;
  }

  /** A tensor name not yet used, derived from `base`. */
  uniqueTensorId(base: string): string {
    if (!this.tensors.has(base)) return base;
    for (let i = 1; ; i++) if (!this.tensors.has(`${base}_${i}`)) return `${base}_${i}`;
  }

  /**
   * Add `op`, connect its inputs (which must exist) and create its outputs,
   * then run its setup() to infer the output infos.
   */
  addOp(op: Op, inputs: string[], outputs: string[], outputOpts: { isGradient?: boolean } = {}): Op {
    op.graph = this;
    op.id = this.nextOpId++;
    for (const [index, id] of inputs.entries()) {
      if (id === '') {
        op.inputs.push(''); // an omitted optional input (ONNX writes '')
        continue;
      }
      const t = this.tensors.get(id);
      if (!t) op.fail(`input ${index} '${id}' is not a tensor of the graph`);
      op.inputs.push(id);
      t.consumers.push({ op, index });
    }
    for (const id of outputs) {
      if (this.tensors.has(id)) op.fail(`output '${id}' is already produced elsewhere (tensor names must be unique)`);
      const t = this.addTensor(id, { dtype: 'float32', shape: [] }, 'activation', outputOpts);
      t.producer = op;
      op.outputs.push(id);
    }
    this.ops.push(op);
    op.setup();
    checkOutputInfos(op, this);
    return op;
  }

  /** Make `op` read tensor `id` at input `index` instead of what it read there (the IpuCopy pass). */
  rewire(op: Op, index: number, id: string): void {
    const old = this.tensor(op.inId(index));
    old.consumers = old.consumers.filter((c) => !(c.op === op && c.index === index));
    this.tensor(id).consumers.push({ op, index });
    op.inputs[index] = id;
  }

  /** Make `op` read tensor `id` as one more input (a control-flow op ordered after what its region writes for later). */
  appendInput(op: Op, id: string): void {
    this.tensor(id).consumers.push({ op, index: op.inputs.length });
    op.inputs.push(id);
  }

  /** Remove an op that nothing reads (used to prune dead grad ops). */
  removeOp(op: Op): void {
    for (const id of op.inputs.filter((i) => i !== '')) {
      const t = this.tensor(id);
      t.consumers = t.consumers.filter((c) => c.op !== op);
    }
    for (const id of op.outputs) this.tensors.delete(id);
    this.ops.splice(this.ops.indexOf(op), 1);
    this.regions.delete(op);
  }

  /** The values an op may read at compile time: a constant's, or a variable's when the weights are frozen; undefined otherwise. */
  compileTimeData(id: string): Float32Array | Int32Array | undefined {
    const t = this.tensor(id);
    return t.kind === 'constant' || (t.kind === 'variable' && this.frozenWeights) ? t.data : undefined;
  }

  /** Remove a tensor no op produces or reads (a constant folding left unread). */
  removeTensor(id: string): void {
    const t = this.tensor(id);
    if (t.producer || t.consumers.length > 0) throw new Error(`internal: tensor '${id}' is still connected`);
    this.tensors.delete(id);
  }

  /** Deterministic topological order. */
  schedule(): Op[] {
    const preds = new Map<Op, Set<Op>>();
    for (const op of this.ops) preds.set(op, new Set());
    for (const op of this.ops) {
      for (const id of op.inputs) {
        if (id === '') continue;
        const p = this.tensor(id).producer;
        if (p) preds.get(op)!.add(p);
      }
      // An op that writes a tensor in place runs after every other reader of it.
      for (const idx of op.modifiedInputs()) {
        for (const c of this.tensor(op.inId(idx)).consumers) if (c.op !== op) preds.get(op)!.add(c.op);
      }
    }
    const succs = new Map<Op, Op[]>();
    const indeg = new Map<Op, number>();
    for (const op of this.ops) {
      indeg.set(op, preds.get(op)!.size);
      for (const p of preds.get(op)!) {
        if (!succs.has(p)) succs.set(p, []);
        succs.get(p)!.push(op);
      }
    }
    // Ready ops kept sorted by id: the smallest id runs first.
    const ready = this.ops.filter((o) => indeg.get(o) === 0).sort((a, b) => a.id - b.id);
    const order: Op[] = [];
    while (ready.length > 0) {
      const op = ready.shift()!;
      order.push(op);
      for (const s of succs.get(op) ?? []) {
        const d = indeg.get(s)! - 1;
        indeg.set(s, d);
        if (d === 0) {
          const at = ready.findIndex((r) => r.id > s.id);
          ready.splice(at < 0 ? ready.length : at, 0, s);
        }
      }
    }
    if (order.length !== this.ops.length) {
      const stuck = this.ops.filter((o) => !order.includes(o)).map((o) => o.name);
      throw new UserError(`the graph has a cycle through ops: ${stuck.join(', ')}`);
    }
    return this.regions.size > 0 ? groupRegions(order, this.regions) : order;
  }
}

/** `order` with each region's ops moved to just before their owner (nested regions inside theirs), otherwise in order. */
function groupRegions(order: Op[], regions: ReadonlyMap<Op, { owner: Op }>): Op[] {
  const held = new Map<Op, Op[]>();
  const out: Op[] = [];
  const done = new Set<Op>();
  const emit = (op: Op): void => {
    for (const inner of held.get(op) ?? []) emit(inner);
    out.push(op);
    done.add(op);
  };
  for (const op of order) {
    const r = regions.get(op);
    if (!r) emit(op);
    else if (done.has(r.owner)) throw new Error(`internal: op '${op.name}' of the region of '${r.owner.name}' is scheduled after it`);
    else {
      const list = held.get(r.owner);
      if (list) list.push(op);
      else held.set(r.owner, [op]);
    }
  }
  if (out.length !== order.length) throw new Error('internal: a control-flow region lost ops in the schedule');
  return out;
}

/**
 * setup() must give every output a shape of non-negative integers: a shape
 * like [512.5, 256] would otherwise run the whole program and fail only when
 * the output is written (or silently size memory wrong).
 */
function checkOutputInfos(op: Op, graph: Graph): void {
  op.outputs.forEach((id, i) => {
    const shape: unknown = graph.tensor(id).info.shape;
    const ok = Array.isArray(shape) && shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0);
    if (!ok) {
      const shown = Array.isArray(shape) ? `[${shape.map((d) => (typeof d === 'string' ? JSON.stringify(d) : String(d))).join(', ')}]` : String(shape);
      op.fail(`setup() gave output ${i} '${id}' the shape ${shown}; every dimension must be a non-negative integer`);
    }
  });
}
