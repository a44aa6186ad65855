/**
 * `sim compile --timings`: host time and peak memory per compile pass, from
 * the compile's progress events (src/session.ts, DeviceGraph.finalize). A
 * peak is the largest value seen at the pass's progress events and its end:
 * a sample, not a trace of every allocation, but per op during lowering.
 * Three measures, because a columnar program lives mostly outside the JS
 * heap: the heap (heapUsed), typed arrays (arrayBuffers: the program's
 * columns) and the process's resident set (both, plus the young generation,
 * code and Node itself: what the host's memory limit sees).
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

export class PassTimer {
  readonly passes: PassTiming[] = [];
  private current: PassTiming | undefined;
  private started = 0;

  /** A compile progress callback: a new pass name closes the one before. */
  readonly onProgress = (pass: string): void => {
    const now = performance.now();
    const m = sample();
    if (this.current?.pass !== pass) {
      this.close(now, m);
      this.current = { pass, ms: 0, peakHeapBytes: m.heap, peakArrayBytes: m.arrays, peakRssBytes: m.rss };
      this.started = now;
    } else this.raise(this.current, m);
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

export function formatTimings(passes: readonly PassTiming[]): string {
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
  ].join('\n');
}
