/**
 * `sim compile --timings`: host time and peak heap per compile pass, from the
 * compile's progress events (src/session.ts, DeviceGraph.finalize). Peak heap
 * is the largest heapUsed seen at the pass's progress events and its end: a
 * sample, not a trace of every allocation, but per op during lowering.
 */
export interface PassTiming {
  pass: string;
  ms: number;
  peakHeapBytes: number;
}

export class PassTimer {
  readonly passes: PassTiming[] = [];
  private current: PassTiming | undefined;
  private started = 0;

  /** A compile progress callback: a new pass name closes the one before. */
  readonly onProgress = (pass: string): void => {
    const now = performance.now();
    const heap = process.memoryUsage().heapUsed;
    if (this.current?.pass !== pass) {
      this.close(now, heap);
      this.current = { pass, ms: 0, peakHeapBytes: heap };
      this.started = now;
    } else if (heap > this.current.peakHeapBytes) this.current.peakHeapBytes = heap;
  };

  /** Close the last pass (call when the compile returns). */
  finish(): PassTiming[] {
    this.close(performance.now(), process.memoryUsage().heapUsed);
    return this.passes;
  }

  private close(now: number, heap: number): void {
    if (!this.current) return;
    this.current.ms = now - this.started;
    this.current.peakHeapBytes = Math.max(this.current.peakHeapBytes, heap);
    this.passes.push(this.current);
    this.current = undefined;
  }
}

export function formatTimings(passes: readonly PassTiming[]): string {
  const width = Math.max(4, ...passes.map((p) => p.pass.length));
  const total = passes.reduce((s, p) => s + p.ms, 0);
  const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
  const lines = passes.map((p) => `  ${p.pass.padEnd(width)}  ${(p.ms / 1000).toFixed(2).padStart(8)} s  ${mb(p.peakHeapBytes).padStart(9)}`);
  const peak = Math.max(0, ...passes.map((p) => p.peakHeapBytes));
  return [`compile passes (host time, peak heap):`, ...lines, `  ${'total'.padEnd(width)}  ${(total / 1000).toFixed(2).padStart(8)} s  ${mb(peak).padStart(9)}`].join('\n');
}
