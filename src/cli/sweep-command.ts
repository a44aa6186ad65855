/**
 * `sim sweep`: plans the points (sweep.ts), runs them on a local pool of
 * processes (sweep-local.ts) or through a BullMQ queue (sweep-queue.ts), and
 * writes the sweep folder (--out):
 *
 *   sweep-plan.json            the config, the grid and each point's id (written first)
 *   points/<id>.json           each point's result, as it comes (what --resume reads)
 *   runs/<id>/                 each point's run folder (--results folders, the default)
 *   sweep.json, sweep.csv, sweep.html   the rows in point order, written last
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { RunError, UserError } from '../errors.js';
import { countProgress } from './progress.js';
import { reasonOf } from './outdir.js';
import { maskUrl, parseRedisUrl } from './redis-url.js';
import { formatSweep, parseSet, planSweep, pointLabel, sweepFiles, type SweepRow } from './sweep.js';
import { runLocal } from './sweep-local.js';
import type { PointJob, PointResult, ResultsMode } from './sweep-point.js';

export interface SweepCommandOptions {
  set: string[];
  workers: number;
  jobs?: number;
  json?: boolean;
  numerics: boolean;
  out?: string;
  /** A redis:// URL, or true (--queue alone): the URL in TILESIM_QUEUE. */
  queue?: string | true;
  results: ResultsMode;
  resume?: boolean;
  root?: string;
}

const MARKERS = ['sweep-plan.json', 'sweep.json'];

/** --out may be a new or empty folder, or a sweep folder (ours): never a folder of the user's files. */
async function prepareOut(out: string, resume: boolean): Promise<void> {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new UserError(`--out ${out} is a file, not a folder`);
    const entries = readdirSync(out);
    if (entries.length > 0 && !entries.some((e) => MARKERS.includes(e))) {
      throw new UserError(`--out ${out} exists and is not a sweep folder (no sweep-plan.json or sweep.json); refusing to write into it. Name a new or empty folder.`);
    }
  } else if (resume) {
    throw new UserError(`--resume: ${out} does not exist; --resume continues a sweep in the --out folder it was writing`);
  }
  try {
    await mkdir(out, { recursive: true });
    // A new sweep starts afresh: the previous sweep's results would be mixed with this one's.
    for (const f of resume ? ['sweep.json', 'sweep.csv', 'sweep.html'] : ['points', 'runs', 'sweep.json', 'sweep.csv', 'sweep.html']) {
      await rm(path.join(out, f), { recursive: true, force: true });
    }
  } catch (e) {
    throw new UserError(`--out ${out}: cannot write there: ${reasonOf(e)}; name a folder you can write to`);
  }
}

