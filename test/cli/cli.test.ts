/**
 * The `sim` command as a user runs it: the compiled CLI (bin/sim.js ->
 * dist/, built by `npm test` and by `npm ci` through `prepare`), exit codes
 * and messages.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-cli-'));

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The example config with `edit` applied to its text, saved beside a copy of the custom op path. */
function variant(name: string, edit: (text: string) => string): string {
  const text = readFileSync(EXAMPLE_CONFIG, 'utf8').replace('../../examples/custom-ops/leaky-relu.ts', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'));
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, edit(text));
  return file;
}

function lineOf(file: string, needle: string): number {
  return readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(needle)) + 1;
}

beforeAll(() => {
  if (!existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test and npm ci do it)');
});

describe('sim run', () => {
  it('runs the README example and prints only summary.json with --json', () => {
    const out = path.join(tmp, 'run-json');
    const r = sim('run', EXAMPLE_CONFIG, '--out', out, '--json', '--steps', '3');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.steps).toHaveLength(3);
    expect(s.steps[2].loss).toBeLessThan(s.steps[0].loss);
    expect(JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'))).toEqual(s);
  });

  it('prints the human summary: losses, cycle split, top ops, peak memory, run folder', () => {
    const r = sim('run', EXAMPLE_CONFIG, '--out', path.join(tmp, 'run-human'), '--steps', '2');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/step +1 +loss \d/);
    expect(r.stdout).toMatch(/total cycles +[\d,]+ +\([\d.]+ us simulated\)/);
    expect(r.stdout).toMatch(/compute [\d,]+ \([\d.]+%\) +exchange [\d,]+ \([\d.]+%\) +sync [\d,]+ \([\d.]+%\) +host copies/);
    expect(r.stdout).toContain('most expensive ops');
    expect(r.stdout).toMatch(/peak tile memory [\d,]+ B on tile \d+/);
    expect(r.stdout).toContain('run-human');
  });

  it('exits 2 on a misspelt key, naming file:line:col and suggesting the right key', () => {
    const file = variant('typo', (t) => t.replace('optimizer:', 'optimiser:'));
    const r = sim('run', file, '--out', path.join(tmp, 'typo-out'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${path.basename(file)}:${lineOf(file, 'optimiser:')}:`);
    expect(r.stderr).toMatch(/optimiser/);
    expect(r.stderr).toMatch(/did you mean 'optimizer'/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(path.join(tmp, 'typo-out'))).toBe(false);
  });

  it('exits 2 on a wrong shape, naming the node, its line and the shapes', () => {
    const file = variant('shape', (t) => t.replace('w: {shape: [32, 8]', 'w: {shape: [31, 8]'));
    const r = sim('run', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${path.basename(file)}:${lineOf(file, '{op: MatMul')}:`);
    expect(r.stderr).toMatch(/MatMul_0.*inner dimensions differ: x is float32\[16, 32\], w is float32\[31, 8\]/);
  });

  it('exits 2 on an unknown custom op with a did-you-mean', () => {
    const file = variant('unknown-op', (t) => t.replace('{op: LeakyRelu,', '{op: LeakyRelux,'));
    const r = sim('run', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown op 'LeakyRelux' in domain 'custom.ops'; did you mean 'custom.ops::LeakyRelu'/);
  });

  it('exits 1 when a tile runs out of memory, naming the tile, the bytes and the largest tensors, and writes nothing', () => {
    const file = variant('oom', (t) => t.replace('device: tiny', 'device: {preset: tiny, bytesPerTile: 4096}'));
    const out = path.join(tmp, 'oom-out');
    const r = sim('run', file, '--out', out);
    expect(r.code).toBe(1);
    // The fullest tile is 2: the example's small tensors (b, the loss, ...) start there, not on tile 0 (src/lower/linear.ts).
    expect(r.stderr).toMatch(/Out of memory on tile 2: \d+ bytes used but tiles only have 4096 bytes of memory/);
    expect(r.stderr).toMatch(/Largest tensors on tile 2:\n {2}\S+ \(\w+/);
    expect(existsSync(out)).toBe(false);
  });

  it('exits 2 on a bad command line', () => {
    expect(sim('run', EXAMPLE_CONFIG, '--workers', '0').code).toBe(2);
    expect(sim('run').code).toBe(2);
    const missing = sim('run', path.join(tmp, 'nope.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.yaml');
  });
});

describe('other commands', () => {
  it('sim ops lists the built-in ops and, with --custom, the seed LeakyRelu', () => {
    const r = sim('ops', '--json', '--custom', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'));
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { domain: string; type: string; version: number; grad: boolean }[];
    expect(rows).toContainEqual(expect.objectContaining({ domain: 'ai.onnx', type: 'MatMul', version: 13, grad: true }));
    expect(rows).toContainEqual(expect.objectContaining({ domain: 'custom.ops', type: 'LeakyRelu', version: 1, grad: true }));
    expect(rows).toContainEqual(expect.objectContaining({ domain: 'custom.ops', type: 'LeakyReluGrad' }));
  });

  it('sim devices --json gives the presets with their numbers', () => {
    const r = sim('devices', '--json');
    expect(r.code).toBe(0);
    const mk2 = (JSON.parse(r.stdout) as { name: string; tilesPerIpu: number; bytesPerTile: number }[]).find((d) => d.name === 'mk2')!;
    expect(mk2).toMatchObject({ tilesPerIpu: 1472, bytesPerTile: 638976 });
  });

  it('sim schema prints a JSON Schema', () => {
    const r = sim('schema');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).properties).toHaveProperty('train');
  });

  it('sim vertex estimates one vertex, custom codelets included', () => {
    const r = sim('vertex', 'LeakyRelu', '--elements', '600', '--device', 'mk2', '--custom', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'));
    expect(r.code).toBe(0);
    // W x (17 + ceil(100/2) x 4) + 20 = 6 x 217 + 20 (PopLibs unary MultiVertex structure).
    expect(r.stdout).toMatch(/vertex estimate +1322 cycles/);
    const bad = sim('vertex', 'LeakyRelu', '--elements', '10');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/no codelet 'LeakyRelu'/);
  });

  it('sim compile prints the memory summary and writes the program', () => {
    const out = path.join(tmp, 'compiled');
    const r = sim('compile', EXAMPLE_CONFIG, '--out', out);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/max tile +\d+ B on tile \d/);
    const program = JSON.parse(readFileSync(path.join(out, 'program.json'), 'utf8'));
    expect(program.schemaVersion).toBe(1);
    expect(program.computeSets.length).toBeGreaterThan(5);
  });
});

