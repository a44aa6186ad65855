/**
 * trace.json: Chrome trace-event JSON (opens in ui.perfetto.dev and
 * chrome://tracing). Times are microseconds (cycles / clockHz * 1e6).
 *
 * - A "program" process on top with three tracks: steps (one slice per
 *   training step / batch), ops (one slice per run of phases attributed to
 *   one IR op) and supersteps (every phase once, for its whole duration:
 *   compute sets, exchanges, syncs and host copies).
 * - One process per IPU (pid = IPU index), one thread per traced tile
 *   (tid = global tile index) with a slice per compute and exchange phase
 *   lasting that tile's own busy cycles. On several IPUs each IPU's process
 *   also has a "phases" track on top: a slice per compute and exchange phase
 *   the IPU took part in, lasting its busiest tile's cycles (of all its
 *   tiles, sampled or not), an exchange's with the bytes that left the IPU
 *   over its IPU-Links (args.linkBytes). Syncs and host copies have no
 *   per-tile data and are drawn once, on the supersteps track: drawn per tile
 *   they were half of a full mk2's trace.
 * - Pipelined (model.pipelining): each IPU's process has a "pipeline stages"
 *   track with a slice per stage run (stage s, micro-batch m), its phases'
 *   span; the IPUs' stages of a pipeline cycle overlap in time.
 * - Big devices are sampled (traceTiles 'auto'); otherData.tracedTiles and
 *   each IPU's process label say which tiles are shown.
 */
import type { Phase } from '../../sim/profile.js';

export interface TraceOptions {
  clockHz: number;
  tilesPerIpu: number;
  ipus: number;
  /**
   * 'all'; 'auto' (every tile up to AUTO_TRACE_TILES, else that many);
   * or how many tiles to show, evenly spread and always including the first and last tile.
   */
  traceTiles: 'all' | 'auto' | number;
  deviceName: string;
  /** Pipelined: draw each IPU's stage runs on a track of its own. */
  pipelined?: boolean;
  /** IPUs of the whole system when replicated (Phase.links' group numbering); default ipus. */
  systemIpus?: number;
}

/** An IPU's pipeline-stage track: after the program's tracks and the IPUs' phases tracks. */
function stageTrack(opts: TraceOptions, ipu: number): number {
  return opts.ipus * opts.tilesPerIpu + 3 + opts.ipus + ipu;
}

/** How many tiles 'auto' traces: 64 tiles x ~100 phases per step keep a full mk2 step well under 1 MB. */
export const AUTO_TRACE_TILES = 64;

export interface TraceEvent {
  name: string;
  ph: 'X' | 'M';
  pid: number;
  tid: number;
  ts?: number;
  dur?: number;
  cat?: string;
  args?: Record<string, string | number>;
}

/** The global tile indices shown, ascending. */
export function sampleTiles(totalTiles: number, traceTiles: 'all' | 'auto' | number): number[] {
  if (!Number.isSafeInteger(totalTiles) || totalTiles < 0) throw new Error(`sampleTiles: bad tile count ${totalTiles}`);
  if (traceTiles === 'auto') traceTiles = AUTO_TRACE_TILES;
  if (traceTiles !== 'all' && (!Number.isSafeInteger(traceTiles) || traceTiles < 1)) {
    throw new Error(`traceTiles must be 'all', 'auto' or a positive integer, got ${String(traceTiles)}`);
  }
  if (traceTiles === 'all' || traceTiles >= totalTiles) return Array.from({ length: totalTiles }, (_, i) => i);
  if (traceTiles === 1) return [0];
  // Spacing (total-1)/(n-1) >= 1, so the rounded positions are distinct.
  const step = (totalTiles - 1) / (traceTiles - 1);
  return Array.from({ length: traceTiles }, (_, i) => Math.round(i * step));
}

/** Track ids of the program process: after every tile id, so no tid is shared. */
function programTracks(opts: TraceOptions) {
  const total = opts.ipus * opts.tilesPerIpu;
  return { pid: opts.ipus, steps: total, ops: total + 1, supersteps: total + 2 };
}

/** Track id of IPU `ipu`'s phases track (several IPUs only): after the program's. */
export function ipuPhasesTrack(opts: TraceOptions, ipu: number): number {
  return opts.ipus * opts.tilesPerIpu + 3 + ipu;
}

/** Microseconds rounded to 0.1 ns (a cycle is 0.75 ns at 1.33 GHz): shorter JSON, same picture. */
const round = (us: number) => Math.round(us * 1e4) / 1e4;

