/**
 * `sim sweep` on the local pool of processes (no Redis: the queue is tested by
 * `npm run test:distributed`), the sweep folder and --resume, and the checks a
 * worker makes on a job before it runs it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLE_CONFIG, ROOT } from '../helpers.js';
import { checkJob, type PointJob } from '../../src/cli/sweep-point.js';
import { maskUrl, parseRedisUrl, scrub } from '../../src/cli/redis-url.js';
import { sha256 } from '../../src/cli/sweep.js';
import { UserError } from '../../src/errors.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-sweep-'));

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: tmp, timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('sim sweep, local', () => {
  it('writes one run folder per point, the rows in point order, and the same ids every time', () => {
    const out = path.join(tmp, 'local');
    const r = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1,4', '--set', 'train.steps=1,2', '--out', out, '--jobs', '2');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(readFileSync(path.join(out, 'sweep.json'), 'utf8')) as { id: string; point: Record<string, number>; cycles: { total: number } }[];
    expect(rows.map((x) => x.point)).toEqual([
      { 'device.tiles': 1, 'train.steps': 1 },
      { 'device.tiles': 1, 'train.steps': 2 },
      { 'device.tiles': 4, 'train.steps': 1 },
      { 'device.tiles': 4, 'train.steps': 2 },
    ]);
    for (const row of rows) {
      const summary = JSON.parse(readFileSync(path.join(out, 'runs', row.id, 'summary.json'), 'utf8')) as { cycles: { total: number } };
      expect(summary.cycles.total).toBe(row.cycles.total);
    }
    const csv = readFileSync(path.join(out, 'sweep.csv'), 'utf8');
    expect(csv.split('\n')[0]).toBe('id,device.tiles,train.steps,total,compute,exchange,sync,streamCopy,seconds,finalLoss,peakTileBytes,error');
    const plan = JSON.parse(readFileSync(path.join(out, 'sweep-plan.json'), 'utf8')) as { points: { id: string }[] };
    expect(plan.points.map((p) => p.id)).toEqual(rows.map((x) => x.id));

    // The same config and grid: the same ids, the same file, on one process or two.
    const again = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1,4', '--set', 'train.steps=1,2', '--out', path.join(tmp, 'again'), '--jobs', '1');
    expect(again.code).toBe(0);
    expect(readFileSync(path.join(tmp, 'again/sweep.csv'), 'utf8')).toBe(csv);
  });

  it('--resume runs only the points without a result in --out', () => {
    const out = path.join(tmp, 'resume');
    const args = ['sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1,4', '--out', out];
    expect(sim(...args).code).toBe(0);
    const csv = readFileSync(path.join(out, 'sweep.csv'), 'utf8');
    const ids = readdirSync(path.join(out, 'runs'));
    // As if Ctrl-C had stopped the sweep before its second point.
    rmSync(path.join(out, 'points', `${ids[1]}.json`));
    rmSync(path.join(out, 'runs', ids[1]), { recursive: true });
    rmSync(path.join(out, 'sweep.csv'));
    const r = sim(...args, '--resume');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('resuming: 1 of 2 points already done');
    expect(readFileSync(path.join(out, 'sweep.csv'), 'utf8')).toBe(csv);
    expect(existsSync(path.join(out, 'runs', ids[1], 'summary.json'))).toBe(true);
    // Without --resume, a sweep starts afresh; --resume needs the folder.
    expect(sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1', '--out', path.join(tmp, 'nothing-yet'), '--resume').code).toBe(2);
  });

  it('refuses an --out folder that is not a sweep folder', () => {
    const mine = path.join(tmp, 'mine');
    mkdirSync(mine);
    writeFileSync(path.join(mine, 'notes.txt'), 'keep me');
    const r = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1', '--out', mine);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not a sweep folder/);
    expect(readFileSync(path.join(mine, 'notes.txt'), 'utf8')).toBe('keep me');
  });

  it('--queue: a bad URL is exit 2 and an unreachable server exit 1, the password never printed', () => {
    const bad = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1', '--queue', 'redis://:hunter2@localhost:6379/x');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('redis://***@localhost:6379/x');
    // Files outside the sweep's folder (the config's, by default) cannot go to workers.
    const outside = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1', '--queue', 'redis://:hunter2@127.0.0.1:1/0');
    expect(outside.code).toBe(2);
    expect(outside.stderr).toMatch(/leaky-relu\.ts is outside the sweep's folder/);
    const down = sim('sweep', EXAMPLE_CONFIG, '--set', 'device.tiles=1', '--queue', 'redis://:hunter2@127.0.0.1:1/0', '--root', ROOT);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot use the Redis server at redis:\/\/\*\*\*@127\.0\.0\.1:1\/0: connect ECONNREFUSED/);
    const worker = sim('worker', '--queue', 'redis://:hunter2@127.0.0.1:1/0');
    expect(worker.code).toBe(1);
    for (const x of [bad, outside, down, worker]) expect(x.stdout + x.stderr).not.toContain('hunter2');
  });
});

describe('redis URLs', () => {
  it('parses host, port, db and password, and masks user and password', () => {
    const t = parseRedisUrl('redis://me:p%40ss@example.org:6380/3');
    expect(t).toMatchObject({ host: 'example.org', port: 6380, db: 3, username: 'me', password: 'p@ss', tls: false, display: 'redis://***@example.org:6380/3' });
    expect(parseRedisUrl('rediss://h').port).toBe(6379);
    expect(maskUrl('redis://:secret@h:1/0')).toBe('redis://***@h:1/0');
    expect(maskUrl('not a url :secret@')).toBe('not a url :secret@');
    expect(scrub('AUTH p@ss failed (p%40ss)', t)).toBe('AUTH *** failed (***)');
    expect(() => parseRedisUrl('http://h')).toThrow(UserError);
    expect(() => parseRedisUrl('redis://:pw@h/db1')).toThrow(/redis:\/\/\*\*\*@h\/db1/);
  });
});

describe('a worker checks each job before it runs it', () => {
  const root = path.join(tmp, 'served', 'sweep');
  mkdirSync(path.join(root, 'ops'), { recursive: true });
  const module = path.join(root, 'ops/leaky-relu.ts');
  copyFileSync(path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'), module);
  const job = (over: Partial<PointJob> = {}): PointJob => ({
    v: 1,
    index: 0,
    id: '0123456789abcdef',
    label: 'x=1',
    root,
    config: 'c.yaml',
    text: '',
    modules: [{ path: 'ops/leaky-relu.ts', sha256: sha256(readFileSync(module)) }],
    numerics: true,
    workers: 1,
    out: path.join(root, 'out'),
    results: 'folders',
    ...over,
  });
  const served = [path.join(tmp, 'served')];

  it('accepts a job below its roots with the modules the sweep hashed', () => {
    expect(() => checkJob(job(), served)).not.toThrow();
  });

  it('refuses a sweep folder, config, module or --out outside, and a module that changed', () => {
    expect(() => checkJob(job(), [path.join(tmp, 'other')])).toThrow(/not below a folder this worker serves/);
    expect(() => checkJob(job({ config: '../../c.yaml' }), served)).toThrow(/the config \.\.\/\.\.\/c\.yaml is not below/);
    expect(() => checkJob(job({ config: '/etc/c.yaml' }), served)).toThrow(/not below/);
    expect(() => checkJob(job({ modules: [{ path: '../../../x.ts', sha256: '0' }] }), served)).toThrow(/custom-op module .* is not below/);
    expect(() => checkJob(job({ modules: [{ path: 'ops/leaky-relu.ts', sha256: '0'.repeat(64) }] }), served)).toThrow(/differs from the one the sweep shipped/);
    expect(() => checkJob(job({ out: path.join(tmp, 'elsewhere', 'out') }), served)).toThrow(/--out .* is not below a folder this worker serves/);
    expect(() => checkJob(job({ out: path.join(tmp, 'elsewhere', 'out'), results: 'summary' }), served)).not.toThrow();
    expect(() => checkJob({ ...job(), v: 2 } as unknown as PointJob, served)).toThrow(/version 1/);
  });
});
