/**
 * Checkpoints and --resume (issue 13): a training run with Adam (moments and
 * step count on the device) and Dropout (a counter on the device), stopped
 * after some steps and resumed from its checkpoint, ends bit-identical to the
 * run that was never stopped: every device variable in the final checkpoint,
 * and every step's loss and cycles in summary.json. Ctrl-C keeps the
 * checkpoint of the completed steps and says how to resume. Through the built
 * CLI, with 1 and 2 workers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-checkpoint-'));
const CONFIG = path.join(tmp, 'mlp-adam-dropout.yaml');
writeFileSync(
  CONFIG,
  `name: mlp-adam-dropout
device: tiny
model:
  graph:
    inputs:
      x: {shape: [32, 16]}
      label: {shape: [32], dtype: int32}
    initializers:
      w1: {shape: [16, 32], init: {normal: {std: 0.25, seed: 1}}}
      b1: {shape: [32], init: {constant: 0}}
      w2: {shape: [32, 4], init: {normal: {std: 0.25, seed: 2}}}
      b2: {shape: [4], init: {constant: 0}}
      ratio: {shape: [], init: {constant: 0.25}, trainable: false}
    nodes:
      - {op: MatMul, inputs: [x, w1], outputs: [h1]}
      - {op: Add, inputs: [h1, b1], outputs: [a1]}
      - {op: Relu, inputs: [a1], outputs: [r1]}
      - {op: Dropout, inputs: [r1, ratio], outputs: [d1]}
      - {op: MatMul, inputs: [d1, w2], outputs: [h2]}
      - {op: Add, inputs: [h2, b2], outputs: [logits]}
    outputs: [logits]
inputs:
  x: {random: {distribution: uniform, low: -1, high: 1, seed: 3}}
  label: {random: {distribution: integers, low: 0, high: 3, seed: 4}}
train:
  loss: {type: softmaxCrossEntropy, input: logits, labels: label}
  optimizer: {type: adam, lr: 0.01}
  steps: 6
  checkpointEvery: 2
`,
);

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file of a checkpoint folder, by relative path. */
function files(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

const summary = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as { steps: unknown[]; host: { resumedFrom?: number } };

describe.each([1, 2])('checkpoints and --resume, %i worker(s)', (workers) => {
  const w = String(workers);

  it('a run stopped after 4 steps and resumed ends bit-identical to one never stopped', () => {
    const whole = path.join(tmp, `whole-${w}`);
    const parted = path.join(tmp, `parted-${w}`);
    expect(sim('run', CONFIG, '--workers', w, '--out', whole).code).toBe(0);
    const first = sim('run', CONFIG, '--workers', w, '--out', parted, '--steps', '4');
    expect(first.code, first.stderr).toBe(0);
    expect(readdirSync(path.join(parted, 'checkpoints'))).toEqual(['step-000004']); // only the newest is kept
    const resumed = sim('run', '--resume', parted, '--workers', w);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/resuming after step 4 from .*checkpoints\/step-000004/);

    const a = files(path.join(whole, 'checkpoints/step-000006'));
    const b = files(path.join(parted, 'checkpoints/step-000006'));
    expect([...a.keys()].filter((k) => k.endsWith('.npy')).length).toBeGreaterThan(8); // weights, Adam moments and steps, the dropout counter
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) if (k.endsWith('.npy')) expect(b.get(k)!.equals(v), k).toBe(true);
    expect(summary(parted).steps).toEqual(summary(whole).steps);
    expect(summary(parted).host.resumedFrom).toBe(4);
  });

  it('Ctrl-C keeps the completed steps\' checkpoint and says how to resume; resuming finishes the run', async () => {
    const dir = path.join(tmp, `interrupted-${w}`);
    const child = spawn(process.execPath, [BIN, 'run', CONFIG, '--workers', w, '--out', dir, '--steps', '400'], { cwd: tmp });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const cps = path.join(dir, 'checkpoints');
    // Wait for a checkpoint, then interrupt as a terminal would (the whole process group is not ours: signal the process).
    for (let i = 0; i < 600 && !(existsSync(cps) && readdirSync(cps).some((n) => /^step-\d+$/.test(n))); i++) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted after \d+ of 400 steps; the checkpoint after step \d+ is kept in .*checkpoints\/step-\d+; continue with: sim run --resume /);
    expect(existsSync(path.join(dir, 'summary.json'))).toBe(false); // no run folder that looks complete
    const kept = readdirSync(cps).filter((n) => /^step-\d+$/.test(n));
    expect(kept).toHaveLength(1);
    const after = Number(kept[0].slice(5));
    // Resume only to step 6 (or just past the checkpoint) to keep the test short.
    const to = Math.max(6, after);
    const r = sim('run', '--resume', dir, '--workers', w, '--steps', String(to));
    expect(r.code, r.stderr).toBe(0);
    expect(summary(dir).steps).toHaveLength(to);
  }, 120_000);
});