function* metadataEvents(tiles: number[], opts: TraceOptions): Generator<TraceEvent> {
  const total = opts.ipus * opts.tilesPerIpu;
  const prog = programTracks(opts);
  yield { name: 'process_name', ph: 'M', pid: prog.pid, tid: 0, args: { name: 'program' } };
  yield { name: 'process_sort_index', ph: 'M', pid: prog.pid, tid: 0, args: { sort_index: -1 } };
  for (const [name, tid] of [['steps', prog.steps], ['ops', prog.ops], ['supersteps (compute, exchange, sync, host copy)', prog.supersteps]] as const) {
    yield { name: 'thread_name', ph: 'M', pid: prog.pid, tid, args: { name } };
    yield { name: 'thread_sort_index', ph: 'M', pid: prog.pid, tid, args: { sort_index: tid - total } };
  }
  const perIpu = new Map<number, number>();
  for (const t of tiles) perIpu.set(Math.floor(t / opts.tilesPerIpu), (perIpu.get(Math.floor(t / opts.tilesPerIpu)) ?? 0) + 1);
  for (let ipu = 0; ipu < opts.ipus; ipu++) {
    const shown = perIpu.get(ipu);
    if (!shown) continue;
    const sampled = shown < opts.tilesPerIpu ? `, ${shown} of ${opts.tilesPerIpu} tiles sampled` : '';
    yield { name: 'process_name', ph: 'M', pid: ipu, tid: 0, args: { name: `IPU ${ipu}` } };
    yield { name: 'process_labels', ph: 'M', pid: ipu, tid: 0, args: { labels: opts.deviceName + sampled } };
    yield { name: 'process_sort_index', ph: 'M', pid: ipu, tid: 0, args: { sort_index: ipu } };
    if (opts.ipus > 1) {
      const tid = ipuPhasesTrack(opts, ipu);
      yield { name: 'thread_name', ph: 'M', pid: ipu, tid, args: { name: `IPU ${ipu} phases (busiest tile)` } };
      yield { name: 'thread_sort_index', ph: 'M', pid: ipu, tid, args: { sort_index: -1 } };
    }
  }
  for (let ipu = 0; ipu < opts.ipus && opts.pipelined; ipu++) {
    const tid = stageTrack(opts, ipu);
    yield { name: 'thread_name', ph: 'M', pid: ipu, tid, args: { name: 'pipeline stages' } };
    yield { name: 'thread_sort_index', ph: 'M', pid: ipu, tid, args: { sort_index: -1 } };
  }
  for (const t of tiles) {
    const pid = Math.floor(t / opts.tilesPerIpu);
    yield { name: 'thread_name', ph: 'M', pid, tid: t, args: { name: `tile ${t}` } };
    yield { name: 'thread_sort_index', ph: 'M', pid, tid: t, args: { sort_index: t } };
  }
}

/** Every event, metadata first, then slices in phase order. */
export function* traceEvents(phases: Iterable<Phase>, opts: TraceOptions): Generator<TraceEvent> {
  if (!(opts.clockHz > 0)) throw new Error(`buildTrace: clockHz must be positive, got ${opts.clockHz}`);
  const total = opts.ipus * opts.tilesPerIpu;
  const tiles = sampleTiles(total, opts.traceTiles);
  const shown = new Uint8Array(total);
  for (const t of tiles) shown[t] = 1;
  const us = 1e6 / opts.clockHz;
  const prog = programTracks(opts);
  const ipuShown = new Uint8Array(opts.ipus);
  for (const t of tiles) ipuShown[Math.floor(t / opts.tilesPerIpu)] = 1;
  const span = (name: string, cat: string, pid: number, tid: number, start: number, end: number, args: Record<string, string | number>): TraceEvent => {
    const ts = round(start * us);
    return { name, cat, ph: 'X', pid, tid, ts, dur: round(round(end * us) - ts), args };
  };

  yield* metadataEvents(tiles, opts);

  // Op and step slices close when the next phase starts a new op / step (phases come in execution order).
  let op: { name: string; start: number; end: number; step: number } | undefined;
  let step: { step: number; start: number; end: number } | undefined;
  const closeOp = () => (op ? span(op.name || 'host', 'op', prog.pid, prog.ops, op.start, op.end, { step: op.step, cycles: op.end - op.start }) : undefined);
  const closeStep = () => (step ? span(`step ${step.step}`, 'step', prog.pid, prog.steps, step.start, step.end, { step: step.step, cycles: step.end - step.start }) : undefined);
  // A stage run: consecutive phases of one lane and stage.
  let stage: { lane: number; stage: number; start: number; end: number; step: number } | undefined;
  const stageRuns = new Map<string, number>();
  const closeStage = (): TraceEvent | undefined => {
    if (!stage) return undefined;
    const key = `${stage.step}/${stage.stage}`;
    const m = stageRuns.get(key) ?? 0;
    stageRuns.set(key, m + 1);
    return span(`stage ${stage.stage}`, 'stage', stage.lane, stageTrack(opts, stage.lane), stage.start, stage.end, { stage: stage.stage, microBatch: m, step: stage.step });
  };
  for (const p of phases) {
    const end = p.start + p.cycles;
    if (p.lane !== undefined && p.stage !== undefined && stage && stage.lane === p.lane && stage.stage === p.stage && stage.step === p.step) stage.end = Math.max(stage.end, end);
    else {
      const e = closeStage();
      if (e) yield e;
      stage = p.lane !== undefined && p.stage !== undefined && opts.pipelined ? { lane: p.lane, stage: p.stage, start: p.start, end, step: p.step } : undefined;
    }
    if (step?.step !== p.step) {
      const e = closeStep();
      if (e) yield e;
      step = { step: p.step, start: p.start, end };
    }
    step.end = Math.max(step.end, end);
    if (op?.name !== p.op || op.step !== p.step) {
      const e = closeOp();
      if (e) yield e;
      op = { name: p.op, start: p.start, end, step: p.step };
    }
    op.end = Math.max(op.end, end);
    if (p.cycles > 0) yield span(p.name, p.kind, prog.pid, prog.supersteps, p.start, end, { op: p.op, cycles: p.cycles });
    if (p.tiles && (p.kind === 'compute' || p.kind === 'exchange')) {
      if (opts.ipus > 1) yield* ipuSlices(p, opts, ipuShown, span);
      for (const [tile, cycles] of p.tiles) {
        if (tile >= 0 && tile < total && shown[tile] && cycles > 0) {
          yield span(p.name, p.kind, Math.floor(tile / opts.tilesPerIpu), tile, p.start, p.start + cycles, { op: p.op, cycles });
        }
      }
    }
  }
  const lastStage = closeStage();
  if (lastStage) yield lastStage;
  const lastOp = closeOp();
  if (lastOp) yield lastOp;
  const lastStep = closeStep();
  if (lastStep) yield lastStep;
}

