/**
 * Bytes live over the batch program, step by step, for the report's liveness
 * view: always-live tensors (variables, constants, streams) plus every other
 * tensor from the first step that touches it to the last.
 */
import { DTYPE_BYTES, homeOffTiles, innerSteps, type DeviceProgram, type ProgramStep } from '../../sim/program.js';
import { collectiveName } from '../../sim/collectives.js';
import { remoteName } from '../../sim/streaming-memory.js';
import { unstrided } from '../../sim/copies.js';
import { intervalElements } from '../../sim/intervals.js';

export interface LivenessRow {
  step: number;
  /** What runs at this step: a compute set, exchange or stream name. */
  name: string;
  bytes: number;
}

const ALWAYS_LIVE = new Set(['variable', 'constant', 'stream']);

export function livenessCurve(p: DeviceProgram): LivenessRow[] {
  const steps: ProgramStep[] = [];
  const flatten = (list: ProgramStep[]) => {
    for (const s of list) {
      if (s.kind === 'repeat' || s.kind === 'repeatWhile' || s.kind === 'switch' || s.kind === 'pipeline' || s.kind === 'call') for (const l of innerSteps(s)) flatten(l);
      else steps.push(s);
    }
  };
  flatten(p.programs.batch ?? []);
  const bytesOf = p.tensors.map((t) => intervalElements(t.intervals) * DTYPE_BYTES[t.dtype]);
  const first = new Array<number>(p.tensors.length).fill(Infinity);
  const last = new Array<number>(p.tensors.length).fill(-Infinity);
  const touch = (id: number | undefined, s: number) => {
    if (id === undefined) return;
    first[id] = Math.min(first[id], s);
    last[id] = Math.max(last[id], s);
  };
  // A region of a vertex points into some interval; find its tensor by the interval containing it.
  // Tensors that share memory by liveness overlap: the first in tensor order is taken. Each tile's
  // intervals are painted into disjoint segments once, then found by binary search (programs have
  // millions of copies and regions).
  const byTile = new Map<number, { offset: number; end: number; id: number }[]>();
  for (const t of p.tensors) {
    const iv = t.intervals;
    for (let i = 0; i < iv.count; i++) {
      const list = byTile.get(iv.tile[i]) ?? [];
      list.push({ offset: iv.offset[i], end: iv.offset[i] + (iv.end[i] - iv.begin[i]) * DTYPE_BYTES[t.dtype], id: t.id });
      byTile.set(iv.tile[i], list);
    }
  }
  const segments = new Map<number, { start: Float64Array; id: Int32Array }>();
  for (const [tile, list] of byTile) segments.set(tile, paint(list));
  const find = (tile: number, offset: number): number | undefined => {
    const seg = segments.get(tile);
    if (!seg) return undefined;
    let lo = 0;
    let hi = seg.start.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seg.start[mid] <= offset) lo = mid + 1;
      else hi = mid;
    }
    const id = lo > 0 ? seg.id[lo - 1] : -1;
    return id < 0 ? undefined : id;
  };
  steps.forEach((s, i) => {
    if (s.kind === 'execute') {
      const t = p.computeSets[s.computeSet].vertices;
      for (let v = 0; v < t.count; v++) {
        for (let r = t.regionStart[t.fieldStart[v]]; r < t.regionStart[t.fieldStart[v + 1]]; r++) touch(find(t.tile[v], t.regionOffset[r]), i);
      }
    } else if (s.kind === 'exchange') {
      const c = unstrided(p.exchanges[s.exchange].copies);
      for (let k = 0; k < c.count; k++) {
        touch(find(c.srcTile[k], c.srcOffset[k]), i);
        touch(find(c.dstTile[k], c.dstOffset[k]), i);
      }
    } else if (s.kind === 'streamCopy') {
      // A remote stream moves the tensor's remote buffer, not its tile memory.
      if (!p.streams[s.stream].remote) touch(p.streams[s.stream].tensor, i);
    } else if (s.kind === 'remoteLoad' || s.kind === 'remoteStore') {
      touch(s.tensor, i);
    } else if (s.kind === 'reduceScatter' || s.kind === 'allGather' || s.kind === 'replicaShard') {
      touch(s.tensor, i);
      touch(s.shard, i);
    }
  });
  let always = 0;
  const delta = new Array<number>(steps.length + 1).fill(0);
  p.tensors.forEach((t, id) => {
    // A tensor whose home is Streaming Memory or its shard is on tiles only around its uses, whatever its category.
    if (ALWAYS_LIVE.has(t.category) && !homeOffTiles(t)) always += bytesOf[id];
    else if (first[id] <= last[id]) {
      delta[first[id]] += bytesOf[id];
      delta[last[id] + 1] -= bytesOf[id];
    }
  });
  const rows: LivenessRow[] = [];
  let live = always;
  steps.forEach((s, i) => {
    live += delta[i];
    rows.push({ step: i, name: leafName(p, s), bytes: live });
  });
  return rows;
}

/** A leaf step's name, as the program view and profile name it. */
function leafName(p: DeviceProgram, s: ProgramStep): string {
  switch (s.kind) {
    case 'execute':
      return p.computeSets[s.computeSet].name;
    case 'exchange':
      return p.exchanges[s.exchange].name;
    case 'streamCopy':
      return p.streams[s.stream].name;
    case 'allReduce':
    case 'reduceScatter':
    case 'allGather':
    case 'replicaShard':
      return collectiveName(s.kind, p.tensors[s.tensor].name);
    case 'remoteLoad':
    case 'remoteStore':
      return remoteName(s.kind, p.tensors[s.tensor].name);
    default:
      return '';
  }
}

/**
 * Disjoint byte segments of one tile, each labelled with the first interval (in list order) that
 * covers it, or -1: a sweep over the boundaries with a min-heap of the covering intervals' order.
 */
function paint(list: readonly { offset: number; end: number; id: number }[]): { start: Float64Array; id: Int32Array } {
  const order = list.map((_, i) => i).sort((a, b) => list[a].offset - list[b].offset || a - b);
  const bounds = [...new Set(list.flatMap((r) => [r.offset, r.end]))].sort((a, b) => a - b);
  const heap: number[] = [];
  const up = (i: number) => {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p] <= heap[i]) break;
      [heap[p], heap[i]] = [heap[i], heap[p]];
      i = p;
    }
  };
  const pop = () => {
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l] < heap[m]) m = l;
      if (r < heap.length && heap[r] < heap[m]) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  };
  const start = new Float64Array(bounds.length);
  const id = new Int32Array(bounds.length);
  let next = 0;
  bounds.forEach((b, k) => {
    while (next < order.length && list[order[next]].offset <= b) {
      heap.push(order[next++]);
      up(heap.length - 1);
    }
    while (heap.length > 0 && list[heap[0]].end <= b) pop();
    start[k] = b;
    id[k] = heap.length > 0 ? list[heap[0]].id : -1;
  });
  return { start, id };
}
