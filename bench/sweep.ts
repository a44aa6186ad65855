/**
 * Issue 14's target: a 64-point timing-only sweep of a small BERT-style layer
 * (bench/configs/bert-mini.yaml: 8 tile counts x 8 exchange bandwidths) run
 * through Redis by two local `sim worker` processes takes at most 1.1x the
 * same sweep run locally with 2 jobs. Both runs are the CLI from the sources,
 * one after the other on the same machine, with run folders written to --out;
 * the two sweep.csv files must be the same. The workers are started (and have
 * connected) before the queued sweep's clock starts, as long-lived workers
 * would be; the local pool's start-up is inside its time. The two kinds of run
 * alternate, twice each, and the best of each counts: the machine is shared.
 *
 * Needs Debian's redis-server (started here on a free port, stopped after).
 *   npx tsx --conditions=tilesim-source bench/sweep.ts     (alone; bench/run.ts calls sweepBench)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis } from '../test/distributed/redis.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONFIG = path.join(ROOT, 'bench/configs/bert-mini.yaml');
const GRID = ['--set', 'device.tiles=8,12,16,24,32,48,64,96', '--set', 'device.exchangeBytesPerCycle=1,2,3,4,5,6,7,8', '--no-numerics'];
const SIM = ['--import', 'tsx', '--conditions=tilesim-source', path.join(ROOT, 'scripts/sim.ts')];

export interface SweepBench {
  points: number;
  localSeconds: number;
  queueSeconds: number;
  ratio: number;
  identical: boolean;
  rounds: number;
}

function start(args: string[]): { child: ChildProcess; out: () => string; done: Promise<number | null> } {
  // In the checkout: `--import tsx` resolves from the working directory (and so do the processes the sweep and workers fork).
  const child = spawn(process.execPath, [...SIM, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  return { child, out: () => text, done: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

async function timed(args: string[]): Promise<number> {
  const t0 = performance.now();
  const p = start(args);
  const code = await p.done;
  if (code !== 0) throw new Error(`sim ${args.join(' ')} exited ${code}:\n${p.out()}`);
  return (performance.now() - t0) / 1000;
}

/** Runs of each kind, alternated (local, queue, local, queue), the best of each kept: the machine is shared. */
const ROUNDS = 2;

export async function sweepBench(log: (s: string) => void = console.log): Promise<SweepBench> {
  const tmp = mkdtempSync(path.join(tmpdir(), 'tilesim-bench-sweep-'));
  const redis = await startRedis(tmp);
  const workers: ReturnType<typeof start>[] = [];
  try {
    for (let i = 0; i < 2; i++) workers.push(start(['worker', '--queue', redis.url, '--root', ROOT, tmp]));
    for (const w of workers) {
      for (let t = 0; !/taking points/.test(w.out()); t++) {
        if (t > 600) throw new Error(`a worker did not start:\n${w.out()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const local: number[] = [];
    const queue: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      local.push(await timed(['sweep', CONFIG, ...GRID, '--jobs', '2', '--out', path.join(tmp, `local-${round}`)]));
      log(`sweep bench: 64 points locally with 2 jobs: ${local[round].toFixed(1)} s`);
      queue.push(await timed(['sweep', CONFIG, ...GRID, '--queue', redis.url, '--root', ROOT, '--out', path.join(tmp, `queue-${round}`)]));
      log(`sweep bench: 64 points through Redis by 2 workers: ${queue[round].toFixed(1)} s`);
    }
    const csv = (name: string) => readFileSync(path.join(tmp, name, 'sweep.csv'), 'utf8');
    const identical = Array.from({ length: ROUNDS }, (_, r) => [`local-${r}`, `queue-${r}`]).flat().every((n) => csv(n) === csv('local-0'));
    const localSeconds = Math.min(...local);
    const queueSeconds = Math.min(...queue);
    return { points: 64, localSeconds, queueSeconds, ratio: queueSeconds / localSeconds, identical, rounds: ROUNDS };
  } finally {
    for (const w of workers) {
      w.child.kill('SIGTERM');
      await w.done;
    }
    await redis.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function sweepBenchMarkdown(b: SweepBench): string {
  return `## Sweeps through a queue

bench/sweep.ts: a ${b.points}-point timing-only sweep (\`--no-numerics\`) of a small BERT-style encoder layer
(bench/configs/bert-mini.yaml: hidden 128, 2 heads, sequence 32, FFN 512, one SGD step; tiles 8 to 96 x
exchange bandwidth 1 to 8 bytes per cycle), run locally with \`--jobs 2\` and then through a Redis server on this
machine by two \`sim worker\` processes (started before the clock), run folders written in both; the two kinds
alternate, ${b.rounds} runs each, best of each. Target (issue 14): the queue at most 1.1x the local time.

| | local, 2 jobs | Redis, 2 workers | ratio | same sweep.csv |
|---|---|---|---|---|
| wall time | ${b.localSeconds.toFixed(1)} s | ${b.queueSeconds.toFixed(1)} s | ${b.ratio.toFixed(2)}x | ${b.identical ? 'yes' : '**no**'} |
`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const b = await sweepBench();
  console.log(sweepBenchMarkdown(b));
  if (!b.identical) process.exitCode = 1;
}