type Span = (name: string, cat: string, pid: number, tid: number, start: number, end: number, args: Record<string, string | number>) => TraceEvent;

/** Phase `p` on each shown IPU's phases track: as long as the IPU's busiest tile, with the link bytes leaving it. */
function* ipuSlices(p: Phase, opts: TraceOptions, shown: Uint8Array, span: Span): Generator<TraceEvent> {
  const busiest = new Float64Array(opts.ipus);
  for (const [tile, cycles] of p.tiles ?? []) {
    const ipu = Math.floor(tile / opts.tilesPerIpu);
    if (ipu >= 0 && ipu < opts.ipus && cycles > busiest[ipu]) busiest[ipu] = cycles;
  }
  // IPU-Link groups are 3 x IPU + kind, below 3 x the system's IPUs (sim/links.ts); replica 0's IPUs come first.
  const linkBytes = new Float64Array(opts.ipus);
  const groupsEnd = 3 * (opts.systemIpus ?? opts.ipus);
  for (const [g, bytes] of p.links ?? []) if (g < groupsEnd && Math.floor(g / 3) < opts.ipus) linkBytes[Math.floor(g / 3)] += bytes;
  for (let ipu = 0; ipu < opts.ipus; ipu++) {
    if (!shown[ipu] || busiest[ipu] <= 0) continue;
    const args: Record<string, string | number> = { op: p.op, cycles: busiest[ipu] };
    if (p.links) args.linkBytes = linkBytes[ipu];
    yield span(p.name, p.kind, ipu, ipuPhasesTrack(opts, ipu), p.start, p.start + busiest[ipu], args);
  }
}

export interface TraceMetadata {
  device: string;
  ipus: number;
  tilesPerIpu: number;
  clockHz: number;
  /** 'all', or the sampled tiles: how many of how many, and which. */
  traceTiles: string;
  tracedTiles: number[];
}

/** The trace as one object: {traceEvents, displayTimeUnit: 'ns', otherData}. */
export function buildTrace(phases: Phase[], opts: TraceOptions): { traceEvents: TraceEvent[]; displayTimeUnit: 'ns'; otherData: TraceMetadata } {
  return { traceEvents: [...traceEvents(phases, opts)], displayTimeUnit: 'ns', otherData: otherData(opts) };
}

function otherData(opts: TraceOptions): TraceMetadata {
  const total = opts.ipus * opts.tilesPerIpu;
  const tiles = sampleTiles(total, opts.traceTiles);
  const traceTiles = tiles.length === total ? 'all' : `${tiles.length} of ${total} tiles, evenly spread (report.traceTiles: all shows every tile)`;
  return { device: opts.deviceName, ipus: opts.ipus, tilesPerIpu: opts.tilesPerIpu, clockHz: opts.clockHz, traceTiles, tracedTiles: tiles };
}

/**
 * The same JSON text as JSON.stringify(buildTrace(...)), as chunks of about
 * `chunkChars` characters, never holding all events at once. Pass the
 * generator to writeRunFolder to stream trace.json to disk.
 */
export function* traceJsonChunks(phases: Iterable<Phase>, opts: TraceOptions, chunkChars = 1 << 16): Generator<string> {
  let buf = '{"traceEvents":[';
  let first = true;
  for (const e of traceEvents(phases, opts)) {
    buf += (first ? '' : ',') + JSON.stringify(e);
    first = false;
    if (buf.length >= chunkChars) {
      yield buf;
      buf = '';
    }
  }
  buf += `],"displayTimeUnit":"ns","otherData":${JSON.stringify(otherData(opts))}}`;
  yield buf;
}

/** trace.json as one string (for small traces; prefer traceJsonChunks for large ones). */
export function writeTraceJson(phases: Phase[], opts: TraceOptions): string {
  return [...traceJsonChunks(phases, opts)].join('');
}
