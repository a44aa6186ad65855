/**
 * trace.json: Chrome trace-event JSON (opens in ui.perfetto.dev and
 * chrome://tracing). One process per IPU (pid = IPU index), one thread per
 * traced tile (tid = global tile index), one complete ('X') slice per phase and
 * tile: compute and exchange phases use the tile's own busy cycles; sync and
 * stream copies (no per-tile data) cover every traced tile for the phase's
 * whole duration. Times are microseconds (cycles / clockHz * 1e6).
 */
import type { Phase } from '../../sim/profile.js';

export interface TraceOptions {
  clockHz: number;
  tilesPerIpu: number;
  ipus: number;
  /** 'all', or how many tiles to show, evenly spread and always including the first and last tile. */
  traceTiles: 'all' | number;
  deviceName: string;
}

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
export function sampleTiles(totalTiles: number, traceTiles: 'all' | number): number[] {
  if (!Number.isSafeInteger(totalTiles) || totalTiles < 0) throw new Error(`sampleTiles: bad tile count ${totalTiles}`);
  if (traceTiles !== 'all' && (!Number.isSafeInteger(traceTiles) || traceTiles < 1)) {
    throw new Error(`traceTiles must be 'all' or a positive integer, got ${String(traceTiles)}`);
  }
  if (traceTiles === 'all' || traceTiles >= totalTiles) return Array.from({ length: totalTiles }, (_, i) => i);
  if (traceTiles === 1) return [0];
  // Spacing (total-1)/(n-1) >= 1, so the rounded positions are distinct.
  const step = (totalTiles - 1) / (traceTiles - 1);
  return Array.from({ length: traceTiles }, (_, i) => Math.round(i * step));
}

function* metadataEvents(tiles: number[], opts: TraceOptions): Generator<TraceEvent> {
  const ipusShown = new Set(tiles.map((t) => Math.floor(t / opts.tilesPerIpu)));
  for (let ipu = 0; ipu < opts.ipus; ipu++) {
    if (!ipusShown.has(ipu)) continue;
    yield { name: 'process_name', ph: 'M', pid: ipu, tid: 0, args: { name: `IPU ${ipu}` } };
    yield { name: 'process_labels', ph: 'M', pid: ipu, tid: 0, args: { labels: opts.deviceName } };
    yield { name: 'process_sort_index', ph: 'M', pid: ipu, tid: 0, args: { sort_index: ipu } };
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

  yield* metadataEvents(tiles, opts);

  for (const p of phases) {
    const ts = p.start * us;
    const slice = (tile: number, cycles: number): TraceEvent => ({
      name: p.name,
      cat: p.kind,
      ph: 'X',
      pid: Math.floor(tile / opts.tilesPerIpu),
      tid: tile,
      ts,
      dur: cycles * us,
      args: { op: p.op, cycles, step: p.step },
    });
    if (p.tiles && (p.kind === 'compute' || p.kind === 'exchange')) {
      for (const [tile, cycles] of p.tiles) {
        if (tile >= 0 && tile < total && shown[tile] && cycles > 0) yield slice(tile, cycles);
      }
    } else if (p.cycles > 0) {
      for (const t of tiles) yield slice(t, p.cycles);
    }
  }
}

/** The trace as one object: {traceEvents, displayTimeUnit: 'ns', otherData}. */
export function buildTrace(phases: Phase[], opts: TraceOptions): { traceEvents: TraceEvent[]; displayTimeUnit: 'ns'; otherData: Record<string, string | number> } {
  return { traceEvents: [...traceEvents(phases, opts)], displayTimeUnit: 'ns', otherData: otherData(opts) };
}

function otherData(opts: TraceOptions): Record<string, string | number> {
  return { device: opts.deviceName, ipus: opts.ipus, tilesPerIpu: opts.tilesPerIpu, clockHz: opts.clockHz };
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
