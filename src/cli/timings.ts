/**
 * `sim compile --timings`: host time and peak memory per compile pass, from
 * the compile's progress events (src/session.ts, DeviceGraph.finalize). A
 * peak is the largest value seen at the pass's progress events and its end:
 * a sample, not a trace of every allocation, but per op during lowering.
 * Three measures, because a columnar program lives mostly outside the JS
 * heap: the heap (heapUsed), typed arrays (arrayBuffers: the program's
 * columns) and the process's resident set (both, plus the young generation,
 * code and Node itself: what the host's memory limit sees).
 *
 * While lowering, each op's host time (from the event before it to its own
 * end) is kept too, and the slowest are listed: where a custom op's
 * lowering, or a planner, spends a long compile. The work before the first
 * op (outlining, laying out the graph's sources) is a row of its own; an
 * outlined call is one row; work between ops (closing IPU copies) counts to
 * the op after it, and the work after the last op to none.
 */
export interface PassTiming {
  pass: string;
  ms: number;
  peakHeapBytes: number;
  peakArrayBytes: number;
  peakRssBytes: number;
}

interface Sample {
  heap: number;
  arrays: number;
  rss: number;
}

function sample(): Sample {
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrays: m.arrayBuffers, rss: m.rss };
}

/** One op's lowering (or the work before the first op): host time from the progress event before it to its own end. */
export interface OpTiming {
  op: string;
  ms: number;
}

export class PassTimer {
  readonly passes: PassTiming[] = [];
  /** Each op's lowering time, in schedule order. */
  readonly ops: OpTiming[] = [];
  private current: PassTiming | undefined;
  private started = 0;
  /** When the last event came (an op's time runs from it). */
  private last = 0;

  /** A compile progress callback: a new pass name closes the one before; an op named ends that op's time. */
  readonly onProgress = (pass: string, op?: string): void => {
    const now = performance.now();
    const m = sample();
    if (this.current?.pass !== pass) {
      this.close(now, m);
      this.current = { pass, ms: 0, peakHeapBytes: m.heap, peakArrayBytes: m.arrays, peakRssBytes: m.rss };
      this.started = now;
    } else this.raise(this.current, m);
    if (op !== undefined) this.ops.push({ op, ms: now - this.last });
    this.last = now;
  };

  /** Close the last pass (call when the compile returns). */
  finish(): PassTiming[] {
    this.close(performance.now(), sample());
    return this.passes;
  }

  private raise(p: PassTiming, m: Sample): void {
    p.peakHeapBytes = Math.max(p.peakHeapBytes, m.heap);
    p.peakArrayBytes = Math.max(p.peakArrayBytes, m.arrays);
    p.peakRssBytes = Math.max(p.peakRssBytes, m.rss);
  }

  private close(now: number, m: Sample): void {
    if (!this.current) return;
    this.current.ms = now - this.started;
    this.raise(this.current, m);
    this.passes.push(this.current);
    this.current = undefined;
  }
}

/** How many of the slowest ops formatTimings lists. */
export const SLOWEST_OPS = 10;

export function formatTimings(passes: readonly PassTiming[], ops: readonly OpTiming[] = []): string {
  const width = Math.max(4, ...passes.map((p) => p.pass.length));
  const total = passes.reduce((s, p) => s + p.ms, 0);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  const row = (name: string, ms: number, heap: number, arrays: number, rss: number) =>
    `  ${name.padEnd(width)}  ${(ms / 1000).toFixed(2).padStart(8)} s  ${mb(heap).padStart(9)}  ${mb(arrays).padStart(12)}  ${mb(rss).padStart(9)}`;
  const lines = passes.map((p) => row(p.pass, p.ms, p.peakHeapBytes, p.peakArrayBytes, p.peakRssBytes));
  const peak = (f: (p: PassTiming) => number) => Math.max(0, ...passes.map(f));
  return [
    `compile passes (host time, peak heap, peak typed arrays, peak process RSS):`,
    `  ${''.padEnd(width)}  ${'time'.padStart(10)}  ${'heap'.padStart(9)}  ${'typed arrays'.padStart(12)}  ${'RSS'.padStart(9)}`,
    ...lines,
    row('total', total, peak((p) => p.peakHeapBytes), peak((p) => p.peakArrayBytes), peak((p) => p.peakRssBytes)),
    ...slowestOps(ops),
  ].join('\n');
}

/** The ops slowest to lower, each with its time and share of all ops' times (none when no op was timed). */
function slowestOps(ops: readonly OpTiming[]): string[] {
  if (ops.length === 0) return [];
  const lowering = ops.reduce((s, o) => s + o.ms, 0);
  const slowest = [...ops].sort((a, b) => b.ms - a.ms).slice(0, SLOWEST_OPS);
  const width = Math.max(...slowest.map((o) => o.op.length));
  return [
    `ops slowest to lower (${slowest.length} of ${ops.length} timed; host time, share of their sum):`,
    ...slowest.map((o) => `  ${o.op.padEnd(width)}  ${o.ms.toFixed(1).padStart(9)} ms  ${((100 * o.ms) / Math.max(lowering, 1e-9)).toFixed(1).padStart(5)}%`),
  ];
}
