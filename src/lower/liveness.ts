/**
 * Liveness of device tensors over the 'batch' control program (the program
 * that runs once per batch), for memory sharing (src/lower/memory.ts).
 *
 * The batch program is flattened into leaf steps 0, 1, 2, ... (compute sets,
 * exchanges, stream copies; a repeat's body is numbered once). Then:
 *
 * - variables, constants and streams (optimizer state included) are always
 *   live, unless their home is a remote buffer in Streaming Memory (then, as
 *   a temporary, from the remote load that fills them to their last use) or
 *   their shard (a sharded weight: from the all-gather to its last use); so is any tensor another control program touches (weightsFromHost,
 *   a test's own program), and any tensor the batch program never touches
 *   (nothing says when it could be dropped);
 * - every other tensor (activation, gradient, temporary, exchange buffer) is
 *   live from the first step that writes it to the last step that reads or
 *   writes it. An anchor is read by its stream copy at the end of the batch;
 * - a tensor whose reads are not all preceded by writes of every element
 *   (it carries data from a previous batch or relies on memory left as it
 *   was) is always live;
 * - a tensor live both inside and outside a repeat's body is live through
 *   the whole body (the body runs again after its last use inside);
 * - a call's body (copies in, the outlined function's steps, copies out) is
 *   numbered at each call: the function's tensors live from its first call
 *   to its last, shared by every call;
 * - a switch's branches are numbered one after the other, the true branch
 *   first: a tensor live across the switch spans both, so neither branch's
 *   tensors share its memory (both branches are allocated, as in Poplar).
 *   The switch reads its condition before either branch runs: counted as a
 *   read at the switch's first leaf, so nothing computed between the
 *   condition and the switch takes its memory. A repeatWhile is a repeat
 *   whose condition is read so at the start of each pass.
 * - a pipeline is a repeat whose body is its stages in stage order, then its
 *   copies; the tensors live across stages or cycles (stash buffers, IpuCopy
 *   sources and destinations) are marked alwaysLive by the lowering.
 *
 * Tensors whose lifetimes do not overlap may share memory on a tile.
 */
import { homeOffTiles, innerSteps, type ProgramStep, type TensorCategory } from '../../sim/program.js';
import { checkHostHeap } from '../util/host-heap.js';

/** Steps [from, to] of the flattened batch program (inclusive), or always live, or no memory at all (a dropped tensor). */
export type Lifetime = { from: number; to: number } | 'always' | 'none';

export interface LivenessTensor {
  id: number;
  size: number;
  category: TensorCategory;
  dropped?: boolean;
  /** Live throughout whatever the program order says (a pipeline's stash buffers and inter-stage copies). */
  alwaysLive?: boolean;
  /** Its home is a remote buffer (Streaming Memory): on tiles only from a remote load to its last use, whatever its category. */
  remote?: boolean;
  /** A sharded weight's whole tensor (its home is its shard): on tiles only from an all-gather to its last use. */
  gatheredFrom?: unknown;
}

/** Elements [begin, end) of a tensor read and/or written by one step. */
export interface Access {
  tensor: number;
  begin: number;
  end: number;
  read: boolean;
  write: boolean;
}

export type LeafStep = Exclude<ProgramStep, { kind: 'repeat' } | { kind: 'switch' } | { kind: 'repeatWhile' } | { kind: 'pipeline' } | { kind: 'call' }>;

export interface Liveness {
  lifetimes: Lifetime[];
  /** The flattened batch program's leaf steps, in order. */
  steps: LeafStep[];
  /** The leaves [from, to] of each call of an outlined function, in order. */
  calls: CallSpan[];
}

export interface CallSpan {
  fn: string;
  from: number;
  to: number;
}

export const ALWAYS_LIVE_CATEGORIES: readonly TensorCategory[] = ['variable', 'constant', 'stream'];

export const BATCH_PROGRAM = 'batch';

