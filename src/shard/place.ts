/**
 * Sharding (PopART's virtual graphs, ipu-architecture.md §7): which IPU each
 * op runs on, and the IpuCopy ops that move tensors between them.
 *
 * - virtualGraphMode (model.virtualGraphMode): `off` (the default when no node
 *   names an IPU) lowers one program over every tile as before; `manual`
 *   takes each node's `ipu` (or `__ipu_number`) and requires one on every
 *   node; `auto` splits the forward ops, contiguous in schedule order, where
 *   the cumulative weight bytes pass i/IPUs of the total, as PopART's
 *   AutoVirtualGraph does.
 * - Ops the session adds go where PopART puts them: a grad op on its forward
 *   op's IPU; an op writing a tensor in place (an optimizer's update) on the
 *   IPU holding it; any other (the loss, a gradient sum) on the IPU of its
 *   first placed input, or of its first consumer when none has one.
 * - Streams, variables and constants live on the IPU of their first reader
 *   in schedule order; readers elsewhere get a copy.
 * - InterIpuCopy: one IpuCopy per (tensor, destination IPU), every consumer
 *   there reading the copy. A tensor written in place must be on the
 *   writer's IPU (PopART's check), else a UserError naming both.
 */
import type { RunConfig, VirtualGraphMode } from '../config/types.js';
import { UserError } from '../errors.js';
import { DTYPE_SIZE } from '../ir/dtype.js';
import type { Graph } from '../ir/graph.js';
import { isGradOp, type Op } from '../ir/op.js';
import { fmtOpid } from '../ir/opid.js';
import { nelms } from '../ir/tensorinfo.js';
import { IpuCopyOp } from './ipu-copy.js';

/** The config's virtualGraphMode: as given, else manual when some node names an IPU, else off. */
export function virtualGraphMode(config: RunConfig): VirtualGraphMode {
  return config.model.virtualGraphMode ?? (config.model.graph.nodes.some((n) => n.ipu !== undefined) ? 'manual' : 'off');
}

export function isSharded(config: RunConfig): boolean {
  return virtualGraphMode(config) !== 'off';
}

function where(op: Op): string {
  return `op '${op.name}' (${fmtOpid(op.opid)})`;
}

/**
 * Place the forward ops (the graph as built, before the loss and autodiff):
 * check the manual placement, or split by weight bytes (auto).
 */
export function placeForwardOps(graph: Graph, mode: VirtualGraphMode, ipus: number): void {
  if (mode === 'off') return;
  if (mode === 'manual') {
    for (const op of graph.ops) {
      const ipu = op.settings.ipu;
      if (ipu === undefined) {
        throw new UserError(
          `${where(op)} has no ipu: with virtualGraphMode manual every node names the IPU it runs on (ipu: 0 to ${ipus - 1}, or the ONNX attribute __ipu_number); or set model.virtualGraphMode: auto`,
          op.settings.loc,
        );
      }
      if (ipu >= ipus) throw new UserError(`${where(op)}: ipu ${ipu} is not an IPU of the device, which has ${ipus} (0 to ${ipus - 1})`, op.settings.loc);
    }
    return;
  }
  // auto: weight bytes per op (a variable counted at its first reader), split contiguous in schedule order.
  const order = graph.schedule();
  const counted = new Set<string>();
  const bytes = order.map((op) => {
    let b = 0;
    for (const id of op.inputs) {
      if (id === '' || counted.has(id)) continue;
      const t = graph.tensor(id);
      if (t.kind !== 'variable') continue;
      counted.add(id);
      b += nelms(t.info.shape) * DTYPE_SIZE[t.info.dtype];
    }
    return b;
  });
  const total = bytes.reduce((a, b) => a + b, 0);
  let before = 0;
  let ipu = 0;
  order.forEach((op, k) => {
    // IPU i starts after the op whose weights take the cumulative bytes to i/IPUs of the total.
    while (ipu < ipus - 1 && total > 0 && before * ipus >= (ipu + 1) * total) ipu++;
    op.settings.ipu = ipu;
    before += bytes[k];
  });
}

/** Place the ops the session added (loss, grad ops, optimizer), then insert the IpuCopy ops. */
export function shardGraph(graph: Graph, ipus: number): void {
  const home = new Map<string, number>();
  const ipuOf = (id: string): number | undefined => {
    const t = graph.tensor(id);
    return t.producer ? t.producer.settings.ipu : home.get(id);
  };
  const settle = (op: Op, ipu: number) => {
    op.settings.ipu = ipu;
    for (const id of op.inputs) if (id !== '' && !graph.tensor(id).producer && !home.has(id)) home.set(id, ipu);
  };
  const deferred: Op[] = [];
  for (const op of graph.schedule()) {
    let ipu = op.settings.ipu;
    if (ipu === undefined && isGradOp(op)) ipu = op.fwdOp.settings.ipu;
    if (ipu === undefined) for (const i of op.modifiedInputs()) ipu ??= ipuOf(op.inId(i));
    if (ipu === undefined) for (const id of op.inputs) if (id !== '') ipu ??= ipuOf(id);
    if (ipu === undefined) deferred.push(op);
    else settle(op, ipu);
  }
  // Ops reading nothing placed (a loss gradient's seed): beside their first reader.
  for (const op of deferred.reverse()) {
    let ipu: number | undefined;
    for (const id of op.outputs) for (const c of graph.tensor(id).consumers) ipu ??= c.op.settings.ipu;
    settle(op, ipu ?? 0);
  }
  for (const op of graph.ops) {
    const ipu = op.settings.ipu!;
    if (ipu >= ipus) throw new UserError(`${where(op)}: ipu ${ipu} is not an IPU of the device, which has ${ipus} (0 to ${ipus - 1})`, op.settings.loc);
  }

  // InterIpuCopy: one copy per (tensor, destination IPU).
  for (const t of graph.allTensors()) {
    const from = ipuOf(t.id);
    if (from === undefined) continue;
    const copies = new Map<number, string>();
    for (const c of [...t.consumers]) {
      const to = c.op.settings.ipu!;
      if (to === from) continue;
      if (c.op.modifiedInputs().includes(c.index)) {
        throw new UserError(
          `${where(c.op)} on IPU ${to} writes '${t.id}' in place, but '${t.id}' lives on IPU ${from}: an op that modifies a tensor must run on the IPU holding it (give it ipu ${from})`,
          c.op.settings.loc,
        );
      }
      let id = copies.get(to);
      if (id === undefined) {
        id = graph.uniqueTensorId(`${t.id}_c${to}`);
        const copy = new IpuCopyOp({ name: `IpuCopy(${t.id} to IPU ${to})`, ipu: to, loc: c.op.settings.loc }, from);
        graph.addOp(copy, [t.id], [id], { isGradient: t.isGradient });
        copies.set(to, id);
      }
      graph.rewire(c.op, c.index, id);
    }
  }
}

/** Ops per IPU of a placed graph (IpuCopies counted on their destination). */
export function opsPerIpu(ops: readonly Op[], ipus: number): number[] {
  const n = new Array<number>(ipus).fill(0);
  for (const op of ops) if (op.settings.ipu !== undefined && op.settings.ipu < ipus) n[op.settings.ipu]++;
  return n;
}
