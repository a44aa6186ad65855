/**
 * Fuzzing custom-op faults: the LeakyRelu example with compute() throwing a
 * drawn value (an Error of any kind, a string, a number, undefined, null, an
 * object, a symbol) or cycles() returning one, compiled and run in process
 * with 1 and 2 workers. Each must end with exit 1's error (a RunError, or a
 * CodeletFault in user code) that blames the
 * module and names the codelet, never an internal error or another exception.
 * The named cases (with the exact messages) are test/cli/faults.test.ts; the
 * pool is started per case, so this property runs fewer cases than the others.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunError } from '../../src/errors.js';
import { loadConfigText } from '../../src/config/load.js';
import { compile, run } from '../../src/session.js';
import { CodeletFault } from '../../sim/faults.js';
import { LEAKY_CODELETS, LEAKY_MODULE, ROOT } from '../helpers.js';
import { check, runs } from './fuzz.js';

const OPS = readFileSync(LEAKY_MODULE, 'utf8');
const SOURCE = readFileSync(LEAKY_CODELETS, 'utf8');
// Inside the repository (gitignored), so the modules' `import 'tilesim'` resolves in process as it does for the CLI.
const dir = path.join(ROOT, 'test-artifacts', `fuzz-faults-${process.pid}`);
mkdirSync(dir, { recursive: true });
const COMPUTE = '    for (let i = 0; i < x.length; i++) y[i] =';
const CYCLES = '    return estimators.unaryMultiVertex(';

/** JavaScript expressions for what a broken codelet throws or returns. */
const value = fc.oneof(
  fc.constantFrom('undefined', 'null', 'NaN', '-1', '1.5', 'Infinity', '-Infinity', '2 ** 60', '{}', '[]', '[1]', "Symbol('s')", 'Object.create(null)', '() => 1', 'new Error()'),
  fc.constantFrom('Error', 'TypeError', 'RangeError', 'SyntaxError').chain((k) => fc.string({ maxLength: 12 }).map((m) => `new ${k}(${JSON.stringify(m)})`)),
  fc.string({ maxLength: 12 }).map((s) => JSON.stringify(s)),
  fc.integer().map(String),
  fc.double().map((d) => (Number.isNaN(d) ? 'NaN' : String(d))),
);

let n = 0;
async function runFaulty(where: 'compute' | 'cycles', expr: string, workers: number): Promise<void> {
  const name = `fault${n++}`;
  // The op module beside the patched codelet module it names (the codelets are where the faults go).
  mkdirSync(path.join(dir, name));
  writeFileSync(path.join(dir, name, 'leaky-relu.ts'), OPS);
  const module = path.join(dir, name, 'leaky-relu.codelets.ts');
  const patched = where === 'compute' ? SOURCE.replace(COMPUTE, `    throw ${expr};\n${COMPUTE}`) : SOURCE.replace(CYCLES, `    return (${expr}) as unknown as number;\n${CYCLES}`);
  expect(patched).not.toBe(SOURCE);
  writeFileSync(module, patched);
  const text = `name: ${name}
device: tiny
model:
  graph:
    inputs: {x: {shape: [16, 32]}}
    nodes:
      - {op: LeakyRelu, domain: custom.ops, inputs: [x], outputs: [y], attributes: {alpha: 0.02}}
    outputs: [y]
  customOps: [${name}/leaky-relu.ts]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 7}}
`;
  try {
    const compiled = await compile(loadConfigText(text, path.join(dir, `${name}.yaml`)));
    await run(compiled, { workers, numerics: true, steps: 1 });
  } catch (e) {
    // What the CLI turns into exit 1 blaming the module: a RunError, or a CodeletFault in user code.
    if (!(e instanceof RunError || (e instanceof CodeletFault && e.inUserCode))) throw new Error(`not a fault blamed on the module: ${(e as Error)?.stack ?? String(e)}`);
    expect(e.message).toContain(`custom op module ${module}: `);
    expect(e.message).toContain("codelet 'custom.ops::LeakyRelu'");
    expect(e.message).not.toMatch(/internal error/);
    return;
  }
  // A value that is a valid estimate (a non-negative integer) is no fault: only cycles() may pass.
  expect(where, `${where} with ${expr} ran without an error`).toBe('cycles');
}

describe('fuzzing custom-op faults: a RunError blaming the module, never an internal error', () => {
  it('compute() throwing or cycles() returning drawn values, 1 and 2 workers', async () => {
    await check(
      'codelet-fault',
      fc.record({ where: fc.constantFrom<'compute' | 'cycles'>('compute', 'cycles'), expr: value, workers: fc.constantFrom(1, 2) }),
      ({ where, expr, workers }) => runFaulty(where, expr, workers),
      runs(12),
    );
  }, 180_000);
});