describe('--resume refuses what it cannot continue', () => {
  it('a folder without checkpoints, and a config changed since the checkpoint', () => {
    const none = sim('run', '--resume', tmp);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--resume .*: it holds no checkpoint \(checkpoints\/step-N\/\); a run writes them with train\.checkpointEvery: N/);
    const dir = path.join(tmp, 'changed');
    const changed = path.join(tmp, 'changed.yaml');
    writeFileSync(changed, readFileSync(CONFIG, 'utf8'));
    expect(sim('run', changed, '--out', dir, '--steps', '2').code).toBe(0);
    writeFileSync(changed, readFileSync(CONFIG, 'utf8').replace('lr: 0.01', 'lr: 0.02'));
    const r = sim('run', '--resume', dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/changed\.yaml has changed since the checkpoint .* was written; a resumed run must use the config it started with/);
  });
});

describe('checkpoints of sharded state (replicated tensor sharding)', () => {
  it('weights off chip and sharded, accumulators and Adam state sharded over 2 replicas: resumed bit-identical, the tensors kept whole', () => {
    const config = path.join(tmp, 'sharded.yaml');
    const rts = '{location: {storage: offChip, replicatedTensorSharding: true}, minElementsForReplicatedTensorSharding: 0}';
    writeFileSync(
      config,
      readFileSync(CONFIG, 'utf8')
        .replace('device: tiny', 'device: {preset: m2000, ipus: 2, tiles: 16}\nreplicas: 2')
        .replace('  steps: 6\n', `  steps: 4\n  accumulationFactor: 2\n  weightTensorLocationSettings: ${rts}\n  optimizerStateTensorLocationSettings: ${rts}\n  accumulatorTensorLocationSettings: ${rts}\n`),
    );
    const whole = path.join(tmp, 'sharded-whole');
    const parted = path.join(tmp, 'sharded-parted');
    const a0 = sim('run', config, '--out', whole);
    expect(a0.code, a0.stderr).toBe(0);
    expect(sim('run', config, '--out', parted, '--steps', '2').code).toBe(0);
    const resumed = sim('run', '--resume', parted);
    expect(resumed.code, resumed.stderr).toBe(0);
    const a = files(path.join(whole, 'checkpoints/step-000004'));
    const b = files(path.join(parted, 'checkpoints/step-000004'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) if (k.endsWith('.npy')) expect(b.get(k)!.equals(v), k).toBe(true);
    expect(summary(parted).steps).toEqual(summary(whole).steps);
    // Whole tensors under the weights' names: w1 is 16 x 32, not a replica's shard of 256.
    const state = JSON.parse(readFileSync(path.join(whole, 'checkpoints/step-000004/state.json'), 'utf8')) as { tensors: { name: string; shape: number[] }[] };
    expect(state.tensors.find((t) => t.name === 'w1')!.shape).toEqual([16, 32]);
    expect(state.tensors.find((t) => t.name === 'Accum___w1')!.shape).toEqual([16, 32]);
    expect(state.tensors.some((t) => t.name.endsWith('/shard'))).toBe(false);
  }, 120_000);
});
