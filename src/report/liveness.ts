/**
 * Bytes live over the batch program, step by step, for the report's liveness
 * view: always-live tensors (variables, constants, streams) plus every other
 * tensor from the first step that touches it to the last.
 */
import { DTYPE_BYTES, type DeviceProgram, type ProgramStep } from '../../sim/program.js';

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
      if (s.kind === 'repeat') flatten(s.body);
      else steps.push(s);
    }
  };
  flatten(p.programs.batch ?? []);
  const bytesOf = p.tensors.map((t) => t.intervals.reduce((a, i) => a + (i.end - i.begin), 0) * DTYPE_BYTES[t.dtype]);
  const first = new Array<number>(p.tensors.length).fill(Infinity);
  const last = new Array<number>(p.tensors.length).fill(-Infinity);
  const touch = (id: number | undefined, s: number) => {
    if (id === undefined) return;
    first[id] = Math.min(first[id], s);
    last[id] = Math.max(last[id], s);
  };
  // A region of a vertex points into some interval; find its tensor by the interval containing it.
  const byTile = new Map<number, { offset: number; end: number; id: number }[]>();
  for (const t of p.tensors) {
    for (const iv of t.intervals) {
      const list = byTile.get(iv.tile) ?? [];
      list.push({ offset: iv.offset, end: iv.offset + (iv.end - iv.begin) * DTYPE_BYTES[t.dtype], id: t.id });
      byTile.set(iv.tile, list);
    }
  }
  const find = (tile: number, offset: number) => byTile.get(tile)?.find((r) => r.offset <= offset && offset < r.end)?.id;
  steps.forEach((s, i) => {
    if (s.kind === 'execute') {
      for (const v of p.computeSets[s.computeSet].vertices) {
        for (const f of Object.values(v.fields)) for (const r of Array.isArray(f) ? f : [f]) touch(find(v.tile, r.offset), i);
      }
    } else if (s.kind === 'exchange') {
      const c = p.exchanges[s.exchange].copies;
      for (let k = 0; k < c.count; k++) {
        touch(find(c.srcTile[k], c.srcOffset[k]), i);
        touch(find(c.dstTile[k], c.dstOffset[k]), i);
      }
    } else if (s.kind === 'streamCopy') {
      touch(p.streams[s.stream].tensor, i);
    }
  });
  let always = 0;
  const delta = new Array<number>(steps.length + 1).fill(0);
  p.tensors.forEach((t, id) => {
    if (ALWAYS_LIVE.has(t.category)) always += bytesOf[id];
    else if (first[id] <= last[id]) {
      delta[first[id]] += bytesOf[id];
      delta[last[id] + 1] -= bytesOf[id];
    }
  });
  const rows: LivenessRow[] = [];
  let live = always;
  steps.forEach((s, i) => {
    live += delta[i];
    const name = s.kind === 'execute' ? p.computeSets[s.computeSet].name : s.kind === 'exchange' ? p.exchanges[s.exchange].name : s.kind === 'streamCopy' ? p.streams[s.stream].name : '';
    rows.push({ step: i, name, bytes: live });
  });
  return rows;
}
