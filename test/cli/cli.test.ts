/**
 * The `sim` command as a user runs it: the compiled CLI (bin/sim.js ->
 * dist/, built by `npm test` and by `npm ci` through `prepare`), exit codes
 * and messages.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';
import { SLOWEST_OPS } from '../../src/cli/timings.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-cli-'));

/** The first `name` on PATH; a clear failure (not a skip) when there is none. */
function onPath(name: string): string {
  const found = (process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, name)).find((f) => existsSync(f));
  if (!found) throw new Error(`'${name}' is not on PATH: it comes with util-linux (Debian's Essential bsdutils package)`);
  return found;
}

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const MLP_ADAM = path.join(ROOT, 'configs/examples/mlp-adam.yaml');

/** A copy of the MLP (Adam, softmax cross entropy over 4 classes) with `edit` applied to its text. */
function mlpVariant(name: string, edit: (text: string) => string): string {
  const file = path.join(tmp, `${name}.yaml`);
  writeFileSync(file, edit(readFileSync(MLP_ADAM, 'utf8')));
  return file;
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

  it('writes the same outputs with 1 and 2 workers when the workers read a big output to the host (sim/engine.ts readToHost)', () => {
    // y is 512 KiB, over READ_IN_WORKERS_BYTES: with 2 workers each reads its share into shared memory.
    const file = path.join(tmp, 'big-out.yaml');
    writeFileSync(
      file,
      `name: big-out
device: {preset: mk2, tiles: 64}
model:
  graph:
    inputs: {x: {shape: [256, 512]}}
    initializers: {w: {shape: [256, 512], init: {normal: {std: 1, seed: 1}}}}
    nodes:
      - {op: Add, inputs: [x, w], outputs: [y]}
    outputs: [y]
inputs:
  x: {random: {distribution: normal, mean: 0, std: 1, seed: 7}}
report: {trace: false, html: false}
`,
    );
    const ys = ['1', '2'].map((w) => {
      const out = path.join(tmp, `big-out-${w}`);
      const r = sim('run', file, '--workers', w, '--steps', '2', '--out', out);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return readFileSync(path.join(out, 'outputs/y.npy'));
    });
    expect(ys[0]!.length).toBeGreaterThan(256 * 512 * 4);
    expect(ys[1]!.equals(ys[0]!)).toBe(true);
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
    const r = sim('vertex', 'custom.ops::LeakyRelu', '--elements', '600', '--device', 'mk2', '--custom', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'));
    expect(r.code).toBe(0);
    // W x (17 + ceil(100/2) x 4) + 20 = 6 x 217 + 20 (PopLibs unary MultiVertex structure).
    expect(r.stdout).toMatch(/vertex estimate +1322 cycles/);
    // Without its domain when only one domain has that name.
    const short = sim('vertex', 'LeakyRelu', '--elements', '600', '--device', 'mk2', '--custom', path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'));
    expect(short.stdout).toMatch(/^custom\.ops::LeakyRelu \(MultiVertex\)/);
    expect(short.stdout).toMatch(/vertex estimate +1322 cycles/);
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
    // Exchange copies are typed-array columns in memory: written as plain lists, one entry per copy.
    const ex = program.exchanges.find((e: { copies: { count: number } }) => e.copies.count > 0);
    expect(Array.isArray(ex.copies.srcTile)).toBe(true);
    expect(ex.copies.srcTile).toHaveLength(ex.copies.count);
    // A tensor's tile intervals likewise: four lists of `count` entries, not a record per interval.
    const t = program.tensors.find((x: { intervals: { count: number } }) => x.intervals.count > 1);
    for (const col of ['tile', 'begin', 'end', 'offset']) expect(t.intervals[col]).toHaveLength(t.intervals.count);
    expect(t.intervals.end[0]).toBeGreaterThan(t.intervals.begin[0]);
  });

  it('a compile that outgrows the host heap exits 1 with the numbers, not V8\'s abort', () => {
    // An 80 MB heap chosen by the user (so sim does not raise it) against the BERT-style layer on a full mk2.
    // When this was written the compile failed at 100 MB and passed at 120 MB (its vertices, exchange buffers,
    // tile intervals and reduction plans are columns): 80 MB leaves a margin.
    const r = spawnSync(process.execPath, ['--max-old-space-size=80', BIN, 'compile', path.join(ROOT, 'configs/examples/bert-layer.yaml')], { encoding: 'utf8', cwd: tmp, timeout: 120_000 });
    expect(r.status).toBe(1);
    // Where it stops depends on what is garbage at a check (collections run when they will): any pass, named.
    expect(r.stderr).toMatch(/out of host memory while [^\n:]+: the compile holds \d+ MB of Node's \d+ MB heap limit/);
    expect(r.stderr).toMatch(/max-old-space-size=\d+/);
    expect(r.stderr).not.toMatch(/FATAL ERROR|JavaScript heap out of memory/);
  }, 150_000);

  it('sim compile --timings prints each compile pass in order with its time, peak heap, typed arrays and RSS', () => {
    const r = sim('compile', MLP_ADAM, '--timings');
    expect(r.code).toBe(0);
    const table = r.stdout.slice(r.stdout.indexOf('compile passes (host time, peak heap, peak typed arrays, peak process RSS):'));
    const rows = [...table.matchAll(/^ {2}(.+?) +(\d+\.\d\d) s +(\d+) MB +(\d+) MB +(\d+) MB$/gm)].map((m) => ({
      pass: m[1],
      s: Number(m[2]),
      mb: Number(m[3]),
      arrays: Number(m[4]),
      rss: Number(m[5]),
    }));
    expect(rows.map((x) => x.pass)).toEqual([
      // src/compile.ts's PASSES, in order (a training config: all of them) ...
      'loading custom ops',
      'building the graph',
      'adding the loss',
      'autodiff',
      'adding the optimizer',
      'choosing anchors',
      'scheduling',
      'loading codelets',
      'lowering ops',
      // ... then DeviceGraph.finalize's.
      'finding tensor lifetimes',
      'placing tensors in tile memory',
      'counting code and vertex state',
      'resolving vertex fields',
      'resolving exchange copies',
      // ... then the CLI's report.
      'writing the compile report',
      'total',
    ]);
    const total = rows.pop()!;
    // Rounding to 10 ms per row: the total is the sum within that.
    expect(Math.abs(total.s - rows.reduce((a, x) => a + x.s, 0))).toBeLessThanOrEqual(0.01 * rows.length);
    expect(total.mb).toBe(Math.max(...rows.map((x) => x.mb)));
    expect(total.arrays).toBe(Math.max(...rows.map((x) => x.arrays)));
    expect(total.rss).toBe(Math.max(...rows.map((x) => x.rss)));
    for (const x of rows) {
      expect(x.mb).toBeGreaterThan(0);
      // The resident set holds the heap (the pages V8 has touched for it are at least those in use).
      expect(x.rss).toBeGreaterThanOrEqual(x.mb);
    }
    // Then the ops slowest to lower (which names, test/cli/timings.test.ts): slowest first, within the lowering's time.
    const slow = r.stdout.slice(r.stdout.indexOf('ops slowest to lower'));
    const [, shown, of] = /^ops slowest to lower \((\d+) of (\d+) timed;/.exec(slow)!.map(Number);
    const ops = [...slow.matchAll(/^ {2}(.+?) +(\d+\.\d) ms +(\d+\.\d)%$/gm)].map((m) => ({ op: m[1], ms: Number(m[2]) }));
    expect(ops).toHaveLength(shown);
    expect(shown).toBe(Math.min(SLOWEST_OPS, of));
    expect(ops.map((o) => o.ms)).toEqual([...ops.map((o) => o.ms)].sort((a, b) => b - a));
    const lowering = rows.find((x) => x.pass === 'lowering ops')!;
    expect(ops.reduce((a, o) => a + o.ms, 0) / 1000).toBeLessThanOrEqual(lowering.s + 0.01);
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

describe('errors that are the user\'s, not tilesim\'s', () => {
  it('checks --out before compiling: a path under a file exits 2 naming it, before the run could fail', () => {
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    // This config runs out of tile memory when compiled (exit 1): exit 2 shows --out was checked first.
    const oom = variant('oom-out', (t) => t.replace('device: tiny', 'device: {preset: tiny, bytesPerTile: 4096}'));
    const r = sim('run', oom, '--out', path.join(file, 'out'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out ${path.join(file, 'out')}: cannot create its parent folder ${file}`);
    expect(r.stderr).toMatch(/name a folder you can write to/);
    expect(r.stderr).not.toMatch(/internal error|Out of memory/);
    expect(r.stdout).toBe('');
    const c = sim('compile', EXAMPLE_CONFIG, '--out', path.join(file, 'prog'));
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/--out .*cannot create its parent folder/);
  });

  it.skipIf(process.getuid?.() === 0)('checks --out before compiling: a read-only parent exits 2', () => {
    const ro = path.join(tmp, 'read-only');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const r = sim('run', EXAMPLE_CONFIG, '--out', path.join(ro, 'out'));
    chmodSync(ro, 0o755);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`cannot write in ${ro}: permission denied`);
  });

  it('exits 2 on a label out of range for the loss, naming the input, its line, the index and the value', () => {
    const file = mlpVariant('bad-label', (t) => t.replace('low: 0, high: 3, seed: 4', 'low: 0, high: 9, seed: 4'));
    const r = sim('run', file, '--out', path.join(tmp, 'bad-label-out'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`${path.basename(file)}:${lineOf(file, 'label: {random')}:\\d+: inputs\\.label: label (\\d+) at index \\[(\\d+)\\] is out of range`));
    expect(r.stderr).toMatch(/over 4 classes: labels must be in \[0, 4\)/);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(existsSync(path.join(tmp, 'bad-label-out'))).toBe(false);
  });

  it('exits 1 when a label reaches the loss through another op, naming the vertex, the label and the sample', () => {
    const file = mlpVariant('bad-label-identity', (t) =>
      t
        .replace('low: 0, high: 3, seed: 4', 'low: 0, high: 9, seed: 4')
        .replace('outputs: [logits]}', 'outputs: [logits]}\n      - {op: Identity, inputs: [label], outputs: [label2]}')
        .replace('labels: label}', 'labels: label2}'),
    );
    const r = sim('run', file, '--out', path.join(tmp, 'bad-label-2-out'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^run failed: codelet 'ClassLoss' \(step 0, tile \d+, compute set '[^']+', op '[^']+'\): label \d+ of sample \d+ is out of range: classes are 0 to 3/);
  });
});

describe('feedback while it works', () => {
  it("prints each step's line as the step ends, also into a pipe", async () => {
    const child = spawn(process.execPath, [BIN, 'run', MLP_ADAM, '--steps', '60', '--out', path.join(tmp, 'live')], { cwd: tmp });
    let seen = '';
    let whenFirstStep: string | undefined;
    child.stdout.on('data', (d: Buffer) => {
      seen += d.toString();
      if (whenFirstStep === undefined && seen.includes('step   0')) whenFirstStep = seen;
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    // The first step's line arrives on its own, long before the summary (60 steps later).
    expect(whenFirstStep).toBeDefined();
    expect(whenFirstStep).not.toContain('total cycles');
    expect(whenFirstStep).not.toContain('step  59');
    // Each step once, numbered from 0 as in summary.json, then the summary.
    expect(seen.match(/^ {2}step +\d+ /gm)).toHaveLength(60);
    expect(seen).toMatch(/^ {2}step +59 +loss [\d.]+ +cycles [\d,]+\ntotal cycles/m);
  });

  // util-linux's script(1) gives the CLI a terminal. It comes with Debian's bsdutils, an Essential
  // package every Debian system has (no apt step); it is found on PATH, not at a fixed path.
  it('shows compile progress on a terminal, and none in a pipe', () => {
    const script = onPath('script');
    const tty = spawnSync(script, ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} compile ${JSON.stringify(EXAMPLE_CONFIG)}`, '/dev/null'], { encoding: 'utf8', cwd: tmp });
    expect(tty.status).toBe(0);
    expect(tty.stdout).toMatch(/compiling: [a-z ]+ \S+ \d+\/\d+/); // the pass, its bar and count (redraws are throttled)
    const piped = sim('compile', EXAMPLE_CONFIG);
    expect(piped.stdout + piped.stderr).not.toContain('compiling:');
    // A sweep counts its points on a terminal, and only there.
    const sweepTty = spawnSync(script, ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} sweep ${JSON.stringify(EXAMPLE_CONFIG)} --set train.steps=1,2`, '/dev/null'], { encoding: 'utf8', cwd: tmp });
    expect(sweepTty.status).toBe(0);
    expect(sweepTty.stdout).toMatch(/sweep: points \S+ \d\/2/);
    expect(sim('sweep', EXAMPLE_CONFIG, '--set', 'train.steps=1,2').stdout).not.toContain('sweep: points');
  });
});

describe('a custom-op module outside the repository', () => {
  /** examples/custom-ops/leaky-relu.ts and the example config copied into a fresh folder under the OS temp dir. */
  function outside(name: string, packageJson?: object): string {
    const dir = mkdtempSync(path.join(tmpdir(), `tilesim-${name}-`));
    for (const f of ['leaky-relu.ts', 'leaky-relu.codelets.ts']) writeFileSync(path.join(dir, f), readFileSync(path.join(ROOT, 'examples/custom-ops', f)));
    if (packageJson) writeFileSync(path.join(dir, 'package.json'), JSON.stringify(packageJson));
    const config = readFileSync(EXAMPLE_CONFIG, 'utf8').replace('../../examples/custom-ops/leaky-relu.ts', 'leaky-relu.ts');
    expect(config).toContain('customOps: [leaky-relu.ts]');
    writeFileSync(path.join(dir, 'train.yaml'), config);
    return dir;
  }

  it("resolves `import ... from 'tilesim'` (op module, main thread) and 'tilesim/device' (codelet module, every thread) (CommonJS .ts)", () => {
    const dir = outside('ext-cjs');
    expect(path.relative(ROOT, dir).startsWith('..')).toBe(true);
    for (const workers of ['1', '2']) {
      const r = spawnSync(process.execPath, [BIN, 'run', 'train.yaml', '--steps', '2', '--workers', workers, '--json'], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(JSON.parse(r.stdout).ops.map((o: { type: string }) => o.type)).toContain('LeakyRelu');
    }
  });

  it('resolves it in a "type": "module" package too, and for gradcheck', () => {
    const dir = outside('ext-esm', { type: 'module' });
    const r = spawnSync(process.execPath, [BIN, 'run', 'train.yaml', '--steps', '1', '--workers', '2'], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const g = spawnSync(process.execPath, [BIN, 'gradcheck', 'leaky-relu.ts', '--op', 'custom.ops::LeakyRelu', '--shapes', '3x4'], { encoding: 'utf8', cwd: dir, timeout: 60_000 });
    expect(g.status).toBe(0);
    expect(g.stdout).toContain('all grad ops agree');
  });
});

describe('papercuts', () => {
  it('sim --version prints the package version', () => {
    const r = sim('--version');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`tilesim ${JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}`);
  });

  it('sim devices: columns apart (ampMacsPerCycle included), and --sources cites every number', () => {
    const r = sim('devices');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    const presets = lines[0].trim().split(/\s+/).slice(1);
    expect(presets).toEqual(['tiny', 'mk1', 'mk2', 'bow', 'm2000', 'pod16', 'pod64', 'pod128', 'pod256', 'bow2000', 'bowpod16']);
    const rows = lines.slice(1).filter((l) => !l.startsWith('every number'));
    // Every row: the field and one cell per preset, at least two spaces apart.
    for (const row of rows) expect(row.trim().split(/ {2,}/), row).toHaveLength(1 + presets.length);
    expect(rows.find((l) => l.startsWith('ampMacsPerCycle.float16'))!.trim().split(/ {2,}/)).toEqual(['ampMacsPerCycle.float16', '64', '32', '64', '64', '64', '64', '64', '64', '64', '64', '64']);
    // Single chips have no IPU-Links: their cells say so.
    expect(rows.find((l) => l.startsWith('topology'))!.trim().split(/ {2,}/)).toEqual(['topology', '-', '-', '-', '-', 'ladder', 'ladder', 'torus', 'torus', 'torus', 'ladder', 'ladder']);
    // Only the systems of several IPU-Link domains say how big a domain is (GW-Links between them).
    expect(rows.find((l) => l.startsWith('linkDomainIpus'))!.trim().split(/ {2,}/)).toEqual(['linkDomainIpus', '-', '-', '-', '-', '-', '-', '-', '64', '64', '-', '-']);
    expect(r.stdout).toContain('sim devices --sources');

    const s = sim('devices', '--sources');
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/^mk2 \(configs\/devices\/mk2\.yaml\)$/m);
    expect(s.stdout).toMatch(/^ {2}tilesPerIpu +1472 +SPEC: GC200 has 1472 tiles$/m);
    expect(s.stdout).toMatch(/^ {2}ampMacsPerCycle\.float16 +64 +MODEL \+ DERIVED: 16 AMP units/m);
    expect(s.stdout).not.toContain('(no citation)');
    const j = JSON.parse(sim('devices', '--json', '--sources').stdout) as { name: string; sources: Record<string, string> }[];
    expect(j.find((d) => d.name === 'bow')!.sources.clockHz).toMatch(/^[A-Z]+/);
  });

  it('sim vertex prints the params the estimate read, defaults marked', () => {
    const r = sim('vertex', 'AmpMatMul', '--elements', '256', '--param', 'rows=32');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/params +rows=32 k=16 \(default\) n=16 \(default\)/);
    expect(sim('vertex', 'Relu', '--elements', '64').stdout).toMatch(/params +none read by the estimate/);
  });

  it('sim gradcheck needs no module for a built-in op', () => {
    const r = sim('gradcheck', '--op', 'ai.onnx::Sigmoid', '--shapes', '3x4');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok +d loss \/ d X: .* over 12 elements/);
  });

  it("sim sweep switches the optimizer type, dropping the keys the new type doesn't take", () => {
    // mlp-adam.yaml sets beta1, beta2 and eps, which SGD rejects.
    const r = sim('sweep', MLP_ADAM, '--set', 'train.optimizer.type=adam,sgd', '--set', 'train.steps=3', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { point: Record<string, unknown>; steps: { loss: number }[] }[];
    expect(rows.map((x) => x.point['train.optimizer.type'])).toEqual(['adam', 'sgd']);
    expect(rows[0].steps[2].loss).not.toBe(rows[1].steps[2].loss);
    // A key the point sets itself is kept, and still checked.
    const bad = sim('sweep', MLP_ADAM, '--set', 'train.optimizer.type=sgd', '--set', 'train.optimizer.beta1=0.5');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/beta1/);
  });

  it('liveness.csv names its column programStep, and sim report re-renders from it', () => {
    const out = path.join(tmp, 'liveness');
    expect(sim('run', EXAMPLE_CONFIG, '--out', out, '--steps', '1').code).toBe(0);
    const csv = readFileSync(path.join(out, 'profile/liveness.csv'), 'utf8').split('\n');
    expect(csv[0]).toBe('programStep,name,bytes');
    expect(csv[1]).toMatch(/^0,/);
    // The liveness read back from the CSV renders the report the run wrote.
    const written = readFileSync(path.join(out, 'report.html'), 'utf8');
    const r = sim('report', out);
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(out, 'report.html'), 'utf8')).toBe(written);
  });
});