/** Writes `file` whole or not at all (a temp file renamed into place). */
async function writeWhole(file: string, text: string): Promise<void> {
  const temp = `${file}.partial-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(temp, text);
    await rename(temp, file);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
}

function readDone(out: string, id: string): PointResult | undefined {
  try {
    const r = JSON.parse(readFileSync(path.join(out, 'points', `${id}.json`), 'utf8')) as PointResult;
    return r.id === id && (r.summary || r.error) ? r : undefined;
  } catch {
    return undefined;
  }
}

/** A run folder as the user would type it: relative below the working directory, else absolute. */
function displayDir(dir: string): string {
  const rel = path.relative(process.cwd(), dir);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : dir;
}

/** The command as typed, with --resume, and any password in a queue URL masked: what to run to go on. */
function resumeCommand(): string {
  const args = process.argv.slice(2).map((a) => (/^rediss?:\/\//i.test(a) ? maskUrl(a) : /^--queue=/.test(a) ? `--queue=${maskUrl(a.slice(8))}` : a));
  if (!args.includes('--resume')) args.push('--resume');
  return `sim ${args.map((a) => (/^[\w@%+=:,./*-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')}`;
}

export async function sweepCommand(file: string, o: SweepCommandOptions): Promise<void> {
  const axes = o.set.map(parseSet);
  const queueUrl = o.queue === true ? process.env.TILESIM_QUEUE : o.queue;
  if (o.queue === true && !queueUrl) throw new UserError('--queue needs a redis:// URL, here or in TILESIM_QUEUE');
  const target = queueUrl ? parseRedisUrl(queueUrl) : undefined;
  const out = o.out ? path.resolve(o.out) : undefined;
  if (o.resume && !out) throw new UserError('--resume continues the sweep written to an --out folder: name it with --out');
  if (o.jobs !== undefined && target) throw new UserError('--jobs is for a local sweep; with --queue, the workers run the points (sim worker --jobs N)');
  const plan = planSweep(file, axes, { numerics: o.numerics, workers: o.workers, root: o.root, requireBelowRoot: target !== undefined });
  const results = new Map<string, PointResult>();
  if (out) {
    await prepareOut(out, o.resume === true);
    const planJson = {
      schemaVersion: 1,
      name: plan.name,
      config: plan.configFile,
      root: plan.root,
      set: o.set,
      numerics: plan.numerics,
      workers: plan.workers,
      results: o.results,
      modules: plan.modules,
      points: plan.points.map((p) => ({ index: p.index, id: p.id, point: p.point })),
    };
    await writeWhole(path.join(out, 'sweep-plan.json'), JSON.stringify(planJson, null, 2) + '\n');
    await mkdir(path.join(out, 'points'), { recursive: true });
    if (o.resume) for (const p of plan.points) {
      const r = readDone(out, p.id);
      if (r) results.set(p.id, r);
    }
  }
  const configRel = path.relative(plan.root, plan.configFile).split(path.sep).join('/');
  const jobs: PointJob[] = plan.points
    .filter((p) => !results.has(p.id))
    .map((p) => ({
      v: 1,
      index: p.index,
      id: p.id,
      label: pointLabel(p.point),
      root: plan.root,
      config: configRel,
      text: p.text,
      modules: plan.modules,
      numerics: plan.numerics,
      workers: plan.workers,
      ...(out ? { out } : {}),
      results: o.results,
    }));
  const tty = process.stdout.isTTY === true && !o.json;
  const say = (s: string) => {
    if (!o.json) process.stderr.write(s + '\n');
  };
  if (o.resume) say(`resuming: ${results.size} of ${plan.points.length} points already done in ${displayDir(out!)}`);
  const bar = countProgress(tty, 'sweep: points', plan.points.length);
  for (let i = 0; i < results.size; i++) bar.tick();
  const onResult = async (job: PointJob, r: PointResult) => {
    results.set(job.id, r);
    if (out) await writeWhole(path.join(out, 'points', `${job.id}.json`), JSON.stringify(r) + '\n');
    bar.tick();
  };

  let stopRunning: () => Promise<void> = async () => undefined;
  const interrupted = (sig: NodeJS.Signals) => {
    bar.stop();
    void stopRunning().finally(() => {
      const kept = out ? `the ${results.size} finished points are kept in ${displayDir(path.join(out, 'points'))}` : 'nothing was kept (no --out)';
      const queued = target ? `; the other points stay on the queue, and workers go on with them` : '';
      process.stderr.write(`\ninterrupted after ${results.size} of ${plan.points.length} points; ${kept}${queued}${out ? `; continue with: ${resumeCommand()}` : ''}\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  let clean: (() => Promise<void>) | undefined;
  try {
    if (target && jobs.length > 0) {
      const { queueSweep, sweepKey, QUEUE_NAME } = await import('./sweep-queue.js');
      const ids = plan.points.map((p) => p.id);
      const q = await queueSweep(target, sweepKey(ids, { out, results: o.results, workers: plan.workers }), jobs, onResult);
      stopRunning = q.detach;
      clean = () => q.clean(ids);
      say(`${jobs.length} points on the queue '${QUEUE_NAME}' at ${target.display}${q.finishedBefore ? ` (${q.finishedBefore} of them finished already)` : ''}; ${q.workers} worker${q.workers === 1 ? '' : 's'} listening${q.workers ? '' : ': start some with sim worker --queue <the same URL>'}`);
      await q.done;
    } else {
      const size = Math.max(1, o.jobs ?? Math.floor(availableParallelism() / plan.workers));
      const pool = runLocal(jobs, size, onResult);
      stopRunning = async () => pool.stop();
      await pool.done;
    }
  } catch (e) {
    await stopRunning();
    throw e instanceof UserError || e instanceof RunError ? e : new RunError(`the sweep stopped: ${(e as Error).message}`);
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    bar.stop();
  }

  const rows: SweepRow[] = plan.points.map((p) => {
    const r = results.get(p.id)!;
    return { id: p.id, point: p.point, ...(r.summary ? { summary: r.summary } : {}), ...(r.error !== undefined ? { error: r.error } : {}) };
  });
  const files = sweepFiles(plan.name, rows);
  if (o.json) process.stdout.write(files.get('sweep.json')!);
  else process.stdout.write(formatSweep(rows) + '\n');
  if (out) {
    try {
      for (const [name, text] of files) await writeWhole(path.join(out, name), text);
    } catch (e) {
      throw new RunError(`the sweep finished, but ${out} could not be written: ${reasonOf(e)}. The table is printed above; each point's result is in ${path.join(out, 'points')}`);
    }
    if (!o.json) process.stdout.write(`sweep written to ${displayDir(out)} (sweep.html charts it${o.results === 'folders' ? '; runs/<id>/ holds each point\'s run folder' : ''})\n`);
  }
  // The queue keeps no finished sweep: its results are in the files now (or printed).
  if (clean) await clean();
  // A config error in a point is the command's mistake (2); points that could not run are results, but the exit status says not all ran.
  const failed = rows.filter((r) => r.error !== undefined);
  if (failed.length) {
    const code2 = failed.filter((r) => results.get(r.id)?.exitCode === 2);
    if (code2.length === failed.length) throw new UserError(`${failed.length} of ${rows.length} points could not run: ${code2[0].error}`);
    throw new RunError(`${failed.length} of ${rows.length} points failed`);
  }
}
