/**
 * What the engine records while it runs: one Phase per compute set, exchange,
 * sync or host stream copy, in execution order. Plain data: the report layer
 * turns it into summary.json, trace.json, CSV and HTML.
 */
/** streamingMemory: a remote buffer loaded from or stored to Streaming Memory (sim/streaming-memory.ts). */
export type PhaseKind = 'compute' | 'exchange' | 'sync' | 'streamCopy' | 'streamingMemory';

export interface Phase {
  kind: PhaseKind;
  /** Compute set, exchange or stream name. */
  name: string;
  /** IR op the phase is attributed to ("" for none). */
  op: string;
  /** Cycle at which the phase starts, counted from the start of the run. */
  start: number;
  /** Duration: the slowest (busiest) tile. */
  cycles: number;
  /** Which program step (training step / batch) this phase belongs to. */
  step: number;
  /**
   * Per-tile busy cycles, sparse: [tile, cycles] pairs for tiles that did work.
   * Absent for sync (all tiles wait) and stream copies.
   */
  tiles?: [number, number][];
  /**
   * A pipeline cycle's phases on an IPU other than the busiest one: they ran
   * alongside it, so the totals leave them out (the busiest IPU's phases
   * cover the cycle). The IPU is `lane`.
   */
  overlapped?: boolean;
  /** In a pipeline cycle: the IPU whose stages the phase belongs to, and the stage. */
  lane?: number;
  stage?: number;
  /**
   * An exchange across IPUs: [link group, bytes] pairs, the bytes through each
   * IPU-Link or GW-Link group of the whole system (sim/links.ts ids, numbered
   * over replication.systemIpus when replicated: every replica's traffic).
   */
  links?: [number, number][];
}

export interface CycleTotals {
  total: number;
  compute: number;
  exchange: number;
  sync: number;
  streamCopy: number;
  /** Remote buffer copies to and from Streaming Memory; present only when a run had some. */
  streamingMemory?: number;
}

export function emptyTotals(): CycleTotals {
  return { total: 0, compute: 0, exchange: 0, sync: 0, streamCopy: 0 };
}

export function addPhase(t: CycleTotals, p: Phase): void {
  if (p.overlapped) return;
  t[p.kind] = (t[p.kind] ?? 0) + p.cycles;
  t.total += p.cycles;
}
