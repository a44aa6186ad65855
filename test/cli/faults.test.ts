/**
 * Faulty custom-op code, one fault per module, through the built CLI with 1
 * and 2 workers (issue 13): the exit code, a message naming the module,
 * codelet, tile and compute set (never "internal error"), no run folder, and
 * no process left behind. The input is large enough (2 x 131,072 elements)
 * that with 2 workers LeakyRelu runs on the pool, not inline.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, faulty, runFaulty, sim, tmp } from './faulty-module.js';

const WHERE = /codelet 'custom.ops::LeakyRelu' \(step 0, tile \d, compute set 'LeakyRelu_0\/LeakyRelu', op 'LeakyRelu_0'\)/;

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

  it('compute() that never returns: the watchdog ends the run after run.vertexTimeoutSeconds', () => {
    const { config, module } = faulty(`hang-${workers}`, 'compute', 'for (;;) { /* spins */ }');
    writeFileSync(config, readFileSync(config, 'utf8') + 'run: {vertexTimeoutSeconds: 1}\n');
    const t0 = Date.now();
    const err = runFaulty(config, workers);
    expect(err).toContain(`run failed: custom op module ${module}: `);
    expect(err).toMatch(WHERE);
    expect(err).toContain('compute() had not returned when the compute set had run for 1 s (run.vertexTimeoutSeconds); the run was stopped');
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('2 replicas sharing the pool: the watchdog names the hanging codelet in every replica, not a pool worker that died', () => {
    const { config, module } = faulty(`hang-replicas-${workers}`, 'compute', 'for (;;) { /* spins */ }');
    writeFileSync(config, readFileSync(config, 'utf8').replace('device: tiny\n', 'device: {preset: tiny, ipus: 2}\nreplicas: 2\n') + 'run: {vertexTimeoutSeconds: 1}\n');
    const err = runFaulty(config, workers);
    expect(err).toContain(`run failed: custom op module ${module}: `);
    expect(err).toContain('compute() had not returned when the compute set had run for 1 s (run.vertexTimeoutSeconds); the run was stopped');
    expect(err).not.toMatch(/died/);
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
    expect(err).toContain(`run failed: custom op module ${module}: codelet 'custom.ops::LeakyRelu' (tile 0, compute set 'LeakyRelu_0/LeakyRelu', op 'LeakyRelu_0'): `);
    expect(err).toContain(`cycles() returned ${shown}, but a cycle estimate must be a finite, non-negative integer`);
    expect(err).not.toMatch(/step \d/); // found while compiling, before any step ran
  });

  it('setup() giving shape [512.5, 256]: exit 2 at setup, naming the op', () => {
    const { config } = faulty(`shape-${workers}`, 'setup', "{ dtype: 'float32', shape: [512.5, 256] }");
    const err = runFaulty(config, workers, 2);
    expect(err).toMatch(/shape-\d\.yaml:7:9: op 'LeakyRelu_0' \(custom\.ops::LeakyRelu:1\): setup\(\) gave output 0 'y' the shape \[512\.5, 256\]; every dimension must be a non-negative integer/);
  });
});

describe.each([1, 2])('run.checkMemory, %i worker(s)', (workers) => {
  it('a codelet writing into its input: exit 1 naming the vertex, tile, compute set and the bytes hit', () => {
    const { config, module } = faulty(`writes-input-${workers}`, 'compute', 'x[1] = 42;');
    writeFileSync(config, readFileSync(config, 'utf8') + 'run: {checkMemory: true}\n');
    const err = runFaulty(config, workers);
    expect(err).toContain(`run failed: custom op module ${module}: codelet 'custom.ops::LeakyRelu' (step 0, tile 0, compute set 'LeakyRelu_0/LeakyRelu', op 'LeakyRelu_0'): `);
    expect(err).toMatch(/vertex 0 wrote outside its output regions: \d byte\(s\) from tile 0, byte \d+ \(tensor 'x' element 1\) changed \(run\.checkMemory\)/);
  });

  it('off (the default outside tests), the same codelet runs to the end', () => {
    const { config } = faulty(`writes-input-off-${workers}`, 'compute', 'x[1] = 42;');
    const out = path.join(tmp, `off-${workers}`);
    const r = spawnSync(process.execPath, [BIN, 'run', config, '--workers', String(workers), '--out', out], { encoding: 'utf8', cwd: tmp, env: { ...process.env, TILESIM_CHECK_MEMORY: '0' } });
    expect(r.status, r.stderr).toBe(0);
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
    expect(r.stderr).toContain(`run failed: custom op module ${module}: codelet 'custom.ops::LeakyRelu'`);
    expect(r.stderr).toContain('cycles() returned NaN');
  });
});
