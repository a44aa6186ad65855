/**
 * Outlining (PopART's enableOutlining, Poplar's functions): repeated runs of
 * the schedule — the layers of a transformer, same-shaped blocks of a ResNet
 * — are found here, so the lowering builds one instance once as a function
 * and calls it at each occurrence (src/lower/lower.ts).
 *
 * Two runs are the same when, op by op, they have the same identifier,
 * attributes and other fields, input and output dtypes and shapes, and the
 * same dataflow: each input either comes from the same op (by position in
 * the run) and output of the run, or from outside it, the k-th distinct
 * outside tensor in both. Only adjacent repeats (tandem repeats of the
 * schedule) are found: the layers of a model are scheduled one after the
 * other. The repeat that saves the most ops is taken first, then the rest of
 * the schedule is searched again.
 *
 * Left out: ops that draw random numbers (their seed derives from their
 * name, each instance its own), ops that write an input in place (the
 * optimizer's updates: a call writes copies), control flow and the ops of
 * its branches and bodies.
 */
import type { Graph } from '../ir/graph.js';
import { isGradOp, Op } from '../ir/op.js';
import { fmtOpid } from '../ir/opid.js';

/** One outlined sequence: instance k is schedule[starts[k], starts[k] + length). */
export interface OutlineGroup {
  starts: number[];
  length: number;
}

export interface OutlineOptions {
  /** The fewest ops a sequence must have to be outlined. */
  minOps: number;
  /**
   * Where an op runs, when that is more than one place (an IPU, a pipeline
   * stage, the outer fragment): an instance never spans two, so a call runs
   * in one. Undefined: never outlined (an IpuCopy, a Restore). Ops of
   * different places may be alike (the same layer on another IPU): their
   * groups are found apart, and are alike when their ops and dataflow are
   * (findOutline).
   */
  segment?: (op: Op) => string | undefined;
}

/** An op that draws random numbers: it has a seed, derived from its name when not given (Dropout, the Random ops, Multinomial). */
const drawsRandom = (op: Op): boolean => 'seed' in op;

/** Fields an op's identity does not include (its place in the graph, its name). */
const NOT_STRUCTURE = new Set(['graph', 'id', 'inputs', 'outputs', 'settings', 'fwdOp', 'opid']);

/** JSON would write NaN and both infinities as null: ops differing only there are not alike. */
const nonFinite = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? `#${v}` : v);

/** An op's structure, without its dataflow: identifier, attributes and fields, tensor infos; undefined when it must not be outlined. */
function opKey(op: Op, graph: Graph, owners: ReadonlySet<Op>, inPlace = false): string | undefined {
  if (drawsRandom(op) || (!inPlace && op.modifiedInputs().length > 0)) return undefined;
  if (graph.regions.has(op) || owners.has(op)) return undefined;
  if (isGradOp(op) && drawsRandom(op.fwdOp)) return undefined;
  const info = (id: string) => (id === '' ? '-' : `${graph.tensor(id).info.dtype}[${graph.tensor(id).info.shape.join(',')}]`);
  const fields: Record<string, unknown> = {};
  for (const k of Object.keys(op)) if (!NOT_STRUCTURE.has(k)) fields[k] = (op as unknown as Record<string, unknown>)[k];
  let own: string;
  try {
    // Contents of maps and sets; another op referred to by its identifier and attributes (its name differs per instance).
    own = JSON.stringify(fields, (k, v: unknown) => {
      if (typeof v === 'number') return nonFinite(k, v);
      if (v instanceof Map) return [...v.entries()];
      if (v instanceof Set) return [...v.values()];
      if (v instanceof Op) return `op ${fmtOpid(v.opid)} ${JSON.stringify(v.attributes(), nonFinite)}`;
      // Not the whole graph (a field holding something of it): such an op is compared without it.
      if (typeof v === 'object' && v !== null && 'graph' in v) return '#';
      return v;
    });
  } catch {
    return undefined; // a field that cannot be written out: not comparable
  }
  // Not its IPU: a segment (OutlineOptions.segment) holds one IPU's ops, and the same layer on two IPUs is alike.
  own = `${fmtOpid(op.opid)}|${JSON.stringify(op.attributes(), nonFinite)}|${own}|${op.inputs.map(info).join(';')}>${op.outputs.map(info).join(';')}|${op.settings.executionContext ?? ''}`;
  // A grad op lowers by its forward op's attributes too.
  if (isGradOp(op)) {
    const fwd = op.fwdOp;
    return `${own}|fwd:${fmtOpid(fwd.opid)}|${JSON.stringify(fwd.attributes(), nonFinite)}|${fwd.inputs.map(info).join(';')}>${fwd.outputs.map(info).join(';')}`;
  }
  return own;
}

/** The ops of a schedule as small integers (equal structure, equal id; negative never matches) and their dataflow per stretch. */
interface Encoded {
  ids: Int32Array;
  dataflow: (start: number, length: number) => string;
}

