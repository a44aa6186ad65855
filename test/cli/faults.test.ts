/**
 * Faulty custom-op code, one fault per module, through the built CLI with 1
 * and 2 workers (issue 13): the exit code, a message naming the module,
 * codelet, tile and compute set (never "internal error"), no run folder, and
 * no process left behind. The input is large enough (2 x 131,072 elements)
 * that with 2 workers LeakyRelu runs on the pool, not inline.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEAKY_MODULE, ROOT } from '../helpers.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-faults-'));
const SOURCE = readFileSync(LEAKY_MODULE, 'utf8');

type Where = 'compute' | 'cycles' | 'setup' | 'top';

/** The LeakyRelu example with one fault put in; returns the path of a config using it. */
function faulty(name: string, where: Where, code: string): { config: string; module: string } {
  const anchors: Record<Where, [string, (s: string) => string]> = {
    compute: ['    for (let i = 0; i < x.length; i++) y[i] =', (s) => `    ${code}\n${s}`],
    cycles: ['    return estimators.unaryMultiVertex(', (s) => `    return ${code};\n${s}`],
    setup: ['    this.setOutInfo(0, x);', () => `    this.setOutInfo(0, ${code});`],
    top: ["} from 'tilesim';", (s) => `${s}\n${code}`],
  };
  const [needle, edit] = anchors[where];
  expect(SOURCE).toContain(needle);
  const module = path.join(tmp, `${name}.ts`);
  writeFileSync(module, SOURCE.replace(needle, edit(needle)));
  const config = path.join(tmp, `${name}.yaml`);
  writeFileSync(
    config,
    `name: ${name}
device: tiny
model:
  graph:
    inputs: {x: {shape: [256, 512], dtype: float32}}
    nodes:
      - {op: LeakyRelu, domain: custom.ops, inputs: [x], outputs: [y], attributes: {alpha: 0.02}}
    outputs: [y]
  customOps: [${name}.ts]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
`,
  );
  return { config, module };
}

function sim(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 60_000 });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** Runs the config and checks what every fault must give; returns stderr. */
function runFaulty(config: string, workers: number, exit = 1): string {
  const out = path.join(tmp, `out-${path.basename(config, '.yaml')}-${workers}`);
  const r = sim(['run', config, '--workers', String(workers), '--out', out]);
  expect(r.signal, 'the run ended by itself (not killed by the test timeout)').toBeNull();
  expect(r.code, r.stderr).toBe(exit);
  expect(r.stderr).not.toMatch(/internal error|please report/);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace
  expect(existsSync(path.join(out, 'summary.json')), 'no run folder for a failed run').toBe(false);
  // No process of this run is left: bin/sim.js may re-run itself in a child with a bigger heap.
  const ps = spawnSync('ps', ['-eo', 'args'], { encoding: 'utf8' }).stdout;
  expect(ps.split('\n').filter((l) => l.includes(config))).toEqual([]);
  return r.stderr;
}

const WHERE = /codelet 'LeakyRelu' \(step 0, tile \d, compute set 'LeakyRelu_0\/LeakyRelu', op 'LeakyRelu_0'\)/;

describe.each([1, 2])('a faulty custom codelet, %i worker(s)', (workers) => {
  const computeFaults: [string, string, RegExp][] = [
    ['throw-error', "throw new Error('boom');", /compute\(\) threw Error: boom/],
    ['throw-string', "throw 'boom';", /compute\(\) threw the string "boom"/],
    ['throw-undefined', 'throw undefined;', /compute\(\) threw undefined$/m],
    ['exit', 'process.exit(3);', /compute\(\) called process\.exit\(3\); a codelet must return, not end the process/],
    ['late-throw', "queueMicrotask(() => { throw new Error('later'); });", /later/],
  ];
  it.each(computeFaults)('compute() %s: exit 1 naming module, codelet, tile and compute set', (name, code, what) => {
    const { config, module } = faulty(`${name}-${workers}`, 'compute', code);
    const err = runFaulty(config, workers);
    expect(err).toContain(`run failed: custom op module ${module}: `);
    expect(err).toMatch(what);
    // A throw from a callback may land between vertices; every other fault names the vertex.
    if (name !== 'late-throw') expect(err).toMatch(WHERE);
  });

  it('a module whose top level throws: exit 1 naming the module', () => {
    const { config, module } = faulty(`import-${workers}`, 'top', "throw new Error('at import');");
    expect(runFaulty(config, workers)).toContain(`run failed: custom op module ${module}: importing it threw Error: at import`);
  });

  const cycleFaults: [string, string, string][] = [
    ['NaN', 'NaN', 'NaN'],
    ['negative', '-5', '-5'],
    ['Infinity', 'Infinity', 'Infinity'],
    ['a string', "'12' as unknown as number", 'the string "12"'],
    ['a fraction', '1.5', '1.5'],
  ];
  it.each(cycleFaults)('cycles() returning %s: exit 1 at compile time, naming the codelet and the value', (name, code, shown) => {
    const { config, module } = faulty(`cycles-${name.replace(/\W/g, '')}-${workers}`, 'cycles', code);
    const err = runFaulty(config, workers);
    expect(err).toContain(`run failed: custom op module ${module}: codelet 'LeakyRelu' (tile 0, compute set 'LeakyRelu_0/LeakyRelu', op 'LeakyRelu_0'): `);
    expect(err).toContain(`cycles() returned ${shown}, but a cycle estimate must be a finite, non-negative integer`);
    expect(err).not.toMatch(/step \d/); // found while compiling, before any step ran
  });

  it('setup() giving shape [512.5, 256]: exit 2 at setup, naming the op', () => {
    const { config } = faulty(`shape-${workers}`, 'setup', "{ dtype: 'float32', shape: [512.5, 256] }");
    const err = runFaulty(config, workers, 2);
    expect(err).toMatch(/shape-\d\.yaml:7:9: op 'LeakyRelu_0' \(custom\.ops::LeakyRelu:1\): setup\(\) gave output 0 'y' the shape \[512\.5, 256\]; every dimension must be a non-negative integer/);
  });
});

describe('faults only a pool worker sees', () => {
  it('a module that throws only when a worker imports it: exit 1 naming the module', () => {
    const { config, module } = faulty('worker-import', 'top', "import { isMainThread } from 'node:worker_threads';\nif (!isMainThread) throw new Error('not in a worker');");
    expect(runFaulty(config, 2)).toContain(`run failed: custom op module ${module}: in a pool worker: importing it threw Error: not in a worker`);
  });

  it('sim compile finds a bad cycles() too', () => {
    const { config, module } = faulty('compile-nan', 'cycles', 'NaN');
    const r = sim(['compile', config]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`run failed: custom op module ${module}: codelet 'LeakyRelu'`);
    expect(r.stderr).toContain('cycles() returned NaN');
  });
});
