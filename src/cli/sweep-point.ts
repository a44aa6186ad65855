/**
 * One point of a sweep, as it travels to the process that runs it: a child
 * of the local pool (sweep-local.ts) or a `sim worker` through the queue
 * (sweep-queue.ts). The job carries the point's config as text, the config's
 * file name and the custom-op modules (with their SHA-256) relative to the
 * sweep's folder, and where the run folder goes. A worker checks all of it
 * against the folders it was told to serve (`sim worker --root`) before it
 * runs anything: see checkJob.
 */
import { realpathSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfigText } from '../config/load.js';
import { RunError, UserError } from '../errors.js';
import { buildSummary, profileTables } from '../report/summary.js';
import { writeRun } from '../report/write.js';
import { compile, run } from '../session.js';
import { CodeletFault } from '../../sim/faults.js';
import { below, dataFiles, pointSummary, sha256, type PointSummary } from './sweep.js';

export type ResultsMode = 'folders' | 'summary';

export interface PointJob {
  /** schema of this object; a worker refuses a job of another version. */
  v: 1;
  index: number;
  id: string;
  label: string;
  /** The sweep's folder (absolute, as the sweep saw it). */
  root: string;
  /** The config file, relative to root: relative paths in the text resolve from its folder. */
  config: string;
  text: string;
  modules: { path: string; sha256: string }[];
  numerics: boolean;
  workers: number;
  /** The sweep's --out (absolute): run folders go to <out>/runs/<id> when results is 'folders'. */
  out?: string;
  results: ResultsMode;
}

export interface PointResult {
  id: string;
  summary?: PointSummary;
  error?: string;
  /** 1: the run failed; 2: the point's config (or the job) is wrong. */
  exitCode?: 1 | 2;
  /** The run folder, relative to the sweep's --out. */
  run?: string;
}

/** A point's failure as a queue job's failure message (sweep-processor.ts), and back (sweep-queue.ts). */
export function pointFailure(r: PointResult): string {
  return `point failed (exit ${r.exitCode ?? 1}): ${r.error ?? ''}`;
}

export function parsePointFailure(id: string, reason: string): PointResult | undefined {
  const m = /^point failed \(exit ([12])\): ([^]*)$/.exec(reason);
  return m ? { id, error: m[2], exitCode: Number(m[1]) as 1 | 2 } : undefined;
}

export function runFolderOf(id: string): string {
  return `runs/${id}`;
}

function realOrSame(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/**
 * A worker runs a job only when its sweep folder lies below one of `roots`,
 * its config and modules lie below the sweep folder, each module's text has
 * the hash the sweep shipped, and the run folders go below a root too.
 * Throws a UserError (the point fails, exit 2, no retry) naming what is wrong.
 */
export function checkJob(job: PointJob, roots: string[]): void {
  if (job.v !== 1) throw new UserError(`this worker runs sweep jobs of version 1, not ${String(job.v)}: run the same tilesim on the sweep and the workers`);
  const realRoots = roots.map((r) => realOrSame(path.resolve(r)));
  const root = realOrSame(job.root);
  const served = (p: string) => realRoots.some((r) => r === p || below(r, p) !== undefined);
  if (!path.isAbsolute(job.root) || !served(root)) throw new UserError(`the sweep's folder ${job.root} is not below a folder this worker serves (${roots.join(', ')}; sim worker --root)`);
  const inside = (rel: string, what: string) => {
    const abs = path.resolve(job.root, rel);
    if (path.isAbsolute(rel) || below(job.root, abs) === undefined || !below(root, realOrSame(abs))) throw new UserError(`${what} ${rel} is not below the sweep's folder ${job.root}`);
    return abs;
  };
  inside(job.config, 'the config');
  for (const m of job.modules) {
    const abs = inside(m.path, 'custom-op module');
    let text: Buffer;
    try {
      text = readFileSync(abs);
    } catch {
      throw new UserError(`custom-op module ${abs} cannot be read on this worker`);
    }
    if (sha256(text) !== m.sha256) throw new UserError(`custom-op module ${abs} differs from the one the sweep shipped (SHA-256 ${m.sha256.slice(0, 12)}...): the worker runs only the sweep's modules`);
  }
  if (job.out && job.results === 'folders' && !served(realOrSame(job.out)) && !served(realOrSame(path.dirname(job.out)))) {
    throw new UserError(`the sweep's --out ${job.out} is not below a folder this worker serves (${roots.join(', ')}): give the workers a shared --root, or sweep with --results summary`);
  }
}

/**
 * Runs one point. A point that cannot run (exit 1: out of tile memory, a
 * faulty codelet; exit 2: its config or the job is wrong) returns an error
 * rather than throwing: it is a result of the sweep. Anything else throws.
 * With `roots` (a worker), the job is checked first and the config's files
 * must be the ones the job names.
 */
export async function runPoint(job: PointJob, roots?: string[]): Promise<PointResult> {
  try {
    if (roots) checkJob(job, roots);
    const file = path.resolve(job.root, job.config);
    const config = loadConfigText(job.text, file, { numerics: job.numerics });
    if (roots) {
      const shipped = new Set(job.modules.map((m) => path.resolve(job.root, m.path)));
      for (const m of config.model.customOps) if (!shipped.has(m)) throw new UserError(`custom-op module ${m} was not shipped with the sweep`);
      for (const f of [...(config.model.onnx ? [config.model.onnx] : []), ...dataFiles(config)]) {
        if (!below(job.root, f)) throw new UserError(`${f} is not below the sweep's folder ${job.root}`);
      }
    }
    const compiled = await compile(config);
    const result = await run(compiled, { workers: job.workers, numerics: config.run.numerics, steps: config.steps ?? 1 });
    if (job.out && job.results === 'folders') {
      const rel = runFolderOf(job.id);
      try {
        const summary = await writeRun(path.join(job.out, rel), result, job.workers);
        return { id: job.id, summary: pointSummary(summary), run: rel };
      } catch (e) {
        if (e instanceof UserError || e instanceof RunError) throw e;
        throw new RunError(`the point ran, but its run folder ${path.join(job.out, rel)} could not be written: ${(e as Error).message}`);
      }
    }
    return { id: job.id, summary: pointSummary(buildSummary(result, profileTables(result), {}, job.workers)) };
  } catch (e) {
    if (e instanceof UserError) return { id: job.id, error: e.message.split('\n')[0], exitCode: 2 };
    if (e instanceof RunError || (e instanceof CodeletFault && e.inUserCode)) return { id: job.id, error: e.message.split('\n')[0], exitCode: 1 };
    throw e;
  }
}