function encode(schedule: readonly Op[], graph: Graph, opts: OutlineOptions): Encoded {
  const n = schedule.length;
  const ids = new Int32Array(n);
  const keyIds = new Map<string, number>();
  const owners = new Set([...graph.regions.values()].map((r) => r.owner));
  schedule.forEach((op, i) => {
    const k = opts.segment && opts.segment(op) === undefined ? undefined : opKey(op, graph, owners);
    if (k === undefined) ids[i] = -1 - i;
    else {
      let id = keyIds.get(k);
      if (id === undefined) keyIds.set(k, (id = keyIds.size));
      ids[i] = id;
    }
  });
  const producer = new Map<string, { at: number; out: number }>();
  schedule.forEach((op, i) => op.outputs.forEach((t, out) => producer.set(t, { at: i, out })));
  const dataflow = (start: number, length: number): string => {
    const outside = new Map<string, number>();
    const parts: string[] = [];
    for (let j = start; j < start + length; j++) {
      for (const t of schedule[j].inputs) {
        if (t === '') parts.push('-');
        else {
          const p = producer.get(t);
          if (p && p.at >= start && p.at < start + length) parts.push(`${p.at - start}.${p.out}`);
          else {
            let e = outside.get(t);
            if (e === undefined) outside.set(t, (e = outside.size));
            parts.push(`e${e}`);
          }
        }
      }
      parts.push('|');
    }
    return parts.join(',');
  };
  return { ids, dataflow };
}

/**
 * An op's structure (as outlining compares ops), for lowering one op once and
 * cloning it for its likes (src/lower/lower.ts): ops that write an input in
 * place count too, since their clone writes the like's own input.
 */
export function structureKey(op: Op, graph: Graph): string | undefined {
  return opKey(op, graph, new Set(), true);
}

/** Find the outlined groups of `schedule`, disjoint, each instance of at least minOps ops and within one segment. */
export function findRepeats(schedule: readonly Op[], graph: Graph, opts: OutlineOptions): OutlineGroup[] {
  return findOutline(schedule, graph, opts).groups;
}

/**
 * The outlined groups, and which are alike across segments (the same layers
 * on several IPUs, or in a forward stage and its recomputation): lists of
 * indexes into `groups`, each list's groups with the same ops and dataflow,
 * instance for instance.
 */
export function findOutline(schedule: readonly Op[], graph: Graph, opts: OutlineOptions): { groups: OutlineGroup[]; alike: number[][] } {
  const enc = encode(schedule, graph, opts);
  const groups: OutlineGroup[] = [];
  const known = opts.segment ? new Set<string>() : undefined;
  // Each stretch of the schedule in one segment is searched alone.
  for (let lo = 0; lo < schedule.length; ) {
    const seg = opts.segment?.(schedule[lo]);
    let hi = lo + 1;
    while (hi < schedule.length && (!opts.segment || opts.segment(schedule[hi]) === seg)) hi++;
    if (seg !== undefined || !opts.segment) groups.push(...repeatsIn(enc, lo, hi, opts.minOps, known));
    lo = hi;
  }
  groups.sort((a, b) => a.starts[0] - b.starts[0]);
  const byKey = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const k = `${g.length}|${Array.from(enc.ids.subarray(g.starts[0], g.starts[0] + g.length)).join(',')}|${enc.dataflow(g.starts[0], g.length)}`;
    const list = byKey.get(k);
    if (list) list.push(i);
    else byKey.set(k, [i]);
  });
  return { groups, alike: [...byKey.values()] };
}

/** The tandem repeats of schedule[lo, hi). */
function repeatsIn({ ids, dataflow }: Encoded, lo: number, hi: number, minOps: number, known?: Set<string>): OutlineGroup[] {
  const n = hi - lo;
  const covered = new Uint8Array(hi);
  const groups: OutlineGroup[] = [];
  for (;;) {
    // The best tandem repeat over uncovered ops: period p, instances starting at s, s + p, ...
    let best: { start: number; period: number; count: number; span: number } | undefined;
    for (let p = Math.max(1, minOps); 2 * p <= n; p++) {
      let run = 0;
      for (let i = hi - p - 1; i >= lo; i--) {
        // run: how many of ids[i..] equal ids[i + p..], all uncovered
        run = ids[i] === ids[i + p] && ids[i] >= 0 && !covered[i] && !covered[i + p] ? run + 1 : 0;
        if (run >= p && (i === lo || !(ids[i - 1] === ids[i - 1 + p] && ids[i - 1] >= 0 && !covered[i - 1] && !covered[i - 1 + p]))) {
          const count = Math.floor(run / p) + 1;
          if (!best || (count - 1) * p > (best.count - 1) * best.period) best = { start: i, period: p, count, span: run + p };
        }
      }
    }
    if (!best) break;
    if (known) {
      // Of the rotations of the period that keep as many instances, one whose ops are those of a group
      // found before (the same layers in another segment): then they start at the same op, and are alike.
      for (let r = 1; r < best.period && Math.floor((best.span - r) / best.period) === best.count; r++) {
        if (known.has(Array.from(ids.subarray(best.start + r, best.start + r + best.period)).join(','))) {
          best.start += r;
          break;
        }
      }
    }
    // The same dataflow as the first instance: the longest stretch from it that agrees.
    const first = dataflow(best.start, best.period);
    let count = 1;
    while (count < best.count && dataflow(best.start + count * best.period, best.period) === first) count++;
    const starts = Array.from({ length: count }, (_, k) => best.start + k * best.period);
    // Covered either way: a stretch whose dataflow differs is not searched again at this start.
    for (let i = best.start; i < best.start + (count > 1 ? count : 1) * best.period; i++) covered[i] = 1;
    if (count > 1) {
      groups.push({ starts, length: best.period });
      known?.add(Array.from(ids.subarray(best.start, best.start + best.period)).join(','));
    }
  }
  return groups;
}