/** Leaf steps of `steps` in order, and the [from, to] span of every non-empty repeat body. */
export function flatten(steps: readonly ProgramStep[]): { leaves: LeafStep[]; repeats: { from: number; to: number }[]; switches: { at: number; condition: number }[]; calls: CallSpan[] } {
  const leaves: LeafStep[] = [];
  const calls: CallSpan[] = [];
  const repeats: { from: number; to: number }[] = [];
  const switches: { at: number; condition: number }[] = [];
  const walk = (ss: readonly ProgramStep[]) => {
    for (const s of ss) {
      if (s.kind === 'repeat' || s.kind === 'repeatWhile') {
        const from = leaves.length;
        if (s.kind === 'repeatWhile') switches.push({ at: from, condition: s.condition });
        walk(s.body);
        if (leaves.length > from) repeats.push({ from, to: leaves.length - 1 });
      } else if (s.kind === 'pipeline') {
        // A repeat whose body is every stage in stage order, then the copies (the engine's order
        // differs: the tensors crossing stages or cycles are alwaysLive, src/lower/pipeline.ts).
        const from = leaves.length;
        for (const list of innerSteps(s)) walk(list);
        if (leaves.length > from) repeats.push({ from, to: leaves.length - 1 });
      } else if (s.kind === 'call') {
        const from = leaves.length;
        walk(s.body);
        calls.push({ fn: s.fn, from, to: leaves.length - 1 });
      } else if (s.kind === 'switch') {
        switches.push({ at: leaves.length, condition: s.condition });
        walk(s.whenTrue);
        walk(s.whenFalse);
      } else leaves.push(s);
    }
  };
  walk(steps);
  return { leaves, repeats, switches, calls };
}

/** Element ranges of a tensor of at most PACK elements pack into one double (PACK squared is below 2^53). */
const PACK = 2 ** 26;

