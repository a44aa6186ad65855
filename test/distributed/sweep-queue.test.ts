/**
 * Distributed sweeps through a real Redis server (npm run test:distributed):
 * `sim sweep --queue` with `sim worker` processes, as a user runs them.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers.js';
import { startRedis, type RedisServer } from './redis.js';

const BIN = path.join(ROOT, 'bin/sim.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-distributed-'));
// The sweep's folder: the config (and what it names) below it; the workers serve it.
const project = path.join(tmp, 'project');
const CONFIG = path.join(project, 'mlp.yaml');
// A 256-1024-1024-10 MLP on mk2 numbers, timing only: each point takes a second or more, long enough to be killed mid-point.
const GRID = ['--set', 'device.tiles=64,256', '--set', 'device.exchangeBytesPerCycle=2,4,8', '--no-numerics'];
// No bin/sim.js re-spawn with a bigger heap: the pid is the sim process itself (a kill reaches the worker).
const NODE = [process.execPath, '--max-old-space-size=4096', BIN];

let redis: RedisServer;
const running = new Set<ChildProcess>();

interface Proc {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
}

function start(args: string[], cwd = project): Proc {
  const child = spawn(NODE[0], [...NODE.slice(1), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  return {
    child,
    out: () => text,
    exited,
    waitFor: async (re, ms = 60_000) => {
      const t0 = Date.now();
      for (;;) {
        const m = re.exec(text);
        if (m) return m;
        if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${re} in:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

function sim(args: string[], cwd = project) {
  const r = spawnSync(NODE[0], [...NODE.slice(1), ...args], { cwd, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function worker(...extra: string[]): Proc {
  return start(['worker', '--queue', redis.url, '--stalled-after', '3', ...extra]);
}

async function stopWorker(w: Proc): Promise<void> {
  if (w.child.exitCode !== null || w.child.signalCode !== null) return;
  w.child.kill('SIGTERM');
  await w.exited;
}

/** The queue's job hashes left in Redis (BullMQ keeps a few bookkeeping keys beside them). */
function jobKeys(): string[] {
  return redis.cli('--scan', '--pattern', 'bull:tilesim-sweep:*').split('\n').filter((k) => /^bull:tilesim-sweep:[0-9a-f]{12}-[0-9a-f]{16}$/.test(k));
}

let localCsv: string;

beforeAll(async () => {
  mkdirSync(project);
  copyFileSync(path.join(ROOT, 'configs/examples/sweep-tiles-bandwidth.yaml'), CONFIG);
  redis = await startRedis(tmp);
  const local = sim(['sweep', CONFIG, ...GRID, '--out', path.join(project, 'local'), '--jobs', '2']);
  expect(local.stderr).toBe('');
  expect(local.code).toBe(0);
  localCsv = readFileSync(path.join(project, 'local/sweep.csv'), 'utf8');
}, 300_000);

