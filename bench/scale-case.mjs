/* global process, performance */
/**
 * One scale benchmark case, run in its own Node process by bench/run.ts so its
 * peak RSS is its own: compile a config, then run `steps` steps timing-only
 * (no tile data, no codelets). Prints one JSON line.
 *
 * Plain JavaScript over the compiled dist/, as the `sim` command runs: under
 * tsx the process would also carry the TypeScript loader (~35 MiB of RSS
 * measured, on every case's peak). npm run bench builds dist/ first.
 *   node bench/scale-case.mjs <config.yaml> [steps]
 */
import { loadConfig } from '../dist/src/config/load.js';
import { RunError } from '../dist/src/errors.js';
import { runCount } from '../dist/sim/copies.js';
import { compile, Session } from '../dist/src/session.js';

const [file, stepsArg] = process.argv.slice(2);
const steps = Number(stepsArg ?? 1);
const t0 = performance.now();
let compiled;
try {
  compiled = await compile(loadConfig(file, { steps }));
} catch (e) {
  // Out of tile (or host) memory is a result of the case, not a failure of the bench.
  if (!(e instanceof RunError)) throw e;
  process.stdout.write(JSON.stringify({ error: e.message.split('\n')[0], compileMs: performance.now() - t0, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
}
const compileMs = performance.now() - t0;
const t1 = performance.now();
const session = await Session.create(compiled, { workers: 1, numerics: false });
let cycles = 0;
try {
  for (let i = 0; i < steps; i++) cycles = (await session.runStep()).cycles;
} finally {
  await session.close();
}
const runMs = (performance.now() - t1) / steps;
const p = compiled.program;
let copies = 0;
let runs = 0;
for (const e of p.exchanges) {
  copies += e.copies.count;
  runs += runCount(e.copies);
}
const vertices = p.computeSets.reduce((s, cs) => s + cs.vertices.count, 0);
process.stdout.write(
  JSON.stringify({ compileMs, runMs, cycles, maxRssMiB: process.resourceUsage().maxRSS / 1024, tensors: p.tensors.length, vertices, copies, runs, peakTileBytes: Math.max(...p.tileBytes) }) + '\n',
);
