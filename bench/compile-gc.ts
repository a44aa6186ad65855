/**
 * The share of a compile spent in garbage collection (issue 8 measured 48%
 * for the BERT-base layer): compiles a config once, summing the GC pauses a
 * PerformanceObserver reports, by kind. Prints one JSON line.
 *   tsx bench/compile-gc.ts <config.yaml>
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { loadConfig } from '../src/config/load.js';
import { compile } from '../src/session.js';

const [file] = process.argv.slice(2);
const byKind: Record<string, number> = {};
let gcMs = 0;
const kinds: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    const kind = kinds[(e as unknown as { detail: { kind: number } }).detail.kind] ?? 'other';
    byKind[kind] = (byKind[kind] ?? 0) + e.duration;
    gcMs += e.duration;
  }
});
obs.observe({ entryTypes: ['gc'] });
const t0 = performance.now();
const compiled = await compile(loadConfig(file!, { steps: 1 }));
const compileMs = performance.now() - t0;
await new Promise((r) => setTimeout(r, 50));
obs.disconnect();
const intervals = compiled.program.tensors.reduce((n, t) => n + t.intervals.count, 0);
process.stdout.write(
  JSON.stringify({ compileMs: Math.round(compileMs), gcMs: Math.round(gcMs), gcShare: +(gcMs / compileMs).toFixed(3), byKind: Object.fromEntries(Object.entries(byKind).map(([k, v]) => [k, Math.round(v)])), heapUsedMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20), maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), tensors: compiled.program.tensors.length, intervals }) + '\n',
);