afterAll(async () => {
  for (const c of running) c.kill('SIGKILL');
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('sim sweep --queue with sim worker', () => {
  it('survives a worker killed mid-point: the same sweep.csv as a local run, and a clean queue', async () => {
    const a = worker();
    const b = worker();
    await a.waitFor(/taking points/);
    await b.waitFor(/taking points/);
    const sweep = start(['sweep', CONFIG, ...GRID, '--queue', redis.url, '--out', path.join(project, 'dist')]);
    // Kill worker A as soon as it has a point: the point goes back to the queue (stalled) and B runs it.
    const [, id] = await a.waitFor(/running point \d+ ([0-9a-f]{16})/);
    a.child.kill('SIGKILL');
    const { code } = await sweep.exited;
    expect(sweep.out()).not.toContain(redis.password);
    expect(code).toBe(0);
    expect(readFileSync(path.join(project, 'dist/sweep.csv'), 'utf8')).toBe(localCsv);
    expect(readFileSync(path.join(project, 'dist/sweep.json'), 'utf8')).toBe(readFileSync(path.join(project, 'local/sweep.json'), 'utf8'));
    // B ran the killed point, as a second attempt; every point's run folder is there.
    expect(b.out()).toMatch(new RegExp(`running point \\d+ ${id} .*, attempt 2`));
    expect(b.out()).toMatch(new RegExp(`done +point \\d+ ${id}`));
    expect(readdirSync(path.join(project, 'dist/runs')).filter((f) => /^[0-9a-f]{16}$/.test(f)).sort()).toEqual(readdirSync(path.join(project, 'local/runs')).sort());
    expect(jobKeys()).toEqual([]);
    await stopWorker(b);
    expect(a.out() + b.out()).not.toContain(redis.password);
  }, 300_000);

  it('--results summary: the same rows, no run folders', async () => {
    const w = worker();
    const r = sim(['sweep', CONFIG, ...GRID, '--queue', redis.url, '--out', path.join(project, 'summary'), '--results', 'summary']);
    await stopWorker(w);
    expect(r.code).toBe(0);
    expect(readFileSync(path.join(project, 'summary/sweep.csv'), 'utf8')).toBe(localCsv);
    expect(readdirSync(path.join(project, 'summary'))).not.toContain('runs');
  }, 300_000);

  it('records a point that fails (exit 1) with its message, without retrying it', async () => {
    const w = worker();
    // 4 tiles of mk2 cannot hold the MLP's weights.
    const r = sim(['sweep', CONFIG, '--set', 'device.tiles=4,64', '--no-numerics', '--queue', redis.url, '--out', path.join(project, 'oom')]);
    await stopWorker(w);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/device\.tiles=4: Out of memory on tile/);
    const rows = JSON.parse(readFileSync(path.join(project, 'oom/sweep.json'), 'utf8')) as { point: object; error?: string }[];
    expect(rows[0].error).toMatch(/^Out of memory on tile \d+: \d+ bytes used but tiles only have 638976 bytes/);
    expect(rows[1].error).toBeUndefined();
    // One try only.
    expect(w.out().match(/running point 1 /g)).toHaveLength(1);
    expect(w.out()).not.toMatch(/attempt 2/);
  }, 300_000);

  it('Ctrl-C leaves the sweep resumable: --resume collects the rest, the same ids, the same sweep.csv', async () => {
    const out = path.join(project, 'resumed');
    const sweep = start(['sweep', CONFIG, ...GRID, '--queue', redis.url, '--out', out]);
    await sweep.waitFor(/points on the queue/);
    const w = worker();
    await w.waitFor(/done +point/);
    sweep.child.kill('SIGINT');
    const { code } = await sweep.exited;
    expect(code).toBe(130);
    expect(sweep.out()).toMatch(/interrupted after \d+ of 6 points/);
    expect(sweep.out()).toContain('--resume');
    expect(sweep.out()).toContain('redis://***@127.0.0.1');
    expect(sweep.out()).not.toContain(redis.password);
    const r = sim(['sweep', CONFIG, ...GRID, '--queue', redis.url, '--out', out, '--resume']);
    await stopWorker(w);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/resuming: [1-6] of 6 points already done/);
    expect(readFileSync(path.join(out, 'sweep.csv'), 'utf8')).toBe(localCsv);
    // Each point ran once, whichever process collected it.
    const ran = w.out().match(/done +point \d+ [0-9a-f]{16}/g)!;
    expect(new Set(ran).size).toBe(ran.length);
    expect(jobKeys()).toEqual([]);
  }, 300_000);

  it('a worker refuses a sweep outside the folders it serves (exit 2 for the point), and a module that differs from the one shipped', async () => {
    const elsewhere = path.join(tmp, 'elsewhere');
    mkdirSync(elsewhere);
    const w = start(['worker', '--queue', redis.url, '--root', elsewhere, '--stalled-after', '3'], elsewhere);
    const r = sim(['sweep', CONFIG, '--set', 'device.tiles=64', '--no-numerics', '--queue', redis.url, '--results', 'summary']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/not below a folder this worker serves/);
    await stopWorker(w);

    // A custom-op module changed on the worker's side after the sweep hashed it is refused.
    const ops = path.join(project, 'ops');
    mkdirSync(ops);
    copyFileSync(path.join(ROOT, 'examples/custom-ops/leaky-relu.ts'), path.join(ops, 'leaky-relu.ts'));
    const cfg = path.join(project, 'leaky.yaml');
    writeFileSync(cfg, readFileSync(path.join(ROOT, 'configs/examples/leaky-relu-train.yaml'), 'utf8').replace('../../examples/custom-ops/leaky-relu.ts', 'ops/leaky-relu.ts'));
    const sweep = start(['sweep', cfg, '--set', 'train.steps=1', '--queue', redis.url, '--results', 'summary']);
    await sweep.waitFor(/points on the queue/);
    writeFileSync(path.join(ops, 'leaky-relu.ts'), readFileSync(path.join(ops, 'leaky-relu.ts'), 'utf8') + '\n// changed\n');
    const w2 = worker();
    const { code } = await sweep.exited;
    await stopWorker(w2);
    expect(code).toBe(2);
    expect(sweep.out()).toMatch(/differs from the one the sweep shipped/);
  }, 300_000);

  it('an unreachable Redis or a bad URL is a clear error, with the password masked', async () => {
    const down = sim(['sweep', CONFIG, '--set', 'device.tiles=64', '--queue', `redis://:${redis.password}@127.0.0.1:1/0`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot use the Redis server at redis:\/\/\*\*\*@127\.0\.0\.1:1\/0: .*ECONNREFUSED/);
    const wrong = sim(['worker', '--queue', `redis://:not-${redis.password}@127.0.0.1:${redis.port}/0`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/WRONGPASS/);
    const bad = sim(['sweep', CONFIG, '--set', 'device.tiles=64', '--queue', `redis://:${redis.password}@127.0.0.1:${redis.port}/zero`]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/the database must be a number/);
    for (const r of [down, wrong, bad]) {
      expect(r.stdout + r.stderr).not.toContain(redis.password);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  }, 60_000);
});
