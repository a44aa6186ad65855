/**
 * How long a numerics session takes to start its worker pool on a config, and
 * the host memory it costs: the program's tables reach each worker once (in
 * shared memory), not as a structured clone per worker. Prints one JSON line.
 *   tsx bench/pool-start.ts <config.yaml> [workers] [steps]
 */
import { loadConfig } from '../src/config/load.js';
import { compile, Session } from '../src/session.js';

const [file, workersArg, stepsArg] = process.argv.slice(2);
const workers = Number(workersArg ?? 2);
const steps = Number(stepsArg ?? 0);
const t0 = performance.now();
const compiled = await compile(loadConfig(file!, { steps: Math.max(1, steps) }));
const compileMs = performance.now() - t0;
const rssCompiled = process.memoryUsage().rss / 2 ** 20;
const t1 = performance.now();
const session = await Session.create(compiled, { workers, numerics: true });
const startMs = performance.now() - t1;
const rssStarted = process.memoryUsage().rss / 2 ** 20;
let cycles = 0;
const t2 = performance.now();
try {
  for (let i = 0; i < steps; i++) cycles = (await session.runStep()).cycles;
} finally {
  await session.close();
}
const runMs = steps ? (performance.now() - t2) / steps : 0;
let columnBytes = 0;
for (const cs of compiled.program.computeSets) {
  for (const v of Object.values(cs.vertices)) if (ArrayBuffer.isView(v)) columnBytes += v.byteLength;
}
process.stdout.write(
  JSON.stringify({ workers, compileMs, startMs, runMs, cycles, rssCompiledMiB: rssCompiled, rssStartedMiB: rssStarted, startRssMiB: rssStarted - rssCompiled, maxRssMiB: process.resourceUsage().maxRSS / 1024, vertexColumnMiB: columnBytes / 2 ** 20 }) + '\n',
);
