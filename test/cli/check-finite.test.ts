/**
 * run.checkFinite (issue 13 item 5), through the built CLI: a custom op whose
 * output turns NaN stops a training run at that op (on by default when
 * training), naming the op, the step and its inputs' ranges; turned off, the
 * run goes on and summary.json records the loss as "NaN", never null.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG } from '../helpers.js';
import { faulty, runFaulty, sim, tmp } from './faulty-module.js';

const NAN_AT_0 = 'y[0] = NaN; if (x.length > 0) { for (let i = 1; i < x.length; i++) y[i] = x[i] >= 0 ? x[i] : Math.fround(params.alpha) * x[i]; return; }';

/** The README's training example (MatMul, Add, LeakyRelu, L1 loss) with the NaN-writing LeakyRelu. */
function training(name: string, run = ''): string {
  const { ops } = faulty(name, 'compute', NAN_AT_0);
  const file = path.join(tmp, `${name}-train.yaml`);
  const text = readFileSync(EXAMPLE_CONFIG, 'utf8').replace('../../examples/custom-ops/leaky-relu.ts', ops).replace('steps: 20', 'steps: 3');
  writeFileSync(file, text + run);
  return file;
}

describe.each([1, 2])('run.checkFinite, %i worker(s)', (workers) => {
  it('training (on by default): stops at the op, naming it, the step and its inputs', () => {
    const err = runFaulty(training(`nan-${workers}`), workers);
    expect(err).toMatch(/^run failed: step 0: op 'LeakyRelu_2' \(custom\.ops::LeakyRelu:1\) wrote NaN to its output 'y' \(first at element 0; \[-?\d[^\]]*\], \d+ NaN of 128\)\./);
    expect(err).toMatch(/Its inputs: 'hb' float32\[16, 8\] \[-?\d[^\]]*, -?\d[^\]]*\]\./);
    expect(err).toContain('run.checkFinite');
  });

  it('off: the run goes on and summary.json says "NaN", not null', () => {
    const out = path.join(tmp, `nan-off-${workers}`);
    const r = sim(['run', training(`nan-off-${workers}`, 'run: {checkFinite: false}\n'), '--workers', String(workers), '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')) as { steps: { loss: unknown }[] };
    expect(summary.steps.map((s) => s.loss)).toEqual(['NaN', 'NaN', 'NaN']);
  });

  it('inference: off by default, on when asked (on the pool with 2 workers)', () => {
    const { config } = faulty(`nan-infer-${workers}`, 'compute', NAN_AT_0);
    const out = path.join(tmp, `nan-infer-${workers}`);
    expect(sim(['run', config, '--workers', String(workers), '--out', out]).code).toBe(0);
    writeFileSync(config, readFileSync(config, 'utf8') + 'run: {checkFinite: true}\n');
    const err = runFaulty(config, workers);
    expect(err).toMatch(/^run failed: step 0: op 'LeakyRelu_0' \(custom\.ops::LeakyRelu:1\) wrote NaN to its output 'y' \(first at element 0; \[-?\d[^\]]*\], \d+ NaN of 131072\)\. Its inputs: 'x' float32\[256, 512\] \[-?\d[^\]]*\]\./);
  });
});
