/**
 * Helpers of the fault tests: the LeakyRelu example with one fault put in,
 * a config using it (large enough that 2 workers run it on the pool), and
 * running the built CLI on it with the checks every fault must pass.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import { LEAKY_CODELETS, LEAKY_MODULE, ROOT } from '../helpers.js';

export const BIN = path.join(ROOT, 'bin/sim.js');
export const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-faults-'));
const OPS = readFileSync(LEAKY_MODULE, 'utf8');
const CODELETS = readFileSync(LEAKY_CODELETS, 'utf8');

export type Where = 'compute' | 'cycles' | 'setup' | 'top';

/**
 * The LeakyRelu example (op module and codelet module, in a folder of their
 * own) with one fault put in: into the codelet module, which the workers
 * load, except for 'setup' (the op module). Returns the path of a config
 * using it and of the module the fault is in.
 */
export function faulty(name: string, where: Where, code: string): { config: string; module: string; ops: string } {
  const anchors: Record<Where, [string, (s: string) => string]> = {
    compute: ['    for (let i = 0; i < x.length; i++) y[i] =', (s) => `    ${code}\n${s}`],
    cycles: ['    return estimators.unaryMultiVertex(', (s) => `    return ${code};\n${s}`],
    setup: ['    this.setOutInfo(0, x);', () => `    this.setOutInfo(0, ${code});`],
    top: ["from 'tilesim/device';", (s) => `${s}\n${code}`],
  };
  const [needle, edit] = anchors[where];
  const inOps = where === 'setup';
  const source = inOps ? OPS : CODELETS;
  expect(source).toContain(needle);
  // Out of the way of the run folders the tests name after the fault.
  const dir = path.join(tmp, 'modules', name);
  mkdirSync(dir, { recursive: true });
  const ops = path.join(dir, 'leaky-relu.ts');
  const codelets = path.join(dir, 'leaky-relu.codelets.ts');
  writeFileSync(ops, inOps ? OPS.replace(needle, edit(needle)) : OPS);
  writeFileSync(codelets, inOps ? CODELETS : CODELETS.replace(needle, edit(needle)));
  const module = inOps ? ops : codelets;
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
  customOps: [modules/${name}/leaky-relu.ts]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
`,
  );
  return { config, module, ops };
}

export function sim(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 60_000 });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

/** Runs the config and checks what every fault must give; returns stderr. */
export function runFaulty(config: string, workers: number, exit = 1): string {
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