export function computeLiveness(
  tensors: readonly LivenessTensor[],
  programs: Readonly<Record<string, readonly ProgramStep[]>>,
  accesses: (step: LeafStep, visit: (a: Access) => void) => void,
): Liveness {
  const touchedElsewhere = new Set<number>();
  for (const [name, steps] of Object.entries(programs)) {
    if (name === BATCH_PROGRAM) continue;
    for (const s of flatten(steps).leaves) accesses(s, (a) => touchedElsewhere.add(a.tensor));
  }
  const { leaves, repeats, switches, calls } = flatten(programs[BATCH_PROGRAM] ?? []);
  const n = tensors.length;
  const firstWrite = new Array<number>(n).fill(Infinity);
  const firstRead = new Array<number>(n).fill(Infinity);
  const last = new Array<number>(n).fill(-1);
  // Writes before the first read, in growable columns (tensor, step, begin, end): one object per
  // write would be millions (every exchange copy writes its destination).
  let cols = [new Int32Array(1024), new Int32Array(1024), new Float64Array(1024), new Float64Array(1024)] as const;
  let wn = 0;
  // A leaf that runs more than once (an outlined function's steps, at each call): the tensors it
  // touches, kept after its first visit. A later visit only moves their last use when each has been
  // read before (then its writes decide nothing more): a function's vertices are not walked per call.
  const seen = new Set<LeafStep>();
  const repeated = new Map<LeafStep, Int32Array | undefined>();
  for (const s of leaves) {
    if (seen.has(s)) repeated.set(s, undefined);
    else seen.add(s);
  }
  leaves.forEach((s, i) => {
    checkHostHeap('finding tensor lifetimes');
    const touched = repeated.get(s);
    if (touched) {
      let again = true;
      for (let k = 0; k < touched.length && again; k++) again = firstRead[touched[k]] !== Infinity;
      if (again) {
        for (let k = 0; k < touched.length; k++) last[touched[k]] = i;
        return;
      }
    }
    const collect = repeated.has(s) && !touched ? new Set<number>() : undefined;
    accesses(s, (a) => {
      const t = a.tensor;
      collect?.add(t);
      if (a.write) {
        if (i < firstWrite[t]) firstWrite[t] = i;
        // Only writes before the first read decide whether reads see this batch's data.
        if (firstRead[t] === Infinity) {
          // A run continuing the last recorded write (an exchange fills its buffer copy after copy) extends it:
          // the same coverage in one entry instead of one per copy (tens of millions for a whole model).
          if (wn > 0 && cols[0][wn - 1] === t && cols[1][wn - 1] === i && cols[3][wn - 1] === a.begin) cols[3][wn - 1] = a.end;
          else {
            if (wn === cols[0].length) {
              const grow = <A extends Int32Array | Float64Array>(c: A): A => {
                const g = new (c.constructor as new (n: number) => A)(c.length * 2);
                g.set(c);
                return g;
              };
              cols = [grow(cols[0]), grow(cols[1]), grow(cols[2]), grow(cols[3])] as const;
            }
            cols[0][wn] = t;
            cols[1][wn] = i;
            cols[2][wn] = a.begin;
            cols[3][wn] = a.end;
            wn++;
          }
        }
      }
      if (a.read && i < firstRead[t]) firstRead[t] = i;
      last[t] = i;
    });
    if (collect) repeated.set(s, Int32Array.from(collect));
  });
  // A switch reads its condition as it starts (at its first leaf; the last leaf when its branches are empty and it ends the program).
  for (const s of switches) {
    const at = Math.min(s.at, leaves.length - 1);
    if (at < 0) continue;
    if (at < firstRead[s.condition]) firstRead[s.condition] = at;
    if (at > last[s.condition]) last[s.condition] = at;
  }
  // Group the writes by tensor (a counting sort).
  const start = new Int32Array(n + 1);
  // The columns as they stand once written (hoisted: `cols` is reassigned as it grows, so every read went through it).
  const [wTensor, wStep, wBegin, wEnd] = cols;
  for (let k = 0; k < wn; k++) start[wTensor[k] + 1]++;
  for (let t = 0; t < n; t++) start[t + 1] += start[t];
  const fill = start.slice(0, n);
  const byTensor = new Int32Array(wn);
  for (let k = 0; k < wn; k++) byTensor[fill[wTensor[k]]++] = k;
  // Whether the writes to t before `step` cover all its elements: the ranges sorted by begin in
  // reused scratch columns (one object per write would be millions).
  let begins = new Float64Array(64);
  let ends = new Float64Array(64);
  let order = new Int32Array(64);
  let keys = new Float64Array(64);
  const coveredBefore = (t: number, step: number, size: number): boolean => {
    const n = start[t + 1] - start[t];
    if (n > order.length) {
      begins = new Float64Array(n);
      ends = new Float64Array(n);
      order = new Int32Array(n);
    }
    let m = 0;
    for (let j = start[t]; j < start[t + 1]; j++) {
      const k = byTensor[j];
      if (wStep[k] >= step) continue;
      begins[m] = wBegin[k];
      ends[m] = wEnd[k];
      order[m] = m;
      m++;
    }
    // Writes mostly come in element order (an exchange fills its buffer front to back): sort only when they do not.
    let sorted = true;
    for (let i = 1; i < m && sorted; i++) sorted = begins[i - 1] <= begins[i];
    // Each range within the tensor as one exact double, begin * PACK + end, sorted natively (a comparator
    // per pair was slow); ties in begin in any order reach as far. A range past the end (Infinity: the whole tensor) is sorted as before.
    let packable = !sorted && size <= PACK;
    for (let i = 0; i < m && packable; i++) packable = ends[i] <= size;
    if (packable) {
      if (keys.length < m) keys = new Float64Array(order.length);
      for (let i = 0; i < m; i++) keys[i] = begins[i] * PACK + ends[i];
      const k = keys.subarray(0, m).sort();
      for (let i = 0; i < m; i++) {
        begins[i] = Math.floor(k[i] / PACK);
        ends[i] = k[i] - begins[i] * PACK;
      }
      sorted = true;
    }
    const idx = sorted ? order.subarray(0, m) : Array.from(order.subarray(0, m)).sort((a, b) => begins[a] - begins[b]);
    let reach = 0;
    for (let k = 0; k < m; k++) {
      const i = idx[k];
      if (begins[i] > reach) return false;
      if (ends[i] > reach) reach = ends[i];
    }
    return reach >= size;
  };

  const lifetimes: Lifetime[] = tensors.map((t) => {
    if (t.dropped) return 'none';
    if ((ALWAYS_LIVE_CATEGORIES.includes(t.category) && !homeOffTiles(t)) || t.alwaysLive || touchedElsewhere.has(t.id)) return 'always';
    if (last[t.id] < 0 || firstWrite[t.id] === Infinity) return 'always';
    if (firstRead[t.id] !== Infinity && !coveredBefore(t.id, firstRead[t.id], t.size)) return 'always';
    return { from: firstWrite[t.id], to: last[t.id] };
  });

  // Inner repeats first: a lifetime crossing a body's boundary covers the whole body.
  const spans = [...repeats].sort((a, b) => a.to - a.from - (b.to - b.from) || a.from - b.from);
  for (const [i, l] of lifetimes.entries()) {
    if (typeof l !== 'object') continue;
    let { from, to } = l;
    for (const r of spans) {
      const intersects = from <= r.to && to >= r.from;
      const inside = from >= r.from && to <= r.to;
      if (intersects && !inside) {
        from = Math.min(from, r.from);
        to = Math.max(to, r.to);
      }
    }
    if (from !== l.from || to !== l.to) lifetimes[i] = { from, to };
  }
  return { lifetimes, steps: leaves, calls };
}