describe('run folder safety', () => {
  it('refuses to replace a folder of the user files, and keeps it', () => {
    const mine = path.join(tmp, 'my-files');
    mkdirSync(mine);
    writeFileSync(path.join(mine, 'notes.txt'), 'precious');
    const r = sim('run', EXAMPLE_CONFIG, '--out', mine, '--steps', '1');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/exists and is not a tilesim output folder \(no summary\.json\); refusing to replace it/);
    expect(readFileSync(path.join(mine, 'notes.txt'), 'utf8')).toBe('precious');
  });

  it('replaces an earlier run folder', () => {
    const out = path.join(tmp, 'rerun');
    expect(sim('run', EXAMPLE_CONFIG, '--out', out, '--steps', '1').code).toBe(0);
    expect(sim('run', EXAMPLE_CONFIG, '--out', out, '--steps', '2').code).toBe(0);
    expect(JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8')).steps).toHaveLength(2);
  });
});

describe('sim gradcheck', () => {
  it("passes the seed's LeakyRelu and prints the worst element per input", () => {
    const r = sim('gradcheck', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'), '--op', 'custom.ops::LeakyRelu', '--shapes', '6x5', '--attr', 'alpha=0.2');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok +d loss \/ d input: max \|analytic - numeric\| = [\d.e+-]+ at element \d+ \(analytic [-\d.e]+, numeric [-\d.e]+\) over 30 elements/);
  });

  it('fails (exit 1) on a grad op that is wrong, showing the disagreement', () => {
    const r = sim('gradcheck', path.join(ROOT, 'test/fixtures/ops/wrong-grad.ts'), '--op', 'test.ops::Double', '--shapes', '3x4');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL d loss \/ d x/);
    expect(r.stderr).toMatch(/gradcheck failed/);
  });

  it('exits 2 on an unknown op', () => {
    const r = sim('gradcheck', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'), '--op', 'custom.ops::LeakyRelo', '--shapes', '3');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/did you mean 'custom\.ops::LeakyRelu'/);
  });
});

describe('sim sweep', () => {
  it('runs the grid, one row per point, in order', () => {
    const r = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1,4', '--set', 'train.steps=2', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { point: Record<string, unknown>; cycles: { total: number; exchange: number }; steps: unknown[] }[];
    expect(rows.map((x) => x.point)).toEqual([
      { 'device.tiles': 1, 'train.steps': 2 },
      { 'device.tiles': 4, 'train.steps': 2 },
    ]);
    for (const x of rows) expect(x.steps).toHaveLength(2);
    // One tile needs no exchange at all; four do.
    expect(rows[0].cycles.exchange).toBe(0);
    expect(rows[1].cycles.exchange).toBeGreaterThan(0);
  });

  it('exits 2 on a malformed --set and names the key path of a bad value', () => {
    expect(sim('sweep', EXAMPLE_CONFIG, '--set', 'train.steps').code).toBe(2);
    const r = sim('sweep', EXAMPLE_CONFIG, '--set', 'train.steps=zero');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/train\.steps/);
  });
});

describe('sim vertex --param', () => {
  it('feeds params the estimate reads: more AMP rows cost more cycles', () => {
    const cycles = (rows: number) => {
      const r = sim('vertex', 'AmpMatMul', '--elements', String(rows * 16), '--dtype', 'float16', '--device', 'bow', '--param', `rows=${rows}`, 'k=16', 'n=16');
      expect(r.code).toBe(0);
      return Number(/vertex estimate +(\d+) cycles/.exec(r.stdout)![1]);
    };
    const small = cycles(16);
    const large = cycles(256);
    expect(large).toBeGreaterThan(small);
    // Bow AMP calibration (ipu-architecture.md §6): N=16 measured 402 cycles, N=256 1352; within 10%.
    expect(Math.abs(small - 402) / 402).toBeLessThan(0.1);
    expect(Math.abs(large - 1352) / 1352).toBeLessThan(0.1);
    expect(sim('vertex', 'AmpMatMul', '--elements', '16', '--param', 'rows=x').code).toBe(2);
  });
});
